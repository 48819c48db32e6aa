//! The API Tokens page (feature `dashboard`): the dashboard every API that issues tokens
//! describes ("Settings → API Tokens → New API Token … the token is displayed once"),
//! served by the crate.
//!
//! One self-contained page (HTML, CSS and JavaScript embedded in the crate: no build
//! step, no CDN, works offline) that talks only to the [management API](crate::admin):
//!
//! - **Sign in** with an API key that holds `admin`. When the registry has sessions
//!   (feature `exchange`), the page trades the key for a short-lived access token through
//!   `POST /auth/login`; otherwise it sends the key itself. The credential lives in the
//!   script's memory only (never `localStorage`, never a cookie), and the page signs out
//!   on the first 401.
//! - **API Tokens**: the tenant's tokens (name, display prefix, scopes, owner, created,
//!   expires, last used; expired tokens stay listed with an "Expired" badge), a page at a
//!   time.
//! - **New API Token**: a name, scope checkboxes (`read`, `write`, `admin` and the scopes
//!   the registry declares), an expiry (30, 90, 180 days (the default), never, or a
//!   date). The token is shown once, with a "Copy" button; closing the display removes it
//!   from the page. **Rotate** shows the new token the same way; **Revoke** asks first.
//! - **Edit** renames a token and changes its scopes.
//! - **Activity** (feature `activity`, when the registry keeps a log): a token's recent
//!   calls, newest first, with outcome badges and the "new IP" flag; calls made with a
//!   revoked or expired token are highlighted.
//! - **Sessions** (feature `exchange`, when the registry has sessions): an API key's live
//!   sessions (the client's session id, when its access token was issued and when it
//!   expires), each with **End session**, which stops its access token at once.
//! - Every error is shown as the API's own message, in words.
//!
//! Every value is rendered as text (a token named `<img src=x onerror=alert(1)>` shows
//! those characters). Every response carries a strict `Content-Security-Policy` (scripts
//! and styles from the page itself only, no framing), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
//!
//! The page's routes need no token (the page asks for one): list them as public in the
//! [`BearerAuthLayer`](crate::layer::BearerAuthLayer) that protects the management API.
//!
//! ```
//! use axum::Router;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::dashboard::Dashboard;
//! use tower_bearer::admin::ManagementApi;
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let app = Router::new()
//!     .merge(ManagementApi::new(registry.clone()).router())
//!     .merge(Dashboard::new(registry.clone()).router());
//! let app = BearerAuthLayer::new(registry)
//!     .public(["/dashboard", "/dashboard/*"])
//!     .protect(app);
//!
//! let page = app
//!     .oneshot(Request::get("/dashboard").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(page.status(), StatusCode::OK);
//! assert!(page.headers()["content-security-policy"]
//!     .to_str()
//!     .unwrap()
//!     .contains("script-src 'self'"));
//! # }
//! ```

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::api::mount::is_valid_base;
use crate::registry::Registry;

const PAGE: &str = include_str!("page.html");
/// The page's scripts, ES modules by role: `app.js` imports the others.
const SCRIPTS: [(&str, &str); 6] = [
    ("app.js", include_str!("app.js")),
    ("api.js", include_str!("api.js")),
    ("limits.js", include_str!("limits.js")),
    ("usage.js", include_str!("usage.js")),
    ("webhooks.js", include_str!("webhooks.js")),
    ("leaked.js", include_str!("leaked.js")),
];
const STYLE: &str = include_str!("app.css");

/// The scopes every registry knows; the registry's declared ones follow.
const STANDARD_SCOPES: [&str; 3] = ["read", "write", "admin"];

/// The API Tokens page, configured for a registry: see the [module](self).
#[derive(Clone, Debug)]
#[must_use]
pub struct Dashboard {
    registry: Registry,
    path: String,
    /// Set by [`api`](Self::api); else where the management API was mounted.
    api: Option<String>,
    /// Set by [`login`](Self::login); else the login route of the registry.
    login: Option<Option<String>>,
    scopes: Vec<String>,
    activity: bool,
    sessions: bool,
    webhooks: bool,
}

/// What the page's script reads at start (`config.json`).
#[derive(Serialize)]
struct Config<'a> {
    /// Where the management API is: `""` for this origin's root.
    api: &'a str,
    /// The login route, when the page should trade the key for an access token.
    login: Option<&'a str>,
    /// The logout route beside it, which Sign out calls to end the session.
    logout: Option<String>,
    scopes: &'a [String],
    activity: bool,
    /// Whether the management API lists and ends sessions.
    sessions: bool,
    /// Whether the management API manages webhook endpoints.
    webhooks: bool,
}

impl Dashboard {
    /// The page for `registry`'s management API, served at `/dashboard` on the same
    /// origin as the API. It finds the API where its router was mounted
    /// ([`ManagementApi::base_path`](crate::admin::ManagementApi::base_path), the root by
    /// default) and signs in through the registry's login route when it has sessions
    /// (`POST /auth/login`, or under [`LoginApi::base_path`](crate::exchange::LoginApi::base_path)),
    /// whichever is built first; it lists sessions, offers the registry's declared
    /// scopes, and shows activity when the registry keeps a log.
    pub fn new(registry: Registry) -> Self {
        let mut scopes: Vec<String> = STANDARD_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        // `*` (every scope) is not offered: it is granted deliberately, through the API.
        for scope in registry.declared_scopes().filter(|scope| *scope != "*") {
            if !scopes.iter().any(|known| known == scope) {
                scopes.push(scope.to_owned());
            }
        }
        Self {
            path: "/dashboard".to_owned(),
            api: None,
            login: None,
            scopes,
            activity: registry.has_activity_log(),
            sessions: registry.has_sessions(),
            webhooks: has_webhooks(&registry),
            registry,
        }
    }

    /// Serves the page at `path` (default `/dashboard`): `/`-separated segments of
    /// letters, digits, `-`, `_` and `.`, without a trailing `/`.
    ///
    /// # Panics
    ///
    /// On any other path: a mistake in the program, found at its start.
    #[track_caller]
    pub fn path(mut self, path: &str) -> Self {
        assert!(is_valid_path(path), "invalid dashboard path {path:?}");
        self.path = path.to_owned();
        self
    }

    /// Where the management API is mounted, as a prefix of its routes on this origin
    /// (default: the root, `""`), e.g. `/admin` for `/admin/tokens`.
    ///
    /// # Panics
    ///
    /// On a prefix that is not a valid path (see [`path`](Self::path)).
    #[track_caller]
    pub fn api(mut self, prefix: &str) -> Self {
        assert!(
            is_valid_base(prefix),
            "invalid management API prefix {prefix:?}"
        );
        self.api = Some(prefix.to_owned());
        self
    }

    /// Signs in through this login route (`Some("/auth/login")`), or sends the pasted
    /// key itself with every call (`None`). The default follows the registry.
    ///
    /// # Panics
    ///
    /// On a route that is not a valid path (see [`path`](Self::path)).
    #[track_caller]
    pub fn login(mut self, route: Option<&str>) -> Self {
        if let Some(route) = route {
            assert!(is_valid_path(route), "invalid login route {route:?}");
        }
        self.login = Some(route.map(str::to_owned));
        self
    }

    /// The page's routes: the page at the path (with and without a trailing `/`), its
    /// script, its style sheet and its configuration.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> Router<S> {
        let page = PAGE.replace("{{BASE}}", &self.path);
        let path = self.path.clone();
        let path = &path;
        let mut router = Router::new()
            .route(path, get(asset(page.clone(), "text/html; charset=utf-8")))
            .route(
                &format!("{path}/"),
                get(asset(page, "text/html; charset=utf-8")),
            );
        for (name, script) in SCRIPTS {
            router = router.route(
                &format!("{path}/{name}"),
                get(asset(script.to_owned(), "text/javascript; charset=utf-8")),
            );
        }
        router
            .route(
                &format!("{path}/app.css"),
                get(asset(STYLE.to_owned(), "text/css; charset=utf-8")),
            )
            .route(
                &format!("{path}/config.json"),
                get(move || std::future::ready(self.config())),
            )
    }
}

impl Dashboard {
    /// `config.json`, read when the page asks for it: the API routers of the registry
    /// may be built after the page's.
    fn config(&self) -> Response {
        let api = self
            .api
            .clone()
            .or_else(|| self.registry.management_mount())
            .unwrap_or_default();
        let login = self.login.clone().unwrap_or_else(|| {
            self.sessions.then(|| {
                self.registry
                    .login_route()
                    .unwrap_or_else(|| "/auth/login".to_owned())
            })
        });
        let config = serde_json::to_vec(&Config {
            api: &api,
            login: login.as_deref(),
            // `…/login` → `…/logout`: the exchange router mounts both.
            logout: login
                .as_deref()
                .and_then(|login| login.strip_suffix("/login"))
                .map(|base| format!("{base}/logout")),
            scopes: &self.scopes,
            activity: self.activity,
            sessions: self.sessions,
            webhooks: self.webhooks,
        })
        .expect("the configuration serializes");
        respond(config.into(), "application/json")
    }
}

/// Whether `registry` keeps webhook endpoints (feature `webhooks`).
fn has_webhooks(registry: &Registry) -> bool {
    #[cfg(feature = "webhooks")]
    return registry.webhooks().is_some();
    #[cfg(not(feature = "webhooks"))]
    {
        let _ = registry;
        false
    }
}

/// The page's routes for `registry`, at `/dashboard`: `Dashboard::new(registry).router()`.
pub fn router<S: Clone + Send + Sync + 'static>(registry: Registry) -> Router<S> {
    Dashboard::new(registry).router()
}

/// A handler answering `body` as `content_type`, with the page's security headers.
fn asset(
    body: String,
    content_type: &'static str,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    let body = bytes::Bytes::from(body);
    move || std::future::ready(respond(body.clone(), content_type))
}

/// Scripts, styles and API calls from this origin only; no plugins, frames, forms sent
/// elsewhere, or `<base>` tricks.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn respond(body: bytes::Bytes, content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A path of the page or the API: not the root, else a base path (see
/// [`is_valid_base`]).
fn is_valid_path(path: &str) -> bool {
    !path.is_empty() && is_valid_base(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_plain_segments() {
        for good in ["/dashboard", "/admin/tokens", "/a.b-c_d"] {
            assert!(is_valid_path(good), "{good}");
        }
        for bad in [
            "",
            "/",
            "dashboard",
            "/dashboard/",
            "/a//b",
            "/a/../b",
            "/\"><script>",
            "/a b",
        ] {
            assert!(!is_valid_path(bad), "{bad}");
        }
    }

    /// The page runs no script of its own making: none inline (the policy forbids it),
    /// and nothing that writes HTML from a string.
    #[test]
    fn the_page_has_no_inline_script_and_no_script_writes_html() {
        assert!(!PAGE.contains("<script>"));
        // No inline event handler attribute (` onclick=`, ` onload=`, …).
        let inline_handler = PAGE.match_indices(" on").any(|(at, _)| {
            let rest = &PAGE[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!inline_handler);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            for (name, script) in SCRIPTS {
                assert!(!script.contains(sink), "{sink} in {name}");
            }
        }
    }
}
