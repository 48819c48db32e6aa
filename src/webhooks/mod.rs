//! Webhooks (feature `webhooks`): telling an application's endpoints when a key is
//! created, changed, rotated, revoked, about to expire or low on credits, signed the
//! [Standard Webhooks](https://www.standardwebhooks.com/) way and delivered exactly once
//! per event and endpoint. The [guide](crate::guide::webhooks) tells the whole story;
//! this module holds the parts that know nothing of stores:
//!
//! - [`WebhookSecret`] and [`signature_header`]: `webhook-signature: v1,<base64 of
//!   HMAC-SHA256(secret, "{webhook-id}.{webhook-timestamp}.{body}")>`, one signature per
//!   secret while a rotation lasts; secrets are `whsec_` and base64, as receivers' Standard
//!   Webhooks libraries take them. Checked against the specification's test vector.
//! - [`check_url`] and [`resolve`]: endpoints are `https` URLs whose host is, and resolves
//!   to, public addresses only — checked when an endpoint is registered and again before
//!   each delivery, against DNS rebinding — unless [`Targets::AllowPrivate`] is chosen.
//! - [`Deliverer`]: one attempt at a [`Message`] — `POST` with `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature`, rustls, no redirect followed, a 2xx
//!   within [`DELIVERY_TIMEOUT`] is success — connecting only to the addresses its
//!   resolver checked.
//! - [`DeliveryOptions`]: retries, concurrency, expiry thresholds.
//!
//! The outbox is the stores' ([`store::webhooks`](crate::store::webhooks)); the registry
//! delivers it ([`RegistryBuilder::webhooks`](crate::registry::RegistryBuilder::webhooks)).
//!
//! ```
//! use tower_bearer::webhooks::{Targets, WebhookSecret, check_url, signature_header};
//!
//! let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
//! let body = br#"{"email":"test@example.com","username":"test_user"}"#;
//! let header = signature_header(&[secret.clone()], "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body);
//! assert_eq!(header, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
//! assert!(secret.verify("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body, &header));
//!
//! assert!(check_url("https://hooks.example.com/tower-bearer", Targets::Public).is_ok());
//! assert!(check_url("https://169.254.169.254/latest/meta-data", Targets::Public).is_err());
//! ```

mod address;
mod deliver;
mod options;
mod signing;

/// The event types an endpoint may subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "token.created",
    "token.updated",
    "token.rotated",
    "token.revoked",
    "token.expiring",
    "token.expired",
    "token.credits_low",
    "session.created",
    "session.ended",
];

pub use address::{MAX_URL_LEN, Targets, UnsafeUrl, check_url, is_public, resolve};
pub use deliver::{Attempt, DELIVERY_TIMEOUT, Deliverer, Message};
pub use options::DeliveryOptions;
pub use signing::{SECRET_PREFIX, WebhookSecret, signature_header};
