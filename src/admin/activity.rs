//! The activity routes of the management API (feature `activity`): a token's requests,
//! and the whole tenant's, newest first.

use std::net::IpAddr;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::handlers::Context;
use crate::activity::ActivityLog;
use crate::api::body::json;
use crate::api::error::ApiError;
use crate::api::input::{DEFAULT_LIMIT, page_limit, parse_id, query_pairs};
use crate::extract::{AdminScope, Scoped};
use crate::identity::TokenId;
use crate::registry::RegistryError;
use crate::store::activity::{Activity, ActivityQuery, Outcome, StatusFilter};

/// One recorded request: never a secret, a query string or a body.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityRow)]
pub(super) struct ActivityView<'a> {
    /// The row's id (what `starting_after` takes).
    #[schema(minimum = 1)]
    id: u64,
    /// When the request arrived (millisecond precision).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    /// The token (for a session token, its API key).
    #[schema(value_type = u64, minimum = 1)]
    token_id: TokenId,
    /// The session, for a session token.
    session_id: Option<&'a str>,
    tenant: &'a str,
    method: &'a str,
    /// The route template (`/items/{id}`); empty without one, unless raw paths are
    /// recorded.
    route: &'a str,
    status: u16,
    /// `ok`, `scope_denied`, `expired`, `revoked`, `wrong_env`, `tenant_mismatch`,
    /// `unavailable`, `rate_limited`, `credits_exhausted`, `ip_denied` or `leaked`.
    #[schema(value_type = String, pattern = "^(ok|scope_denied|expired|revoked|wrong_env|tenant_mismatch|unavailable|rate_limited|credits_exhausted|ip_denied|leaked)$")]
    outcome: &'static str,
    /// From the request's arrival to its response head.
    latency_us: u64,
    #[schema(value_type = Option<String>)]
    client_ip: Option<IpAddr>,
    user_agent: Option<&'a str>,
    /// The request's `X-Request-Id`.
    request_id: Option<&'a str>,
    /// The first request of this token from this address within the retention window.
    new_ip: bool,
}

impl<'a> From<&'a Activity> for ActivityView<'a> {
    fn from(row: &'a Activity) -> Self {
        Self {
            id: row.id,
            at: row.at,
            token_id: row.token_id,
            session_id: row.session_id.as_deref(),
            tenant: &row.tenant,
            method: &row.method,
            route: &row.route,
            status: row.status,
            outcome: row.outcome.as_str(),
            latency_us: row.latency_us,
            client_ip: row.client_ip,
            user_agent: row.user_agent.as_deref(),
            request_id: row.request_id.as_deref(),
            new_ip: row.new_ip,
        }
    }
}

/// A page of activity, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityPage)]
pub(super) struct ActivityPage<'a> {
    data: Vec<ActivityView<'a>>,
    /// Whether older rows follow the last one (ask with `starting_after`).
    has_more: bool,
}

/// `?limit=&starting_after=&outcome=&status=&since=&until=`.
fn activity_query(query: Option<&str>) -> Result<ActivityQuery, ApiError> {
    let mut activity = ActivityQuery::new().limit(DEFAULT_LIMIT);
    let invalid = |field: &'static str, message: &'static str| {
        ApiError::field(StatusCode::BAD_REQUEST, field, message)
    };
    let time = |field: &'static str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339)
            .map_err(|_| invalid(field, "The time must be an RFC 3339 date-time."))
    };
    for (name, value) in query_pairs(query) {
        match &*name {
            "limit" => activity.limit = page_limit(&value)?,
            "starting_after" => {
                // Row ids are positive integers, like token ids.
                let id = parse_id(&value).map_err(|_| {
                    invalid(
                        "starting_after",
                        "The starting_after parameter must be a row id.",
                    )
                })?;
                activity = activity.before(id.get());
            }
            "outcome" => {
                let outcome = value.parse::<Outcome>().map_err(|_| {
                    invalid(
                        "outcome",
                        "The outcome must be one of ok, scope_denied, expired, revoked, wrong_env, tenant_mismatch, unavailable, rate_limited, credits_exhausted, ip_denied, leaked.",
                    )
                })?;
                activity = activity.outcome(outcome);
            }
            "status" => {
                let status = value.parse::<StatusFilter>().map_err(|_| {
                    invalid(
                        "status",
                        "The status must be a status (404) or a class (4xx).",
                    )
                })?;
                activity = activity.status(status);
            }
            "since" => activity = activity.since(time("since", &value)?),
            "until" => activity = activity.until(time("until", &value)?),
            _ => {}
        }
    }
    Ok(activity)
}

fn log(ctx: &Context) -> Result<&ActivityLog, ApiError> {
    ctx.registry
        .activity()
        .ok_or_else(|| ApiError::plain(StatusCode::NOT_FOUND, "The activity log is not enabled."))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    ApiError::from_lifecycle(RegistryError::from(error))
}

/// One page: asks for one row more than the limit to know whether more follow.
async fn page(
    log: &ActivityLog,
    tenant: &str,
    mut query: ActivityQuery,
) -> Result<Response, ApiError> {
    let limit = query.limit;
    query.limit = limit + 1;
    let mut rows = log.query(tenant, &query).await.map_err(store_error)?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let data = rows.iter().map(ActivityView::from).collect();
    Ok(json(StatusCode::OK, &ActivityPage { data, has_more }))
}

#[utoipa::path(
    get,
    path = "/tokens/{id}/activity",
    operation_id = "listTokenActivity",
    tag = "activity",
    summary = "A token's requests, newest first (a key's include its sessions')",
    params(
        ("id" = u64, Path, minimum = 1, description = "The token's id"),
        ActivityParams,
    ),
    responses(
        (status = 200, description = "A page of requests", body = ActivityPage),
        (status = 400, description = "A parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant (nor any activity of it), or no activity log", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn of_token(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let id = parse_id(&id)?;
        let query = activity_query(query.as_deref())?.token(id);
        let log = log(&ctx)?;
        // A revoked token is gone from the store, but its activity is still its own.
        match ctx.registry.get(admin.tenant(), id).await {
            Ok(_) => {}
            Err(RegistryError::NotFound) => {
                let any = ActivityQuery::new().token(id).limit(1);
                let rows = log.query(admin.tenant(), &any).await.map_err(store_error)?;
                if rows.is_empty() {
                    return Err(ApiError::plain(StatusCode::NOT_FOUND, "Token not found."));
                }
            }
            Err(other) => return Err(ApiError::from_lifecycle(other)),
        }
        page(log, admin.tenant(), query).await
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    get,
    path = "/activity",
    operation_id = "listActivity",
    tag = "activity",
    summary = "Every token's requests in the tenant, newest first",
    params(ActivityParams),
    responses(
        (status = 200, description = "A page of requests", body = ActivityPage),
        (status = 400, description = "A parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No activity log is configured", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn of_tenant(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let query = activity_query(query.as_deref())?;
        page(log(&ctx)?, admin.tenant(), query).await
    };
    ctx.answer(result.await)
}

/// The filters and pagination of both activity routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the raw query; this type only documents it
pub(super) struct ActivityParams {
    /// How many rows (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The last row id of the previous page.
    #[param(minimum = 1)]
    starting_after: Option<u64>,
    /// Only rows with this outcome.
    #[param(
        pattern = "^(ok|scope_denied|expired|revoked|wrong_env|tenant_mismatch|unavailable|rate_limited|credits_exhausted|ip_denied|leaked)$"
    )]
    outcome: Option<String>,
    /// Only rows with this status (`404`) or class (`4xx`).
    #[param(pattern = "^[1-5]([0-9][0-9]|[xX][xX])$")]
    status: Option<String>,
    /// Only rows at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only rows at or before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_string_parses_into_filters() {
        let query = activity_query(Some(
            "limit=5&starting_after=9&outcome=revoked&status=4xx&since=2026-01-01T00:00:00Z&other=1",
        ))
        .unwrap();
        assert_eq!(query.limit, 5);
        assert_eq!(query.before, Some(9));
        assert_eq!(query.outcome, Some(Outcome::Revoked));
        assert_eq!(query.status, Some("4xx".parse().unwrap()));
        assert!(query.since.is_some() && query.until.is_none());
        for bad in [
            "limit=0",
            "limit=101",
            "starting_after=0",
            "starting_after=+1",
            "outcome=fine",
            "status=4",
            "since=yesterday",
        ] {
            assert!(activity_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
