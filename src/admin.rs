//! The token management API: an axum [`Router`] to mount behind
//! [`BearerAuthLayer`](crate::BearerAuthLayer).
//!
//! Every route needs scope `admin`, and an admin token manages only its own tenant's
//! tokens (another tenant's token is a 404, exactly like a token that does not exist).
//!
//! | route | answer |
//! |---|---|
//! | `POST /tokens` `{"name","scopes","expires_in_days" \| "expires_at" \| "never_expires"}` | 201 `{"id","name","token","scopes","tenant","created_at","expires_at","created_by"}` — the only time `token` is shown |
//! | `GET /tokens?limit=50&starting_after=<id>` | 200 `{"data":[{"id","name","prefix","scopes","tenant","created_at","expires_at","last_used_at","expired","created_by","rotated_to"}],"has_more":false}` |
//! | `DELETE /tokens/{id}` | 204; the token stops working at once |
//! | `DELETE /tokens/{id}?cascade=true` | 200 `{"revoked":[ids]}`: the token and every token it created, recursively, in one transaction |
//! | `POST /tokens/{id}/rotate` `{"grace_seconds"}` (body optional) | 201 like `POST /tokens`, with a new token; the old one stops working at once, or after `grace_seconds` (at most 86400) |
//!
//! **Expiry.** Without an expiry field a token expires in 180 days (the registry's
//! default). With a lifetime policy ([`RegistryBuilder::max_lifetime`](crate::registry::RegistryBuilder::max_lifetime))
//! an expiry beyond it, or `never_expires`, is a 422 naming the field; without one, 100
//! years is the limit.
//!
//! **Scopes.** An admin can only grant scopes it holds itself (with implications: `admin`
//! grants `write` and `read`), and only rotate tokens whose scopes it holds, so that no
//! token can create a more powerful one. Expired tokens cannot be rotated (create a new
//! one).
//!
//! **Lineage.** Every token records `created_by`: the id of the token that issued it
//! through this API (`null` for tokens issued server-side). A rotated token's replacement
//! is created by the rotating token, and inherits what the old one had created.
//!
//! **Lists** are paginated the way Stripe's are: `limit` (1 to 100, default 50) and
//! `starting_after` (the last id of the previous page), answering `{"data","has_more"}`.
//!
//! **Input.** Bodies are JSON objects of at most 64 KiB (413 beyond); a request that
//! carries a body or a `Content-Type` must say `application/json` (415 otherwise), so that
//! a cross-site form post can never create or rotate tokens when the cookie source is
//! enabled. Unknown fields, more than 64 scopes, and invalid values answer 422 with a
//! Laravel-style validation error naming the field (at most 10 messages per field), and
//! nothing is stored:
//! `422 {"message":"The name field is required.","errors":{"name":["The name field is required."]}}`.
//!
//! ```
//! use axum::Router;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::registry::{Expiry, IssueRequest};
//! use tower_bearer::{admin, BearerAuthLayer, MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let root = registry
//!     .issue(IssueRequest::new("root", "acme")?.scopes(["admin"])?.expires(Expiry::Never))
//!     .await?;
//! let app: Router = admin::router(registry.clone()).layer(BearerAuthLayer::new(registry));
//!
//! let response = app
//!     .oneshot(
//!         Request::post("/tokens")
//!             .header("authorization", format!("Bearer {}", root.secret.expose_secret()))
//!             .header("content-type", "application/json")
//!             .body(Body::from(r#"{"name":"CI","scopes":["read"],"expires_in_days":30}"#))?,
//!     )
//!     .await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::extract::{Admin, Scoped};
use crate::registry::{
    Expiry, IssueRequest, Issued, MAX_GRACE, MAX_NAME_LEN, RegistryError, RotateRequest, TokenInfo,
};
use crate::scope::{Scope, ScopeSet};
use crate::store::ListQuery;
use crate::{Principal, Registry, TokenId};

/// The longest lifetime `expires_in_days` accepts without a lifetime policy (100 years).
const MAX_DAYS: u64 = 36_500;
/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// The most scopes one token may be given.
const MAX_SCOPES: usize = 64;
/// The most messages reported per field; the rest are counted.
const MAX_MESSAGES: usize = 10;
/// Page sizes of `GET /tokens`.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// The management routes, with `registry` as their state.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/tokens", post(create).get(list))
        .route("/tokens/{id}", delete(revoke))
        .route("/tokens/{id}/rotate", post(rotate))
        .with_state(registry)
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
        }
    }
}

/// One element of `GET /tokens`.
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
        }
    }
}

/// `GET /tokens`: a Stripe-style page.
#[derive(Serialize)]
struct Page {
    data: Vec<Listed>,
    has_more: bool,
}

async fn create(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    request: Request,
) -> Result<Response, ApiError> {
    let fields = read_json(request).await?.ok_or_else(|| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body is not valid JSON.",
        )
    })?;
    let request = validate_create(&fields, &admin, &registry)?;
    let issued = registry
        .issue(request)
        .await
        .map_err(ApiError::from_issue)?;
    Ok(created(&issued))
}

async fn list(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = parse_list_query(query.as_deref())?;
    let page = registry
        .list_page(admin.tenant(), query)
        .await
        .map_err(ApiError::from_lifecycle)?;
    let page = Page {
        data: page.tokens.into_iter().map(Listed::from).collect(),
        has_more: page.has_more,
    };
    Ok(json(StatusCode::OK, &page))
}

async fn revoke(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let cascade = parse_cascade(query.as_deref())?;
    if let Some(fields) = read_json(request).await? {
        reject_unknown(&fields, &[])?;
    }
    if cascade {
        #[derive(Serialize)]
        struct Revoked {
            revoked: Vec<TokenId>,
        }
        let revoked = registry
            .revoke_cascade(admin.tenant(), id)
            .await
            .map_err(ApiError::from_lifecycle)?;
        return Ok(json(StatusCode::OK, &Revoked { revoked }));
    }
    registry
        .revoke(admin.tenant(), id)
        .await
        .map_err(ApiError::from_lifecycle)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let grace = match read_json(request).await? {
        Some(fields) => validate_rotate(&fields)?,
        None => Duration::ZERO,
    };
    let issued = registry
        .rotate(RotateRequest::on_behalf_of(&admin, id).grace(grace))
        .await
        .map_err(ApiError::from_rotate)?;
    Ok(created(&issued))
}

fn created(issued: &Issued) -> Response {
    let mut response = json(StatusCode::CREATED, &Created::from(issued));
    // The body holds a plaintext token: no cache may keep it.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response {
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

// ----- reading requests ---------------------------------------------------------------

/// Reads a JSON object body: `None` when the request has no body. A body (or a
/// `Content-Type`) that is not `application/json` is a 415; more than 64 KiB a 413.
async fn read_json(request: Request) -> Result<Option<Map<String, Value>>, ApiError> {
    let (parts, body) = request.into_parts();
    let content_type = json_content_type(&parts.headers)?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = read_limited(body).await?;
    if body.is_empty() {
        return Ok(None);
    }
    if content_type.is_none() {
        return Err(unsupported_media_type());
    }
    let value: Value = serde_json::from_slice(&body).map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body is not valid JSON.",
        )
    })?;
    match value {
        Value::Object(fields) => Ok(Some(fields)),
        _ => Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "The request body must be a JSON object.",
        )),
    }
}

/// `Some(())` for a JSON content type, `None` for none; 415 for any other.
fn json_content_type(headers: &HeaderMap) -> Result<Option<()>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(Some(())),
        _ => Err(unsupported_media_type()),
    }
}

async fn read_limited(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body could not be read.",
        )),
    }
}

fn too_large() -> ApiError {
    ApiError::plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "The request body must not be larger than 64 KiB.",
    )
}

fn unsupported_media_type() -> ApiError {
    ApiError::plain(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "The request body must be JSON, sent with Content-Type: application/json.",
    )
}

fn parse_id(id: &str) -> Result<TokenId, ApiError> {
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    match id.parse::<u64>() {
        Ok(id) if digits && id > 0 => Ok(TokenId::new(id)),
        _ => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "id",
            "The id must be a positive integer.",
        )),
    }
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

fn parse_list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut list = ListQuery::first(DEFAULT_LIMIT);
    for (name, value) in query_pairs(query) {
        match &*name {
            "limit" => match value.parse::<usize>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => list.limit = limit,
                _ => {
                    return Err(ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "limit",
                        format!("The limit must be an integer between 1 and {MAX_LIMIT}."),
                    ));
                }
            },
            "starting_after" => {
                list = list.after(parse_id(&value).map_err(|_| {
                    ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "starting_after",
                        "The starting_after parameter must be a token id.",
                    )
                })?)
            }
            _ => {}
        }
    }
    Ok(list)
}

fn parse_cascade(query: Option<&str>) -> Result<bool, ApiError> {
    let mut cascade = false;
    for (name, value) in query_pairs(query) {
        if name == "cascade" {
            cascade = match &*value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::field(
                        StatusCode::BAD_REQUEST,
                        "cascade",
                        "The cascade parameter must be true or false.",
                    ));
                }
            };
        }
    }
    Ok(cascade)
}

/// Unknown fields are errors: a typo (`expires_days`) must not silently give a default.
fn reject_unknown(fields: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    for name in fields.keys().filter(|name| !known.contains(&name.as_str())) {
        errors.add_owned(
            name,
            format!("The {} field is not allowed.", truncate(name)),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into_error())
    }
}

/// Checks a `POST /tokens` body field by field and builds the request; every problem is
/// reported under its field's name.
fn validate_create(
    fields: &Map<String, Value>,
    admin: &Principal,
    registry: &Registry,
) -> Result<IssueRequest, ApiError> {
    const FIELDS: &[&str] = &[
        "name",
        "scopes",
        "expires_in_days",
        "expires_at",
        "never_expires",
    ];
    reject_unknown(fields, FIELDS)?;
    let mut errors = FieldErrors::default();

    let name = match fields.get("name") {
        None | Some(Value::Null) => errors.add("name", "The name field is required."),
        Some(Value::String(name)) if name.trim().is_empty() => {
            errors.add("name", "The name field is required.")
        }
        Some(Value::String(name)) if name.chars().count() > MAX_NAME_LEN => errors.add(
            "name",
            format!("The name field must not be greater than {MAX_NAME_LEN} characters."),
        ),
        Some(Value::String(name)) if name.chars().any(char::is_control) => errors.add(
            "name",
            "The name field must not contain control characters.",
        ),
        Some(Value::String(name)) => Some(name.as_str()),
        Some(_) => errors.add("name", "The name field must be a string."),
    };

    let scopes = match fields.get("scopes") {
        None | Some(Value::Null) => Some(ScopeSet::empty()),
        Some(Value::Array(items)) if items.len() > MAX_SCOPES => errors.add(
            "scopes",
            format!("The scopes field must not have more than {MAX_SCOPES} items."),
        ),
        Some(Value::Array(items)) => {
            let mut scopes = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str().map(Scope::new) {
                    Some(Ok(scope)) if admin.has_scope(scope.as_str()) => scopes.push(scope),
                    Some(Ok(scope)) => {
                        errors.add::<()>(
                            "scopes",
                            format!("The scope `{scope}` cannot be granted by a token that does not have it."),
                        );
                    }
                    Some(Err(_)) | None => {
                        errors.add::<()>(
                            "scopes",
                            format!(
                                "The scope {} is not valid: use read, write, admin, * or resource:action.",
                                truncate(&item.to_string())
                            ),
                        );
                    }
                }
            }
            Some(scopes.into_iter().collect())
        }
        Some(_) => errors.add("scopes", "The scopes field must be an array of strings."),
    };

    let expiry = validate_expiry(fields, registry, &mut errors);

    match (errors.is_empty(), name, scopes, expiry) {
        (true, Some(name), Some(scopes), Some(expiry)) => {
            let request = IssueRequest::new(name, admin.tenant())
                .map_err(|e| {
                    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "name", e.to_string())
                })?
                .scope_set(scopes)
                .expires(expiry)
                .env(registry.default_env())
                .created_by(Some(admin.id()));
            Ok(request)
        }
        _ => Err(errors.into_error()),
    }
}

fn validate_expiry(
    fields: &Map<String, Value>,
    registry: &Registry,
    errors: &mut FieldErrors,
) -> Option<Expiry> {
    let present = |field: &str| fields.get(field).is_some_and(|v| !v.is_null());
    let never = match fields.get("never_expires") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            errors.add::<()>(
                "never_expires",
                "The never_expires field must be true or false.",
            );
            false
        }
    };
    let given: Vec<&'static str> = ["expires_in_days", "expires_at"]
        .into_iter()
        .filter(|field| present(field))
        .chain(never.then_some("never_expires"))
        .collect();
    if given.len() > 1 {
        for field in given {
            errors.add::<()>(
                field,
                "Only one of expires_in_days, expires_at and never_expires may be given.",
            );
        }
        return None;
    }
    let policy = registry.max_lifetime();
    let max_days = policy.map_or(MAX_DAYS, |max| (max.as_secs() / 86_400).min(MAX_DAYS));
    let limit = policy.unwrap_or(Duration::from_secs(MAX_DAYS * 86_400));
    if never {
        if policy.is_some() {
            return errors.add(
                "never_expires",
                format!("Tokens must expire within {max_days} days: never_expires is not allowed."),
            );
        }
        return Some(Expiry::Never);
    }
    if let Some(days) = fields.get("expires_in_days").filter(|v| !v.is_null()) {
        return match days.as_u64() {
            Some(days) if (1..=max_days).contains(&days) => {
                Some(Expiry::In(Duration::from_secs(days * 86_400)))
            }
            _ => errors.add(
                "expires_in_days",
                format!("The expires_in_days field must be an integer between 1 and {max_days}."),
            ),
        };
    }
    if let Some(at) = fields.get("expires_at").filter(|v| !v.is_null()) {
        let now = registry.clock().now();
        let latest = time::Duration::try_from(limit)
            .ok()
            .and_then(|limit| now.checked_add(limit));
        let parsed = at
            .as_str()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
        return match parsed {
            None => errors.add(
                "expires_at",
                "The expires_at field must be an RFC 3339 date-time.",
            ),
            Some(at) if at <= now => errors.add(
                "expires_at",
                "The expires_at field must be a date-time in the future.",
            ),
            Some(at) if latest.is_none_or(|latest| at > latest) => errors.add(
                "expires_at",
                format!("The expires_at field must be a date-time within {max_days} days."),
            ),
            Some(at) => Some(Expiry::At(at)),
        };
    }
    Some(Expiry::Default)
}

/// Checks a `POST /tokens/{id}/rotate` body: `{"grace_seconds": 0..=86400}`.
fn validate_rotate(fields: &Map<String, Value>) -> Result<Duration, ApiError> {
    reject_unknown(fields, &["grace_seconds"])?;
    let max = MAX_GRACE.as_secs();
    match fields.get("grace_seconds") {
        None | Some(Value::Null) => Ok(Duration::ZERO),
        Some(value) => match value.as_u64() {
            Some(seconds) if seconds <= max => Ok(Duration::from_secs(seconds)),
            _ => Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "grace_seconds",
                format!("The grace_seconds field must be an integer between 0 and {max}."),
            )),
        },
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_owned()
    }
}

// ----- errors -------------------------------------------------------------------------

#[derive(Default)]
struct FieldErrors {
    fields: BTreeMap<Cow<'static, str>, Vec<String>>,
    /// Messages past [`MAX_MESSAGES`], per field.
    dropped: BTreeMap<Cow<'static, str>, usize>,
}

impl FieldErrors {
    /// Records a problem; returns `None` so that validation arms read as values.
    fn add<T>(&mut self, field: &'static str, message: impl Into<String>) -> Option<T> {
        self.push(Cow::Borrowed(field), message.into());
        None
    }

    fn add_owned(&mut self, field: &str, message: String) {
        self.push(Cow::Owned(truncate(field)), message);
    }

    fn push(&mut self, field: Cow<'static, str>, message: String) {
        let messages = self.fields.entry(field.clone()).or_default();
        if messages.len() < MAX_MESSAGES {
            messages.push(message);
        } else {
            *self.dropped.entry(field).or_default() += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn into_error(mut self) -> ApiError {
        for (field, dropped) in self.dropped {
            if let Some(messages) = self.fields.get_mut(&field) {
                messages.push(format!("(and {dropped} more errors)"));
            }
        }
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: self.fields,
            message: None,
        }
    }
}

/// A management API error: `{"message": …, "errors": {field: [messages]}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    errors: BTreeMap<Cow<'static, str>, Vec<String>>,
    message: Option<Cow<'static, str>>,
}

impl ApiError {
    fn field(status: StatusCode, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: BTreeMap::from([(Cow::Borrowed(field), vec![message.into()])]),
            message: None,
        }
    }

    fn plain(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            errors: BTreeMap::new(),
            message: Some(message.into()),
        }
    }

    fn from_issue(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidExpiry => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_at",
                "The expiry must be a date-time in the future.",
            ),
            RegistryError::LifetimeTooLong => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_at",
                "The expiry is beyond the longest lifetime allowed.",
            ),
            other => Self::from_lifecycle(other),
        }
    }

    fn from_rotate(error: RegistryError) -> Self {
        match error {
            RegistryError::Expired => Self::plain(
                StatusCode::UNPROCESSABLE_ENTITY,
                "This token has expired and cannot be rotated. Create a new token instead.",
            ),
            RegistryError::ScopesNotHeld(missing) => {
                let names: Vec<&str> = missing.iter().map(|scope| scope.as_str()).collect();
                Self::plain(
                    StatusCode::FORBIDDEN,
                    format!(
                        "This token has scopes you cannot grant: {}. Only a token that holds them can rotate it.",
                        names.join(", ")
                    ),
                )
            }
            RegistryError::Conflict => Self::plain(
                StatusCode::CONFLICT,
                "This token was already rotated or changed meanwhile.",
            ),
            other => Self::from_issue(other),
        }
    }

    fn from_lifecycle(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound => Self::plain(StatusCode::NOT_FOUND, "Token not found."),
            other => {
                tracing::warn!(target: "tower_bearer::admin", error = %other, "token management failed");
                Self::plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            message: &'a str,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            errors: &'a BTreeMap<Cow<'static, str>, Vec<String>>,
        }
        let first = self.errors.values().flatten().next().map(String::as_str);
        let message = self
            .message
            .as_deref()
            .or(first)
            .unwrap_or("Invalid request.");
        let mut response = json(
            self.status,
            &Body {
                message,
                errors: &self.errors,
            },
        );
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
