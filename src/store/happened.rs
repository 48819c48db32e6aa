//! What happened to a token, as a store tells the webhook outbox in the transaction of
//! the change (feature `webhooks`; without it the stores tell no one).

use std::time::Duration;

use crate::identity::TokenId;
use crate::store::RevocationReason;

/// What happened to a token: what the stores tell webhooks (feature `webhooks`).
#[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Happened {
    /// It was issued.
    Created,
    /// Its name, scopes, expiry or policies changed.
    Updated,
    /// It replaced token `from`.
    Rotated { from: TokenId },
    /// It was revoked.
    Revoked(RevocationReason),
    /// It expires within `threshold`.
    Expiring { threshold: Duration },
    /// Its expiry passed.
    Expired,
    /// 80 % of its credits are used.
    CreditsLow,
}
