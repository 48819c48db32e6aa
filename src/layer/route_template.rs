//! The route template of a request whose row begins before routing: around a whole
//! `Router` ([`BearerAuthLayer::protect`](crate::layer::BearerAuthLayer::protect)) the layer runs
//! before axum matches the path, so it cannot see `MatchedPath` in the request. Each
//! route of the router then passes its `MatchedPath` on in the response's extensions,
//! where the layer reads it when it answers the row. Rows never keep the raw path by
//! default: it can hold an invite code or an e-mail address.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::MatchedPath;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::registry::Registry;

/// `service`, with each route passing its template on when it is an axum `Router` and
/// `registry` keeps an activity log; otherwise `service` as it is (nothing to pay).
pub(crate) fn passing_templates_on<S: 'static>(mut service: S, registry: &Registry) -> S {
    if !registry.has_activity_log() {
        return service;
    }
    if let Some(router) = (&mut service as &mut dyn Any).downcast_mut::<axum::Router>() {
        // `route_layer` refuses a router without routes (a fallback alone has no
        // templates to pass on).
        if router.has_routes() {
            *router = std::mem::take(router).route_layer(PassTemplateOn);
        }
    }
    service
}

/// Copies the request's `MatchedPath` into its response's extensions.
#[derive(Clone, Copy, Debug)]
struct PassTemplateOn;

impl<S> Layer<S> for PassTemplateOn {
    type Service = PassingTemplateOn<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PassingTemplateOn(inner)
    }
}

#[derive(Clone, Debug)]
struct PassingTemplateOn<S>(S);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for PassingTemplateOn<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = WithTemplate<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let template = request.extensions().get::<MatchedPath>().cloned();
        WithTemplate {
            inner: self.0.call(request),
            template,
        }
    }
}

pin_project! {
    /// The route's future, whose response gets the template.
    struct WithTemplate<F> {
        #[pin]
        inner: F,
        template: Option<MatchedPath>,
    }
}

impl<F, ResBody, E> Future for WithTemplate<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut answer = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(template)) = (&mut answer, this.template.take()) {
            response.extensions_mut().insert(template);
        }
        Poll::Ready(answer)
    }
}
