//! Checking management request bodies field by field: every problem is reported under its
//! field's name, and nothing is stored unless every field is valid.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::error::{ApiError, FieldErrors};
use crate::api::input::{Fields, reject_unknown, truncate};
use crate::registry::{
    Expiry, IssueRequest, MAX_GRACE, MAX_NAME_LEN, MAX_OWNER_LEN, is_valid_metadata, is_valid_owner,
};
use crate::scope::{Scope, ScopeSet};
use crate::store::TokenUpdate;
use crate::{principal::Principal, registry::Registry};

/// The longest lifetime `expires_in_days` accepts without a lifetime policy (100 years).
const MAX_DAYS: u64 = 36_500;
/// The most scopes one token may be given.
const MAX_SCOPES: usize = 64;
/// The largest metadata object, in bytes of JSON.
const MAX_METADATA: usize = crate::registry::MAX_METADATA_LEN;

/// `POST /tokens`.
pub(super) fn create(
    fields: &Fields,
    admin: &Principal,
    registry: &Registry,
) -> Result<IssueRequest, ApiError> {
    const FIELDS: &[&str] = &[
        "name",
        "scopes",
        "expires_in_days",
        "expires_at",
        "never_expires",
        "owner",
        "metadata",
        "rate_limits",
        "credits",
        "allowed_ips",
    ];
    reject_unknown(fields, FIELDS)?;
    let mut errors = FieldErrors::default();
    let name = match fields.get("name") {
        None | Some(Value::Null) => errors.add("name", "The name field is required."),
        Some(value) => name(value, &mut errors),
    };
    let scopes = match fields.get("scopes") {
        None | Some(Value::Null) => Some(ScopeSet::empty()),
        Some(value) => scopes(value, admin, registry, &mut errors),
    };
    let expiry = expiry(fields, registry, &mut errors, true);
    let owner = match fields.get("owner") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(owner)) if is_valid_owner(owner) => Some(Some(owner.as_str())),
        Some(_) => errors.add(
            "owner",
            format!(
                "The owner field must be a string of 1 to {MAX_OWNER_LEN} bytes without control characters."
            ),
        ),
    };
    let metadata = match fields.get("metadata") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Object(metadata)) if is_valid_metadata(metadata) => {
            Some(Some(metadata.clone()))
        }
        Some(Value::Object(_)) => errors.add(
            "metadata",
            format!("The metadata field must not be larger than {MAX_METADATA} bytes of JSON."),
        ),
        Some(_) => errors.add("metadata", "The metadata field must be a JSON object."),
    };
    let policies = super::validate_policies::read(fields, &mut errors).into_policies();
    match (name, scopes, expiry, owner, metadata) {
        (Some(name), Some(scopes), Some(expiry), Some(owner), Some(metadata))
            if errors.is_empty() =>
        {
            let invalid = |field: &'static str| {
                move |e: crate::registry::InvalidIssueRequest| {
                    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, e.to_string())
                }
            };
            let mut request = IssueRequest::new(name, admin.tenant())
                .map_err(invalid("name"))?
                .scope_set(scopes)
                .expires(expiry.unwrap_or(Expiry::Default))
                .env(registry.default_env())
                .issued_by(admin);
            if let Some(owner) = owner {
                request = request.owner(owner).map_err(invalid("owner"))?;
            }
            if let Some(metadata) = metadata {
                request = request.metadata(metadata).map_err(invalid("metadata"))?;
            }
            request.policies(policies).map_err(|e| match e {
                crate::registry::InvalidIssueRequest::Policies(invalid) => ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    invalid.field,
                    invalid.message,
                ),
                other => {
                    ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "body", other.to_string())
                }
            })
        }
        _ => Err(errors.into_error()),
    }
}

/// `PATCH /tokens/{id}`: a new name, new scopes (within the caller's), or an earlier expiry.
pub(super) fn update(
    fields: &Fields,
    admin: &Principal,
    registry: &Registry,
) -> Result<TokenUpdate, ApiError> {
    reject_unknown(
        fields,
        &[
            "name",
            "scopes",
            "expires_at",
            "expires_in_days",
            "rate_limits",
            "credits",
            "allowed_ips",
        ],
    )?;
    let mut errors = FieldErrors::default();
    let mut update = TokenUpdate::new();
    let policies = super::validate_policies::read(fields, &mut errors);
    if let Some(rate_limits) = policies.rate_limits {
        update = update.rate_limits(rate_limits);
    }
    if let Some(credits) = policies.credits {
        update = update.credits(credits);
    }
    if let Some(networks) = policies.allowed_ips {
        update = update.allowed_ips(networks);
    }
    if let Some(value) = fields.get("name").filter(|v| !v.is_null()) {
        if let Some(name) = name(value, &mut errors) {
            update = update.name(name);
        }
    }
    if let Some(value) = fields.get("scopes").filter(|v| !v.is_null()) {
        if let Some(scopes) = scopes(value, admin, registry, &mut errors) {
            update = update.scopes(scopes);
        }
    }
    match expiry(fields, registry, &mut errors, false) {
        Some(Some(Expiry::At(at))) => update = update.expires_at(at),
        Some(Some(Expiry::In(lifetime))) => {
            let at = time::Duration::try_from(lifetime)
                .ok()
                .and_then(|lifetime| registry.clock().now().checked_add(lifetime));
            match at {
                Some(at) => update = update.expires_at(at),
                None => {
                    errors.add::<()>("expires_in_days", "The expires_in_days field is too large.");
                }
            }
        }
        _ => {}
    }
    errors.check()?;
    if update.is_empty() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "body",
            "Give at least one of name, scopes, expires_at, expires_in_days, rate_limits, \
             credits and allowed_ips.",
        ));
    }
    Ok(update)
}

/// `POST /tokens/{id}/rotate`: `{"grace_seconds": 0..=86400}`.
pub(super) fn rotate(fields: &Fields) -> Result<Duration, ApiError> {
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

fn name<'a>(value: &'a Value, errors: &mut FieldErrors) -> Option<&'a str> {
    match value {
        Value::String(name) if name.trim().is_empty() => {
            errors.add("name", "The name field is required.")
        }
        Value::String(name) if name.chars().count() > MAX_NAME_LEN => errors.add(
            "name",
            format!("The name field must not be greater than {MAX_NAME_LEN} characters."),
        ),
        Value::String(name) if name.chars().any(char::is_control) => errors.add(
            "name",
            "The name field must not contain control characters.",
        ),
        Value::String(name) => Some(name.as_str()),
        _ => errors.add("name", "The name field must be a string."),
    }
}

/// Scopes the caller may grant: valid names, declared, held by the caller.
fn scopes(
    value: &Value,
    admin: &Principal,
    registry: &Registry,
    errors: &mut FieldErrors,
) -> Option<ScopeSet> {
    let Value::Array(items) = value else {
        return errors.add("scopes", "The scopes field must be an array of strings.");
    };
    if items.len() > MAX_SCOPES {
        return errors.add(
            "scopes",
            format!("The scopes field must not have more than {MAX_SCOPES} items."),
        );
    }
    let mut scopes = Vec::with_capacity(items.len());
    let mut valid = true;
    for item in items {
        let message = match item.as_str().map(Scope::new) {
            Some(Ok(scope)) if !registry.is_declared(scope.as_str()) => {
                format!("The scope `{scope}` is not declared by this application.")
            }
            Some(Ok(scope)) if !admin.has_scope(scope.as_str()) => {
                format!("The scope `{scope}` cannot be granted by a token that does not have it.")
            }
            Some(Ok(scope)) => {
                scopes.push(scope);
                continue;
            }
            Some(Err(_)) | None => format!(
                "The scope {} is not valid: use read, write, admin, * or resource:action.",
                truncate(&item.to_string())
            ),
        };
        valid = false;
        errors.add::<()>("scopes", message);
    }
    valid.then(|| scopes.into_iter().collect())
}

/// The expiry fields: `Some(None)` when none is given, `None` when they are invalid.
/// `allow_never` is false for changes, which may only bring an expiry forward.
fn expiry(
    fields: &Fields,
    registry: &Registry,
    errors: &mut FieldErrors,
    allow_never: bool,
) -> Option<Option<Expiry>> {
    let present = |field: &str| fields.get(field).is_some_and(|v| !v.is_null());
    let never = match fields.get("never_expires") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) if allow_never => true,
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
        return Some(Some(Expiry::Never));
    }
    if let Some(days) = fields.get("expires_in_days").filter(|v| !v.is_null()) {
        return match days.as_u64() {
            Some(days) if (1..=max_days).contains(&days) => {
                Some(Some(Expiry::In(Duration::from_secs(days * 86_400))))
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
            Some(at) => Some(Some(Expiry::At(at))),
        };
    }
    Some(None)
}
