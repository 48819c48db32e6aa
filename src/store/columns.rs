//! What the SQL stores share: the columns of a token row and how they become a
//! [`TokenRecord`], checked (a row that does not decode is "corrupt", reported as
//! unavailable rather than as an unknown token).

use std::str::FromStr;

use time::OffsetDateTime;

use super::{Metadata, StoreError, TokenRecord};
use crate::identity::{TokenId, TokenKind};
use crate::policy::{Credits, Policies, RateLimit, Refill};
use crate::scope::ScopeSet;
use crate::token::{Digest, Env};

/// The columns, in the order [`RawRecord`] reads them.
pub(super) const COLUMNS: &str = "id, name, tenant, scopes, env, kind, display_prefix, digest, \
                                  created_at, expires_at, last_used_at, use_count, created_by, \
                                  rotated_to, owner, metadata, created_by_session, policies, \
                                  credits_remaining, credits_since";

pub(crate) fn from_millis(millis: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .map_err(|e| corrupt(format!("timestamp out of range: {e}")))
}

pub(super) fn corrupt(why: impl Into<String>) -> StoreError {
    StoreError::unavailable(format!("corrupt token row: {}", why.into()))
}

pub(super) fn scopes_column(scopes: &ScopeSet) -> String {
    let names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    names.join(" ")
}

pub(crate) fn digest_of(bytes: Vec<u8>) -> Result<Digest, StoreError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("digest is not 32 bytes"))?;
    Ok(Digest::from_bytes(bytes))
}

pub(super) fn metadata_column(metadata: &Metadata) -> String {
    serde_json::Value::Object(metadata.clone()).to_string()
}

pub(crate) fn token_id(id: i64) -> Result<TokenId, StoreError> {
    u64::try_from(id)
        .map(TokenId::new)
        .map_err(|_| corrupt("negative id"))
}

/// A count or an amount as a 64-bit column; a larger one (never stored: counts are
/// bounded far below) saturates.
pub(crate) fn count_param(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn id_param(id: TokenId) -> i64 {
    // Ids come from the database's 64-bit keys, so they fit; a larger one matches nothing.
    i64::try_from(id.get()).unwrap_or(-1)
}

/// The raw columns of a row, as the driver reads them; checked by [`RawRecord::check`].
pub(super) struct RawRecord {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) tenant: String,
    pub(super) scopes: String,
    pub(super) env: String,
    pub(super) kind: String,
    pub(super) display_prefix: String,
    pub(super) digest: Vec<u8>,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) last_used_at: Option<i64>,
    pub(super) use_count: i64,
    pub(super) created_by: Option<i64>,
    pub(super) rotated_to: Option<i64>,
    pub(super) owner: Option<String>,
    pub(super) metadata: Option<String>,
    pub(super) created_by_session: Option<i64>,
    pub(super) policies: Option<String>,
    pub(super) credits_remaining: Option<i64>,
    pub(super) credits_since: i64,
}

/// What the `policies` column keeps: everything but the credits' balance, which has
/// columns of its own (`credits_remaining`, `credits_since`) because reservations
/// change it.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct StoredPolicies {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rate_limits: Vec<RateLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allowed_ips: Vec<ipnet::IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refill: Option<Refill>,
    /// The credits' balance as last set ([`Credits::allotted`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allotted: Option<u64>,
}

/// The policy columns of a row: `policies` (JSON, `NULL` for none), `credits_remaining`
/// (`NULL` for unlimited) and `credits_since` (Unix milliseconds).
pub(crate) struct PolicyColumns {
    pub(crate) policies: Option<String>,
    pub(crate) credits_remaining: Option<i64>,
    pub(crate) credits_since: i64,
}

pub(crate) fn policy_columns(policies: &Policies) -> PolicyColumns {
    let stored = StoredPolicies {
        rate_limits: policies.rate_limits.clone(),
        allowed_ips: policies.allowed_ips.clone(),
        refill: policies.credits.as_ref().and_then(|credits| credits.refill),
        allotted: policies
            .credits
            .as_ref()
            .map(|credits| credits.allotted)
            .filter(|allotted| *allotted > 0),
    };
    let empty = stored.rate_limits.is_empty()
        && stored.allowed_ips.is_empty()
        && stored.refill.is_none()
        && stored.allotted.is_none();
    PolicyColumns {
        policies: (!empty).then(|| serde_json::to_string(&stored).unwrap_or_default()),
        // Validated policies hold at most 10^15 credits.
        credits_remaining: policies
            .credits
            .as_ref()
            .map(|credits| count_param(credits.remaining)),
        credits_since: policies
            .credits
            .as_ref()
            .map_or(0, |credits| crate::clock::to_millis(credits.counted_since)),
    }
}

pub(crate) fn policies_of(
    json: Option<&str>,
    remaining: Option<i64>,
    since: i64,
) -> Result<Policies, StoreError> {
    let stored: StoredPolicies = match json {
        Some(json) => serde_json::from_str(json).map_err(|e| corrupt(format!("policies: {e}")))?,
        None => StoredPolicies::default(),
    };
    let mut policies = Policies::none();
    policies.rate_limits = stored.rate_limits;
    policies.allowed_ips = stored.allowed_ips;
    policies.credits = match remaining {
        Some(remaining) => Some(Credits {
            remaining: remaining.max(0) as u64,
            refill: stored.refill,
            counted_since: from_millis(since)?,
            // Rows written before the allotment was kept: the refill's amount, if any.
            allotted: stored
                .allotted
                .or(stored.refill.map(|refill| refill.amount))
                .unwrap_or(0),
        }),
        None => None,
    };
    // What the layer puts in headers comes from here: a row that breaks the rules (a
    // name that is not `a-z 0-9 _ -`) is corrupt, not a panic later.
    policies
        .validate()
        .map_err(|e| corrupt(format!("policies: {e}")))?;
    Ok(policies)
}

impl RawRecord {
    pub(super) fn check(self) -> Result<TokenRecord, StoreError> {
        Ok(TokenRecord {
            id: token_id(self.id)?,
            name: self.name,
            tenant: self.tenant,
            scopes: ScopeSet::parse(self.scopes.split_whitespace())
                .map_err(|e| corrupt(e.to_string()))?,
            env: Env::from_str(&self.env).map_err(|e| corrupt(e.to_string()))?,
            kind: TokenKind::from_str(&self.kind).map_err(|e| corrupt(e.to_string()))?,
            display_prefix: self.display_prefix,
            digest: digest_of(self.digest)?,
            created_at: from_millis(self.created_at)?,
            expires_at: self.expires_at.map(from_millis).transpose()?,
            last_used_at: self.last_used_at.map(from_millis).transpose()?,
            use_count: self.use_count.max(0) as u64,
            created_by: self.created_by.map(token_id).transpose()?,
            created_by_session: self.created_by_session.map(token_id).transpose()?,
            rotated_to: self.rotated_to.map(token_id).transpose()?,
            owner: self.owner,
            metadata: self
                .metadata
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| corrupt(format!("metadata: {e}")))?,
            policies: policies_of(
                self.policies.as_deref(),
                self.credits_remaining,
                self.credits_since,
            )?,
        })
    }
}
