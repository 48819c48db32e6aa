//! The `POST /auth/login` handler: reads the request field by field, so that each
//! problem gets its own status and message, and answers with the access token; and
//! `POST /auth/logout`, which ends the session of the access token it is called with.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::body::json;
use crate::api::error::ApiError;
use crate::api::error::ErrorStyle;
use crate::api::input::{Fields, read_json, read_optional_json, reject_unknown, required};
use crate::identity::TokenKind;
use crate::layer::tracking;
use crate::registry::LoginError;
use crate::registry::RejectCause;
use crate::reject::Rejection;
use crate::{principal::Principal, registry::Registry};

/// What the handler needs.
#[derive(Clone)]
pub(super) struct Context {
    pub(super) registry: Registry,
    pub(super) style: ErrorStyle,
}

/// `POST /auth/login` (a documentation type: the body is validated field by field).
#[derive(ToSchema)]
#[schema(
    as = LoginRequest,
    examples(json!({"api_key": "sk_live_…", "session_id": "browser-7f3a"}))
)]
#[allow(dead_code)]
pub(super) struct LoginBody {
    /// An API key the server accepts (prefixed, Sanctum-style, or account credentials).
    api_key: String,
    /// The client's session id: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`. Without
    /// it, the key's default session.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    session_id: Option<String>,
}

/// The answer to a login.
#[derive(Serialize, ToSchema)]
#[schema(
    as = AccessToken,
    examples(json!({"access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjEifQ.…", "expires_in": 7200, "token_type": "Bearer"}))
)]
pub(super) struct AccessToken<'a> {
    /// The access token: a JWT to send as `Authorization: Bearer <access_token>`.
    access_token: &'a str,
    /// Whole seconds until it expires.
    expires_in: u64,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
}

/// Why a request could not be read: an error of the request itself, or the uniform 401.
enum Refused {
    Request(ApiError),
    Key(RejectCause),
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Refused::Request(error)
    }
}

/// `api_key` and `session_id` from the body. An absent or empty `api_key` is a missing
/// credential (the 401 every request without one gets), not a validation error: the
/// endpoint must not tell a missing key from a wrong one.
fn read_fields(fields: &Fields) -> Result<(&str, Option<&str>), Refused> {
    reject_unknown(fields, &["api_key", "session_id"])?;
    let api_key = match fields.get("api_key") {
        None | Some(Value::Null) => return Err(Refused::Key(RejectCause::Missing)),
        Some(Value::String(key)) if key.is_empty() => {
            return Err(Refused::Key(RejectCause::Missing));
        }
        Some(Value::String(key)) => key.as_str(),
        Some(_) => {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "api_key",
                "The api_key field must be a string.",
            )
            .into());
        }
    };
    let session_id = match fields.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if crate::session::is_valid_client_session_id(id) => {
            Some(id.as_str())
        }
        Some(_) => return Err(bad_session_id().into()),
    };
    Ok((api_key, session_id))
}

#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    tag = "auth",
    summary = "Trade an API key for a short-lived access token",
    description = "The same key and session id get the same token back while more than 10% of \
                   its lifetime remains. No Authorization header is needed.",
    request_body(content = LoginBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The access token", body = AccessToken,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "The body is not valid JSON", body = crate::api::body::ErrorBody),
        (status = 401, description = "The API key is missing, unknown, expired, revoked or malformed (the layer's 401)",
         body = crate::api::body::ErrorBody,
         headers(("www-authenticate" = String, description = "The Bearer challenge"))),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "A body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A field is mistyped, unknown, or session_id is invalid", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody,
         headers(("retry-after" = String, description = "Seconds to wait"))),
    ),
    security(()),
)]
pub(super) async fn login(State(ctx): State<Context>, request: Request) -> Response {
    // The attempt is recorded in the activity log (against the key, never the key
    // itself): the body is read below, so the row's part is kept first.
    let witness = tracking::witness(&ctx.registry, &request);
    let fields = match read_json(request).await.and_then(required) {
        Ok(fields) => fields,
        Err(error) => return error.styled(ctx.style).into_response(),
    };
    let (api_key, session_id) = match read_fields(&fields) {
        Ok(read) => read,
        Err(Refused::Request(error)) => return error.styled(ctx.style).into_response(),
        Err(Refused::Key(cause)) => return unauthenticated(cause),
    };
    let answer = ctx.registry.login(api_key, session_id).await;
    if let Some(witness) = &witness {
        record(&ctx.registry, witness, api_key, &answer);
    }
    match answer {
        Ok(token) => {
            let mut response = json(
                StatusCode::OK,
                &AccessToken {
                    access_token: token.access_token.expose_secret(),
                    expires_in: token.expires_in,
                    token_type: "Bearer",
                },
            );
            // The body holds a credential: no cache may keep it.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        // The uniform 401 (or the 503 of an unavailable store), rendered by the enclosing
        // layer like every other.
        Err(LoginError::Key(error)) => Rejection::from_verify_error(&error).into_response(),
        Err(LoginError::InvalidClientSessionId) => {
            bad_session_id().styled(ctx.style).into_response()
        }
        Err(LoginError::NotConfigured) => {
            tracing::error!(
                target: "tower_bearer::exchange",
                "POST /auth/login is mounted over a registry without sessions: configure RegistryBuilder::sessions"
            );
            ApiError::plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.")
                .styled(ctx.style)
                .into_response()
        }
        Err(LoginError::Registry(error)) => ApiError::from_lifecycle(error)
            .styled(ctx.style)
            .into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/auth/logout",
    operation_id = "logout",
    tag = "auth",
    summary = "End the session of the access token this is called with",
    description = "Login hands out the same token while it is valid, so signing out ends the \
                   session: its token is refused at once (on every node once the change feed \
                   delivers). The next login opens a new session.",
    request_body(content = Option<crate::api::body::EmptyBody>, content_type = "application/json",
                 description = "No body (or an empty JSON object)"),
    responses(
        (status = 204, description = "The session is over"),
        (status = 400, description = "Called with an API key (revoke keys with DELETE /tokens/{id}), or a body that is not JSON", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid access token (the layer's 401)", body = crate::api::body::ErrorBody,
         headers(("www-authenticate" = String, description = "The Bearer challenge"))),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "A body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A body with fields", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("access_token" = [])),
)]
pub(super) async fn logout(
    State(ctx): State<Context>,
    principal: Principal,
    request: Request,
) -> Response {
    let result = async {
        if let Some(fields) = read_optional_json(request).await? {
            reject_unknown(&fields, &[])?;
        }
        let session = principal.session_record().ok_or_else(|| {
            ApiError::plain(
                StatusCode::BAD_REQUEST,
                "Log out with the access token of a session; API keys are revoked \
                     with DELETE /tokens/{id}.",
            )
        })?;
        ctx.registry
            .revoke_session(principal.tenant(), session)
            .await
            .map_err(ApiError::from_lifecycle)?;
        tracing::info!(
            target: "tower_bearer::exchange",
            token_id = %principal.id(),
            session_id = %session,
            "logged out"
        );
        Ok::<_, ApiError>(StatusCode::NO_CONTENT.into_response())
    };
    result
        .await
        .unwrap_or_else(|error| error.styled(ctx.style).into_response())
}

/// Records a login in the activity log: a success against the key, with the session it
/// opened; a refused key as the layer records a rejected request.
fn record(
    registry: &Registry,
    witness: &http::Request<()>,
    api_key: &str,
    answer: &Result<crate::registry::SessionToken, LoginError>,
) {
    match answer {
        Ok(token) => {
            // As the login verified it (verifying it again would count a use).
            if let Some(key) = &token.key {
                let session = Principal::builder(key.id(), key.name(), key.tenant())
                    .kind(TokenKind::Session)
                    .session_id(&token.session.id.to_string())
                    .build();
                tracking::authenticated(registry, witness, &session, StatusCode::OK);
            }
        }
        Err(LoginError::Key(error)) => tracking::refused(registry, witness, Some(api_key), error),
        Err(_) => {}
    }
}

fn bad_session_id() -> ApiError {
    ApiError::field(
        StatusCode::UNPROCESSABLE_ENTITY,
        "session_id",
        "The session_id field must be 1 to 128 characters of A-Z a-z 0-9 . _ : -.",
    )
}

fn unauthenticated(cause: RejectCause) -> Response {
    Rejection::Unauthenticated {
        cause,
        token_id: None,
    }
    .into_response()
}
