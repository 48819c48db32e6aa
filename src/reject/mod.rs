//! Rejections and how they are rendered.
//!
//! Every failure of authentication or authorization becomes a [`Rejection`]; a
//! [`Renderer`] turns it into a response. The layer then adds what RFC 6750 and good
//! manners require, unless the renderer set it already: `WWW-Authenticate` (401 and 403),
//! `Retry-After` (503), `Content-Type: application/json` and `Cache-Control: no-store`.
//!
//! The [`Preset`]s reproduce the error contracts of well-known APIs byte for byte:
//!
//! | preset | 401 | 403 | 429 |
//! |---|---|---|---|
//! | [`Preset::laravel`] (default) | `{"message":"Unauthenticated."}` | `{"message":"This action is unauthorized."}` | `{"message":"Too Many Attempts."}` |
//! | [`Preset::drf`] | `{"detail":"Authentication credentials were not provided."}` | `{"detail":"You do not have permission to perform this action."}` | `{"detail":"Request was throttled. Expected available in 17 seconds."}` |
//! | [`Preset::envelope`] | `{"type":"response","success":false,"description":"Unauthorized",…}` | the same shape, `Forbidden` | the same shape, `RATE_LIMITED` or `USAGE_EXCEEDED` |
//!
//! Every 401 has the same body whatever the cause (missing, malformed, unknown, expired,
//! revoked…): the cause goes to `tracing`, never to the client.

mod grpc;
mod preset;
mod render;

use std::borrow::Cow;

use http::{HeaderValue, StatusCode};

use crate::identity::TokenId;
use crate::registry::RejectCause;
use crate::registry::VerifyError;

pub use preset::Preset;
pub use render::Renderer;
pub(crate) use render::{RenderLater, Rendering, render_later};

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No valid credentials: 401.
    Unauthenticated {
        /// Why (for logs only).
        cause: RejectCause,
        /// The token's id, when known.
        token_id: Option<TokenId>,
    },
    /// A valid token without the scope the route requires: 403.
    InsufficientScope {
        /// The scope that was required.
        scope: Cow<'static, str>,
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// A valid token calling something nobody may call: a gRPC method outside a
    /// [deny-unlisted](crate::grpc::GrpcScopes::deny_unlisted) map. 403.
    Forbidden {
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// A valid token used from a client address outside its
    /// [allow-list](crate::policy::Policies::allowed_ips): 403 (never 401: the token is
    /// valid, its use from there is not).
    IpNotAllowed {
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// Over one of the key's [rate limits](crate::policy::RateLimit): 429.
    RateLimited {
        /// The limit's name.
        policy: Cow<'static, str>,
        /// Seconds until its window ends (`Retry-After`).
        retry_after: u64,
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// The key has no [credits](crate::policy::Credits) left: 429.
    UsageExceeded {
        /// Seconds until the next refill (`Retry-After`), if one is due.
        retry_after: Option<u64>,
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// The token store could not answer a cache miss: 503.
    Unavailable,
}

impl Rejection {
    /// How `tower_bearer_requests_total` counts a request refused with this.
    pub(crate) fn counted_as(&self) -> crate::counting::Outcome {
        use crate::counting::Outcome;
        match self {
            Rejection::Unauthenticated { cause, .. } => match cause {
                RejectCause::Missing => Outcome::Missing,
                RejectCause::InvalidRequest(_) => Outcome::InvalidRequest,
                RejectCause::Malformed(_) => Outcome::Malformed,
                RejectCause::Unknown => Outcome::Unknown,
                RejectCause::Expired => Outcome::Expired,
                RejectCause::Revoked => Outcome::Revoked,
                RejectCause::WrongEnv => Outcome::WrongEnv,
                RejectCause::TenantMismatch => Outcome::TenantMismatch,
                RejectCause::Changed => Outcome::Changed,
            },
            Rejection::InsufficientScope { .. } => Outcome::InsufficientScope,
            Rejection::Forbidden { .. } => Outcome::Forbidden,
            Rejection::IpNotAllowed { .. } => Outcome::IpDenied,
            Rejection::RateLimited { .. } => Outcome::RateLimited,
            Rejection::UsageExceeded { .. } => Outcome::CreditsExhausted,
            Rejection::Unavailable => Outcome::Unavailable,
        }
    }
}

impl Rejection {
    /// The HTTP status: 401, 403, 429 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope { .. }
            | Rejection::Forbidden { .. }
            | Rejection::IpNotAllowed { .. } => StatusCode::FORBIDDEN,
            Rejection::RateLimited { .. } | Rejection::UsageExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Rejection::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds before a retry may succeed (`Retry-After`): a rate limit's window end, the
    /// next refill of credits; `None` when no wait is known (and for 401/403/503, whose
    /// delay is the layer's).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::RateLimited { retry_after, .. } => Some(*retry_after),
            Rejection::UsageExceeded { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The id of the token refused, when known.
    pub fn token_id(&self) -> Option<TokenId> {
        match self {
            Rejection::Unauthenticated { token_id, .. }
            | Rejection::InsufficientScope { token_id, .. }
            | Rejection::Forbidden { token_id }
            | Rejection::IpNotAllowed { token_id }
            | Rejection::RateLimited { token_id, .. }
            | Rejection::UsageExceeded { token_id, .. } => *token_id,
            Rejection::Unavailable => None,
        }
    }

    /// The RFC 6750 `error` code: none when no credentials were sent, `invalid_request`
    /// when they could not be read, `invalid_token` for every token that does not
    /// authenticate, `insufficient_scope` for a missing scope.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::Unauthenticated {
                cause: RejectCause::Missing,
                ..
            }
            | Rejection::Unavailable
            | Rejection::IpNotAllowed { .. }
            | Rejection::RateLimited { .. }
            | Rejection::UsageExceeded { .. } => None,
            Rejection::Unauthenticated {
                cause: RejectCause::InvalidRequest(_),
                ..
            } => Some("invalid_request"),
            Rejection::Unauthenticated { .. } => Some("invalid_token"),
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => {
                Some("insufficient_scope")
            }
        }
    }

    /// The `WWW-Authenticate` challenge for `realm`, e.g.
    /// `Bearer realm="api", error="insufficient_scope", scope="write"`; `None` for 503,
    /// 429 and a refused client address (the credentials are not at fault).
    ///
    /// ```
    /// use tower_bearer::reject::Rejection;
    /// use tower_bearer::RejectCause;
    ///
    /// let missing = Rejection::Unauthenticated { cause: RejectCause::Missing, token_id: None };
    /// assert_eq!(missing.www_authenticate("api").unwrap(), "Bearer realm=\"api\"");
    /// let expired = Rejection::Unauthenticated { cause: RejectCause::Expired, token_id: None };
    /// assert_eq!(
    ///     expired.www_authenticate("api").unwrap(),
    ///     "Bearer realm=\"api\", error=\"invalid_token\""
    /// );
    /// ```
    pub fn www_authenticate(&self, realm: &str) -> Option<HeaderValue> {
        if matches!(
            self,
            Rejection::Unavailable
                | Rejection::IpNotAllowed { .. }
                | Rejection::RateLimited { .. }
                | Rejection::UsageExceeded { .. }
        ) {
            return None;
        }
        let mut challenge = String::with_capacity(64);
        challenge.push_str("Bearer realm=\"");
        push_quoted(&mut challenge, realm);
        challenge.push('"');
        if let Some(code) = self.error_code() {
            challenge.push_str(", error=\"");
            challenge.push_str(code);
            challenge.push('"');
        }
        if let Rejection::InsufficientScope { scope, .. } = self {
            challenge.push_str(", scope=\"");
            push_quoted(&mut challenge, scope);
            challenge.push('"');
        }
        HeaderValue::from_str(&challenge).ok()
    }

    /// The gRPC status code of this rejection: 16 `UNAUTHENTICATED` for every 401 case,
    /// 7 `PERMISSION_DENIED` for a missing scope or a refused address, 8
    /// `RESOURCE_EXHAUSTED` over a rate limit or out of credits, 14 `UNAVAILABLE` when
    /// the store cannot answer.
    pub fn grpc_code(&self) -> u8 {
        match self {
            Rejection::Unauthenticated { .. } => 16,
            Rejection::InsufficientScope { .. }
            | Rejection::Forbidden { .. }
            | Rejection::IpNotAllowed { .. } => 7,
            Rejection::RateLimited { .. } | Rejection::UsageExceeded { .. } => 8,
            Rejection::Unavailable => 14,
        }
    }

    /// The `grpc-message` of this rejection, before percent-encoding. Like the HTTP
    /// bodies, it is the same for every 401 cause and never contains a token.
    pub fn grpc_message(&self) -> Cow<'static, str> {
        match self {
            Rejection::Unauthenticated { .. } => "missing or invalid credentials".into(),
            Rejection::InsufficientScope { scope, .. } => {
                format!("insufficient scope: requires {scope}").into()
            }
            Rejection::Forbidden { .. } => "method not permitted".into(),
            Rejection::IpNotAllowed { .. } => "client address not allowed for this key".into(),
            Rejection::RateLimited { .. } => "rate limit exceeded".into(),
            Rejection::UsageExceeded { .. } => "usage limit exceeded".into(),
            Rejection::Unavailable => "authentication temporarily unavailable".into(),
        }
    }

    /// Logs the rejection once, with its cause and token id, never the token. Turn it on
    /// with the `tower_bearer::reject` target (`debug` for 401/403, `warn` for 503).
    pub fn trace(&self) {
        match self {
            Rejection::Unauthenticated { cause, token_id } => tracing::debug!(
                target: "tower_bearer::reject",
                %cause,
                token_id = token_id.map(TokenId::get),
                "request rejected: 401"
            ),
            Rejection::InsufficientScope { scope, token_id } => tracing::debug!(
                target: "tower_bearer::reject",
                %scope,
                token_id = token_id.map(TokenId::get),
                "request rejected: 403 insufficient scope"
            ),
            Rejection::Forbidden { token_id } => tracing::debug!(
                target: "tower_bearer::reject",
                token_id = token_id.map(TokenId::get),
                "request rejected: 403 method not in the allow-list"
            ),
            Rejection::IpNotAllowed { token_id } => tracing::debug!(
                target: "tower_bearer::reject",
                cause = "ip_not_allowed",
                token_id = token_id.map(TokenId::get),
                "request rejected: 403 client address not allowed"
            ),
            Rejection::RateLimited {
                policy,
                retry_after,
                token_id,
            } => tracing::debug!(
                target: "tower_bearer::reject",
                cause = "rate_limited",
                %policy,
                retry_after,
                token_id = token_id.map(TokenId::get),
                "request rejected: 429 rate limit"
            ),
            Rejection::UsageExceeded {
                retry_after,
                token_id,
            } => tracing::debug!(
                target: "tower_bearer::reject",
                cause = "credits_exhausted",
                retry_after,
                token_id = token_id.map(TokenId::get),
                "request rejected: 429 no credits left"
            ),
            Rejection::Unavailable => tracing::warn!(
                target: "tower_bearer::reject",
                "request rejected: 503, token store unavailable"
            ),
        }
    }
}

/// Writes `text` as the inside of an RFC 7230 quoted-string (escaping `"` and `\`,
/// dropping control characters).
fn push_quoted(out: &mut String, text: &str) {
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Handlers can answer with a [`Rejection`] of their own (e.g. after a custom check); the
/// enclosing layer renders it like its own rejections.
#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for Rejection {
    fn into_response(self) -> axum_core::response::Response {
        render_later(self, false).map(axum_core::body::Body::from)
    }
}

impl Rejection {
    /// The rejection for a failed verification.
    pub fn from_verify_error(error: &VerifyError) -> Self {
        match error {
            VerifyError::Rejected { cause, token_id } => Rejection::Unauthenticated {
                cause: *cause,
                token_id: *token_id,
            },
            VerifyError::Unavailable(_) => Rejection::Unavailable,
            // `VerifyError` is non-exhaustive; anything new is at least a 401.
            #[allow(unreachable_patterns)]
            _ => Rejection::Unauthenticated {
                cause: RejectCause::Unknown,
                token_id: None,
            },
        }
    }
}
