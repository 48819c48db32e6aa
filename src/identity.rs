//! The small shared types every module may use: token ids, token kinds, tenant ids.
//!
//! A leaf: it imports nothing from the rest of the crate.

use std::fmt;

use serde::{Deserialize, Serialize};

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
