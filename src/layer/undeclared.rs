//! The layer's side of undeclared scopes: a gRPC scope map is checked when it is given
//! to the layer, and a 403 that a `Scoped` extractor or a `RequireScopeLayer` further in
//! answered for a scope the registry does not declare is reported (and, with
//! [`strict_scopes`](crate::registry::RegistryBuilder::strict_scopes), answered 500).

use bytes::Bytes;
use http::Response;

use crate::grpc::GrpcScopes;
use crate::registry::Registry;
use crate::reject::Rejection;

/// Reports the scopes of `map` that `registry` does not declare.
///
/// # Panics
///
/// When the registry's scopes are strict: the map is wrong from the start.
#[track_caller]
pub(crate) fn check_grpc_map(registry: &Registry, map: &GrpcScopes) {
    for (path, scope) in map.requirements() {
        if registry.undeclared(scope).is_empty() {
            continue;
        }
        let asked_by = format!("the gRPC scope map, for {path},");
        if registry.strict_scopes() {
            let declared: Vec<&str> = registry.declared_scopes().collect();
            panic!(
                "{asked_by} requires scope `{scope}`, which the registry does not declare \
                 (declared: {})",
                declared.join(", ")
            );
        }
        registry.report_undeclared(scope, &asked_by);
    }
}

/// A 403 for `rejection`'s scope that no token can hold: reported, and with strict
/// scopes replaced by a 500 (a programming error, like a missing layer).
#[cold]
pub(crate) fn check_refusal(registry: &Registry, rejection: &Rejection) -> Option<Response<Bytes>> {
    let Rejection::InsufficientScope { scope, .. } = rejection else {
        return None;
    };
    let undeclared = registry.undeclared(scope);
    for scope in &undeclared {
        registry.report_undeclared(
            scope,
            "a route behind this layer (Scoped or RequireScopeLayer)",
        );
    }
    if undeclared.is_empty() || !registry.strict_scopes() {
        return None;
    }
    let body = format!(
        "tower-bearer: this route requires scope `{}`, which the registry does not declare: \
         no token can hold it.",
        undeclared.join(" ")
    );
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Some(response)
}
