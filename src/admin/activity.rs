//! The activity routes of the management API (feature `activity`): a token's requests,
//! and the whole tenant's, newest first.

use std::collections::BTreeMap;
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
use crate::api::input::{DEFAULT_LIMIT, page_limit, parse_id, query_pairs, starting_after};
use crate::extract::{AdminScope, Scoped};
use crate::identity::TokenId;
use crate::registry::RegistryError;
use crate::store::activity::{
    Activity, ActivityQuery, Bucket, Outcome, StatusFilter, Summary, SummaryQuery,
};

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
            "starting_after" => activity = activity.before(starting_after(&value, "a row")?),
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

/// `GET /activity/summary`: requests per bucket by outcome, for charts.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivitySummary)]
pub(super) struct SummaryView {
    /// `hour` or `day`.
    #[schema(pattern = "^(hour|day)$")]
    bucket: &'static str,
    /// The token summarized; `null` for the whole tenant.
    #[schema(value_type = Option<u64>, minimum = 1)]
    token_id: Option<TokenId>,
    /// The first bucket's start (UTC-aligned).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    since: OffsetDateTime,
    /// The end of the last bucket (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    until: OffsetDateTime,
    /// Every bucket of the range, oldest first, empty ones included.
    buckets: Vec<BucketView>,
    /// The range's requests by outcome.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    totals: BTreeMap<&'static str, u64>,
    /// The range's requests.
    total: u64,
    /// The newest successful request (whatever the range), if the log has one.
    last_used: Option<LastUseView>,
    /// For the whole tenant: the ten tokens with most requests in the range, most
    /// first; empty for a token.
    busiest: Vec<BusyView>,
}

/// One bucket of a summary.
#[derive(Serialize, ToSchema)]
#[schema(as = ActivityBucket)]
struct BucketView {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    start: OffsetDateTime,
    /// Requests by outcome (outcomes without any are left out).
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    outcomes: BTreeMap<&'static str, u64>,
    total: u64,
}

/// When and from where a token (or tenant) was last used successfully.
#[derive(Serialize, ToSchema)]
#[schema(as = LastUse)]
struct LastUseView {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    #[schema(value_type = Option<String>)]
    client_ip: Option<IpAddr>,
}

/// One of a tenant's busiest tokens.
#[derive(Serialize, ToSchema)]
#[schema(as = BusyToken)]
struct BusyView {
    #[schema(value_type = u64, minimum = 1)]
    token_id: TokenId,
    /// The token's name; `null` once it was revoked.
    name: Option<String>,
    requests: u64,
}

/// The longest ranges a summary covers: 31 days by hour, 400 days by day.
const MAX_BUCKETS_HOURLY: i64 = 31 * 24;
const MAX_BUCKETS_DAILY: i64 = 400;

/// `?token_id=&bucket=hour|day&since=&until=` at `now`: the last 24 hours by hour (or
/// 30 days by day) unless told otherwise, widened to whole buckets.
fn summary_query(query: Option<&str>, now: OffsetDateTime) -> Result<SummaryQuery, ApiError> {
    let invalid = |field: &'static str, message: &'static str| {
        ApiError::field(StatusCode::BAD_REQUEST, field, message)
    };
    let time = |field: &'static str, value: &str| {
        OffsetDateTime::parse(value, &Rfc3339)
            .map_err(|_| invalid(field, "The time must be an RFC 3339 date-time."))
    };
    let (mut token, mut bucket, mut since, mut until) = (None, Bucket::Hour, None, None);
    for (name, value) in query_pairs(query) {
        match &*name {
            "token_id" => {
                token = Some(parse_id(&value).map_err(|_| {
                    invalid("token_id", "The token_id parameter must be a token id.")
                })?);
            }
            "bucket" => {
                bucket = match &*value {
                    "hour" => Bucket::Hour,
                    "day" => Bucket::Day,
                    _ => return Err(invalid("bucket", "The bucket must be hour or day.")),
                };
            }
            "since" => since = Some(time("since", &value)?),
            "until" => until = Some(time("until", &value)?),
            _ => {}
        }
    }
    let (default_span, max_buckets) = match bucket {
        Bucket::Hour => (time::Duration::hours(24), MAX_BUCKETS_HOURLY),
        Bucket::Day => (time::Duration::days(30), MAX_BUCKETS_DAILY),
    };
    let step = time::Duration::milliseconds(bucket.millis());
    // The bucket `now` (or `until`) falls in is the last one, whole.
    let until = until.unwrap_or(now);
    let end = bucket
        .start_of(until)
        .checked_add(step)
        .ok_or_else(|| invalid("until", "The until time is out of range."))?;
    let since = match since {
        Some(since) => since,
        None => end
            .checked_sub(default_span)
            .ok_or_else(|| invalid("until", "The until time is out of range."))?,
    };
    let start = bucket.start_of(since);
    if start >= end {
        return Err(invalid("since", "The since time must come before until."));
    }
    if (end - start).whole_milliseconds() > i128::from(max_buckets * bucket.millis()) {
        return Err(invalid(
            "since",
            "The range is too long: at most 31 days by hour, 400 days by day.",
        ));
    }
    let mut summary = SummaryQuery::new(bucket, start, end);
    summary.token_id = token;
    Ok(summary)
}

/// The summary as the API shows it: every bucket of the range, empty ones included.
fn summary_view(query: &SummaryQuery, summary: Summary, names: Vec<Option<String>>) -> SummaryView {
    let step = time::Duration::milliseconds(query.bucket.millis());
    let mut buckets = Vec::new();
    let mut start = query.since;
    while start < query.until {
        buckets.push(BucketView {
            start,
            outcomes: BTreeMap::new(),
            total: 0,
        });
        start += step;
    }
    let mut totals = BTreeMap::new();
    let mut total = 0;
    for count in &summary.counts {
        let index =
            (count.start - query.since).whole_milliseconds() / i128::from(query.bucket.millis());
        if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
            *bucket.outcomes.entry(count.outcome.as_str()).or_default() += count.count;
            bucket.total += count.count;
        }
        *totals.entry(count.outcome.as_str()).or_default() += count.count;
        total += count.count;
    }
    SummaryView {
        bucket: query.bucket.as_str(),
        token_id: query.token_id,
        since: query.since,
        until: query.until,
        buckets,
        totals,
        total,
        last_used: summary.last_use.map(|last| LastUseView {
            at: last.at,
            client_ip: last.client_ip,
        }),
        busiest: summary
            .busiest
            .into_iter()
            .zip(names)
            .map(|((token_id, requests), name)| BusyView {
                token_id,
                name,
                requests,
            })
            .collect(),
    }
}

fn log(ctx: &Context) -> Result<&ActivityLog, ApiError> {
    ctx.registry
        .activity()
        .ok_or_else(|| ApiError::plain(StatusCode::NOT_FOUND, "The activity log is not enabled."))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    ApiError::from_lifecycle(RegistryError::from(error))
}

/// Token `id` of `tenant` exists, or did: a revoked token is gone from the store, but
/// its activity is still its own. Else 404.
async fn known(
    ctx: &Context,
    log: &ActivityLog,
    tenant: &str,
    id: TokenId,
) -> Result<(), ApiError> {
    match ctx.registry.get(tenant, id).await {
        Ok(_) => Ok(()),
        Err(RegistryError::NotFound) => {
            let any = ActivityQuery::new().token(id).limit(1);
            let rows = log.query(tenant, &any).await.map_err(store_error)?;
            if rows.is_empty() {
                return Err(ApiError::plain(StatusCode::NOT_FOUND, "Token not found."));
            }
            Ok(())
        }
        Err(other) => Err(ApiError::from_lifecycle(other)),
    }
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
        known(&ctx, log, admin.tenant(), id).await?;
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

#[utoipa::path(
    get,
    path = "/activity/summary",
    operation_id = "summarizeActivity",
    tag = "activity",
    summary = "Requests per hour or day by outcome, for charts: a token's, or the tenant's with its busiest tokens",
    params(SummaryParams),
    responses(
        (status = 200, description = "Every bucket of the range, oldest first", body = SummaryView),
        (status = 400, description = "A parameter is invalid, or the range too long", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such token in the tenant (nor any activity of it), or no activity log", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn summary(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let query = summary_query(query.as_deref(), ctx.registry.clock().now())?;
        let log = log(&ctx)?;
        let tenant = admin.tenant();
        if let Some(id) = query.token_id {
            known(&ctx, log, tenant, id).await?;
        }
        let summary = log.summary(tenant, &query).await.map_err(store_error)?;
        // The busiest tokens by name, as they are now (a revoked one has none).
        let mut names = Vec::with_capacity(summary.busiest.len());
        for (id, _) in &summary.busiest {
            names.push(
                ctx.registry
                    .get(tenant, *id)
                    .await
                    .ok()
                    .map(|info| info.name),
            );
        }
        Ok(json(StatusCode::OK, &summary_view(&query, summary, names)))
    };
    ctx.answer(result.await)
}

/// The parameters of `GET /activity/summary`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the raw query; this type only documents it
pub(super) struct SummaryParams {
    /// Only this token's requests (a key's include its sessions'); the tenant's
    /// otherwise, with its busiest tokens.
    #[param(minimum = 1)]
    token_id: Option<u64>,
    /// `hour` (default) or `day`; buckets are aligned to UTC.
    #[param(pattern = "^(hour|day)$")]
    bucket: Option<String>,
    /// From the bucket this time falls in (RFC 3339; default: 24 hours, or 30 days,
    /// before `until`).
    #[param(format = DateTime)]
    since: Option<String>,
    /// To the end of the bucket this time falls in (RFC 3339; default now).
    #[param(format = DateTime)]
    until: Option<String>,
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
    fn a_summary_covers_whole_buckets_and_bounded_ranges() {
        use time::macros::datetime;
        let now = datetime!(2026-12-04 21:42:47.5 UTC);
        let hours = summary_query(None, now).unwrap();
        assert_eq!(hours.bucket, Bucket::Hour);
        assert_eq!(
            (hours.since, hours.until),
            (
                datetime!(2026-12-03 22:00 UTC),
                datetime!(2026-12-04 22:00 UTC)
            ),
            "24 whole hours, the current one last"
        );
        let days = summary_query(Some("bucket=day&token_id=7"), now).unwrap();
        assert_eq!(days.token_id, Some(TokenId::new(7)));
        assert_eq!(
            (days.since, days.until),
            (
                datetime!(2026-11-05 00:00 UTC),
                datetime!(2026-12-05 00:00 UTC)
            )
        );
        let view = summary_view(&days, Summary::default(), Vec::new());
        assert_eq!((view.buckets.len(), view.total), (30, 0));
        let chosen = summary_query(
            Some("since=2026-12-01T10:30:00Z&until=2026-12-01T12:00:00Z"),
            now,
        )
        .unwrap();
        assert_eq!(
            (chosen.since, chosen.until),
            (
                datetime!(2026-12-01 10:00 UTC),
                datetime!(2026-12-01 13:00 UTC)
            )
        );
        for bad in [
            "bucket=week",
            "token_id=0",
            "since=yesterday",
            "until=2026-12-01",
            "since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z",
            "since=2026-10-01T00:00:00Z",
            "bucket=day&since=2024-01-01T00:00:00Z",
            "until=9999-12-31T23:59:59Z",
            "until=-9999-01-01T00:00:00Z",
        ] {
            assert!(summary_query(Some(bad), now).is_err(), "{bad}");
        }
    }

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
