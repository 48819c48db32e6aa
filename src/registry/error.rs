use std::fmt;
use std::sync::Arc;

use crate::header::InvalidCredentials;
use crate::identity::TokenId;
use crate::scope::ScopeSet;
use crate::store::StoreError;
use crate::token::Malformed;

/// Why a credential was rejected. Every cause answers the client the same way (no
/// oracle); the cause is for server-side tracing only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectCause {
    /// No credential was presented.
    Missing,
    /// The credential could not be read from the request (duplicate headers, bad
    /// characters, `Bearer` without a token…).
    InvalidRequest(InvalidCredentials),
    /// The credential failed its format's shape or checksum check.
    Malformed(Malformed),
    /// Well-formed, but no such token (or, for Sanctum-style tokens, not with that id).
    Unknown,
    /// The token's `expires_at` has passed.
    Expired,
    /// The token was revoked (on this node, or announced by the store's change feed).
    Revoked,
    /// A token of the other environment (`test` on a `live` deployment, or vice versa).
    WrongEnv,
    /// An account-style credential whose account is not the token's tenant.
    TenantMismatch,
    /// The token changed (scopes, name, expiry) while a connection held it
    /// ([`Registry::watch`](crate::registry::Registry::watch)): the connection ends, and a new one
    /// gets the token's new rights.
    Changed,
}

impl RejectCause {
    /// A short, stable name for logs and metrics, e.g. `"expired"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectCause::Missing => "missing",
            RejectCause::InvalidRequest(_) => "invalid_request",
            RejectCause::Malformed(_) => "malformed",
            RejectCause::Unknown => "unknown",
            RejectCause::Expired => "expired",
            RejectCause::Revoked => "revoked",
            RejectCause::WrongEnv => "wrong_env",
            RejectCause::TenantMismatch => "tenant_mismatch",
            RejectCause::Changed => "changed",
        }
    }
}

impl fmt::Display for RejectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectCause::Malformed(why) => write!(f, "malformed ({why})"),
            RejectCause::InvalidRequest(why) => write!(f, "invalid request ({why})"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Why [`Registry::verify`](crate::registry::Registry::verify) did not return a principal.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The credential does not authenticate anyone (answer 401).
    #[error("token rejected: {cause}")]
    Rejected {
        /// Why; for logs only.
        cause: RejectCause,
        /// The token's id, when a record was found (expired, wrong env, tenant mismatch)
        /// or the format carries it (Sanctum-style).
        token_id: Option<TokenId>,
    },
    /// The cache missed and the store could not answer (answer 503, never 401).
    #[error("token store unavailable")]
    Unavailable(#[source] Arc<StoreError>),
}

impl VerifyError {
    pub(crate) fn rejected(cause: RejectCause, token_id: Option<TokenId>) -> Self {
        VerifyError::Rejected { cause, token_id }
    }

    /// The rejection cause, or `None` for [`VerifyError::Unavailable`].
    pub fn cause(&self) -> Option<RejectCause> {
        match self {
            VerifyError::Rejected { cause, .. } => Some(*cause),
            VerifyError::Unavailable(_) => None,
        }
    }

    /// Whether the store could not answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, VerifyError::Unavailable(_))
    }
}

/// Why an issuance or lifecycle operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// No token with this id in this tenant.
    #[error("token not found")]
    NotFound,
    /// The requested expiry is not in the future, or too far in it to be represented.
    #[error("expiry must be in the future")]
    InvalidExpiry,
    /// The requested lifetime exceeds the registry's
    /// [`max_lifetime`](super::RegistryBuilder::max_lifetime) (or never expires while a
    /// limit is set).
    #[error("lifetime exceeds the maximum allowed")]
    LifetimeTooLong,
    /// The wall clock cannot be read (it is before 1970): nothing is issued, and every
    /// token is treated as expired until it can be.
    #[error("the wall clock is unreadable")]
    ClockUnreadable,
    /// The scope is not among the [declared](super::RegistryBuilder::declare_scopes) ones.
    #[error("scope `{0}` is not declared")]
    UndeclaredScope(crate::scope::Scope),
    /// A token name that is empty, blank, too long or has control characters.
    #[error("invalid token name")]
    InvalidName,
    /// A tenant id that is not 1–128 ASCII letters, digits, `_`, `-` or `.`.
    #[error("invalid tenant")]
    InvalidTenant,
    /// A change that may only shorten a token's life would lengthen it.
    #[error("a token's expiry can only be brought forward")]
    ExpiryExtended,
    /// The token has expired: it cannot be rotated; create a new one.
    #[error("the token has expired")]
    Expired,
    /// The caller does not hold these scopes of the token it acts on.
    #[error("the caller does not hold the token's scopes {0:?}")]
    ScopesNotHeld(ScopeSet),
    /// The token was changed or rotated concurrently; nothing was done.
    #[error("the token was changed concurrently")]
    Conflict,
    /// A rotation grace period longer than [`MAX_GRACE`](super::MAX_GRACE).
    #[error("grace period too long")]
    InvalidGrace,
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(RandomError),
    /// Session or user tokens were asked of a registry without a session configuration
    /// (`RegistryBuilder::sessions`, feature `exchange`).
    #[error("sessions are not configured (RegistryBuilder::sessions)")]
    SessionsNotConfigured,
    /// Policies that break a rule (too many rate limits, a bad network…).
    #[error(transparent)]
    InvalidPolicy(crate::policy::InvalidPolicy),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for RegistryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => RegistryError::NotFound,
            other => RegistryError::Store(other),
        }
    }
}

/// The operating system's random number generator failed (a broken or sandboxed
/// system); nothing was issued.
#[derive(Debug)]
pub struct RandomError(getrandom::Error);

impl RandomError {
    pub(crate) fn new(error: getrandom::Error) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for RandomError {}
