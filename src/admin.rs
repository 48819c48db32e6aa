//! The token management API: an axum [`Router`] to mount behind
//! [`BearerAuthLayer`](crate::BearerAuthLayer).
//!
//! Every route needs scope `admin`, and an admin token manages only its own tenant's
//! tokens (another tenant's token is a 404, exactly like a token that does not exist).
//!
//! | route | answer |
//! |---|---|
//! | `POST /tokens` `{"name","scopes","expires_in_days" \| "expires_at" \| "never_expires"}` | 201 `{"id","name","token","scopes","tenant","created_at","expires_at"}` — the only time `token` is shown |
//! | `GET /tokens` | 200 `[{"id","name","prefix","scopes","tenant","created_at","expires_at","last_used_at","expired"}]` |
//! | `DELETE /tokens/{id}` | 204; the token stops working at once |
//! | `POST /tokens/{id}/rotate` | 201 like `POST /tokens`, with a new token; the old one stops working |
//!
//! Without an expiry field a token expires in 180 days (the registry's default). An admin
//! can only grant scopes it holds itself (with implications: `admin` grants `write` and
//! `read`), so no token can create a more powerful one.
//!
//! Invalid input is answered with a Laravel-style validation error naming the field, and
//! nothing is stored:
//! `422 {"message":"The name field is required.","errors":{"name":["The name field is required."]}}`.
//!
//! ```
//! use axum::Router;
//! use tower_bearer::{admin, BearerAuthLayer, MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let app: Router = admin::router(registry.clone()).layer(BearerAuthLayer::new(registry));
//! # let _ = app;
//! # }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::extract::{Admin, Scoped};
use crate::registry::{
    Expiry, IssueRequest, Issued, MAX_NAME_LEN, RegistryError, RotateRequest, TokenInfo,
};
use crate::scope::{Scope, ScopeSet};
use crate::{Principal, Registry, TokenId};

/// The longest lifetime `expires_in_days` accepts (100 years).
const MAX_DAYS: i64 = 36_500;

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
        }
    }
}

async fn create(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request = validate_create(&body, &admin, &registry)?;
    let issued = registry
        .issue(request)
        .await
        .map_err(ApiError::from_issue)?;
    Ok(created(&issued))
}

async fn list(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
) -> Result<Response, ApiError> {
    let tokens = registry
        .list(admin.tenant())
        .await
        .map_err(ApiError::from_lifecycle)?;
    let tokens: Vec<Listed> = tokens.into_iter().map(Listed::from).collect();
    Ok(json(StatusCode::OK, &tokens))
}

async fn revoke(
    State(registry): State<Registry>,
    admin: Scoped<Admin>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
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
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let issued = registry
        .rotate(RotateRequest::on_behalf_of(&admin, id))
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

/// Checks a `POST /tokens` body field by field and builds the request; every problem is
/// reported under its field's name.
fn validate_create(
    body: &[u8],
    admin: &Principal,
    registry: &Registry,
) -> Result<IssueRequest, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body is not valid JSON.",
        )
    })?;
    let Value::Object(fields) = body else {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "The request body must be a JSON object.",
        ));
    };
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
                                truncate_for_message(item)
                            ),
                        );
                    }
                }
            }
            Some(scopes.into_iter().collect())
        }
        Some(_) => errors.add("scopes", "The scopes field must be an array of strings."),
    };

    let expiry = validate_expiry(&fields, registry, &mut errors);

    match (errors.is_empty(), name, scopes, expiry) {
        (true, Some(name), Some(scopes), Some(expiry)) => {
            let request = IssueRequest::new(name, admin.tenant())
                .map_err(|e| {
                    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "name", e.to_string())
                })?
                .scope_set(scopes)
                .expires(expiry)
                .env(registry.default_env());
            Ok(request)
        }
        _ => Err(errors.into_error()),
    }
}

fn validate_expiry(
    fields: &serde_json::Map<String, Value>,
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
    let given: Vec<&str> = ["expires_in_days", "expires_at"]
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
    if never {
        return Some(Expiry::Never);
    }
    if let Some(days) = fields.get("expires_in_days").filter(|v| !v.is_null()) {
        return match days.as_i64() {
            Some(days) if (1..=MAX_DAYS).contains(&days) => {
                Some(Expiry::In(Duration::from_secs(days as u64 * 86_400)))
            }
            _ => errors.add(
                "expires_in_days",
                format!("The expires_in_days field must be an integer between 1 and {MAX_DAYS}."),
            ),
        };
    }
    if let Some(at) = fields.get("expires_at").filter(|v| !v.is_null()) {
        let parsed = at
            .as_str()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
        return match parsed {
            None => errors.add(
                "expires_at",
                "The expires_at field must be an RFC 3339 date-time.",
            ),
            Some(at) if at <= registry.clock().now() => errors.add(
                "expires_at",
                "The expires_at field must be a date-time in the future.",
            ),
            Some(at) => Some(Expiry::At(at)),
        };
    }
    Some(Expiry::Default)
}

fn truncate_for_message(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

#[derive(Default)]
struct FieldErrors(BTreeMap<&'static str, Vec<String>>);

impl FieldErrors {
    /// Records a problem; returns `None` so that validation arms read as values.
    fn add<T>(&mut self, field: &'static str, message: impl Into<String>) -> Option<T> {
        self.0.entry(field).or_default().push(message.into());
        None
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn into_error(self) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: self.0,
            message: None,
        }
    }
}

/// A management API error: `{"message": …, "errors": {field: [messages]}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    errors: BTreeMap<&'static str, Vec<String>>,
    message: Option<Cow<'static, str>>,
}

impl ApiError {
    fn field(status: StatusCode, field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            errors: BTreeMap::from([(field, vec![message.into()])]),
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
            other => Self::from_lifecycle(other),
        }
    }

    fn from_issue(error: RegistryError) -> Self {
        match error {
            RegistryError::InvalidExpiry => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_at",
                "The expiry must be a date-time in the future.",
            ),
            other => Self::from_lifecycle(other),
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
            errors: &'a BTreeMap<&'static str, Vec<String>>,
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
