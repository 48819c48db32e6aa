//! Routes that cost more than one request: [`CostLayer`].

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::{RejectionBody, ResponseFuture};
use crate::principal::Principal;
use crate::registry::Registry;
use crate::registry::meter::{Decision, Quota};
use crate::reject::render_later;

/// Makes a route weigh `weight` requests against its caller's rate limits and credits
/// (an export that costs 10, say): a per-route layer inside a
/// [`BearerAuthLayer`](super::BearerAuthLayer), which has counted the request once
/// already; this layer counts the rest. Keys without policies pass through untouched;
/// over a limit, the request gets the enclosing layer's 429, and its answer the
/// key's `RateLimit` fields as they stand after it.
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use http::{Request, StatusCode};
/// use tower::ServiceExt as _;
/// use tower_bearer::layer::{BearerAuthLayer, CostLayer};
/// use tower_bearer::policy::{Policies, RateLimit};
/// use tower_bearer::registry::IssueRequest;
/// use tower_bearer::{MemoryStore, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = Registry::builder(MemoryStore::new()).build();
/// let limits = Policies::none().rate_limit(RateLimit::new("hourly", 15, 3600)?);
/// let key = registry.issue(IssueRequest::new("reports", "acme")?.policies(limits)?).await?;
/// let app = BearerAuthLayer::new(registry).protect(
///     Router::new()
///         .route("/export", get(|| async { "csv" }).route_layer(CostLayer::new(10)))
///         .route("/items", get(|| async { "[]" })),
/// );
/// let get = |path: &str| {
///     Request::get(path)
///         .header("authorization", format!("Bearer {}", key.secret.expose_secret()))
///         .body(Body::empty())
///         .unwrap()
/// };
///
/// let export = app.clone().oneshot(get("/export")).await?;
/// assert_eq!(export.status(), StatusCode::OK);
/// // One request counted by the enclosing layer, nine more here: 5 of 15 left.
/// assert!(export.headers()["ratelimit"].to_str()?.starts_with(r#""hourly";r=5;"#));
/// let again = app.clone().oneshot(get("/export")).await?;
/// assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(app.oneshot(get("/items")).await?.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct CostLayer {
    weight: u64,
}

impl CostLayer {
    /// A route weighing `weight` requests (at least 1: a weight of 1 adds nothing).
    pub fn new(weight: u64) -> Self {
        Self {
            weight: weight.max(1),
        }
    }
}

impl<S> Layer<S> for CostLayer {
    type Service = Cost<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cost {
            inner,
            extra: self.weight - 1,
        }
    }
}

/// The middleware built by [`CostLayer`].
#[derive(Clone, Debug)]
pub struct Cost<S> {
    inner: S,
    /// What the request weighs beyond the one request the enclosing layer counted.
    extra: u64,
}

impl<S> Cost<S> {
    inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cost<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: RejectionBody + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Borrowed while deciding: only a request that must wait owns its key's meter.
        let principal = request.extensions().get::<Principal>();
        let Some((principal, meter)) = principal
            .filter(|_| self.extra > 0)
            .and_then(|principal| Some((principal, Registry::meter_of(principal)?)))
        else {
            return ResponseFuture::passed_on(self.inner.call(request), None);
        };
        let ip = meter.client_ip(&request);
        let grpc = crate::grpc::is_grpc(request.headers());
        let shortage = match meter.decide(ip, self.extra, meter.now()) {
            Decision::Pass(quota) => {
                return ResponseFuture::passed_on(self.inner.call(request), quota.map(Box::new));
            }
            Decision::Refuse(refusal) => {
                return ResponseFuture::rejected(refused(refusal, principal, grpc));
            }
            Decision::Reserve(shortage) => shortage,
        };
        let Some(meter) = Registry::owned_meter_of(principal) else {
            // The meter just read is the principal's: unreachable, and never unmetered.
            let refusal = crate::registry::meter::Refusal::Unavailable;
            return ResponseFuture::rejected(refused(refusal, principal, grpc));
        };
        let principal = principal.clone();
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let extra = self.extra;
        ResponseFuture::lookup(Box::pin(async move {
            match meter.settle(ip, extra, shortage).await {
                Ok(quota) => {
                    let mut response = inner.call(request).await?;
                    if let Some(quota) = quota {
                        response.extensions_mut().insert(quota);
                    }
                    Ok(response)
                }
                Err(refusal) => Ok(refused(refusal, &principal, grpc).map(ResBody::from_rejection)),
            }
        }))
    }
}

/// The refusal, rendered for the enclosing layer to render again its way, with the
/// quota it announces.
fn refused(
    refusal: crate::registry::meter::Refusal,
    principal: &Principal,
    grpc: bool,
) -> Response<bytes::Bytes> {
    let (rejection, quota) = super::bearer::policing::rejection(refusal, principal);
    let mut response = render_later(rejection, grpc);
    if let Some(quota) = quota {
        response.extensions_mut().insert::<Quota>(quota);
    }
    response
}
