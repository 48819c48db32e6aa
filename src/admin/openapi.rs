//! The OpenAPI 3.1 document of the management API: request bodies and error bodies
//! (documentation types: requests are validated field by field, not deserialized into
//! them), and the Bearer security scheme.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, ToSchema};

/// `POST /tokens`.
#[derive(ToSchema)]
#[schema(as = IssueTokenRequest)]
#[allow(dead_code)]
pub(super) struct CreateTokenBody {
    /// 1 to 255 characters, no control characters.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
    /// Scopes to grant: `read`, `write`, `admin`, `*` or `resource:action`, only ones the
    /// calling token holds, at most 64.
    #[schema(max_items = 64)]
    scopes: Option<Vec<String>>,
    /// Days until expiry (at most 36500, or the lifetime policy).
    #[schema(minimum = 1, maximum = 36500)]
    expires_in_days: Option<u64>,
    /// The expiry instant (RFC 3339, in the future).
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// A token that never expires (refused under a lifetime policy).
    never_expires: Option<bool>,
    /// The application user the token belongs to, 1 to 255 bytes.
    #[schema(min_length = 1, max_length = 255)]
    owner: Option<String>,
    /// The application's notes: a JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
}

/// `PATCH /tokens/{id}`: at least one field.
#[derive(ToSchema)]
#[schema(as = UpdateTokenRequest)]
#[allow(dead_code)]
pub(super) struct UpdateTokenBody {
    /// A new name.
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    /// New scopes, within the calling token's.
    #[schema(max_items = 64)]
    scopes: Option<Vec<String>>,
    /// An earlier expiry.
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<String>,
    /// An earlier expiry, in days from now.
    #[schema(minimum = 1, maximum = 36500)]
    expires_in_days: Option<u64>,
}

/// `POST /tokens/{id}/rotate` (the body is optional).
#[derive(ToSchema)]
#[schema(as = RotateTokenRequest)]
#[allow(dead_code)]
pub(super) struct RotateBody {
    /// Seconds the old token keeps working (at most a day).
    #[schema(minimum = 0, maximum = 86400)]
    grace_seconds: Option<u64>,
}

/// An error in the default (Laravel) shape: `message`, and `errors` by field for
/// validation errors. With `ErrorStyle::Drf` bodies are `{"detail"}` or `{field:
/// [messages]}`; with `ErrorStyle::Envelope`, the response envelope.
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    /// What went wrong.
    message: String,
    /// Messages by field.
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    errors: Option<serde_json::Value>,
}

/// The Bearer security scheme every route requires.
pub(super) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token holding scope `admin`: `Authorization: Bearer <token>`.",
                    ))
                    .build(),
            ),
        );
    }
}
