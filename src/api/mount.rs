//! Mounting a router of JSON routes under a base path (`/v1`), its OpenAPI document
//! following: the paths it documents are the paths it serves.

use axum::Router;
use utoipa::openapi::OpenApi;

/// Whether `base` is a base path: empty (the root), or `/`-separated segments of letters,
/// digits, `-`, `_` and `.` (not `.` or `..` alone), starting with `/` and without a
/// trailing `/`: safe in routes and in the dashboard's HTML as it is.
pub(crate) fn is_valid_base(base: &str) -> bool {
    base.is_empty()
        || base.strip_prefix('/').is_some_and(|rest| {
            rest.split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
        })
}

/// `router` and `api` under `base`: the routes nested, every documented path prefixed.
pub(crate) fn mount<S>(base: &str, router: Router<S>, mut api: OpenApi) -> (Router<S>, OpenApi)
where
    S: Clone + Send + Sync + 'static,
{
    if base.is_empty() {
        return (router, api);
    }
    let paths = std::mem::take(&mut api.paths.paths);
    api.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{base}{path}"), item))
        .collect();
    (Router::new().nest(base, router), api)
}

#[cfg(test)]
mod tests {
    use super::is_valid_base;

    #[test]
    fn base_paths_are_segments_without_a_trailing_slash() {
        for good in ["", "/v1", "/api/v1", "/a-b_c.d"] {
            assert!(is_valid_base(good), "{good}");
        }
        for bad in [
            "/", "v1", "/v1/", "//v1", "/v 1", "/v1?x", "/{id}", "/*", "/..", "/a/./b",
        ] {
            assert!(!is_valid_base(bad), "{bad}");
        }
    }
}
