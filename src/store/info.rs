//! [`TokenInfo`]: a token as the management API shows it, everything but its secret —
//! what `GET /tokens/{id}` answers and what webhooks' `data` carries.

use serde::Serialize;
use time::OffsetDateTime;

use super::{Metadata, TokenRecord};
use crate::identity::{TokenId, TokenKind};
use crate::policy::Policies;
use crate::scope::ScopeSet;
use crate::token::Env;

/// A token as listed: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Record id.
    pub id: TokenId,
    /// Name given at issuance.
    pub name: String,
    /// A few leading characters of the token, to tell tokens apart.
    pub prefix: String,
    /// Granted scopes.
    pub scopes: ScopeSet,
    /// The tenant.
    pub tenant: String,
    /// `live` or `test`.
    pub env: Env,
    /// API key or session.
    pub kind: TokenKind,
    /// Issuance time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Expiry; `None` for never.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The last use flushed to the store.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Uses flushed to the store.
    pub use_count: u64,
    /// The token that issued this one; `None` when issued server-side.
    pub created_by: Option<TokenId>,
    /// The session it was issued through (an access token of `created_by`), if any.
    pub created_by_session: Option<TokenId>,
    /// While a rotated token lives on for its grace period: its replacement.
    pub rotated_to: Option<TokenId>,
    /// The application user the token belongs to.
    pub owner: Option<String>,
    /// The application's notes about the token.
    pub metadata: Option<Metadata>,
    /// Rate limits, credits (the balance at the time of listing) and allowed networks.
    pub policies: Policies,
    /// Whether the token had expired when listed. Expired tokens stay listed until
    /// deleted or pruned.
    pub expired: bool,
}

impl TokenInfo {
    /// The record as listed at `now`: whether it had expired, its credits then.
    pub(crate) fn from_record(record: TokenRecord, now: OffsetDateTime) -> Self {
        Self {
            expired: record.is_expired_at(now),
            id: record.id,
            name: record.name,
            prefix: record.display_prefix,
            scopes: record.scopes,
            tenant: record.tenant,
            env: record.env,
            kind: record.kind,
            created_at: record.created_at,
            expires_at: record.expires_at,
            last_used_at: record.last_used_at,
            use_count: record.use_count,
            created_by: record.created_by,
            created_by_session: record.created_by_session,
            rotated_to: record.rotated_to,
            owner: record.owner,
            metadata: record.metadata,
            policies: {
                let mut policies = record.policies;
                if let Some(credits) = &mut policies.credits {
                    credits.remaining = credits.remaining_at(now);
                }
                policies
            },
        }
    }
}
