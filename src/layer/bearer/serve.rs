//! `axum::serve` support: a [`BearerAuth`] around a whole `Router` is served as it is.
//!
//! `axum::serve` wants a service that makes a service per connection; axum's `Router`
//! is one. Wrapping it in the layer keeps that ability: each connection gets the
//! router's per-connection service, wrapped again.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::serve::{IncomingStream, Listener};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{BearerAuth, Config};

impl<'a, L, S> Service<IncomingStream<'a, L>> for BearerAuth<S>
where
    L: Listener,
    S: Service<IncomingStream<'a, L>, Error = Infallible>,
{
    type Response = BearerAuth<S::Response>;
    type Error = Infallible;
    type Future = MakeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, incoming: IncomingStream<'a, L>) -> Self::Future {
        MakeFuture {
            inner: self.inner.call(incoming),
            config: Some(self.config.clone()),
        }
    }
}

pin_project! {
    /// The per-connection service of a [`BearerAuth`] served by `axum::serve`.
    pub struct MakeFuture<F> {
        #[pin]
        inner: F,
        config: Option<Arc<Config>>,
    }
}

impl<F, S> Future for MakeFuture<F>
where
    F: Future<Output = Result<S, Infallible>>,
{
    type Output = Result<BearerAuth<S>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(service) = ready!(this.inner.poll(cx));
        let config = this
            .config
            .take()
            .expect("MakeFuture polled after completion");
        Poll::Ready(Ok(BearerAuth::new(service, config)))
    }
}

impl<F> std::fmt::Debug for MakeFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeFuture").finish_non_exhaustive()
    }
}

impl<S> BearerAuth<S> {
    /// Serves with the peer's address available to handlers (`ConnectInfo<C>`):
    /// `axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())`.
    ///
    /// The same as `axum::ServiceExt::into_make_service_with_connect_info`, without
    /// having to name the request type (the middleware is a service of HTTP requests and
    /// of axum's incoming connections, so the trait method cannot infer it).
    pub fn into_make_service_with_connect_info<C>(
        self,
    ) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Self, C>
    where
        Self: Service<axum::extract::Request> + Sized,
    {
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info(self)
    }
}
