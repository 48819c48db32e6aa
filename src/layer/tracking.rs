//! The layer's part in the activity log (feature `activity`): a row is begun when an
//! authenticated request goes in, and queued when its response head comes out; a rejected
//! request is queued at once, against its token when the registry still knows it.
//! Without the feature every function here is an empty inline one and [`Tracking`] takes
//! no space.

/// Whom a rejected request is recorded against (read only by the activity log).
#[cfg_attr(not(feature = "activity"), allow(dead_code))]
pub(crate) enum Attribution {
    /// The token, as the cache or the verification knows it.
    Token(crate::principal::Principal),
    /// A credential the cache could not attribute, by digest.
    Digest(crate::token::Digest),
}

#[cfg(feature = "activity")]
mod enabled {
    use http::{Request, Response, StatusCode};

    use super::Attribution;
    use crate::activity::Ticket;
    use crate::layer::responder::Responder;
    use crate::principal::Principal;
    use crate::registry::RejectCause;
    use crate::registry::VerifyError;
    use crate::reject::{Rejection, RenderLater};
    use crate::store::activity::Outcome;

    /// The row of a request on its way through the inner service (eight bytes).
    pub(crate) type Tracking = Option<Ticket>;

    /// The time the layer consults the cache at, which is also the request's arrival in
    /// its row: precise when the log is on (rows keep microseconds), coarse otherwise (a
    /// cache hit needs no more).
    #[inline]
    pub(crate) fn now(rendering: &Responder, clock: &crate::clock::Clock) -> i64 {
        if rendering.activity.is_some() {
            clock.now_nanos()
        } else {
            clock.coarse_nanos()
        }
    }

    /// Begins the row of an authenticated request that arrived at `arrival` (when the
    /// cache was consulted: the layer reads the clock once for both).
    #[inline]
    pub(crate) fn begin<B>(
        rendering: &Responder,
        arrival: Option<i64>,
        request: &Request<B>,
        principal: &Principal,
    ) -> Tracking {
        let log = rendering.activity.as_ref()?;
        log.begin(request, principal, arrival?)
    }

    /// What the row of a request takes from the inner service's response before this
    /// layer renders a rejection in it again.
    pub(crate) struct Seen {
        /// An extractor or `RequireScope` further in refused the request for its scope.
        scope_denied: bool,
        /// The route template the response brought (around a whole router).
        template: Option<axum::extract::MatchedPath>,
    }

    /// What the row of the request will need of `response`, when it has a row.
    #[inline]
    pub(crate) fn seen<B>(tracking: &Tracking, response: &Response<B>) -> Option<Seen> {
        tracking.as_ref()?;
        let extensions = response.extensions();
        Some(Seen {
            scope_denied: extensions
                .get::<RenderLater>()
                .is_some_and(|later| later.0.status() == StatusCode::FORBIDDEN),
            template: extensions.get::<axum::extract::MatchedPath>().cloned(),
        })
    }

    /// Queues the row of an authenticated request with its response.
    #[inline]
    pub(crate) fn responded<B>(
        rendering: Option<&Responder>,
        tracking: &mut Tracking,
        response: &Response<B>,
        seen: Option<Seen>,
    ) {
        let (Some(ticket), Some(log)) = (
            tracking.take(),
            rendering.and_then(|rendering| rendering.activity.as_ref()),
        ) else {
            return;
        };
        let Seen {
            scope_denied,
            template,
        } = seen.unwrap_or(Seen {
            scope_denied: false,
            template: None,
        });
        let outcome = if scope_denied {
            Outcome::ScopeDenied
        } else {
            Outcome::Ok
        };
        log.answer(ticket, response.status(), outcome, template);
    }

    /// Whom a failed verification is recorded against, when a log would record it: the
    /// token the cache remembers, or else, for an unknown or revoked credential, its
    /// digest (the writer looks it up among the revoked tokens the store remembers).
    /// Whom the activity log records a refusal of `credential` against (decoded again:
    /// only refusals, only with a log, pay for it).
    pub(crate) fn attribution(
        rendering: &Responder,
        registry: &crate::registry::Registry,
        credential: &str,
        error: &VerifyError,
    ) -> Option<Attribution> {
        rendering.activity.as_ref()?;
        attribute(registry, credential, error)
    }

    fn attribute(
        registry: &crate::registry::Registry,
        credential: &str,
        error: &VerifyError,
    ) -> Option<Attribution> {
        let presented = registry.decode(credential).ok()?;
        let presented = &presented;
        let cause = error.cause();
        let known = matches!(
            cause,
            None | Some(
                RejectCause::Expired
                    | RejectCause::Revoked
                    | RejectCause::WrongEnv
                    | RejectCause::TenantMismatch
            )
        );
        if let Some(holder) = known.then(|| registry.holder(presented)).flatten() {
            return Some(Attribution::Token(holder));
        }
        matches!(cause, Some(RejectCause::Unknown | RejectCause::Revoked))
            .then(|| Attribution::Digest(*presented.digest()))
    }

    /// What [`authenticated`] and [`refused`] need of a request that a handler consumes:
    /// its head (method, URI, headers) and the extensions a row reads (peer, route
    /// template). Built only when a log would record the attempt.
    #[cfg_attr(not(all(feature = "exchange", feature = "admin")), allow(dead_code))]
    pub(crate) fn witness<B>(
        registry: &crate::registry::Registry,
        request: &Request<B>,
    ) -> Option<Request<()>> {
        let mut witness = witness_of_head(registry, request.uri(), request.headers())?;
        *witness.method_mut() = request.method().clone();
        let (from, to) = (request.extensions(), witness.extensions_mut());
        if let Some(peer) = from.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            to.insert(*peer);
        }
        if let Some(peer) = from.get::<std::net::SocketAddr>() {
            to.insert(*peer);
        }
        if let Some(template) = from.get::<axum::extract::MatchedPath>() {
            to.insert(template.clone());
        }
        Some(witness)
    }

    /// [`witness`] of a request known only by its URI and headers (a WebSocket's
    /// upgrade, as a handler sees it).
    #[cfg_attr(
        not(any(feature = "ws", all(feature = "exchange", feature = "admin"))),
        allow(dead_code)
    )]
    pub(crate) fn witness_of_head(
        registry: &crate::registry::Registry,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Option<Request<()>> {
        registry.activity()?;
        let mut witness = Request::new(());
        uri.clone_into(witness.uri_mut());
        headers.clone_into(witness.headers_mut());
        Some(witness)
    }

    /// Records an authentication made outside the layer (a WebSocket's handshake or first
    /// message, a login) that `principal` passed, answered with `status`.
    #[cold]
    #[cfg_attr(
        not(any(feature = "ws", all(feature = "exchange", feature = "admin"))),
        allow(dead_code)
    )]
    pub(crate) fn authenticated<B>(
        registry: &crate::registry::Registry,
        request: &Request<B>,
        principal: &Principal,
        status: StatusCode,
    ) {
        if let Some(log) = registry.activity() {
            log.answered(request, principal, log.now(), status, Outcome::Ok);
        }
    }

    /// Records an authentication made outside the layer that failed with `error`, as the
    /// layer records a rejected request (against the token when it is known, by digest
    /// when the writer may still attribute it, else only counted). Never the credential
    /// itself; `credential` is `None` when none could be read.
    #[cold]
    #[cfg_attr(
        not(any(feature = "ws", all(feature = "exchange", feature = "admin"))),
        allow(dead_code)
    )]
    pub(crate) fn refused<B>(
        registry: &crate::registry::Registry,
        request: &Request<B>,
        credential: Option<&str>,
        error: &VerifyError,
    ) {
        let Some(log) = registry.activity() else {
            return;
        };
        let attribution = credential.and_then(|credential| attribute(registry, credential, error));
        let rejection = Rejection::from_verify_error(error);
        record_rejection(log, None, request, &rejection, attribution.as_ref());
    }

    /// Records a rejected request: against its token when it is known, by digest when
    /// the writer may still attribute it, otherwise in the count of unattributable ones
    /// (a request without any credential is neither).
    #[cold]
    pub(crate) fn rejected<B>(
        rendering: &Responder,
        arrival: Option<i64>,
        request: &Request<B>,
        rejection: &Rejection,
        attribution: Option<&Attribution>,
    ) {
        if let Some(log) = &rendering.activity {
            record_rejection(log, arrival, request, rejection, attribution);
        }
    }

    /// [`rejected`], with the log at hand.
    fn record_rejection<B>(
        log: &crate::activity::ActivityLog,
        arrival: Option<i64>,
        request: &Request<B>,
        rejection: &Rejection,
        attribution: Option<&Attribution>,
    ) {
        let outcome = match rejection {
            Rejection::Unauthenticated {
                cause: RejectCause::Missing,
                ..
            } => return,
            Rejection::Unauthenticated { cause, .. } => match cause {
                RejectCause::Expired => Some(Outcome::Expired),
                RejectCause::Revoked => Some(Outcome::Revoked),
                RejectCause::WrongEnv => Some(Outcome::WrongEnv),
                RejectCause::TenantMismatch => Some(Outcome::TenantMismatch),
                _ => None,
            },
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => {
                Some(Outcome::ScopeDenied)
            }
            Rejection::IpNotAllowed { .. } => Some(Outcome::IpDenied),
            Rejection::RateLimited { .. } => Some(Outcome::RateLimited),
            Rejection::UsageExceeded { .. } => Some(Outcome::CreditsExhausted),
            Rejection::Unavailable => Some(Outcome::Unavailable),
        };
        let arrival = arrival.unwrap_or_else(|| log.now());
        match (attribution, outcome) {
            (Some(Attribution::Token(holder)), Some(outcome)) => {
                log.answered(request, holder, arrival, rejection.status(), outcome);
            }
            (Some(Attribution::Digest(digest)), _) => {
                log.unresolved(request, *digest, arrival, rejection.status());
            }
            _ => log.count_unattributed(),
        }
    }
}

#[cfg(not(feature = "activity"))]
mod disabled {
    use http::{Request, Response};

    use super::Attribution;
    use crate::layer::responder::Responder;
    use crate::principal::Principal;
    use crate::registry::VerifyError;
    use crate::reject::Rejection;

    /// Nothing to carry.
    #[derive(Clone, Copy, Default)]
    pub(crate) struct Tracking;

    #[inline(always)]
    pub(crate) fn now(_: &Responder, clock: &crate::clock::Clock) -> i64 {
        clock.coarse_nanos()
    }

    #[inline(always)]
    pub(crate) fn begin<B>(
        _: &Responder,
        _: Option<i64>,
        _: &Request<B>,
        _: &Principal,
    ) -> Tracking {
        Tracking
    }

    /// Nothing seen.
    #[derive(Clone, Copy)]
    pub(crate) struct Seen;

    #[inline(always)]
    pub(crate) fn seen<B>(_: &Tracking, _: &Response<B>) -> Option<Seen> {
        None
    }

    #[inline(always)]
    pub(crate) fn responded<B>(
        _: Option<&Responder>,
        _: &mut Tracking,
        _: &Response<B>,
        _: Option<Seen>,
    ) {
    }

    #[inline(always)]
    #[cfg_attr(not(all(feature = "exchange", feature = "admin")), allow(dead_code))]
    pub(crate) fn witness<B>(_: &crate::registry::Registry, _: &Request<B>) -> Option<Request<()>> {
        None
    }

    #[inline(always)]
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    pub(crate) fn witness_of_head(
        _: &crate::registry::Registry,
        _: &http::Uri,
        _: &http::HeaderMap,
    ) -> Option<Request<()>> {
        None
    }

    #[inline(always)]
    #[cfg_attr(
        not(any(feature = "ws", all(feature = "exchange", feature = "admin"))),
        allow(dead_code)
    )]
    pub(crate) fn authenticated<B>(
        _: &crate::registry::Registry,
        _: &Request<B>,
        _: &Principal,
        _: http::StatusCode,
    ) {
    }

    #[inline(always)]
    #[cfg_attr(
        not(any(feature = "ws", all(feature = "exchange", feature = "admin"))),
        allow(dead_code)
    )]
    pub(crate) fn refused<B>(
        _: &crate::registry::Registry,
        _: &Request<B>,
        _: Option<&str>,
        _: &VerifyError,
    ) {
    }

    #[inline(always)]
    pub(crate) fn attribution(
        _: &Responder,
        _: &crate::registry::Registry,
        _: &str,
        _: &VerifyError,
    ) -> Option<Attribution> {
        None
    }

    #[inline(always)]
    pub(crate) fn rejected<B>(
        _: &Responder,
        _: Option<i64>,
        _: &Request<B>,
        _: &Rejection,
        _: Option<&Attribution>,
    ) {
    }
}

#[cfg(not(feature = "activity"))]
pub(crate) use disabled::*;
#[cfg(feature = "activity")]
pub(crate) use enabled::*;
