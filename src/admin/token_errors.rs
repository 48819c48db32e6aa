//! How the registry's refusals of a token change read in the management API: the
//! expiry, scope and name problems of issuing and changing a token (422), rotation's
//! own (403, 409, 422), and the last admin (409).

use axum::http::StatusCode;

use crate::api::error::ApiError;
use crate::registry::RegistryError;

impl ApiError {
    pub(crate) fn last_admin() -> Self {
        Self::plain(
            StatusCode::CONFLICT,
            "This is the last token of the tenant that holds admin: without it nobody could \
             manage tokens. Create another admin token first, or repeat with ?force=true.",
        )
    }

    pub(crate) fn from_issue(error: RegistryError) -> Self {
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
            RegistryError::ExpiryExtended => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expires_at",
                "The expiry can only be brought forward.",
            ),
            RegistryError::UndeclaredScope(scope) => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "scopes",
                format!("The scope `{scope}` is not declared by this application."),
            ),
            RegistryError::InvalidName => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
                "The name field must be 1 to 255 characters without control characters.",
            ),
            RegistryError::InvalidPolicy(invalid) => Self::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                invalid.field,
                invalid.message,
            ),
            other => Self::from_lifecycle(other),
        }
    }

    pub(crate) fn from_rotate(error: RegistryError) -> Self {
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
}
