//! Reading management requests: bounded JSON bodies, path ids and query parameters.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde_json::{Map, Value};

use super::error::{ApiError, FieldErrors};
use crate::identity::TokenId;
use crate::store::ListQuery;

/// The largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// Page sizes of `GET /tokens`.
pub(crate) const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// A JSON object body.
pub(crate) type Fields = Map<String, Value>;

/// Reads a JSON object body: `None` when the request has no body. A body (or a
/// `Content-Type`) that is not `application/json` is a 415; more than 64 KiB a 413.
pub(crate) async fn read_json(request: Request) -> Result<Option<Fields>, ApiError> {
    read_value(request).await?.map(object).transpose()
}

/// Reads the body of an operation that takes no body or a few optional fields: no body
/// and a JSON `null` both mean no fields (the document allows either, and clients that
/// serialize "nothing" send `null`).
pub(crate) async fn read_optional_json(request: Request) -> Result<Option<Fields>, ApiError> {
    match read_value(request).await? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => object(value).map(Some),
    }
}

async fn read_value(request: Request) -> Result<Option<Value>, ApiError> {
    let (parts, body) = request.into_parts();
    let declares_json = json_content_type(&parts.headers)?;
    let declared_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(ApiError::too_large());
    }
    let body = read_limited(body).await?;
    if body.is_empty() {
        return Ok(None);
    }
    if !declares_json {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(&body).map(Some).map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body is not valid JSON.",
        )
    })
}

fn object(value: Value) -> Result<Fields, ApiError> {
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "The request body must be a JSON object.",
        )),
    }
}

/// A body that must be there.
pub(crate) fn required(fields: Option<Fields>) -> Result<Fields, ApiError> {
    fields.ok_or_else(|| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body is not valid JSON.",
        )
    })
}

/// `true` for a JSON content type, `false` for none; 415 for any other.
fn json_content_type(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(true),
        _ => Err(ApiError::unsupported_media_type()),
    }
}

async fn read_limited(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::too_large())
        }
        Err(_) => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "body",
            "The request body could not be read.",
        )),
    }
}

pub(crate) fn parse_id(id: &str) -> Result<TokenId, ApiError> {
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

pub(crate) fn query_pairs(
    query: Option<&str>,
) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
}

/// `?limit=&starting_after=&owner=` of `GET /tokens`.
pub(crate) fn list_query(query: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut list = ListQuery::first(DEFAULT_LIMIT);
    for (name, value) in query_pairs(query) {
        match &*name {
            "limit" => list.limit = page_limit(&value)?,
            "starting_after" => list = list.after(TokenId::new(starting_after(&value, "a token")?)),
            "owner" => list = list.owner(&value),
            _ => {}
        }
    }
    Ok(list)
}

/// A page's `starting_after`: the id of the last item (`what`: "a token", "an attempt"…)
/// of the page before, a positive integer.
pub(crate) fn starting_after(value: &str, what: &str) -> Result<u64, ApiError> {
    parse_id(value).map(TokenId::get).map_err(|_| {
        ApiError::field(
            StatusCode::BAD_REQUEST,
            "starting_after",
            format!("The starting_after parameter must be {what} id."),
        )
    })
}

/// A page's `limit`: 1 to 100.
pub(crate) fn page_limit(value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            "limit",
            format!("The limit must be an integer between 1 and {MAX_LIMIT}."),
        )),
    }
}

/// A `true`/`false` query flag such as `?cascade=true`; absent is `false`.
pub(crate) fn flag(query: Option<&str>, flag: &'static str) -> Result<bool, ApiError> {
    let mut set = false;
    for (name, value) in query_pairs(query) {
        if name == flag {
            set = match &*value {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::field(
                        StatusCode::BAD_REQUEST,
                        flag,
                        format!("The {flag} parameter must be true or false."),
                    ));
                }
            };
        }
    }
    Ok(set)
}

/// Unknown fields are errors: a typo (`expires_days`) must not silently give a default.
pub(crate) fn reject_unknown(fields: &Fields, known: &[&str]) -> Result<(), ApiError> {
    let mut errors = FieldErrors::default();
    for name in fields.keys().filter(|name| !known.contains(&name.as_str())) {
        let name = truncate(name);
        let message = format!("The {name} field is not allowed.");
        errors.add_owned(name, message);
    }
    errors.check()
}

/// At most 40 characters of `text`, for echoing input in messages.
pub(crate) fn truncate(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_owned()
    }
}
