//! The policy fields of management request bodies: `rate_limits`, `credits` and
//! `allowed_ips`, checked as strictly as the rest (unknown keys, wrong types and values
//! out of range are each reported under the field's name).

use serde_json::{Map, Value};

use crate::api::error::FieldErrors;
use crate::api::input::{Fields, truncate};
use crate::policy::{
    Credits, MAX_ALLOWED_IPS, MAX_CREDITS, MAX_RATE_LIMITS, Policies, RateLimit, Refill,
    RefillPeriod, parse_network,
};

/// The policy fields present in `fields`: `None` for each one absent; errors recorded.
pub(super) struct PolicyFields {
    pub(super) rate_limits: Option<Vec<RateLimit>>,
    pub(super) credits: Option<Option<Credits>>,
    pub(super) allowed_ips: Option<Vec<ipnet::IpNet>>,
}

impl PolicyFields {
    /// The policies of a new key.
    pub(super) fn into_policies(self) -> Policies {
        let mut policies = Policies::none();
        policies.rate_limits = self.rate_limits.unwrap_or_default();
        policies.credits = self.credits.flatten();
        policies.allowed_ips = self.allowed_ips.unwrap_or_default();
        policies
    }
}

/// Reads the policy fields (`null` counts as absent on creation, and as "none" on a
/// change: no limits, unlimited credits, any address).
pub(super) fn read(fields: &Fields, errors: &mut FieldErrors) -> PolicyFields {
    PolicyFields {
        rate_limits: fields.get("rate_limits").and_then(|value| match value {
            Value::Null => Some(Vec::new()),
            value => rate_limits(value, errors),
        }),
        credits: fields.get("credits").and_then(|value| match value {
            Value::Null => Some(None),
            value => credits(value, errors).map(Some),
        }),
        allowed_ips: fields.get("allowed_ips").and_then(|value| match value {
            Value::Null => Some(Vec::new()),
            value => allowed_ips(value, errors),
        }),
    }
}

fn rate_limits(value: &Value, errors: &mut FieldErrors) -> Option<Vec<RateLimit>> {
    const FIELD: &str = "rate_limits";
    let Value::Array(items) = value else {
        return errors.add(FIELD, "The rate_limits field must be an array of objects.");
    };
    if items.len() > MAX_RATE_LIMITS {
        return errors.add(
            FIELD,
            format!("The rate_limits field must not have more than {MAX_RATE_LIMITS} items."),
        );
    }
    let mut rates = Vec::with_capacity(items.len());
    for item in items {
        let Some(object) = strict_object(item, &["name", "limit", "window_seconds"]) else {
            return errors.add(
                FIELD,
                "Each rate limit must be an object with name, limit and window_seconds only.",
            );
        };
        let name = object.get("name").and_then(Value::as_str).unwrap_or("");
        let limit = object.get("limit").and_then(Value::as_u64).unwrap_or(0);
        let window = object
            .get("window_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        match RateLimit::new(name, limit, window) {
            Ok(rate) if rates.iter().any(|r: &RateLimit| r.name == rate.name) => {
                return errors.add(
                    FIELD,
                    format!("The rate limit name `{}` is used twice.", rate.name),
                );
            }
            Ok(rate) => rates.push(rate),
            Err(invalid) => return errors.add(FIELD, invalid.message),
        }
    }
    Some(rates)
}

fn credits(value: &Value, errors: &mut FieldErrors) -> Option<Credits> {
    const FIELD: &str = "credits";
    let range = format!("between 0 and {MAX_CREDITS}");
    let Some(object) = strict_object(value, &["remaining", "refill"]) else {
        return errors.add(
            FIELD,
            "The credits field must be null or an object with remaining and refill only.",
        );
    };
    let Some(remaining) = object
        .get("remaining")
        .and_then(Value::as_u64)
        .filter(|n| *n <= MAX_CREDITS)
    else {
        return errors.add(
            FIELD,
            format!("credits.remaining must be an integer {range}."),
        );
    };
    let mut credits = Credits::new(remaining);
    match object.get("refill") {
        None | Some(Value::Null) => {}
        Some(refill) => {
            let Some(refill) = strict_object(refill, &["amount", "every"]) else {
                return errors.add(
                    FIELD,
                    "credits.refill must be null or an object with amount and every only.",
                );
            };
            let Some(amount) = refill
                .get("amount")
                .and_then(Value::as_u64)
                .filter(|n| *n <= MAX_CREDITS)
            else {
                return errors.add(
                    FIELD,
                    format!("credits.refill.amount must be an integer {range}."),
                );
            };
            let Some(every) = refill
                .get("every")
                .and_then(Value::as_str)
                .and_then(|every| every.parse::<RefillPeriod>().ok())
            else {
                return errors.add(FIELD, "credits.refill.every must be `day` or `month`.");
            };
            credits = credits.refill(Refill::new(amount, every));
        }
    }
    Some(credits)
}

fn allowed_ips(value: &Value, errors: &mut FieldErrors) -> Option<Vec<ipnet::IpNet>> {
    const FIELD: &str = "allowed_ips";
    let Value::Array(items) = value else {
        return errors.add(FIELD, "The allowed_ips field must be an array of strings.");
    };
    if items.len() > MAX_ALLOWED_IPS {
        return errors.add(
            FIELD,
            format!("The allowed_ips field must not have more than {MAX_ALLOWED_IPS} items."),
        );
    }
    let mut networks = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str().map(parse_network) {
            Some(Ok(network)) => networks.push(network),
            Some(Err(invalid)) => return errors.add(FIELD, invalid.message),
            None => {
                return errors.add(
                    FIELD,
                    format!(
                        "{} is not an IP address or a CIDR network.",
                        truncate(&item.to_string())
                    ),
                );
            }
        }
    }
    Some(networks)
}

/// `value` as an object with no key beyond `allowed`.
fn strict_object<'a>(value: &'a Value, allowed: &[&str]) -> Option<&'a Map<String, Value>> {
    value
        .as_object()
        .filter(|object| object.keys().all(|key| allowed.contains(&key.as_str())))
}
