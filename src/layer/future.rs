use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::RejectionBody;
use super::bearer::policing::announce;
use super::per_thread::Handle;
use super::responder::Responder;
use super::tracking::{self, Tracking};
use crate::counting;
use crate::registry::meter::Quota;
use crate::reject::RenderLater;

/// The boxed future of a request whose token was not cached: it waits for the store,
/// then runs the inner service. Only cache misses pay for the allocation.
pub(crate) type LookupFuture<B, E> = Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>;

pin_project! {
    /// The response future of [`BearerAuth`](super::BearerAuth) and
    /// [`RequireScope`](super::RequireScope).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        // Authenticated from the cache: the inner service's future, run in place.
        Authorized {
            #[pin]
            future: F,
            rendering: Option<Handle<Responder>>,
            // The token came in the query string: the response must not be shared.
            private: bool,
            // A token was verified (not a public route's anonymous request): the
            // outcome is counted when the response comes.
            authenticated: bool,
            // The request's activity row, queued when the response head is ready.
            tracking: Tracking,
            // The key's rate limits, announced in the answer (keys with limits only).
            quota: Option<Box<Quota>>,
        },
        // The cache missed: the store lookup, then the inner service.
        Lookup { future: LookupFuture<B, E> },
        // Rejected before the inner service was called.
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    /// `rendering` re-renders rejections marked by extractors; `None` leaves them as they are.
    /// `private` marks the response `Cache-Control: private` (a query-string token).
    /// `tracking` is the request's activity row, if it has one.
    pub(crate) fn authorized(
        future: F,
        rendering: Option<Handle<Responder>>,
        private: bool,
        authenticated: bool,
        tracking: Tracking,
        quota: Option<Box<Quota>>,
    ) -> Self {
        Self {
            kind: Kind::Authorized {
                future,
                rendering,
                private,
                authenticated,
                tracking,
                quota,
            },
        }
    }

    /// The inner service's future as it is, for a layer further in that lets the request
    /// through (`RequireScope`, `Cost`): its answer goes on to the enclosing layer, which
    /// renders and announces for it.
    pub(crate) fn passed_on(future: F, quota: Option<Box<Quota>>) -> Self {
        Self::authorized(future, None, false, false, Default::default(), quota)
    }

    pub(crate) fn lookup(future: LookupFuture<B, E>) -> Self {
        Self {
            kind: Kind::Lookup { future },
        }
    }

    pub(crate) fn rejected(response: Response<Bytes>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: RejectionBody,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Authorized {
                future,
                rendering,
                private,
                authenticated,
                tracking,
                quota,
            } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(finish(
                    response,
                    rendering.as_deref(),
                    *private,
                    *authenticated,
                    tracking,
                    quota.take().map(|quota| *quota),
                )))
            }
            KindProj::Lookup { future } => future.as_mut().poll(cx),
            KindProj::Rejected { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response.map(B::from_rejection)))
            }
        }
    }
}

/// Passes the inner service's response on; a rejection marked by an extractor or a
/// `RequireScope` further in is rendered again with this layer's renderer. `private`
/// responses (the token came in the query string) get `Cache-Control: private`
/// (RFC 6750 §2.3). The key's `quota`, if it has rate limits, is announced. The
/// request's activity row (`tracking`) is answered, and its outcome counted when it was
/// `authenticated` (by the outermost layer, the one that renders).
pub(crate) fn finish<B: RejectionBody>(
    mut response: Response<B>,
    rendering: Option<&Responder>,
    private: bool,
    authenticated: bool,
    tracking: &mut Tracking,
    quota: Option<Quota>,
) -> Response<B> {
    // Looked at before the rejection is rendered again (which removes the mark, and the
    // route template with the rest of the inner response's extensions).
    let seen = tracking::seen(tracking, &response);
    // A layer further in (a `CostLayer`) counted after this one: its quota is newer.
    let quota = response.extensions_mut().remove::<Quota>().or(quota);
    let mut response = rerender(response, rendering, private, authenticated);
    if let Some(quota) = quota {
        match rendering {
            Some(rendering) => {
                announce(
                    response.headers_mut(),
                    quota,
                    rendering.github_rate_limit_headers,
                );
            }
            // A layer further in: the enclosing one announces it.
            None => {
                response.extensions_mut().insert(quota);
            }
        }
    }
    tracking::responded(rendering, tracking, &response, seen);
    response
}

fn rerender<B: RejectionBody>(
    mut response: Response<B>,
    rendering: Option<&Responder>,
    private: bool,
    authenticated: bool,
) -> Response<B> {
    if let Some(rendering) = rendering {
        let later = response.extensions_mut().remove::<RenderLater>();
        if authenticated {
            // An extractor or a `RequireScope` further in may have refused it.
            counting::request(
                later
                    .as_ref()
                    .map_or(counting::Outcome::Ok, |later| later.0.counted_as()),
            );
        }
        if let Some(RenderLater(rejection, grpc)) = later {
            let strict = rendering
                .registry
                .as_ref()
                .and_then(|registry| super::undeclared::check_refusal(registry, &rejection));
            response = strict
                .unwrap_or_else(|| rendering.render_for(&rejection, grpc))
                .map(B::from_rejection);
        }
    }
    if private {
        mark_private(response.headers_mut());
    }
    response
}

/// Adds `private` to `Cache-Control` unless the response already forbids storing it.
#[cold]
fn mark_private(headers: &mut http::HeaderMap) {
    let current = headers
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok());
    let value = match current {
        None => HeaderValue::from_static("private"),
        Some(current)
            if current.to_ascii_lowercase().contains("private")
                || current.to_ascii_lowercase().contains("no-store") =>
        {
            return;
        }
        Some(current) => match HeaderValue::from_str(&format!("{current}, private")) {
            Ok(value) => value,
            Err(_) => HeaderValue::from_static("private"),
        },
    };
    headers.insert(CACHE_CONTROL, value);
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
