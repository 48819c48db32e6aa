use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::Config;
use super::policing::{Policed, announce};
use crate::counting;
use crate::grpc::{MethodRequirement, is_grpc};
use crate::layer::future::{ResponseFuture, finish};
use crate::layer::tracking::{self, Attribution};
use crate::layer::{Anonymous, RejectionBody};
use crate::registry::RejectCause;
use crate::registry::VerifyError;
use crate::registry::{Check, Miss};
use crate::reject::Rejection;

/// The middleware built by [`BearerAuthLayer`](crate::layer::BearerAuthLayer).
#[derive(Debug)]
pub struct BearerAuth<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S: Clone> Clone for BearerAuth<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S> BearerAuth<S> {
    pub(crate) fn new(inner: S, config: Arc<Config>) -> Self {
        Self { inner, config }
    }

    inner_service_accessors!();

    /// A layer verifying tokens with `registry`: the same as
    /// [`BearerAuthLayer::new`](crate::layer::BearerAuthLayer::new), like tower-http's
    /// `Service::layer()` constructors.
    pub fn layer(registry: crate::registry::Registry) -> super::BearerAuthLayer {
        super::BearerAuthLayer::new(registry)
    }
}

/// What the request's credentials amount to, decided without waiting.
enum Verdict {
    Authenticated(crate::principal::Principal),
    Anonymous,
    /// With whom it is recorded against, for the activity log.
    Rejected(Rejection, Option<Attribution>),
    /// The cache missed: the store must be asked (the checksum is right; a session
    /// token's signature is checked first).
    Lookup(Miss),
}

impl Config {
    /// The per-method gRPC map, enforced by path whatever the content type (tonic routes
    /// on the path alone). `principal` is `None` for an anonymous request in optional
    /// mode, which may call only methods that need nothing.
    fn authorize<B>(
        &self,
        principal: Option<&crate::principal::Principal>,
        request: &Request<B>,
    ) -> Result<(), Rejection> {
        let Some(scopes) = &self.grpc_scopes else {
            return Ok(());
        };
        let requirement = scopes.requirement(request.uri().path());
        match (requirement, principal) {
            (MethodRequirement::Token, _) => Ok(()),
            (_, None) => Err(Rejection::Unauthenticated {
                cause: RejectCause::Missing,
                token_id: None,
            }),
            (MethodRequirement::Scope(scope), Some(principal)) => {
                if principal.has_scope(scope.as_str()) {
                    Ok(())
                } else {
                    Err(Rejection::InsufficientScope {
                        scope: scope.as_str().to_owned().into(),
                        token_id: Some(principal.id()),
                    })
                }
            }
            (_, Some(principal)) => Err(Rejection::Forbidden {
                token_id: Some(principal.id()),
            }),
        }
    }

    /// What an authenticated request gets before the inner service sees it: its row in
    /// the activity log begun, the principal in its extensions, and an `access_token`
    /// query parameter removed from its URI (so that the inner service, its access log
    /// and its traces never see it). Returns the row and whether the token came from the
    /// query: the response must then be `Cache-Control: private`.
    #[inline]
    fn admit<B>(
        &self,
        arrival: Option<i64>,
        request: &mut Request<B>,
        principal: crate::principal::Principal,
    ) -> (tracking::Tracking, bool) {
        let tracking = tracking::begin(&self.rendering, arrival, request, &principal);
        self.room.insert(request.extensions_mut(), principal);
        let private = self.sources.came_from_query(request.uri());
        if private {
            *request.uri_mut() = crate::header::without_access_token(request.uri());
        }
        (tracking, private)
    }

    /// The principal, if the gRPC method map lets it call `request`; else the rejection,
    /// recorded against it.
    #[inline]
    fn authorized<B>(
        &self,
        principal: crate::principal::Principal,
        request: &Request<B>,
    ) -> Result<crate::principal::Principal, (Rejection, Option<Attribution>)> {
        match self.authorize(Some(&principal), request) {
            Ok(()) => Ok(principal),
            Err(rejection) => Err((rejection, Some(Attribution::Token(principal)))),
        }
    }

    /// The rejection of a failed verification of `credential`, and whom the activity log
    /// records it against.
    fn refused(&self, credential: &str, error: &VerifyError) -> (Rejection, Option<Attribution>) {
        (
            Rejection::from_verify_error(error),
            tracking::attribution(&self.rendering, &self.registry, credential, error),
        )
    }

    /// Renders a rejection of `request` (as a gRPC status for gRPC calls), logs it, and
    /// records it in the activity log against `attribution` (the request arrived at
    /// `arrival`, when known).
    fn reject<B>(
        &self,
        rejection: &Rejection,
        attribution: Option<&Attribution>,
        arrival: Option<i64>,
        request: &Request<B>,
    ) -> http::Response<bytes::Bytes> {
        rejection.trace();
        counting::request(rejection.counted_as());
        if let Rejection::Unauthenticated {
            cause: RejectCause::Missing,
            ..
        } = rejection
        {
            self.registry.explain_protected_login(request.uri().path());
        }
        tracking::rejected(&self.rendering, arrival, request, rejection, attribution);
        self.rendering
            .render_for(rejection, is_grpc(request.headers()))
    }
}

impl<S> BearerAuth<S> {
    /// Decides without waiting. `now` gets the time the cache was consulted at (Unix
    /// nanoseconds), which the activity log reuses as the request's arrival.
    fn judge<B>(&self, request: &Request<B>, now: &mut Option<i64>) -> Verdict {
        let config = &*self.config;
        if config
            .public
            .as_ref()
            .is_some_and(|public| public.matches(request.uri().path()))
        {
            return Verdict::Anonymous;
        }
        let credential = match config.sources.extract(request.headers(), request.uri()) {
            Ok(Some(credential)) => credential,
            Ok(None) if config.optional => {
                return match config.authorize(None, request) {
                    Ok(()) => Verdict::Anonymous,
                    Err(rejection) => Verdict::Rejected(rejection, None),
                };
            }
            Ok(None) => return unauthenticated(RejectCause::Missing),
            Err(invalid) => return unauthenticated(RejectCause::InvalidRequest(invalid)),
        };
        let at = tracking::now(&config.rendering, config.registry.clock());
        *now = Some(at);
        match config.registry.check_at(&credential, at) {
            Check::Done(Ok(principal)) => match config.authorized(principal, request) {
                Ok(principal) => Verdict::Authenticated(principal),
                Err((rejection, attribution)) => Verdict::Rejected(rejection, attribution),
            },
            Check::Done(Err(error)) => {
                let (rejection, attribution) = config.refused(&credential, &error);
                Verdict::Rejected(rejection, attribution)
            }
            Check::Miss(miss) => Verdict::Lookup(miss),
        }
    }
}

fn unauthenticated(cause: RejectCause) -> Verdict {
    let rejection = Rejection::Unauthenticated {
        cause,
        token_id: None,
    };
    Verdict::Rejected(rejection, None)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S>
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

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut arrival = None;
        let verdict = self.judge(&request, &mut arrival);
        match verdict {
            Verdict::Authenticated(principal) => {
                match self.config.police(&principal, &request, arrival) {
                    Policed::Pass(quota) => {
                        let (tracking, private) =
                            self.config.admit(arrival, &mut request, principal);
                        ResponseFuture::authorized(
                            self.inner.call(request),
                            Some(self.config.rendering.handle()),
                            private,
                            true,
                            tracking,
                            quota.map(Box::new),
                        )
                    }
                    Policed::Refused(rejection, quota) => ResponseFuture::rejected(
                        self.config
                            .refuse(rejection, quota, principal, arrival, &request),
                    ),
                    policed @ Policed::Wait(..) => {
                        let inner = self.take_ready_inner();
                        let config = self.config.clone();
                        ResponseFuture::lookup(Box::pin(async move {
                            config
                                .serve(inner, request, principal, arrival, policed)
                                .await
                        }))
                    }
                }
            }
            Verdict::Anonymous => {
                self.config.room.insert(request.extensions_mut(), Anonymous);
                ResponseFuture::authorized(
                    self.inner.call(request),
                    Some(self.config.rendering.handle()),
                    false,
                    false,
                    Default::default(),
                    None,
                )
            }
            Verdict::Rejected(rejection, attribution) => {
                let response =
                    self.config
                        .reject(&rejection, attribution.as_ref(), arrival, &request);
                ResponseFuture::rejected(response)
            }
            Verdict::Lookup(miss) => {
                let inner = self.take_ready_inner();
                let config = self.config.clone();
                ResponseFuture::lookup(Box::pin(async move {
                    let verified = match miss.resolve().await {
                        Ok(principal) => config.authorized(principal, &request),
                        Err(error) => Err(config.refused(miss.credential(), &error)),
                    };
                    match verified {
                        Ok(principal) => {
                            let policed = config.police(&principal, &request, arrival);
                            config
                                .serve(inner, request, principal, arrival, policed)
                                .await
                        }
                        Err((rejection, attribution)) => {
                            let response =
                                config.reject(&rejection, attribution.as_ref(), arrival, &request);
                            Ok(response.map(ResBody::from_rejection))
                        }
                    }
                }))
            }
        }
    }
}

impl<S> BearerAuth<S> {
    /// The service that was polled ready, to go with a request into a boxed future; a
    /// clone stays.
    fn take_ready_inner(&mut self) -> S
    where
        S: Clone,
    {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

impl Config {
    /// The rest of an authenticated request whose answer waited (for the store, or for a
    /// slice of its key's budget): the policies' verdict, then the inner service.
    async fn serve<S, ReqBody, ResBody>(
        &self,
        mut inner: S,
        mut request: Request<ReqBody>,
        principal: crate::principal::Principal,
        arrival: Option<i64>,
        policed: Policed,
    ) -> Result<Response<ResBody>, S::Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
        ResBody: RejectionBody,
    {
        let quota = match policed {
            Policed::Pass(quota) => quota,
            Policed::Wait(meter, shortage, ip) => {
                match self.police_waiting(meter, shortage, &principal, ip).await {
                    Ok(quota) => quota,
                    Err((rejection, quota)) => {
                        let response = self.refuse(rejection, quota, principal, arrival, &request);
                        return Ok(response.map(ResBody::from_rejection));
                    }
                }
            }
            Policed::Refused(rejection, quota) => {
                let response = self.refuse(rejection, quota, principal, arrival, &request);
                return Ok(response.map(ResBody::from_rejection));
            }
        };
        let (mut tracking, private) = self.admit(arrival, &mut request, principal);
        let response = inner.call(request).await?;
        Ok(finish(
            response,
            Some(&self.rendering),
            private,
            true,
            &mut tracking,
            quota,
        ))
    }

    /// The answer to a request its key's policies refused, recorded against the key,
    /// with the key's quota when a rate limit refused it.
    #[cold]
    fn refuse<B>(
        &self,
        rejection: Rejection,
        quota: Option<crate::registry::meter::Quota>,
        principal: crate::principal::Principal,
        arrival: Option<i64>,
        request: &Request<B>,
    ) -> http::Response<bytes::Bytes> {
        let attribution = Attribution::Token(principal);
        let mut response = self.reject(&rejection, Some(&attribution), arrival, request);
        if let Some(quota) = quota {
            let github = self.rendering.github_rate_limit_headers;
            announce(response.headers_mut(), quota, github);
        }
        response
    }
}
