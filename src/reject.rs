//! Rejections and how they are rendered.
//!
//! Every failure of authentication or authorization becomes a [`Rejection`]; a
//! [`Renderer`] turns it into a response. The layer then adds what RFC 6750 and good
//! manners require, unless the renderer set it already: `WWW-Authenticate` (401 and 403),
//! `Retry-After` (503), `Content-Type: application/json` and `Cache-Control: no-store`.
//!
//! The [`Preset`]s reproduce the error contracts of well-known APIs byte for byte:
//!
//! | preset | 401 | 403 |
//! |---|---|---|
//! | [`Preset::laravel`] (default) | `{"message":"Unauthenticated."}` | `{"message":"This action is unauthorized."}` |
//! | [`Preset::drf`] | `{"detail":"Authentication credentials were not provided."}` | `{"detail":"You do not have permission to perform this action."}` |
//! | [`Preset::envelope`] | `{"type":"response","success":false,"description":"Unauthorized",…}` | the same shape, `Forbidden` |
//!
//! Every 401 has the same body whatever the cause (missing, malformed, unknown, expired,
//! revoked…): the cause goes to `tracing`, never to the client.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::principal::TokenId;
use crate::registry::{RejectCause, VerifyError};

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
    /// [deny-unlisted](crate::layer::GrpcScopes::deny_unlisted) map. 403.
    Forbidden {
        /// The token's id.
        token_id: Option<TokenId>,
    },
    /// The token store could not answer a cache miss: 503.
    Unavailable,
}

impl Rejection {
    /// The HTTP status: 401, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => {
                StatusCode::FORBIDDEN
            }
            Rejection::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            | Rejection::Unavailable => None,
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
    /// `Bearer realm="api", error="insufficient_scope", scope="write"`; `None` for 503.
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
        if matches!(self, Rejection::Unavailable) {
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
    /// 7 `PERMISSION_DENIED` for a missing scope, 14 `UNAVAILABLE` when the store cannot
    /// answer.
    pub fn grpc_code(&self) -> u8 {
        match self {
            Rejection::Unauthenticated { .. } => 16,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => 7,
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
            Rejection::Unavailable => "authentication temporarily unavailable".into(),
        }
    }

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

/// Turns a [`Rejection`] into a response.
///
/// Closures `Fn(&Rejection) -> Response<Bytes>` are renderers too:
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tower_bearer::reject::{Rejection, Renderer};
///
/// let renderer = |rejection: &Rejection| {
///     let body = format!(r#"{{"error":{}}}"#, rejection.status().as_u16());
///     Response::builder()
///         .status(rejection.status())
///         .body(Bytes::from(body))
///         .unwrap()
/// };
/// let response = renderer.render(&Rejection::Unavailable);
/// assert_eq!(response.body(), r#"{"error":503}"#);
/// ```
pub trait Renderer: Send + Sync + 'static {
    /// The response for `rejection`. Headers the renderer leaves out are added by the
    /// layer (see the [module documentation](self)).
    fn render(&self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// A renderer with one fixed JSON body per status: the documented contracts of real APIs.
#[derive(Clone, PartialEq, Eq)]
pub struct Preset {
    unauthenticated: Bytes,
    forbidden: Bytes,
    unavailable: Bytes,
}

impl Preset {
    /// Laravel Sanctum: `{"message":"Unauthenticated."}` /
    /// `{"message":"This action is unauthorized."}` / `{"message":"Service Unavailable."}`.
    pub fn laravel() -> Self {
        Self::new(
            r#"{"message":"Unauthenticated."}"#,
            r#"{"message":"This action is unauthorized."}"#,
            r#"{"message":"Service Unavailable."}"#,
        )
    }

    /// Django REST framework: `{"detail":"Authentication credentials were not provided."}` /
    /// `{"detail":"You do not have permission to perform this action."}` /
    /// `{"detail":"Service temporarily unavailable, try again later."}`.
    pub fn drf() -> Self {
        Self::new(
            r#"{"detail":"Authentication credentials were not provided."}"#,
            r#"{"detail":"You do not have permission to perform this action."}"#,
            r#"{"detail":"Service temporarily unavailable, try again later."}"#,
        )
    }

    /// A response envelope:
    /// `{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}`,
    /// and the same shape for `Forbidden` / `FORBIDDEN` / `Insufficient permissions` and
    /// `Service Unavailable` / `SERVICE_UNAVAILABLE`.
    pub fn envelope() -> Self {
        Self::new(
            r#"{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}"#,
            r#"{"type":"response","success":false,"description":"Forbidden","data":{},"error":{"module":"Auth","code":"FORBIDDEN","message":"Insufficient permissions"}}"#,
            r#"{"type":"response","success":false,"description":"Service Unavailable","data":{},"error":{"module":"Auth","code":"SERVICE_UNAVAILABLE","message":"Authentication temporarily unavailable"}}"#,
        )
    }

    /// Your own fixed bodies for 401, 403 and 503 (served as `application/json`).
    pub fn new(
        unauthenticated: impl Into<Bytes>,
        forbidden: impl Into<Bytes>,
        unavailable: impl Into<Bytes>,
    ) -> Self {
        Self {
            unauthenticated: unauthenticated.into(),
            forbidden: forbidden.into(),
            unavailable: unavailable.into(),
        }
    }
}

impl Default for Preset {
    /// [`Preset::laravel`].
    fn default() -> Self {
        Self::laravel()
    }
}

impl fmt::Debug for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preset")
            .field("unauthenticated", &self.unauthenticated)
            .finish_non_exhaustive()
    }
}

impl Renderer for Preset {
    fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        let body = match rejection {
            Rejection::Unauthenticated { .. } => &self.unauthenticated,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => &self.forbidden,
            Rejection::Unavailable => &self.unavailable,
        };
        let mut response = Response::new(body.clone());
        *response.status_mut() = rejection.status();
        response
    }
}

/// How rejections look: the renderer, the realm and the `Retry-After` delay.
#[derive(Clone)]
pub(crate) struct Rendering {
    pub(crate) renderer: std::sync::Arc<dyn Renderer>,
    pub(crate) realm: Box<str>,
    pub(crate) retry_after: Duration,
}

impl Default for Rendering {
    fn default() -> Self {
        Self {
            renderer: std::sync::Arc::new(Preset::laravel()),
            realm: "api".into(),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for Rendering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendering")
            .field("realm", &self.realm)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl Rendering {
    /// Renders `rejection` for a gRPC call (`grpc`) or a plain HTTP request.
    pub(crate) fn render_for(&self, rejection: &Rejection, grpc: bool) -> Response<Bytes> {
        if grpc {
            render_grpc(rejection)
        } else {
            self.render(rejection)
        }
    }

    /// Renders `rejection` and adds the headers the renderer left out.
    pub(crate) fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        let mut response = self.renderer.render(rejection);
        let headers = response.headers_mut();
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if !headers.contains_key(WWW_AUTHENTICATE) {
            if let Some(challenge) = rejection.www_authenticate(&self.realm) {
                headers.insert(WWW_AUTHENTICATE, challenge);
            }
        }
        if matches!(rejection, Rejection::Unavailable) && !headers.contains_key(RETRY_AFTER) {
            headers.insert(
                RETRY_AFTER,
                HeaderValue::from(self.retry_after.as_secs().max(1)),
            );
        }
        response
    }
}

/// What `grpc-message` leaves as it is: printable ASCII except `%` (gRPC's
/// percent-encoding rule).
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// A trailers-only gRPC response: HTTP 200, `content-type: application/grpc`, the status
/// in `grpc-status` and `grpc-message`, no body.
fn render_grpc(rejection: &Rejection) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        "grpc-status",
        HeaderValue::from(u16::from(rejection.grpc_code())),
    );
    let message = rejection.grpc_message();
    let encoded = percent_encoding::utf8_percent_encode(&message, GRPC_MESSAGE).to_string();
    if let Ok(message) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", message);
    }
    response
}

/// Renders `rejection` the default way (Laravel preset, realm `api`, or a gRPC status) and
/// marks the response so that an enclosing [`BearerAuth`](crate::layer::BearerAuth)
/// renders it again its own way.
pub(crate) fn render_later(rejection: Rejection, grpc: bool) -> Response<Bytes> {
    rejection.trace();
    let mut response = Rendering::default().render_for(&rejection, grpc);
    response
        .extensions_mut()
        .insert(RenderLater(rejection, grpc));
    response
}

/// Placed in a response's extensions by extractors and [`RequireScope`](crate::layer::RequireScope)
/// that reject a request: the enclosing [`BearerAuth`](crate::layer::BearerAuth) replaces
/// that response with its own renderer's, so every rejection of an app looks the same.
#[derive(Clone, Debug)]
pub(crate) struct RenderLater(pub(crate) Rejection, pub(crate) bool);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_rejections_are_trailers_only_with_a_percent_encoded_message() {
        let rejection = Rejection::InsufficientScope {
            scope: "ünï%code".into(),
            token_id: None,
        };
        let response = Rendering::default().render_for(&rejection, true);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.body().is_empty());
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "7");
        assert_eq!(
            headers["grpc-message"],
            "insufficient scope: requires %C3%BCn%C3%AF%25code"
        );
        assert!(!headers.contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn grpc_codes_follow_the_http_statuses() {
        let unauthenticated = Rejection::Unauthenticated {
            cause: RejectCause::Revoked,
            token_id: None,
        };
        assert_eq!(unauthenticated.grpc_code(), 16);
        assert_eq!(Rejection::Unavailable.grpc_code(), 14);
        let response = Rendering::default().render_for(&Rejection::Unavailable, true);
        assert_eq!(response.headers()["grpc-status"], "14");
    }
}
