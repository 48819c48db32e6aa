//! The errors of the JSON routes (management API, login), in the shape of the configured
//! [`ErrorStyle`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::body::json;
use crate::registry::RegistryError;

/// The most messages reported per field; the rest are counted.
const MAX_MESSAGES: usize = 10;

/// The shape of the management API's error bodies, matching the presets of the
/// authentication layer ([`Preset`](crate::reject::Preset)).
///
/// | style | validation error (400 / 422) | other errors (404, 409, 413, 415, 503…) |
/// |---|---|---|
/// | `Laravel` (default) | `{"message":"The name field is required.","errors":{"name":["The name field is required."]}}` | `{"message":"Token not found."}` |
/// | `Drf` | `{"name":["The name field is required."]}` | `{"detail":"Token not found."}` |
/// | `Envelope` | `{"type":"response","success":false,"description":"Unprocessable Entity","data":{},"error":{"module":"Tokens","code":"VALIDATION_ERROR","message":"…","fields":{"name":["…"]}}}` | the same envelope with `NOT_FOUND`, `CONFLICT`, … |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorStyle {
    /// Laravel's validation errors: `{"message", "errors": {field: [messages]}}`.
    #[default]
    Laravel,
    /// Django REST framework's: `{field: [messages]}` and `{"detail": message}`.
    Drf,
    /// The response envelope of [`Preset::envelope`](crate::reject::Preset::envelope).
    Envelope,
}

/// Field errors gathered while validating a request.
#[derive(Default)]
pub(crate) struct FieldErrors {
    fields: BTreeMap<Cow<'static, str>, Vec<String>>,
    /// Messages past [`MAX_MESSAGES`], per field.
    dropped: BTreeMap<Cow<'static, str>, usize>,
}

impl FieldErrors {
    /// Records a problem; returns `None` so that validation arms read as values.
    pub(crate) fn add<T>(&mut self, field: &'static str, message: impl Into<String>) -> Option<T> {
        self.push(Cow::Borrowed(field), message.into());
        None
    }

    pub(crate) fn add_owned(&mut self, field: String, message: String) {
        self.push(Cow::Owned(field), message);
    }

    fn push(&mut self, field: Cow<'static, str>, message: String) {
        let messages = self.fields.entry(field.clone()).or_default();
        if messages.len() < MAX_MESSAGES {
            messages.push(message);
        } else {
            *self.dropped.entry(field).or_default() += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the 422.
    pub(crate) fn check(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }

    pub(crate) fn into_error(mut self) -> ApiError {
        for (field, dropped) in self.dropped {
            if let Some(messages) = self.fields.get_mut(&field) {
                messages.push(format!("(and {dropped} more errors)"));
            }
        }
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: self.fields,
            message: None,
            style: ErrorStyle::default(),
        }
    }
}

/// A management API error, rendered in its [`ErrorStyle`].
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    errors: BTreeMap<Cow<'static, str>, Vec<String>>,
    message: Option<Cow<'static, str>>,
    style: ErrorStyle,
}

impl ApiError {
    pub(crate) fn field(
        status: StatusCode,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            errors: BTreeMap::from([(Cow::Borrowed(field), vec![message.into()])]),
            message: None,
            style: ErrorStyle::default(),
        }
    }

    pub(crate) fn plain(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            errors: BTreeMap::new(),
            message: Some(message.into()),
            style: ErrorStyle::default(),
        }
    }

    /// Renders in `style`.
    pub(crate) fn styled(mut self, style: ErrorStyle) -> Self {
        self.style = style;
        self
    }

    pub(crate) fn too_large() -> Self {
        Self::plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body must not be larger than 64 KiB.",
        )
    }

    pub(crate) fn unsupported_media_type() -> Self {
        Self::plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request body must be JSON, sent with Content-Type: application/json.",
        )
    }

    /// A registry error of a route that names one token: 404 when it does not exist,
    /// else 503 (logged).
    pub(crate) fn from_lifecycle(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound => Self::plain(StatusCode::NOT_FOUND, "Token not found."),
            other => {
                tracing::warn!(target: "tower_bearer::admin", error = %other, "token management failed");
                Self::plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable.")
            }
        }
    }

    fn message(&self) -> &str {
        let first = self.errors.values().flatten().next().map(String::as_str);
        self.message
            .as_deref()
            .or(first)
            .unwrap_or("Invalid request.")
    }

    fn body(&self) -> Value {
        let message = self.message();
        match self.style {
            ErrorStyle::Laravel if self.errors.is_empty() => json!({ "message": message }),
            ErrorStyle::Laravel => json!({ "message": message, "errors": self.errors }),
            ErrorStyle::Drf if self.errors.is_empty() => json!({ "detail": message }),
            ErrorStyle::Drf => json!(self.errors),
            ErrorStyle::Envelope => {
                let mut error = json!({
                    "module": "Tokens",
                    "code": envelope_code(self.status),
                    "message": message,
                });
                if !self.errors.is_empty() {
                    error["fields"] = json!(self.errors);
                }
                json!({
                    "type": "response",
                    "success": false,
                    "description": self.status.canonical_reason().unwrap_or("Error"),
                    "data": {},
                    "error": error,
                })
            }
        }
    }
}

fn envelope_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_ERROR",
        StatusCode::UNAUTHORIZED => "UNAUTHORIZED",
        StatusCode::FORBIDDEN => "FORBIDDEN",
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::CONFLICT => "CONFLICT",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
        _ => "ERROR",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(self.status, &self.body());
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
