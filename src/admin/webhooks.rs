//! The webhook endpoint routes of the management API (features `admin` and `webhooks`):
//! a tenant's endpoints, created with a signing secret shown once, changed, rotated and
//! deleted, and the attempts at delivering to each.

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::handlers::Context;
use crate::api::body::json;
use crate::api::error::{ApiError, FieldErrors};
use crate::api::input::{
    DEFAULT_LIMIT, Fields, page_limit, parse_id, query_pairs, read_json, read_optional_json,
    reject_unknown, required, starting_after,
};
use crate::extract::{AdminScope, Scoped};
use crate::registry::{RegistryError, Webhooks};
use crate::store::webhooks::{DeliveryAttempt, Endpoint, EndpointUpdate, NewEndpoint};
use crate::webhooks::{EVENT_TYPES, MAX_URL_LEN, Targets, WebhookSecret, check_url};

/// How long the secret before a rotation keeps signing deliveries (receivers switch over
/// meanwhile).
const ROTATION_OVERLAP: time::Duration = time::Duration::hours(24);
/// The most event types one endpoint subscribes to, and the longest description.
const MAX_DESCRIPTION_LEN: usize = 256;

/// An endpoint as the API shows it: never its secret.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpoint)]
pub(super) struct EndpointView {
    #[schema(minimum = 1)]
    id: u64,
    url: String,
    /// The event types delivered to it.
    events: Vec<String>,
    description: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    /// `active`, or `failing` once its deliveries kept failing for 24 hours.
    #[schema(pattern = "^(active|failing)$")]
    status: &'static str,
}

impl From<Endpoint> for EndpointView {
    fn from(endpoint: Endpoint) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            created_at: endpoint.created_at,
            status: if endpoint.failing_since.is_some() {
                "failing"
            } else {
                "active"
            },
        }
    }
}

/// `POST /webhooks` and `POST /webhooks/{id}/rotate-secret`: the endpoint and its secret,
/// shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointWithSecret)]
pub(super) struct WithSecret {
    #[serde(flatten)]
    endpoint: EndpointView,
    /// The signing secret (`whsec_…`), for the receiver's Standard Webhooks library.
    secret: String,
}

/// `GET /webhooks`.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookEndpointList)]
pub(super) struct EndpointList {
    data: Vec<EndpointView>,
}

/// The body of `POST /webhooks` (documentation only: the handler reads it field by field).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct CreateWebhookBody {
    /// `https` to a public address (`http` and private addresses only where the
    /// application allows them). At most 2,048 bytes.
    url: String,
    /// One or more of `token.created`, `token.updated`, `token.rotated`, `token.revoked`,
    /// `token.expiring`, `token.expired`, `token.credits_low`, `session.created`,
    /// `session.ended`.
    events: Vec<String>,
    /// At most 256 bytes.
    description: Option<String>,
}

/// The body of `PATCH /webhooks/{id}`: the fields given are replaced (`description: null`
/// removes it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(super) struct UpdateWebhookBody {
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
}

fn webhooks(ctx: &Context) -> Result<&Webhooks, ApiError> {
    ctx.registry
        .webhooks()
        .ok_or_else(|| ApiError::plain(StatusCode::NOT_FOUND, "Webhooks are not enabled."))
}

fn store_error(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::NotFound => {
            ApiError::plain(StatusCode::NOT_FOUND, "Webhook endpoint not found.")
        }
        other => ApiError::from_lifecycle(RegistryError::from(other)),
    }
}

/// The url field, checked against `targets`.
fn url(value: &Value, targets: Targets, errors: &mut FieldErrors) -> Option<String> {
    let Some(url) = value.as_str() else {
        return errors.add("url", "The url field must be a string.");
    };
    match check_url(url, targets) {
        Ok(_) => Some(url.to_owned()),
        Err(why) => errors.add(
            "url",
            format!("The url field is not an allowed endpoint: {why} (at most {MAX_URL_LEN} bytes, https to a public address)."),
        ),
    }
}

/// The events field: a non-empty list of known event types, without repeats.
fn events(value: &Value, errors: &mut FieldErrors) -> Option<Vec<String>> {
    let Some(list) = value.as_array() else {
        return errors.add("events", "The events field must be a list of event types.");
    };
    let mut events: Vec<String> = Vec::new();
    for event in list {
        match event.as_str().filter(|event| EVENT_TYPES.contains(event)) {
            Some(event) if !events.iter().any(|seen| seen == event) => {
                events.push(event.to_owned())
            }
            Some(_) => return errors.add("events", "The events field lists an event type twice."),
            None => {
                return errors.add(
                    "events",
                    format!("The events field may list only {}.", EVENT_TYPES.join(", ")),
                );
            }
        }
    }
    if events.is_empty() {
        return errors.add(
            "events",
            "The events field must list at least one event type.",
        );
    }
    Some(events)
}

/// The description field: `null`, or a string of at most 256 bytes.
fn description(value: &Value, errors: &mut FieldErrors) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::String(text) if text.len() <= MAX_DESCRIPTION_LEN => Some(Some(text.clone())),
        _ => errors.add(
            "description",
            "The description field must be a string of at most 256 bytes, or null.",
        ),
    }
}

fn validate_new(
    fields: &Fields,
    targets: Targets,
) -> Result<(String, Vec<String>, Option<String>), ApiError> {
    reject_unknown(fields, &["url", "events", "description"])?;
    let mut errors = FieldErrors::default();
    let url = match fields.get("url") {
        Some(value) => url(value, targets, &mut errors),
        None => errors.add("url", "The url field is required."),
    };
    let events = match fields.get("events") {
        Some(value) => events(value, &mut errors),
        None => errors.add("events", "The events field is required."),
    };
    let description = fields
        .get("description")
        .map_or(Some(None), |value| description(value, &mut errors));
    match (url, events, description) {
        (Some(url), Some(events), Some(description)) if errors.is_empty() => {
            Ok((url, events, description))
        }
        _ => Err(errors.into_error()),
    }
}

fn validate_update(fields: &Fields, targets: Targets) -> Result<EndpointUpdate, ApiError> {
    reject_unknown(fields, &["url", "events", "description"])?;
    let mut errors = FieldErrors::default();
    let update = EndpointUpdate {
        url: fields
            .get("url")
            .and_then(|value| url(value, targets, &mut errors)),
        events: fields
            .get("events")
            .and_then(|value| events(value, &mut errors)),
        description: fields
            .get("description")
            .and_then(|value| description(value, &mut errors)),
        ..EndpointUpdate::default()
    };
    if fields.is_empty() {
        errors.add::<()>("url", "Give at least one of url, events, description.");
    }
    errors.check()?;
    Ok(update)
}

/// A response that must not be stored anywhere: it holds a secret.
fn secret_response(status: StatusCode, body: &WithSecret) -> Response {
    let mut response = json(status, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[utoipa::path(
    post,
    path = "/webhooks",
    operation_id = "createWebhookEndpoint",
    tag = "webhooks",
    summary = "Register a webhook endpoint; its signing secret is shown this once",
    request_body(content = CreateWebhookBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = WithSecret,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Not JSON", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "Webhooks are not enabled", body = crate::api::body::ErrorBody),
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
        let webhooks = webhooks(&ctx)?;
        let fields = required(read_json(request).await?)?;
        let (url, events, description) = validate_new(&fields, webhooks.targets())?;
        let secret = WebhookSecret::generate()
            .map_err(|_| ApiError::plain(StatusCode::SERVICE_UNAVAILABLE, "No randomness."))?;
        let mut new = NewEndpoint::new(
            admin.tenant(),
            &url,
            events,
            secret.clone(),
            ctx.registry.clock().now(),
        );
        new.description = description;
        let endpoint = webhooks
            .store()
            .create_endpoint(new)
            .await
            .map_err(store_error)?;
        tracing::info!(target: "tower_bearer::webhooks", endpoint = endpoint.id, tenant = %endpoint.tenant, "webhook endpoint registered");
        Ok(secret_response(
            StatusCode::CREATED,
            &WithSecret {
                endpoint: endpoint.into(),
                secret: secret.expose(),
            },
        ))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    get,
    path = "/webhooks",
    operation_id = "listWebhookEndpoints",
    tag = "webhooks",
    summary = "The tenant's webhook endpoints",
    responses(
        (status = 200, description = "The endpoints, by id", body = EndpointList),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "Webhooks are not enabled", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn list(State(ctx): State<Context>, admin: Scoped<AdminScope>) -> Response {
    let result = async {
        let endpoints = webhooks(&ctx)?
            .store()
            .endpoints(admin.tenant())
            .await
            .map_err(store_error)?;
        let data = endpoints.into_iter().map(EndpointView::from).collect();
        Ok(json(StatusCode::OK, &EndpointList { data }))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    operation_id = "getWebhookEndpoint",
    tag = "webhooks",
    summary = "One webhook endpoint, without its secret",
    params(("id" = u64, Path, minimum = 1, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 400, description = "The id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such endpoint in the tenant, or webhooks are not enabled", body = crate::api::body::ErrorBody),
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
        let id = parse_id(&id)?.get();
        let endpoint = webhooks(&ctx)?
            .store()
            .endpoint(admin.tenant(), id)
            .await
            .map_err(store_error)?;
        Ok(json(StatusCode::OK, &EndpointView::from(endpoint)))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    operation_id = "updateWebhookEndpoint",
    tag = "webhooks",
    summary = "Change a webhook endpoint's URL, events or description",
    params(("id" = u64, Path, minimum = 1, description = "The endpoint's id")),
    request_body(content = UpdateWebhookBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The endpoint as it is now", body = EndpointView),
        (status = 400, description = "Not JSON, or the id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such endpoint in the tenant, or webhooks are not enabled", body = crate::api::body::ErrorBody),
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
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?.get();
        let webhooks = webhooks(&ctx)?;
        let fields = required(read_json(request).await?)?;
        let update = validate_update(&fields, webhooks.targets())?;
        let endpoint = webhooks
            .store()
            .update_endpoint(admin.tenant(), id, update)
            .await
            .map_err(store_error)?;
        Ok(json(StatusCode::OK, &EndpointView::from(endpoint)))
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    operation_id = "deleteWebhookEndpoint",
    tag = "webhooks",
    summary = "Delete a webhook endpoint: nothing more is delivered to it",
    params(("id" = u64, Path, minimum = 1, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such endpoint in the tenant, or webhooks are not enabled", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn delete(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
) -> Response {
    let result = async {
        let id = parse_id(&id)?.get();
        webhooks(&ctx)?
            .store()
            .delete_endpoint(admin.tenant(), id)
            .await
            .map_err(store_error)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    ctx.answer(result.await)
}

#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    operation_id = "rotateWebhookSecret",
    tag = "webhooks",
    summary = "Replace an endpoint's signing secret; the old one signs too for 24 hours",
    params(("id" = u64, Path, minimum = 1, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint and its new secret, shown this once", body = WithSecret,
         headers(("cache-control" = String, description = "no-store"))),
        (status = 400, description = "Not JSON, or the id is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such endpoint in the tenant, or webhooks are not enabled", body = crate::api::body::ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = crate::api::body::ErrorBody),
        (status = 415, description = "Body not sent as application/json", body = crate::api::body::ErrorBody),
        (status = 422, description = "A field is given (the body takes none)", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn rotate_secret(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let id = parse_id(&id)?.get();
        if let Some(fields) = read_optional_json(request).await? {
            reject_unknown(&fields, &[])?;
        }
        let webhooks = webhooks(&ctx)?;
        let secret = WebhookSecret::generate()
            .map_err(|_| ApiError::plain(StatusCode::SERVICE_UNAVAILABLE, "No randomness."))?;
        let until = ctx.registry.clock().now() + ROTATION_OVERLAP;
        let endpoint = webhooks
            .store()
            .rotate_endpoint_secret(admin.tenant(), id, secret.clone(), until)
            .await
            .map_err(store_error)?;
        tracing::info!(target: "tower_bearer::webhooks", endpoint = endpoint.id, tenant = %endpoint.tenant, "webhook secret rotated");
        Ok(secret_response(
            StatusCode::OK,
            &WithSecret {
                endpoint: endpoint.into(),
                secret: secret.expose(),
            },
        ))
    };
    ctx.answer(result.await)
}

/// One attempt at delivering a message to an endpoint.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub(super) struct DeliveryView {
    /// The attempt's id (the cursor of `starting_after`).
    #[schema(minimum = 1)]
    id: u64,
    /// The event's id: the `webhook-id` header, the same on every attempt.
    event_id: String,
    /// The event's type (`token.revoked`…).
    event: String,
    /// Which attempt at the message it was, from 1.
    #[schema(minimum = 1)]
    attempt: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    at: OffsetDateTime,
    /// The receiver's status code; `null` when it did not answer.
    status: Option<u16>,
    /// From sending to the answer (or the failure), in milliseconds.
    latency_ms: u64,
    /// Why the attempt failed; `null` when it was delivered.
    error: Option<String>,
}

impl From<DeliveryAttempt> for DeliveryView {
    fn from(attempt: DeliveryAttempt) -> Self {
        Self {
            id: attempt.id,
            event_id: attempt.event_id,
            event: attempt.event_type,
            attempt: attempt.attempt,
            at: attempt.at,
            status: attempt.status,
            latency_ms: u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
            error: attempt.error,
        }
    }
}

/// `GET /webhooks/{id}/deliveries`: a page of attempts, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = WebhookDeliveryPage)]
pub(super) struct DeliveryPage {
    data: Vec<DeliveryView>,
    /// Whether older attempts follow the last one (ask with `starting_after`).
    has_more: bool,
}

/// The pagination of `GET /webhooks/{id}/deliveries`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read from the raw query; this type only documents it
pub(super) struct DeliveryParams {
    /// How many attempts (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The last attempt id of the previous page.
    #[param(minimum = 1)]
    starting_after: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    operation_id = "listWebhookDeliveries",
    tag = "webhooks",
    summary = "The attempts at delivering to an endpoint, newest first",
    params(
        ("id" = u64, Path, minimum = 1, description = "The endpoint's id"),
        DeliveryParams,
    ),
    responses(
        (status = 200, description = "A page of attempts", body = DeliveryPage),
        (status = 400, description = "The id or a parameter is invalid", body = crate::api::body::ErrorBody),
        (status = 401, description = "No valid token", body = crate::api::body::ErrorBody),
        (status = 403, description = "The token lacks scope admin", body = crate::api::body::ErrorBody),
        (status = 404, description = "No such endpoint in the tenant, or webhooks are not enabled", body = crate::api::body::ErrorBody),
        (status = 503, description = "The store cannot answer", body = crate::api::body::ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub(super) async fn deliveries(
    State(ctx): State<Context>,
    admin: Scoped<AdminScope>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let result = async {
        let id = parse_id(&id)?.get();
        let mut limit = DEFAULT_LIMIT;
        let mut before = None;
        for (name, value) in query_pairs(query.as_deref()) {
            match &*name {
                "limit" => limit = page_limit(&value)?,
                "starting_after" => before = Some(starting_after(&value, "an attempt")?),
                _ => {}
            }
        }
        // One more than the page, to know whether more follow.
        let mut attempts = webhooks(&ctx)?
            .store()
            .delivery_attempts(admin.tenant(), id, before, limit + 1)
            .await
            .map_err(store_error)?;
        let has_more = attempts.len() > limit;
        attempts.truncate(limit);
        let data = attempts.into_iter().map(DeliveryView::from).collect();
        Ok(json(StatusCode::OK, &DeliveryPage { data, has_more }))
    };
    ctx.answer(result.await)
}
