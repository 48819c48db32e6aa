//! The management routes' handlers and the shapes of their answers.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;

use super::error::{ApiError, ErrorStyle};
use super::input::{flag, list_query, parse_id, read_json, reject_unknown, required};
use super::validate;
use crate::extract::{AdminScope, Scoped};
use crate::registry::{Issued, RotateRequest, TokenInfo};
use crate::scope::{Scope, ScopeSet};
use crate::store::{ListQuery, Metadata};
use crate::{Principal, Registry, TokenId};

/// What every handler needs: the registry, and how to shape errors.
#[derive(Clone)]
pub(super) struct Context {
    pub(super) registry: Registry,
    pub(super) style: ErrorStyle,
}

impl Context {
    fn answer(&self, result: Result<Response, ApiError>) -> Response {
        match result {
            Ok(response) => response,
            Err(error) => error.styled(self.style).into_response(),
        }
    }
}

/// The answer to `POST /tokens` and `POST /tokens/{id}/rotate`.
#[derive(Serialize)]
struct Created<'a> {
    id: TokenId,
    name: &'a str,
    token: &'a str,
    scopes: &'a ScopeSet,
    tenant: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    created_by: Option<TokenId>,
    owner: Option<&'a str>,
    metadata: Option<&'a Metadata>,
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
            owner: issued.info.owner.as_deref(),
            metadata: issued.info.metadata.as_ref(),
        }
    }
}

/// A token as `GET /tokens` and `GET /tokens/{id}` show it: everything but the secret.
#[derive(Serialize)]
struct Listed {
    id: TokenId,
    name: String,
    prefix: String,
    scopes: ScopeSet,
    tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_used_at: Option<OffsetDateTime>,
    expired: bool,
    created_by: Option<TokenId>,
    rotated_to: Option<TokenId>,
    owner: Option<String>,
    metadata: Option<Metadata>,
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
            rotated_to: info.rotated_to,
            owner: info.owner,
            metadata: info.metadata,
        }
    }
}

/// `GET /tokens`: a Stripe-style page.
#[derive(Serialize)]
struct Page {
    data: Vec<Listed>,
    has_more: bool,
}

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

pub(super) async fn get_one(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let info = ctx
            .registry
            .get(admin.tenant(), id)
            .await
            .map_err(ApiError::from_lifecycle)?;
        Ok(json(StatusCode::OK, &Listed::from(info)))
    };
    ctx.answer(result.await)
}

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
        if let Some(scopes) = &update.scopes {
            let takes_admin_away = !registry.grants(scopes, Scope::ADMIN);
            if takes_admin_away && !force {
                guard_last_admin(registry, &admin, &[id]).await?;
            }
        }
        let info = registry
            .update(admin.tenant(), id, update)
            .await
            .map_err(ApiError::from_issue)?;
        Ok(json(StatusCode::OK, &Listed::from(info)))
    };
    ctx.answer(result.await)
}

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
        if let Some(fields) = read_json(request).await? {
            reject_unknown(&fields, &[])?;
        }
        let registry = &ctx.registry;
        let tenant = admin.tenant();
        if !force {
            let removing = if cascade {
                lineage(registry, tenant, id).await?
            } else {
                vec![id]
            };
            guard_last_admin(registry, &admin, &removing).await?;
        }
        if cascade {
            #[derive(Serialize)]
            struct Revoked {
                revoked: Vec<TokenId>,
            }
            let revoked = registry
                .revoke_cascade(tenant, id)
                .await
                .map_err(ApiError::from_lifecycle)?;
            return Ok(json(StatusCode::OK, &Revoked { revoked }));
        }
        registry
            .revoke(tenant, id)
            .await
            .map_err(ApiError::from_lifecycle)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    ctx.answer(result.await)
}

pub(super) async fn rotate(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let grace = match read_json(request).await? {
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

/// 409 when removing `ids` would leave the tenant without an admin token.
async fn guard_last_admin(
    registry: &Registry,
    admin: &Principal,
    ids: &[TokenId],
) -> Result<(), ApiError> {
    let last = registry
        .would_remove_last_admin(admin.tenant(), ids)
        .await
        .map_err(ApiError::from_lifecycle)?;
    if last {
        return Err(ApiError::last_admin());
    }
    Ok(())
}

/// `id` and every token of `tenant` descending from it through `created_by`.
async fn lineage(registry: &Registry, tenant: &str, id: TokenId) -> Result<Vec<TokenId>, ApiError> {
    let tokens = registry
        .list_page(tenant, ListQuery::all())
        .await
        .map_err(ApiError::from_lifecycle)?
        .tokens;
    let mut tree = vec![id];
    let mut seen: HashSet<TokenId> = HashSet::from([id]);
    let mut at = 0;
    while at < tree.len() {
        let parent = tree[at];
        for child in tokens.iter().filter(|t| t.created_by == Some(parent)) {
            if seen.insert(child.id) {
                tree.push(child.id);
            }
        }
        at += 1;
    }
    Ok(tree)
}

fn created(issued: &Issued) -> Response {
    let mut response = json(StatusCode::CREATED, &Created::from(issued));
    // The body holds a plaintext token: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(target: "tower_bearer::admin", %error, "could not serialize a response");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
