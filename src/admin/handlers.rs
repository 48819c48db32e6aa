//! The management routes' handlers and the shapes of their answers.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::revoked::Shown;
use super::validate;
use crate::api::body::json;
use crate::api::error::{ApiError, ErrorStyle};
use crate::api::input::{
    flag, list_query, parse_id, read_json, read_optional_json, reject_unknown, required,
};
use crate::extract::{AdminScope, Scoped};
use crate::policy::{Credits, Policies, RateLimit};
use crate::registry::{Issued, RotateRequest};
use crate::scope::{Scope, ScopeSet};
use crate::store::Metadata;
use crate::store::{RevocationReason, TokenInfo};
use crate::{identity::TokenId, principal::Principal, registry::Registry};

/// What every handler needs: the registry, and how to shape errors.
#[derive(Clone)]
pub(super) struct Context {
    pub(super) registry: Registry,
    pub(super) style: ErrorStyle,
}

impl Context {
    pub(super) fn answer(&self, result: Result<Response, ApiError>) -> Response {
        match result {
            Ok(response) => response,
            Err(error) => error.styled(self.style).into_response(),
        }
    }
}

/// The answer to `POST /tokens` and `POST /tokens/{id}/rotate`: the only time `token`
/// is shown.
#[derive(Serialize, ToSchema)]
#[schema(
    as = IssuedToken,
    examples(json!({
        "id": 42,
        "name": "CI deploy key",
        "token": "sk_live_…",
        "scopes": ["read", "write"],
        "tenant": "acme",
        "created_at": "2026-11-30T09:15:00Z",
        "expires_at": "2027-02-28T09:15:00Z",
        "created_by": 1,
        "created_by_session": null,
        "owner": null,
        "metadata": null,
        "rate_limits": [{"name": "burst", "limit": 100, "window_seconds": 60}],
        "credits": {"remaining": 1000, "refill": {"amount": 1000, "every": "day"}},
        "allowed_ips": ["203.0.113.0/24"]
    }))
)]
pub(super) struct Created<'a> {
    #[schema(value_type = u64, minimum = 1)]
    id: TokenId,
    name: &'a str,
    /// The plaintext token.
    token: &'a str,
    #[schema(value_type = Vec<String>)]
    scopes: &'a ScopeSet,
    tenant: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    #[schema(value_type = Option<u64>)]
    created_by: Option<TokenId>,
    /// The session `created_by` issued it through (its access token), if any.
    #[schema(value_type = Option<u64>)]
    created_by_session: Option<TokenId>,
    owner: Option<&'a str>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<&'a Metadata>,
    #[serde(flatten)]
    policies: PolicyView,
}

impl<'a> From<&'a Issued> for Created<'a> {
    fn from(issued: &'a Issued) -> Self {
        Self {
            id: issued.info.id,
            name: &issued.info.name,
            token: issued.secret.expose_secret(),
            scopes: &issued.info.scopes,
            tenant: &issued.info.tenant,
            created_at: issued.info.created_at,
            expires_at: issued.info.expires_at,
            created_by: issued.info.created_by,
            created_by_session: issued.info.created_by_session,
            owner: issued.info.owner.as_deref(),
            metadata: issued.info.metadata.as_ref(),
            policies: PolicyView::from(&issued.info.policies),
        }
    }
}

/// A token as `GET /tokens` and `GET /tokens/{id}` show it: everything but the secret.
#[derive(Serialize, ToSchema)]
#[schema(
    as = Token,
    examples(json!({
        "id": 42,
        "name": "CI deploy key",
        "prefix": "sk_live_4Fq9",
        "scopes": ["read", "write"],
        "tenant": "acme",
        "created_at": "2026-11-30T09:15:00Z",
        "expires_at": "2027-02-28T09:15:00Z",
        "last_used_at": "2026-12-01T17:02:11Z",
        "expired": false,
        "created_by": 1,
        "created_by_session": null,
        "rotated_to": null,
        "owner": null,
        "metadata": null,
        "rate_limits": [],
        "credits": null,
        "allowed_ips": []
    }))
)]
pub(super) struct Listed {
    #[schema(value_type = u64, minimum = 1)]
    id: TokenId,
    name: String,
    /// The first characters of the token, to tell tokens apart.
    prefix: String,
    #[schema(value_type = Vec<String>)]
    scopes: ScopeSet,
    tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    last_used_at: Option<OffsetDateTime>,
    /// Expired tokens stay listed until deleted.
    expired: bool,
    #[schema(value_type = Option<u64>)]
    created_by: Option<TokenId>,
    /// The session `created_by` issued it through (its access token), if any.
    #[schema(value_type = Option<u64>)]
    created_by_session: Option<TokenId>,
    #[schema(value_type = Option<u64>)]
    rotated_to: Option<TokenId>,
    owner: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Metadata>,
    #[serde(flatten)]
    policies: PolicyView,
}

/// A key's policies as the management API shows them: every field, empty when unset.
#[derive(Serialize, ToSchema)]
pub(super) struct PolicyView {
    /// Requests per window, at most 4.
    #[schema(value_type = Vec<super::openapi::RateLimitBody>)]
    rate_limits: Vec<RateLimit>,
    /// The budget of uses and its refill; `null` for unlimited. `remaining` is the
    /// balance now.
    #[schema(value_type = Option<super::openapi::CreditsBody>)]
    credits: Option<Credits>,
    /// The networks the key may be used from (CIDR); empty for anywhere.
    #[schema(value_type = Vec<String>)]
    allowed_ips: Vec<ipnet::IpNet>,
}

impl From<&Policies> for PolicyView {
    fn from(policies: &Policies) -> Self {
        Self {
            rate_limits: policies.rate_limits.clone(),
            credits: policies.credits.clone(),
            allowed_ips: policies.allowed_ips.clone(),
        }
    }
}

impl From<TokenInfo> for Listed {
    fn from(info: TokenInfo) -> Self {
        Self {
            id: info.id,
            name: info.name,
            prefix: info.prefix,
            scopes: info.scopes,
            tenant: info.tenant,
            created_at: info.created_at,
            expires_at: info.expires_at,
            last_used_at: info.last_used_at,
            expired: info.expired,
            created_by: info.created_by,
            created_by_session: info.created_by_session,
            rotated_to: info.rotated_to,
            owner: info.owner,
            metadata: info.metadata,
            policies: PolicyView::from(&info.policies),
        }
    }
}

/// `GET /tokens`: a Stripe-style page.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenPage)]
pub(super) struct Page {
    data: Vec<Listed>,
    /// Whether more tokens follow the last one (ask with `starting_after`).
    has_more: bool,
}

/// `DELETE /tokens/{id}?cascade=true`.
#[derive(Serialize, ToSchema)]
#[schema(as = RevokedTokens)]
pub(super) struct Revoked {
    /// The revoked tokens' ids, the token's (or session's) own first.
    #[schema(value_type = Vec<u64>)]
    revoked: Vec<TokenId>,
}

impl Revoked {
    #[cfg_attr(not(feature = "exchange"), allow(dead_code))]
    pub(super) fn new(revoked: Vec<TokenId>) -> Self {
        Self { revoked }
    }
}

#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "issueToken",
    tag = "tokens",
    summary = "Issue a token",
    request_body(content = super::openapi::CreateTokenBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Issued; the token is shown this once", body = Created,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Not JSON", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn create(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    request: Request,
) -> Response {
    let result = async {
        let fields = required(read_json(request).await?)?;
        let request = validate::create(&fields, &admin, &ctx.registry)?;
        let issued = ctx
            .registry
            .issue(request)
            .await
            .map_err(ApiError::from_issue)?;
        Ok(created(&issued))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "listTokens",
    tag = "tokens",
    summary = "List the tenant's tokens, a page at a time",
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("starting_after" = Option<u64>, Query, minimum = 1, description = "The last id of the previous page"),
        ("owner" = Option<String>, Query, description = "Only this owner's tokens"),
    ),
    responses(
        (status = 200, description = "A page of tokens", body = Page),
        (status = 400, description = "A parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let query = list_query(query.as_deref())?;
        let page = ctx
            .registry
            .list_page(admin.tenant(), query)
            .await
            .map_err(ApiError::from_lifecycle)?;
        let page = Page {
            data: page.tokens.into_iter().map(Listed::from).collect(),
            has_more: page.has_more,
        };
        Ok(json(StatusCode::OK, &page))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    get,
    path = "/tokens/{id}",
    operation_id = "getToken",
    tag = "tokens",
    summary = "One token, without its secret",
    params(("id" = u64, Path, minimum = 1, description = "The token's id")),
    responses(
        (status = 200, description = "The token; a revoked API key while the activity log remembers it (feature `activity`): when, why, and where a leaked one was found", body = Shown),
        (status = 400, description = "The id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn get_one(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let shown = match ctx.registry.get(admin.tenant(), id).await {
            Ok(info) => Shown::Token(Box::new(Listed::from(info))),
            #[cfg(feature = "activity")]
            Err(crate::registry::RegistryError::NotFound) => {
                Shown::Revoked(remembered_revoked(&ctx.registry, admin.tenant(), id).await?)
            }
            Err(error) => return Err(ApiError::from_lifecycle(error)),
        };
        Ok(json(StatusCode::OK, &shown))
    };
    ctx.answer(result.await)
}

/// The revoked key `id` of `tenant` the activity log remembers, or the 404 of a key that
/// does not exist.
#[cfg(feature = "activity")]
async fn remembered_revoked(
    registry: &Registry,
    tenant: &str,
    id: TokenId,
) -> Result<super::revoked::RevokedView, ApiError> {
    let not_found = || ApiError::from_lifecycle(crate::registry::RegistryError::NotFound);
    let Some(log) = registry.activity() else {
        return Err(not_found());
    };
    match log.find_revoked_key(tenant, id).await {
        Ok(Some(token)) => Ok(token.into()),
        Ok(None) => Err(not_found()),
        Err(error) => Err(ApiError::from_lifecycle(error.into())),
    }
}

#[utoipa::path(
    patch,
    path = "/tokens/{id}",
    operation_id = "updateToken",
    tag = "tokens",
    summary = "Rename a token, change its scopes, or bring its expiry forward",
    params(("id" = u64, Path, minimum = 1, description = "The token's id"),
        ("force" = Option<bool>, Query, description = "Take admin from (or set an expiry on) the tenant's last admin token anyway"),
    ),
    request_body(content = super::openapi::UpdateTokenBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The token as it is now", body = Listed),
        (status = 400, description = "Not JSON, or a parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant", body = crate::api::body::ErrorBody),
        (status = 409, description = "It would take admin from the tenant's last admin token, or set it an expiry", body = crate::api::body::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A field is invalid", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn update(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let force = flag(query.as_deref(), "force")?;
        let fields = required(read_json(request).await?)?;
        let update = validate::update(&fields, &admin, &ctx.registry)?;
        let registry = &ctx.registry;
        // Demoting it ends its admin access now, a nearer expiry when it passes: either
        // locks the tenant out if it is the last admin.
        let takes_admin_away = update
            .scopes
            .as_ref()
            .is_some_and(|scopes| !registry.grants(scopes, Scope::ADMIN));
        if (takes_admin_away || update.expires_at.is_some()) && !force {
            guard_last_admin(registry, &admin, id, false).await?;
        }
        let info = registry
            .update(admin.tenant(), id, update)
            .await
            .map_err(ApiError::from_issue)?;
        Ok(json(StatusCode::OK, &Listed::from(info)))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    operation_id = "revokeToken",
    tag = "tokens",
    summary = "Revoke a token (and, with cascade, every token it created)",
    params(("id" = u64, Path, minimum = 1, description = "The token's id"),
        ("cascade" = Option<bool>, Query, description = "Also revoke every token it created, recursively"),
        ("force" = Option<bool>, Query, description = "Revoke the tenant's last admin token anyway"),
    ),
    request_body(content = Option<crate::api::body::EmptyBody>, content_type = "application/json",
                 description = "No body (or an empty JSON object)"),
    responses(
        (status = 200, description = "Revoked with its descendants (cascade)", body = Revoked),
        (status = 204, description = "Revoked"),
        (status = 400, description = "A parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant", body = crate::api::body::ErrorBody),
        (status = 409, description = "It is the tenant's last admin token", body = crate::api::body::ErrorBody),
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
        let registry = &ctx.registry;
        let tenant = admin.tenant();
        let reason = if !force {
            guard_last_admin(registry, &admin, id, cascade).await?;
            RevocationReason::Manual
        } else if registry
            .would_remove_last_admin(tenant, &[id], cascade)
            .await
            .map_err(ApiError::from_lifecycle)?
        {
            // Said so in the key's `token.revoked` event and remembered reason.
            RevocationReason::LastAdminForced
        } else {
            RevocationReason::Manual
        };
        if cascade {
            let revoked = registry
                .revoke_cascade_because(tenant, id, reason)
                .await
                .map_err(ApiError::from_lifecycle)?;
            return Ok(json(StatusCode::OK, &Revoked { revoked }));
        }
        registry
            .revoke_because(tenant, id, reason)
            .await
            .map_err(ApiError::from_lifecycle)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    post,
    path = "/tokens/{id}/rotate",
    operation_id = "rotateToken",
    tag = "tokens",
    summary = "Replace a token with a new one",
    params(("id" = u64, Path, minimum = 1, description = "The token's id")),
    request_body(content = Option<super::openapi::RotateBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "The replacement; the token is shown this once", body = Created,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Not JSON, or the id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin, or a scope of the rotated token", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant", body = crate::api::body::ErrorBody),
        (status = 409, description = "Already rotated or changed meanwhile", body = crate::api::body::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A field is invalid, or the token expired", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rotate(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let grace = match read_optional_json(request).await? {
            Some(fields) => validate::rotate(&fields)?,
            None => std::time::Duration::ZERO,
        };
        // The replacement holds the same scopes: rotating never removes an admin.
        let issued = ctx
            .registry
            .rotate(RotateRequest::on_behalf_of(&admin, id).grace(grace))
            .await
            .map_err(ApiError::from_rotate)?;
        Ok(created(&issued))
    };
    ctx.answer(result.await)
}

/// 409 when removing `id` (with its descendants when `cascade`) would leave the tenant
/// without an admin token.
async fn guard_last_admin(
    registry: &Registry,
    admin: &Principal,
    id: TokenId,
    cascade: bool,
) -> Result<(), ApiError> {
    guard_last_admin_of(registry, admin, &[id], cascade).await
}

/// 409 when removing `ids` (with their descendants when `cascade`) would leave the
/// tenant without an admin token.
pub(super) async fn guard_last_admin_of(
    registry: &Registry,
    admin: &Principal,
    ids: &[TokenId],
    cascade: bool,
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let last = registry
        .would_remove_last_admin(admin.tenant(), ids, cascade)
        .await
        .map_err(ApiError::from_lifecycle)?;
    if last {
        return Err(ApiError::last_admin());
    }
    Ok(())
}

fn created(issued: &Issued) -> Response {
    let mut response = json(StatusCode::CREATED, &Created::from(issued));
    // The body holds a plaintext token: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
