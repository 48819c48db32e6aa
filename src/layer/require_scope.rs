use std::borrow::Cow;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{Anonymous, ResponseFuture};
use crate::Principal;
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
/// use axum::{Router, routing::post};
/// use tower_bearer::layer::RequireScopeLayer;
///
/// let app: Router = Router::new()
///     .route("/items", post(|| async { "created" }))
///     .route_layer(RequireScopeLayer::new("write"));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopeLayer {
    scope: Cow<'static, str>,
}

impl RequireScopeLayer {
    /// Requires `scope` (with implications: `admin` satisfies `write`).
    ///
    /// # Panics
    ///
    /// If `scope` is not a valid scope name: a programming error, like a bad route path.
    pub fn new(scope: &'static str) -> Self {
        if let Err(invalid) = Scope::new(scope) {
            panic!("RequireScopeLayer::new: {invalid}");
        }
        Self {
            scope: Cow::Borrowed(scope),
        }
    }

    /// Requires a scope known only at run time (from configuration, say).
    pub fn scope(scope: &Scope) -> Self {
        Self {
            scope: Cow::Owned(scope.as_str().to_owned()),
        }
    }
}

impl<S> Layer<S> for RequireScopeLayer {
    type Service = RequireScope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            scope: self.scope.clone(),
        }
    }
}

/// The middleware built by [`RequireScopeLayer`].
#[derive(Clone, Debug)]
pub struct RequireScope<S> {
    inner: S,
    scope: Cow<'static, str>,
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
            Some(principal) if principal.has_scope(&self.scope) => {
                return ResponseFuture::authorized(self.inner.call(request), None, false);
            }
            Some(principal) => Rejection::InsufficientScope {
                scope: self.scope.clone(),
                token_id: Some(principal.id()),
            },
            None if extensions.get::<Anonymous>().is_some() => Rejection::Unauthenticated {
                cause: RejectCause::Missing,
                token_id: None,
            },
            None => {
                tracing::error!(
                    target: "tower_bearer::layer",
                    scope = %self.scope,
                    "RequireScope found no principal: add a BearerAuthLayer around it"
                );
                return ResponseFuture::rejected(missing_layer_response("RequireScopeLayer"));
            }
        };
        let grpc = super::grpc::is_grpc(request.headers());
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
