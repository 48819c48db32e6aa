//! Sessions (feature `exchange`): short-lived access tokens that a client obtains by
//! exchanging an API key (`POST /auth/login`, see [`exchange`](crate::exchange)), verified
//! by the same [`BearerAuthLayer`](crate::layer::BearerAuthLayer) as API keys.
//!
//! An access token is an HS256 JWT with a `kid` ([`SessionKeys`]), carrying the claims of
//! [`SessionClaims`]. Signing is deterministic, so the store keeps a session row that
//! re-derives the token (never the token itself), and the same client gets the same token
//! back while it is valid. A registry accepts session tokens once it is given a
//! [`SessionConfig`] ([`RegistryBuilder::sessions`](crate::registry::RegistryBuilder::sessions)).
//!
//! This module is a leaf: keys, claims and settings. The login itself is
//! [`Registry::login`](crate::registry::Registry::login).

mod key_file;
mod keys;

use std::time::Duration;

pub use key_file::KeyFileError;
pub use keys::{
    InvalidSessionKey, JwtRejected, LEEWAY_SECS, MIN_KEY_LEN, REGISTERED_CLAIMS, SessionClaims,
    SessionKeys, looks_like_jwt,
};

/// The default lifetime of an access token: two hours.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7200);

/// The longest lifetime an access token may be given: one year. Sessions are meant to be
/// short; a longer-lived credential is an API key.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// The default lifetime of an end user's token: 90 days.
pub const DEFAULT_USER_TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// The default `iss` of access tokens.
pub const DEFAULT_ISSUER: &str = "tower-bearer";

/// The longest client session id accepted.
pub const MAX_CLIENT_SESSION_ID_LEN: usize = 128;

/// How many live sessions an API key keeps by default: one more ends the oldest.
pub const DEFAULT_MAX_SESSIONS_PER_KEY: usize = 100;

/// The client session id of a login that names none: the key's default session.
pub const DEFAULT_CLIENT_SESSION_ID: &str = "default";

/// Whether `id` is a valid client session id: 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
///
/// ```
/// use tower_bearer::session::is_valid_client_session_id;
///
/// assert!(is_valid_client_session_id("browser-1:tab.2_a"));
/// assert!(!is_valid_client_session_id(""));
/// assert!(!is_valid_client_session_id("with space"));
/// ```
pub fn is_valid_client_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_SESSION_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// How a registry mints and verifies access tokens: the keys, the issuer and the lifetime.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::session::{SessionConfig, SessionKeys};
///
/// let config = SessionConfig::new(SessionKeys::new("2026-11", &[7u8; 32])?)
///     .issuer("api.example.com")
///     .lifetime(Duration::from_secs(3600))?;
/// assert_eq!(config.lifetime_secs(), 3600);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionConfig {
    keys: SessionKeys,
    issuer: String,
    lifetime: Duration,
    max_sessions_per_key: usize,
}

/// A session lifetime outside 1 s to one year ([`MAX_LIFETIME`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a session lifetime must be 1 second to 365 days")]
pub struct InvalidSessionLifetime(());

impl SessionConfig {
    /// Access tokens signed with `keys`, issued by [`DEFAULT_ISSUER`], valid for
    /// [`DEFAULT_LIFETIME`].
    pub fn new(keys: SessionKeys) -> Self {
        Self {
            keys,
            issuer: DEFAULT_ISSUER.to_owned(),
            lifetime: DEFAULT_LIFETIME,
            max_sessions_per_key: DEFAULT_MAX_SESSIONS_PER_KEY,
        }
    }

    /// How many live sessions one API key may have (default 100, at least 1): a login
    /// that opens one more ends the oldest, so that a key's sessions (and the cost of
    /// its logins) stay bounded however often it logs in.
    pub fn max_sessions_per_key(mut self, sessions: usize) -> Self {
        self.max_sessions_per_key = sessions.max(1);
        self
    }

    /// The live sessions one API key may have.
    pub fn sessions_per_key(&self) -> usize {
        self.max_sessions_per_key
    }

    /// The `iss` written into tokens and required of them.
    pub fn issuer(mut self, issuer: &str) -> Self {
        issuer.clone_into(&mut self.issuer);
        self
    }

    /// How long an access token is valid (whole seconds, 1 s to one year; default two
    /// hours). A token never outlives the API key it was obtained with.
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, InvalidSessionLifetime> {
        if lifetime.as_secs() == 0 || lifetime > MAX_LIFETIME {
            return Err(InvalidSessionLifetime(()));
        }
        self.lifetime = Duration::from_secs(lifetime.as_secs());
        Ok(self)
    }

    /// Signs and verifies with `keys` instead (a reload: see
    /// [`Registry::reload_session_keys`](crate::registry::Registry::reload_session_keys)).
    pub(crate) fn replace_keys(&mut self, keys: SessionKeys) {
        self.keys = keys;
    }

    /// The keys tokens are signed and verified with.
    pub fn keys(&self) -> &SessionKeys {
        &self.keys
    }

    /// The issuer.
    pub fn issuer_name(&self) -> &str {
        &self.issuer
    }

    /// The lifetime in whole seconds.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime.as_secs()
    }
}
