//! Sessions: trading an API key for a short-lived access token (a JWT), the session
//! rows that re-derive those tokens, and their revocation.
//!
//! A session is a token record of kind [`TokenKind::Session`] created by the API key
//! (`created_by`), whose digest is the SHA-256 of its JWT, so that the cache, revocation,
//! the change feed and pruning treat it like any token. The JWT itself is never stored:
//! the record's metadata holds what re-derives it (`sid`, `jti`, `kid`, `iss` and the
//! client's session id), and HS256 over the same header and claims gives the same token.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind};
use crate::principal::Principal;
use crate::registry::RejectCause;
use crate::registry::error::RandomError;
use crate::registry::{Registry, RegistryError, VerifyError};
use crate::scope::ScopeSet;
use crate::session::{
    DEFAULT_CLIENT_SESSION_ID, SessionClaims, SessionConfig, is_valid_client_session_id,
};
use crate::store::{ListQuery, Metadata, NewToken, StoreError, TokenRecord};
use crate::token::Secret;
use crate::token::formats::jwt_digest;

/// A session's token is handed out again while more than this share of its lifetime
/// remains (1/10).
const REUSE_WHILE_REMAINING: i64 = 10;

/// An access token obtained by [`Registry::login`].
#[derive(Debug)]
#[non_exhaustive]
pub struct SessionToken {
    /// The JWT. Shown to the client, stored nowhere.
    pub access_token: Secret,
    /// Whole seconds until it expires.
    pub expires_in: u64,
    /// The session it belongs to.
    pub session: SessionInfo,
    /// The API key it was obtained with, as verified (for the activity log's row of the
    /// login); `None` for an end user's token.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) key: Option<Principal>,
}

/// A page of an API key's live sessions ([`Registry::sessions_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionPage {
    /// The sessions, oldest first.
    pub sessions: Vec<SessionInfo>,
    /// Whether more sessions follow the last one.
    pub has_more: bool,
}

/// A live session of an API key, as [`Registry::sessions`] lists it (never its token).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session's id: what [`Registry::revoke_session`] takes.
    pub id: TokenId,
    /// The API key it was obtained with (`None` for an end user's token).
    pub api_key_id: Option<TokenId>,
    /// The client's session id (`"default"` when the login named none; the user id for
    /// an end user's token).
    pub client_session_id: String,
    /// When its token was issued.
    pub issued_at: OffsetDateTime,
    /// When its token expires.
    pub expires_at: OffsetDateTime,
    /// The id of the key its token is signed with.
    pub kid: String,
}

/// Why [`Registry::login`] minted nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The API key is missing, unknown, expired, revoked or malformed (answer it like any
    /// other 401), or the store could not check it (503).
    #[error("api key not accepted: {0}")]
    Key(VerifyError),
    /// The client session id is not 1 to 128 characters of `A-Z a-z 0-9 . _ : -`.
    #[error("invalid client session id")]
    InvalidClientSessionId,
    /// The registry has no [`SessionConfig`]
    /// ([`RegistryBuilder::sessions`](crate::registry::RegistryBuilder::sessions)).
    #[error("sessions are not configured")]
    NotConfigured,
    /// The store failed, or the clock or random generator.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for LoginError {
    fn from(error: StoreError) -> Self {
        LoginError::Registry(error.into())
    }
}

/// What a session record's metadata holds to re-derive its token.
pub(in crate::registry) struct Derivation<'a> {
    pub(in crate::registry) client_session_id: &'a str,
    pub(in crate::registry) sid: &'a str,
    pub(in crate::registry) jti: &'a str,
    pub(in crate::registry) kid: &'a str,
    pub(in crate::registry) iss: &'a str,
}

impl<'a> Derivation<'a> {
    fn read(metadata: &'a Metadata) -> Option<Self> {
        let field = |name: &str| metadata.get(name).and_then(Value::as_str);
        Some(Self {
            client_session_id: field("session_id")?,
            sid: field("sid")?,
            jti: field("jti")?,
            kid: field("kid")?,
            iss: field("iss")?,
        })
    }

    pub(in crate::registry) fn write(&self) -> Metadata {
        let Value::Object(map) = json!({
            "session_id": self.client_session_id,
            "sid": self.sid,
            "jti": self.jti,
            "kid": self.kid,
            "iss": self.iss,
        }) else {
            unreachable!("a JSON object literal")
        };
        map
    }
}

/// The space-separated `scope` claim.
pub(in crate::registry) fn scope_claim(scopes: &ScopeSet) -> String {
    let names: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
    names.join(" ")
}

/// 96 random bits, base64url: a session's `sid` and `jti`.
pub(in crate::registry) fn random_id() -> Result<String, RegistryError> {
    random_base64::<12>()
}

/// 256 random bits, base64url: the secret claim (`sec`) of an end user's token, which
/// no row keeps, so that the database and the key together cannot re-derive the token.
pub(in crate::registry) fn random_secret() -> Result<String, RegistryError> {
    random_base64::<32>()
}

/// `N` random bytes from the OS, base64url; the bytes are zeroed after.
fn random_base64<const N: usize>() -> Result<String, RegistryError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|e| RegistryError::Random(RandomError::new(e)))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

pub(in crate::registry) fn seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}

impl SessionInfo {
    pub(in crate::registry) fn from_record(record: &TokenRecord) -> Option<Self> {
        let derivation = Derivation::read(record.metadata.as_ref()?)?;
        Some(Self {
            id: record.id,
            api_key_id: record.created_by,
            client_session_id: derivation.client_session_id.to_owned(),
            issued_at: record.created_at,
            expires_at: record.expires_at?,
            kid: derivation.kid.to_owned(),
        })
    }
}

impl Registry {
    // ----- sessions ------------------------------------------------------------------

    /// Trades an API key for a session access token (what `POST /auth/login` does).
    ///
    /// The same key and client session id (`None` is the key's default session) get the
    /// same token back while more than 10% of its lifetime remains, concurrent logins
    /// included; after that, or once the session was revoked, a new session and token.
    /// The token carries the key's scopes and tenant, and never outlives the key.
    ///
    /// ```
    /// use tower_bearer::registry::IssueRequest;
    /// use tower_bearer::session::{SessionConfig, SessionKeys};
    /// use tower_bearer::{MemoryStore, Registry, TokenKind};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let keys = SessionKeys::new("k1", &[7u8; 32])?;
    /// let registry = Registry::builder(MemoryStore::new())
    ///     .sessions(SessionConfig::new(keys))
    ///     .build();
    /// let key = registry.issue(IssueRequest::new("sdk", "acme")?.scopes(["read"])?).await?;
    ///
    /// let session = registry.login(key.secret.expose_secret(), Some("browser-1")).await?;
    /// let again = registry.login(key.secret.expose_secret(), Some("browser-1")).await?;
    /// assert_eq!(session.access_token.expose_secret(), again.access_token.expose_secret());
    ///
    /// let principal = registry.verify(session.access_token.expose_secret()).await?;
    /// assert_eq!(principal.kind(), TokenKind::Session);
    /// assert_eq!(principal.id(), key.info.id);
    /// assert!(principal.has_scope("read"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn login(
        &self,
        api_key: &str,
        client_session_id: Option<&str>,
    ) -> Result<SessionToken, LoginError> {
        let sessions = self
            .inner
            .sessions
            .as_ref()
            .ok_or(LoginError::NotConfigured)?;
        let client_session_id = client_session_id.unwrap_or(DEFAULT_CLIENT_SESSION_ID);
        if !is_valid_client_session_id(client_session_id) {
            return Err(LoginError::InvalidClientSessionId);
        }
        let key = self.verify(api_key).await.map_err(LoginError::Key)?;
        if key.kind() != TokenKind::ApiKey {
            // A session cannot open sessions: only API keys are exchanged.
            return Err(LoginError::Key(VerifyError::rejected(
                RejectCause::Unknown,
                None,
            )));
        }
        let _serialised = sessions.lock(key.id(), client_session_id).lock().await;
        if let Some(token) = self
            .current_session(&sessions.config(), &key, client_session_id)
            .await?
        {
            return Ok(token);
        }
        self.open_session(&sessions.config(), &key, client_session_id)
            .await
    }

    /// The key's session for `client_session_id` whose token may be handed out again.
    async fn current_session(
        &self,
        config: &SessionConfig,
        key: &Principal,
        client_session_id: &str,
    ) -> Result<Option<SessionToken>, LoginError> {
        let now = self.now_checked()?.unix_timestamp();
        let records = self.session_records(key.tenant(), key.id()).await?;
        // The newest first: an older one still valid was superseded.
        for record in records.iter().rev() {
            let Some(derivation) = record.metadata.as_ref().and_then(Derivation::read) else {
                continue;
            };
            let Some(expires_at) = record.expires_at else {
                continue;
            };
            let (iat, exp) = (
                record.created_at.unix_timestamp(),
                expires_at.unix_timestamp(),
            );
            if derivation.client_session_id != client_session_id
                || (exp - now) * REUSE_WHILE_REMAINING <= exp - iat
            {
                continue;
            }
            let claims = SessionClaims::new(
                derivation.iss,
                &key.id().to_string(),
                derivation.sid,
                &record.tenant,
                &scope_claim(&record.scopes),
                iat,
                exp,
                derivation.jti,
            );
            // The token is re-derived, and handed out only if it is the one the row was
            // made for (not if the signing key or the issuer changed since).
            let Some(token) = config.keys().sign_with(derivation.kid, &claims) else {
                continue;
            };
            if derivation.iss != config.issuer_name() || jwt_digest(&token) != record.digest {
                continue;
            }
            let session =
                SessionInfo::from_record(record).expect("a session row with its derivation");
            return Ok(Some(SessionToken {
                access_token: Secret::new(token),
                expires_in: u64::try_from(exp - now).unwrap_or(0),
                session,
                key: Some(key.clone()),
            }));
        }
        Ok(None)
    }

    /// Mints a new session of `key` and its token.
    async fn open_session(
        &self,
        config: &SessionConfig,
        key: &Principal,
        client_session_id: &str,
    ) -> Result<SessionToken, LoginError> {
        let now = seconds(self.now_checked()?);
        let lifetime = Duration::from_secs(config.lifetime_secs());
        let mut expires_at = now + lifetime;
        if let Some(key_expires_at) = key.expires_at() {
            expires_at = expires_at.min(seconds(key_expires_at));
        }
        if expires_at <= now {
            return Err(LoginError::Key(VerifyError::rejected(
                RejectCause::Expired,
                Some(key.id()),
            )));
        }
        let (sid, jti) = (random_id()?, random_id()?);
        let kid = config.keys().signing_kid();
        let claims = SessionClaims::new(
            config.issuer_name(),
            &key.id().to_string(),
            &sid,
            key.tenant(),
            &scope_claim(key.scopes()),
            now.unix_timestamp(),
            expires_at.unix_timestamp(),
            &jti,
        );
        let token = config.keys().sign(&claims);
        let derivation = Derivation {
            client_session_id,
            sid: &sid,
            jti: &jti,
            kid,
            iss: config.issuer_name(),
        };
        let record = self
            .inner
            .store
            .insert(NewToken {
                name: key.name().to_owned(),
                tenant: key.tenant().to_owned(),
                scopes: key.scopes().clone(),
                env: key.env(),
                kind: TokenKind::Session,
                display_prefix: String::new(),
                digest: jwt_digest(&token),
                created_at: now,
                expires_at: Some(expires_at),
                created_by: Some(key.id()),
                created_by_session: None,
                owner: key.owner().map(str::to_owned),
                metadata: Some(derivation.write()),
                policies: crate::policy::Policies::none(),
            })
            .await?;
        // A revocation or change of the key that listed its sessions before this one was
        // stored would have missed it: check the key again, now that it is stored.
        match self.inner.store.find_by_id(key.tenant(), key.id()).await {
            Ok(current)
                if current.kind == TokenKind::ApiKey
                    && current.scopes == *key.scopes()
                    && current.expires_at.map(seconds) == key.expires_at().map(seconds) => {}
            Ok(_) | Err(StoreError::NotFound) => {
                self.remove_session(&record, crate::store::RevocationReason::Manual)
                    .await?;
                return Err(LoginError::Key(VerifyError::rejected(
                    RejectCause::Revoked,
                    Some(key.id()),
                )));
            }
            Err(error) => {
                let _ = self
                    .remove_session(&record, crate::store::RevocationReason::Manual)
                    .await;
                return Err(error.into());
            }
        }
        tracing::info!(
            target: "tower_bearer::registry",
            token_id = %key.id(),
            session_id = %record.id,
            tenant = %record.tenant,
            "session opened"
        );
        #[cfg(feature = "metrics")]
        crate::telemetry::session_issued();
        self.end_surplus_sessions(config, key).await?;
        let session = SessionInfo::from_record(&record).expect("a session row as just written");
        Ok(SessionToken {
            access_token: Secret::new(token),
            expires_in: config
                .lifetime_secs()
                .min(u64::try_from((expires_at - now).whole_seconds()).unwrap_or(0)),
            session,
            key: Some(key.clone()),
        })
    }

    /// Ends the oldest live sessions of `key` beyond the configured bound.
    async fn end_surplus_sessions(
        &self,
        config: &SessionConfig,
        key: &Principal,
    ) -> Result<(), LoginError> {
        let now = self.inner.clock.now();
        let records = self.session_records(key.tenant(), key.id()).await?;
        let live: Vec<&TokenRecord> = records.iter().filter(|r| !r.is_expired_at(now)).collect();
        let surplus = live.len().saturating_sub(config.sessions_per_key());
        // Oldest first (ids grow).
        for record in &live[..surplus] {
            self.remove_session(record, crate::store::RevocationReason::Manual)
                .await?;
            tracing::info!(
                target: "tower_bearer::registry",
                token_id = %key.id(),
                session_id = %record.id,
                "oldest session ended: the key is at its bound of live sessions"
            );
        }
        Ok(())
    }

    /// The live (unexpired) sessions of API key `key` in `tenant`, oldest first.
    /// [`RegistryError::NotFound`] when `tenant` has no such API key.
    pub async fn sessions(
        &self,
        tenant: &str,
        key: TokenId,
    ) -> Result<Vec<SessionInfo>, RegistryError> {
        let record = self.inner.store.find_by_id(tenant, key).await?;
        if record.kind != TokenKind::ApiKey {
            return Err(RegistryError::NotFound);
        }
        let now = self.inner.clock.now();
        Ok(self
            .session_records(tenant, key)
            .await?
            .iter()
            .filter(|record| !record.is_expired_at(now))
            .filter_map(SessionInfo::from_record)
            .collect())
    }

    /// A page of the live sessions of API key `key` in `tenant`, oldest first:
    /// `query`'s `limit` and `after` (a session id) apply, its other filters do not. A
    /// page may hold fewer than `limit` sessions when some expired and are not pruned
    /// yet. [`RegistryError::NotFound`] when `tenant` has no such API key.
    pub async fn sessions_page(
        &self,
        tenant: &str,
        key: TokenId,
        query: ListQuery,
    ) -> Result<SessionPage, RegistryError> {
        let record = self.inner.store.find_by_id(tenant, key).await?;
        if record.kind != TokenKind::ApiKey {
            return Err(RegistryError::NotFound);
        }
        let mut sessions = ListQuery::first(query.limit)
            .kind(TokenKind::Session)
            .created_by(key);
        sessions.after = query.after;
        let (records, has_more) = self.page(tenant, sessions).await?;
        let now = self.inner.clock.now();
        Ok(SessionPage {
            sessions: records
                .iter()
                .filter(|record| !record.is_expired_at(now))
                .filter_map(SessionInfo::from_record)
                .collect(),
            has_more,
        })
    }

    /// Revokes one session of `tenant`: its token stops working on this registry when
    /// this returns, on the others when the change feed delivers. Another tenant's
    /// session, or an id that is not a session's, is [`RegistryError::NotFound`].
    pub async fn revoke_session(&self, tenant: &str, id: TokenId) -> Result<(), RegistryError> {
        let record = self.inner.store.find_by_id(tenant, id).await?;
        if record.kind != TokenKind::Session {
            return Err(RegistryError::NotFound);
        }
        self.remove_session(&record, crate::store::RevocationReason::Manual)
            .await?;
        tracing::info!(target: "tower_bearer::registry", session_id = %id, %tenant, "session revoked");
        Ok(())
    }

    /// Revokes one session of `tenant` with everything issued through it (each with
    /// its own descendants, as [`revoke_cascade`](Self::revoke_cascade) does): a session
    /// of an admin key cannot leave keys behind that outlive it. Returns the revoked
    /// ids, the session's first. Another tenant's session, or an id that is not a
    /// session's, is [`RegistryError::NotFound`].
    pub async fn revoke_session_cascade(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<TokenId>, RegistryError> {
        let record = self.inner.store.find_by_id(tenant, id).await?;
        if record.kind != TokenKind::Session {
            return Err(RegistryError::NotFound);
        }
        // The session first: nothing more can be issued through it meanwhile.
        self.remove_session(&record, crate::store::RevocationReason::Manual)
            .await?;
        let mut revoked = vec![id];
        for token in self.issued_through_session(tenant, id).await? {
            match self
                .revoke_cascade_because(tenant, token, crate::store::RevocationReason::Cascade)
                .await
            {
                Ok(ids) => revoked.extend(ids),
                // Gone meanwhile, or with an ancestor revoked just before.
                Err(RegistryError::NotFound) => {}
                Err(error) => return Err(error),
            }
        }
        tracing::info!(target: "tower_bearer::registry", session_id = %id, %tenant, revoked = revoked.len(), "session revoked with what it issued");
        Ok(revoked)
    }

    /// The API keys issued through session `id` of `tenant`, oldest first.
    pub async fn issued_through_session(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<TokenId>, RegistryError> {
        let records = self
            .inner
            .store
            .list_by_tenant(tenant, ListQuery::all().created_by_session(id))
            .await?;
        Ok(records
            .iter()
            .filter(|record| record.kind == TokenKind::ApiKey)
            .map(|record| record.id)
            .collect())
    }
}
