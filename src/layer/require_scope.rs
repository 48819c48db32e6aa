use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{Anonymous, ResponseFuture};
use crate::principal::Principal;
use crate::registry::RejectCause;
use crate::reject::{Rejection, render_later};
use crate::scope::Scope;

/// Requires a scope of the request's [`Principal`]: a per-route layer for routers and
/// services that do not use extractors.
///
/// Must run inside a [`BearerAuthLayer`](super::BearerAuthLayer), which renders its 403
/// (`error="insufficient_scope", scope="…"`) with the configured renderer. A request
/// without a principal gets a 401; a service without the authentication layer at all
/// gets a 500, as the misconfiguration it is.
///
/// ```
/// use axum::{Router, body::Body, routing::post};
/// use http::{Request, StatusCode};
/// use tower::ServiceExt as _;
/// use tower_bearer::layer::{BearerAuthLayer, RequireScopeLayer};
/// use tower_bearer::registry::IssueRequest;
/// use tower_bearer::{MemoryStore, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::builder(MemoryStore::new()).build();
/// let reader = registry.issue(IssueRequest::new("reader", "acme")?.scopes(["read"])?).await?;
/// let app = BearerAuthLayer::new(registry).protect(
///     Router::new().route(
///         "/items",
///         post(|| async { "created" }).route_layer(RequireScopeLayer::from_static("write")),
///     ),
/// );
///
/// let request = Request::post("/items")
///     .header("authorization", format!("Bearer {}", reader.secret.expose_secret()))
///     .body(Body::empty())?;
/// let response = app.oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::FORBIDDEN);
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"Bearer realm="api", error="insufficient_scope", scope="write""#
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopeLayer {
    requirement: Requirement,
}

/// What a [`RequireScope`] checks.
#[derive(Clone, Debug)]
enum Requirement {
    One(Cow<'static, str>),
    AnyOf(Arc<[Scope]>),
    AllOf(Arc<[Scope]>),
}

impl Requirement {
    /// `None` when `principal` meets it; otherwise the scopes to name in the 403
    /// (space-separated, as RFC 6750's `scope` attribute lists them).
    fn unmet(&self, principal: &Principal) -> Option<Cow<'static, str>> {
        let names = |scopes: &mut dyn Iterator<Item = &Scope>| -> Cow<'static, str> {
            scopes
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" ")
                .into()
        };
        match self {
            Requirement::One(scope) => (!principal.has_scope(scope)).then(|| scope.clone()),
            Requirement::AnyOf(scopes) => (!scopes.iter().any(|s| principal.has_scope(s.as_str())))
                .then(|| names(&mut scopes.iter())),
            Requirement::AllOf(scopes) => {
                let mut missing = scopes
                    .iter()
                    .filter(|s| !principal.has_scope(s.as_str()))
                    .peekable();
                missing.peek().is_some().then(|| names(&mut missing))
            }
        }
    }
}

impl RequireScopeLayer {
    /// Requires `scope` (with implications: `admin` satisfies `write`).
    pub fn new(scope: Scope) -> Self {
        Self {
            requirement: Requirement::One(Cow::Owned(scope.as_str().to_owned())),
        }
    }

    /// Requires the scope named by a string literal, like `HeaderValue::from_static`.
    ///
    /// # Panics
    ///
    /// If `scope` is not a valid scope name: a programming error, like a bad route path.
    /// The panic points at the caller's line.
    #[track_caller]
    pub fn from_static(scope: &'static str) -> Self {
        if !crate::scope::is_valid_scope(scope) {
            panic!(
                "RequireScopeLayer::from_static({scope:?}): invalid scope name; expected read, write, admin, * or resource:action"
            );
        }
        Self {
            requirement: Requirement::One(Cow::Borrowed(scope)),
        }
    }

    /// Requires at least one of `scopes` (e.g. `reports:read` or `admin`). An empty list
    /// is met by nobody.
    pub fn any_of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            requirement: Requirement::AnyOf(scopes.into_iter().collect()),
        }
    }

    /// Requires every one of `scopes`.
    pub fn all_of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self {
            requirement: Requirement::AllOf(scopes.into_iter().collect()),
        }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            requirement: self.requirement.clone(),
        }
    }
}

/// The middleware built by [`RequireScopeLayer`].
#[derive(Clone, Debug)]
pub struct RequireScope<S> {
    inner: S,
    requirement: Requirement,
}

impl<S> RequireScope<S> {
    inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: super::RejectionBody,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let extensions = request.extensions();
        let rejection = match extensions.get::<Principal>() {
            Some(principal) => match self.requirement.unmet(principal) {
                None => {
                    return ResponseFuture::passed_on(self.inner.call(request), None);
                }
                Some(scope) => Rejection::InsufficientScope {
                    scope,
                    token_id: Some(principal.id()),
                },
            },
            None if extensions.get::<Anonymous>().is_some() => Rejection::Unauthenticated {
                cause: RejectCause::Missing,
                token_id: None,
            },
            None => {
                tracing::error!(
                    target: "tower_bearer::layer",
                    requirement = ?self.requirement,
                    "RequireScope found no principal: add a BearerAuthLayer around it"
                );
                return ResponseFuture::rejected(missing_layer_response("RequireScopeLayer"));
            }
        };
        let grpc = crate::grpc::is_grpc(request.headers());
        ResponseFuture::rejected(render_later(rejection, grpc))
    }
}

/// The 500 answered when a component that needs a principal runs without the layer.
pub(crate) fn missing_layer_response(component: &str) -> Response<bytes::Bytes> {
    let body = format!(
        "tower-bearer: {component} found no authenticated principal in the request. \
         Is `BearerAuthLayer` applied around this route?"
    );
    let mut response = Response::new(bytes::Bytes::from(body));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
