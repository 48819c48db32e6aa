//! The registry's session settings: the keys that sign and verify access tokens (and
//! their reload, for a rotation), the login locks, and checking a presented access
//! token's signature and claims before the store is asked.

use std::hash::{BuildHasher as _, Hash as _, Hasher as _};

use crate::identity::{TokenId, TokenKind};
use crate::principal::Principal;
use crate::registry::RejectCause;
use crate::registry::{Registry, RegistryError, VerifyError};
use crate::session::{JwtRejected, SessionClaims, SessionConfig};

/// How many locks serialise logins: logins for one key and client session id take the
/// same one, so that concurrent logins on a node mint one token.
const LOGIN_LOCKS: usize = 64;

/// The registry's session settings and login locks.
pub(in crate::registry) struct Sessions {
    /// Replaced whole when the keys are reloaded ([`Registry::reload_session_keys`]).
    config: std::sync::RwLock<std::sync::Arc<SessionConfig>>,
    locks: Box<[tokio::sync::Mutex<()>]>,
    /// Random per registry: nobody can pick keys or session ids whose logins contend
    /// with another tenant's.
    hasher: foldhash::fast::RandomState,
    /// The key of the hash that tells a cached token's header and payload from any
    /// other with the same signature: random per registry, so that nobody can aim at it.
    check: foldhash::quality::RandomState,
}

impl Sessions {
    pub(in crate::registry) fn new(config: SessionConfig) -> Self {
        Self {
            config: std::sync::RwLock::new(std::sync::Arc::new(config)),
            locks: (0..LOGIN_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
            check: foldhash::quality::RandomState::default(),
        }
    }

    /// The settings now (the keys may be reloaded at any time).
    pub(in crate::registry) fn config(&self) -> std::sync::Arc<SessionConfig> {
        self.config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Signs with `keys` from now on, and verifies with them only.
    pub(in crate::registry) fn replace_keys(&self, keys: crate::session::SessionKeys) {
        let mut config = self
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut replaced = SessionConfig::clone(&config);
        replaced.replace_keys(keys);
        *config = std::sync::Arc::new(replaced);
    }

    pub(in crate::registry) fn check_state(&self) -> &foldhash::quality::RandomState {
        &self.check
    }

    /// The lock that logins for `key` and `client_session_id` take.
    pub(in crate::registry) fn lock(
        &self,
        key: TokenId,
        client_session_id: &str,
    ) -> &tokio::sync::Mutex<()> {
        let mut hasher = self.hasher.build_hasher();
        key.hash(&mut hasher);
        client_session_id.hash(&mut hasher);
        &self.locks[(hasher.finish() % LOGIN_LOCKS as u64) as usize]
    }
}

impl Registry {
    /// Signs and verifies access tokens with `keys` from now on, without a restart: what
    /// a `SIGHUP` handler or a file watch calls after the key file changed
    /// ([`SessionKeys::from_file`](crate::session::SessionKeys::from_file)). The
    /// rotation runbook, on every node:
    ///
    /// 1. put the new key first in the file and keep the old one after it, reload: new
    ///    tokens are signed with the new key, tokens signed with the old one still verify;
    /// 2. after one session lifetime, remove the old key, reload: what it signed is
    ///    refused at once (the cache forgets every token when a key goes away).
    ///
    /// ```
    /// use tower_bearer::registry::IssueRequest;
    /// use tower_bearer::session::{SessionConfig, SessionKeys};
    /// use tower_bearer::{MemoryStore, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let old = SessionKeys::new("old", &[1u8; 32])?;
    /// let registry = Registry::builder(MemoryStore::new())
    ///     .sessions(SessionConfig::new(old))
    ///     .build();
    /// let key = registry.issue(IssueRequest::new("sdk", "acme")?).await?;
    /// let before = registry.login(key.secret.expose_secret(), Some("a")).await?;
    ///
    /// // 1. A new signing key; the old one still verifies.
    /// registry.reload_session_keys(
    ///     SessionKeys::new("new", &[2u8; 32])?.verify_with("old", &[1u8; 32])?,
    /// )?;
    /// assert!(registry.verify(before.access_token.expose_secret()).await.is_ok());
    /// let after = registry.login(key.secret.expose_secret(), Some("b")).await?;
    ///
    /// // 2. The old key dropped: what it signed is refused.
    /// registry.reload_session_keys(SessionKeys::new("new", &[2u8; 32])?)?;
    /// assert!(registry.verify(before.access_token.expose_secret()).await.is_err());
    /// assert!(registry.verify(after.access_token.expose_secret()).await.is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn reload_session_keys(
        &self,
        keys: crate::session::SessionKeys,
    ) -> Result<(), RegistryError> {
        let sessions = self
            .inner
            .sessions
            .as_ref()
            .ok_or(RegistryError::SessionsNotConfigured)?;
        let before = sessions.config();
        let dropped: Vec<String> = before
            .keys()
            .kids()
            .filter(|kid| !keys.kids().any(|kept| kept == *kid))
            .map(str::to_owned)
            .collect();
        let signing = keys.signing_kid().to_owned();
        sessions.replace_keys(keys);
        if !dropped.is_empty() {
            // Cached tokens are served without their signature: forget them all, so that
            // what a dropped key signed is checked (and refused) on its next use.
            self.inner.cache.reset();
        }
        tracing::info!(
            target: "tower_bearer::registry",
            signing_kid = %signing,
            dropped = ?dropped,
            "session keys reloaded"
        );
        Ok(())
    }

    /// Checks a session token's signature and claims before its digest is looked up:
    /// forged tokens never reach the store.
    pub(in crate::registry) fn check_jwt(
        &self,
        token: Option<&str>,
    ) -> Result<SessionClaims, VerifyError> {
        let malformed =
            || VerifyError::rejected(RejectCause::Malformed(crate::token::Malformed::Jwt), None);
        let (Some(sessions), Some(token)) = (self.inner.sessions.as_ref(), token) else {
            return Err(malformed());
        };
        let now = self.inner.clock.now().unix_timestamp();
        let config = sessions.config();
        config
            .keys()
            .verify_at(token, config.issuer_name(), now)
            .map_err(|rejected| match rejected {
                JwtRejected::Expired => VerifyError::rejected(RejectCause::Expired, None),
                _ => malformed(),
            })
    }

    /// Whether the record found for a verified session token is the session the token's
    /// claims describe: its key's (`sub` = the key's id) or its user's (`sub` = the
    /// user id, the principal's owner).
    pub(in crate::registry) fn claims_match(claims: &SessionClaims, principal: &Principal) -> bool {
        principal.kind() == TokenKind::Session
            && claims.tenant == principal.tenant()
            && (claims.sub.parse::<TokenId>().ok() == Some(principal.id())
                || principal.owner() == Some(claims.sub.as_str()))
    }
}
