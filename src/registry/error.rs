use std::sync::Arc;

use crate::identity::TokenId;
use crate::reject::{RejectCause, Rejection};
use crate::scope::ScopeSet;
use crate::store::StoreError;

/// Why [`Registry::verify`](crate::Registry::verify) did not return a principal.
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

impl Rejection {
    /// The rejection for a failed verification.
    pub fn from_verify_error(error: &VerifyError) -> Self {
        match error {
            VerifyError::Rejected { cause, token_id } => Rejection::Unauthenticated {
                cause: *cause,
                token_id: *token_id,
            },
            VerifyError::Unavailable(_) => Rejection::Unavailable,
            // `VerifyError` is non-exhaustive; anything new is at least a 401.
            #[allow(unreachable_patterns)]
            _ => Rejection::Unauthenticated {
                cause: RejectCause::Unknown,
                token_id: None,
            },
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
