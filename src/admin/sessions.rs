//! The session routes of the management API (feature `exchange`): an API key's live
//! sessions, and revoking one.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::handlers::{Context, Revoked, guard_last_admin_of};
use crate::api::body::json;
use crate::api::error::ApiError;
use crate::api::input::{flag, list_query, parse_id, read_optional_json, reject_unknown};
use crate::extract::{AdminScope, Scoped};
use crate::identity::TokenId;
use crate::registry::{RegistryError, SessionInfo};

/// A live session as `GET /tokens/{id}/sessions` lists it: never its token.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub(super) struct SessionView<'a> {
    /// The session's id (what `DELETE /sessions/{id}` takes).
    #[schema(value_type = u64, minimum = 1)]
    id: TokenId,
    /// The API key it was opened with.
    #[schema(value_type = Option<u64>, minimum = 1)]
    api_key_id: Option<TokenId>,
    /// The client's session id (`default` when the login named none).
    session_id: &'a str,
    /// When its access token was issued.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    issued_at: OffsetDateTime,
    /// When its access token expires.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    expires_at: OffsetDateTime,
    /// The id of the key that signs its access token.
    kid: &'a str,
}

impl<'a> From<&'a SessionInfo> for SessionView<'a> {
    fn from(session: &'a SessionInfo) -> Self {
        Self {
            id: session.id,
            api_key_id: session.api_key_id,
            session_id: &session.client_session_id,
            issued_at: session.issued_at,
            expires_at: session.expires_at,
            kid: &session.kid,
        }
    }
}

/// `GET /tokens/{id}/sessions`: a page.
#[derive(Serialize, ToSchema)]
#[schema(as = SessionList)]
pub(super) struct SessionList<'a> {
    /// The key's live sessions, oldest first.
    data: Vec<SessionView<'a>>,
    /// Whether more sessions follow (ask again with `starting_after` = the last id).
    has_more: bool,
}

fn session_error(error: RegistryError, what: &'static str) -> ApiError {
    match error {
        RegistryError::NotFound => ApiError::plain(StatusCode::NOT_FOUND, what),
        other => ApiError::from_lifecycle(other),
    }
}

#[utoipa::path(
    get,
    path = "/tokens/{id}/sessions",
    operation_id = "listTokenSessions",
    tag = "sessions",
    summary = "List an API key's live sessions, a page at a time",
    params(
        ("id" = u64, Path, minimum = 1, description = "The API key's id"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("starting_after" = Option<u64>, Query, minimum = 1, description = "The last session id of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the key's live sessions, never their tokens", body = SessionList),
        (status = 400, description = "The id or a parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such API key in the tenant", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let query = list_query(query.as_deref())?;
        let page = ctx
            .registry
            .sessions_page(admin.tenant(), id, query)
            .await
            .map_err(|e| session_error(e, "Token not found."))?;
        let data = page.sessions.iter().map(SessionView::from).collect();
        let list = SessionList {
            data,
            has_more: page.has_more,
        };
        Ok(json(StatusCode::OK, &list))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    operation_id = "revokeSession",
    tag = "sessions",
    summary = "Revoke a session: its access token stops working at once",
    params(
        ("id" = u64, Path, minimum = 1, description = "The session's id"),
        ("cascade" = Option<bool>, Query, description = "Also revoke every token issued through the session, with their descendants"),
        ("force" = Option<bool>, Query, description = "Revoke the tenant's last admin token anyway, if the cascade reaches it"),
    ),
    request_body(content = Option<crate::api::body::EmptyBody>, content_type = "application/json",
                 description = "No body (or an empty JSON object)"),
    responses(
        (status = 200, description = "Revoked with what it issued (cascade)", body = super::handlers::Revoked),
        (status = 204, description = "Revoked"),
        (status = 400, description = "Not JSON, or the id or a parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such session in the tenant", body = crate::api::body::ErrorBody),
        (status = 409, description = "The cascade would revoke the tenant's last admin token", body = crate::api::body::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "A body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A body with fields", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn revoke(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let cascade = flag(query.as_deref(), "cascade")?;
        let force = flag(query.as_deref(), "force")?;
        if let Some(fields) = read_optional_json(request).await? {
            reject_unknown(&fields, &[])?;
        }
        if cascade {
            let registry = &ctx.registry;
            if !force {
                let issued = registry
                    .issued_through_session(admin.tenant(), id)
                    .await
                    .map_err(|e| session_error(e, "Session not found."))?;
                guard_last_admin_of(registry, &admin, &issued, true).await?;
            }
            let revoked = registry
                .revoke_session_cascade(admin.tenant(), id)
                .await
                .map_err(|e| session_error(e, "Session not found."))?;
            return Ok(json(StatusCode::OK, &Revoked::new(revoked)));
        }
        ctx.registry
            .revoke_session(admin.tenant(), id)
            .await
            .map_err(|e| session_error(e, "Session not found."))?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    ctx.answer(result.await)
}
