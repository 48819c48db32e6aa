//! Who the caller is: the [`Principal`] a verified token stands for.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::scope::{Implications, Scope, ScopeSet};
use crate::store::TokenRecord;
use crate::token::Env;

/// The longest tenant (workspace, company, account) id accepted.
pub const MAX_TENANT_LEN: usize = 128;

/// Whether `tenant` is a valid tenant id: 1–128 ASCII letters, digits, `_`, `-` or `.`.
///
/// The restriction keeps ids unambiguous inside account-style credentials
/// (`account_id:api_key`) and safe to echo in logs.
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A token's record id, assigned by the store. Sanctum-style tokens carry it on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(u64);

impl TokenId {
    /// Wraps a store-assigned id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for TokenId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// What kind of credential a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenKind {
    /// A long-lived API key, issued by a user or an admin.
    #[default]
    ApiKey,
    /// A short-lived session token obtained by exchanging an API key.
    Session,
}

impl TokenKind {
    /// The name used in storage: `"api_key"` or `"session"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::ApiKey => "api_key",
            TokenKind::Session => "session",
        }
    }
}

impl std::str::FromStr for TokenKind {
    type Err = UnknownTokenKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "api_key" => Ok(TokenKind::ApiKey),
            "session" => Ok(TokenKind::Session),
            _ => Err(UnknownTokenKind(())),
        }
    }
}

/// The error returned for a token kind other than `api_key` or `session`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token kind must be `api_key` or `session`")]
pub struct UnknownTokenKind(());

/// The authenticated caller: inserted into request extensions by the layer, read by
/// handlers. Cloning is one reference-count increment.
///
/// It carries no secret; its `Debug` and its JSON form are safe to log and return.
///
/// A principal is also what the registry caches for a token: one allocation per cached
/// token, with the tenant and the scopes shared between tokens that have the same.
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    id: TokenId,
    name: Box<str>,
    /// Interned; `Arc<Box<str>>` is one word where `Arc<str>` would be two.
    tenant: Arc<Box<str>>,
    grants: Arc<Grants>,
    /// Unix milliseconds.
    created_at: i64,
    /// Unix nanoseconds; `i64::MAX` for never.
    expires_at: i64,
    env: Env,
    kind: TokenKind,
    /// The rarely set parts, boxed so that tokens without them pay one word.
    extra: Option<Box<Extra>>,
    cached: Cached,
}

/// What only some tokens have.
#[derive(Debug)]
struct Extra {
    owner: Option<Box<str>>,
}

/// Granted scopes and their expansion by the implications; shared by every cached token
/// with the same grant.
#[derive(Debug)]
pub(crate) struct Grants {
    pub(crate) granted: ScopeSet,
    pub(crate) effective: ScopeSet,
}

impl Grants {
    pub(crate) fn new(granted: ScopeSet, implications: &Implications) -> Self {
        Self {
            effective: implications.expand(&granted),
            granted,
        }
    }
}

/// What the registry's cache keeps with a principal.
pub(crate) struct Cached {
    /// The second half of the token's digest (the cache is keyed by the first half).
    pub(crate) digest_tail: [u8; 16],
    /// Unix seconds after which the entry is re-read from the store.
    pub(crate) fresh_until: u32,
    pub(crate) usage: Usage,
}

/// Verifications since the last usage flush; see `registry::usage`.
#[derive(Default)]
pub(crate) struct Usage {
    pub(crate) uses: AtomicU32,
    /// Unix seconds (u32 lasts until 2106).
    pub(crate) last_used: AtomicU32,
    pub(crate) queued: AtomicBool,
}

/// The parts of a principal the registry shares between tokens.
pub(crate) struct Shared {
    pub(crate) tenant: Arc<Box<str>>,
    pub(crate) grants: Arc<Grants>,
}

impl Principal {
    pub(crate) fn from_record(record: &TokenRecord, shared: Shared, fresh_until: u32) -> Self {
        let digest = record.digest.as_bytes();
        let mut digest_tail = [0; 16];
        digest_tail.copy_from_slice(&digest[16..]);
        Self(Arc::new(Inner {
            id: record.id,
            name: record.name.as_str().into(),
            tenant: shared.tenant,
            grants: shared.grants,
            created_at: crate::clock::to_millis(record.created_at),
            expires_at: record.expires_at.map_or(i64::MAX, crate::clock::to_nanos),
            env: record.env,
            kind: record.kind,
            extra: record.owner.as_deref().map(|owner| {
                Box::new(Extra {
                    owner: Some(owner.into()),
                })
            }),
            cached: Cached {
                digest_tail,
                fresh_until,
                usage: Usage::default(),
            },
        }))
    }

    pub(crate) fn cached(&self) -> &Cached {
        &self.0.cached
    }

    /// `expires_at` in Unix nanoseconds; `i64::MAX` for never.
    pub(crate) fn expires_at_nanos(&self) -> i64 {
        self.0.expires_at
    }

    /// The token's record id.
    pub fn id(&self) -> TokenId {
        self.0.id
    }

    /// The name the token was issued with, e.g. `"deploy bot"`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The tenant (workspace, company, account) the token belongs to.
    pub fn tenant(&self) -> &str {
        &self.0.tenant
    }

    /// The scopes the token was granted (without implications).
    pub fn scopes(&self) -> &ScopeSet {
        &self.0.grants.granted
    }

    /// The granted scopes plus everything they imply.
    pub fn effective_scopes(&self) -> &ScopeSet {
        &self.0.grants.effective
    }

    /// Whether the token grants `scope`, directly, through `*`, or by implication
    /// (with the default rules, `admin` grants `write` and `read`).
    pub fn has_scope(&self, scope: &str) -> bool {
        let effective = &self.0.grants.effective;
        effective.contains(Scope::ALL) || effective.contains(scope)
    }

    /// The environment the token was issued for.
    pub fn env(&self) -> Env {
        self.0.env
    }

    /// API key or session token.
    pub fn kind(&self) -> TokenKind {
        self.0.kind
    }

    /// The application user the token belongs to, if it was issued with one.
    pub fn owner(&self) -> Option<&str> {
        self.0.extra.as_ref()?.owner.as_deref()
    }

    /// When the token was issued (millisecond precision, as stored).
    pub fn created_at(&self) -> OffsetDateTime {
        crate::clock::from_nanos(self.0.created_at.saturating_mul(1_000_000))
    }

    /// When the token stops working; `None` for tokens that never expire.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        (self.0.expires_at != i64::MAX).then(|| crate::clock::from_nanos(self.0.expires_at))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.0.id)
            .field("name", &self.0.name)
            .field("tenant", &self.0.tenant)
            .field("scopes", self.scopes())
            .field("env", &self.0.env)
            .field("kind", &self.0.kind)
            .field("owner", &self.owner())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// Serializes as `{"id","name","tenant","scopes","env","kind","created_at","expires_at"}`
/// with RFC 3339 times (`expires_at` is `null` for tokens that never expire).
impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            id: TokenId,
            name: &'a str,
            tenant: &'a str,
            scopes: &'a ScopeSet,
            env: Env,
            kind: TokenKind,
            #[serde(skip_serializing_if = "Option::is_none")]
            owner: Option<&'a str>,
            #[serde(with = "time::serde::rfc3339")]
            created_at: OffsetDateTime,
            #[serde(with = "time::serde::rfc3339::option")]
            expires_at: Option<OffsetDateTime>,
        }
        Json {
            id: self.0.id,
            name: &self.0.name,
            tenant: &self.0.tenant,
            scopes: self.scopes(),
            env: self.0.env,
            kind: self.0.kind,
            owner: self.owner(),
            created_at: self.created_at(),
            expires_at: self.expires_at(),
        }
        .serialize(serializer)
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// A cached token costs this allocation, its name, and a 24-byte table slot: keep it
    /// small (see `benches/cache_memory.rs`).
    #[test]
    fn a_cached_principal_is_one_small_allocation() {
        assert_eq!(std::mem::size_of::<Inner>(), 104);
    }
}
