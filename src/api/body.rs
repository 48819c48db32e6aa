//! The JSON answer of every route, and the error body the OpenAPI documents name.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// `value` as a JSON body with `status`; a 500 (logged) in the unlikely case that it
/// cannot be serialized.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
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

/// No body, or an empty JSON object: the operation takes no fields.
#[derive(ToSchema)]
#[schema(as = NoFields)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct EmptyBody {}

/// An error in the default (Laravel) shape: `message`, and `errors` by field for
/// validation errors. With `ErrorStyle::Drf` bodies are `{"detail"}` or `{field:
/// [messages]}`; with `ErrorStyle::Envelope`, the response envelope.
#[derive(ToSchema)]
#[schema(
    as = Error,
    examples(
        json!({"message": "Unauthenticated."}),
        json!({
            "message": "The name field is required.",
            "errors": {"name": ["The name field is required."]}
        })
    )
)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    message: String,
    /// Messages by field.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    errors: Option<serde_json::Value>,
}
