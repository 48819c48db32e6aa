//! What `GET /tokens/{id}` shows of an API key revoked within the activity log's
//! retention: when and why, and for a leaked key where a secret scanner found it.

// Without the activity log nothing is remembered: the shape stays documented.
#![cfg_attr(not(feature = "activity"), allow(dead_code))]

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::handlers::Listed;
use crate::identity::TokenId;

/// `GET /tokens/{id}`: a live (or expired) token, or a revoked one the activity log
/// remembers.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenOrRevoked)]
#[serde(untagged)]
pub(super) enum Shown {
    /// The token.
    Token(Box<Listed>),
    /// A revoked API key (feature `activity`, within its retention).
    Revoked(RevokedView),
}

/// A revoked API key, as `GET /tokens/{id}` shows it while the activity log remembers it.
#[derive(Serialize, ToSchema)]
#[schema(
    as = RevokedToken,
    examples(json!({
        "id": 42,
        "tenant": "acme",
        "revoked_at": "2026-12-04T18:30:12Z",
        "revoked_reason": "leaked",
        "leak": {"url": "https://github.com/octo/app/blob/1a2b3c/config.yml", "source": "commit"}
    }))
)]
pub(super) struct RevokedView {
    #[schema(value_type = u64, minimum = 1)]
    id: TokenId,
    tenant: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    revoked_at: OffsetDateTime,
    /// `manual` (by name), `cascade` (with a token that created it), `rotated`,
    /// `leaked` (reported by a secret scanner), or `last_admin_forced` (the tenant's last
    /// admin key, revoked with `force=true`).
    revoked_reason: Reason,
    /// Where a leaked key was found, as the scanner reported it; `null` otherwise.
    leak: Option<LeakView>,
}

/// Why a key was revoked.
#[derive(Serialize, ToSchema)]
#[schema(as = RevocationReason)]
#[serde(rename_all = "snake_case")]
enum Reason {
    Manual,
    Cascade,
    Rotated,
    Leaked,
    LastAdminForced,
}

/// Where a leaked key was found.
#[derive(Serialize, ToSchema)]
#[schema(as = LeakLocation)]
struct LeakView {
    /// The public address of the file, commit, issue… (as the scanner gave it).
    url: Option<String>,
    /// The scanner's kind of place: `content`, `commit`, `npm`… (GitHub only).
    source: Option<String>,
}

#[cfg(feature = "activity")]
impl From<crate::store::activity::RevokedToken> for RevokedView {
    fn from(token: crate::store::activity::RevokedToken) -> Self {
        use crate::store::RevocationReason;
        let reason = match token.reason {
            RevocationReason::Manual => Reason::Manual,
            RevocationReason::Cascade => Reason::Cascade,
            RevocationReason::Rotated => Reason::Rotated,
            RevocationReason::Leaked => Reason::Leaked,
            RevocationReason::LastAdminForced => Reason::LastAdminForced,
        };
        let leak = (token.reason == RevocationReason::Leaked).then_some(LeakView {
            url: token.leak_url,
            source: token.leak_source,
        });
        Self {
            id: token.token_id,
            tenant: token.tenant,
            revoked_at: token.revoked_at,
            revoked_reason: reason,
            leak,
        }
    }
}
