//! End users' tokens: JWTs an application issues to its own users (a browser SDK's
//! WebSocket token, say), signed with the session keys, with the user's id as subject and
//! the application's claims, revocable by user.
//!
//! Stored like sessions (a token record of kind `session`, found by the digest of its
//! signature), but created by no API key: the record's owner is the user, and revoking
//! the user deletes them all (through the change feed on every node). Unlike a login
//! session's, the record cannot re-derive the token: the token carries a random secret
//! claim (`sec`, 256 bits) that no row keeps (the record's digest, of the signature over
//! it, is all the store knows), so that a copy of the database, even with the session
//! key, yields no working user token. Nothing needs to re-derive one: a user token is
//! handed out once, when it is issued.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::identity::{TokenKind, is_valid_tenant};
use crate::registry::sessions::login;
use crate::registry::sessions::login::{
    Derivation, random_id, random_secret, scope_claim, seconds,
};
use crate::registry::{Registry, RegistryError, SessionToken};
use crate::scope::ScopeSet;
use crate::session::{
    DEFAULT_USER_TOKEN_LIFETIME, MAX_LIFETIME, REGISTERED_CLAIMS, SessionClaims,
    is_valid_client_session_id,
};
use crate::store::{ListQuery, NewToken};
use crate::token::Secret;
use crate::token::formats::jwt_digest;

/// A token for one of the application's users ([`Registry::issue_user_token`]).
///
/// ```
/// use tower_bearer::registry::UserTokenRequest;
///
/// let request = UserTokenRequest::new("acme", "7c9e6679-7425-40de-944b-e07fc1f90ae7")?
///     .name("Alice")
///     .claim("roomId", "lobby")?;
/// # let _ = request;
/// # Ok::<(), tower_bearer::registry::InvalidUserToken>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct UserTokenRequest {
    tenant: String,
    user_id: String,
    name: Option<String>,
    scopes: ScopeSet,
    claims: Map<String, Value>,
    lifetime: Duration,
}

/// A user token request that cannot be honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUserToken {
    /// The tenant is not a valid tenant id.
    #[error("invalid tenant")]
    Tenant,
    /// The user id is not 1 to 128 characters of `A-Z a-z 0-9 . _ : -` (a UUID is).
    #[error("invalid user id")]
    UserId,
    /// A custom claim names a registered claim (`sub`, `exp`, `sec`, …).
    #[error("claim `{0}` is reserved")]
    ReservedClaim(String),
    /// The custom claims are larger than 2 KiB as JSON.
    #[error("custom claims over 2 KiB")]
    ClaimsTooLarge,
    /// A lifetime of zero or over a year.
    #[error("a user token lifetime must be 1 second to 365 days")]
    Lifetime,
}

/// The most bytes of custom claims (as JSON) a user token carries.
const MAX_CLAIMS_LEN: usize = 2048;

impl UserTokenRequest {
    /// A token for user `user_id` (1 to 128 characters of `A-Z a-z 0-9 . _ : -`, a UUID
    /// say) of `tenant`, without scopes, valid for 90 days.
    pub fn new(tenant: &str, user_id: &str) -> Result<Self, InvalidUserToken> {
        if !is_valid_tenant(tenant) {
            return Err(InvalidUserToken::Tenant);
        }
        if !is_valid_client_session_id(user_id) {
            return Err(InvalidUserToken::UserId);
        }
        Ok(Self {
            tenant: tenant.to_owned(),
            user_id: user_id.to_owned(),
            name: None,
            scopes: ScopeSet::default(),
            claims: Map::new(),
            lifetime: DEFAULT_USER_TOKEN_LIFETIME,
        })
    }

    /// The user's display name (the principal's name; default the user id).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Scopes the token grants (default none).
    pub fn scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = scopes;
        self
    }

    /// Adds a custom claim (not a registered one).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Result<Self, InvalidUserToken> {
        if REGISTERED_CLAIMS.contains(&name) {
            return Err(InvalidUserToken::ReservedClaim(name.to_owned()));
        }
        self.claims.insert(name.to_owned(), value.into());
        if serde_json::to_vec(&self.claims).map_or(usize::MAX, |json| json.len()) > MAX_CLAIMS_LEN {
            return Err(InvalidUserToken::ClaimsTooLarge);
        }
        Ok(self)
    }

    /// How long the token is valid (1 s to a year; default 90 days).
    pub fn lifetime(mut self, lifetime: Duration) -> Result<Self, InvalidUserToken> {
        if lifetime.as_secs() == 0 || lifetime > MAX_LIFETIME {
            return Err(InvalidUserToken::Lifetime);
        }
        self.lifetime = Duration::from_secs(lifetime.as_secs());
        Ok(self)
    }
}

impl Registry {
    /// Issues a token for one of the application's users: a JWT signed with the session
    /// keys, `sub` = the user id, the tenant, the scopes and the custom claims, valid for
    /// the request's lifetime (90 days by default). Every node of the store accepts it
    /// until it expires or [`revoke_user`](Self::revoke_user) revokes the user. The
    /// principal it stands for has kind `session`, the user id as `owner`, and the
    /// display name as `name`.
    ///
    /// ```
    /// use tower_bearer::registry::UserTokenRequest;
    /// use tower_bearer::session::{SessionConfig, SessionKeys};
    /// use tower_bearer::{MemoryStore, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new())
    ///     .sessions(SessionConfig::new(SessionKeys::new("k1", &[7u8; 32])?))
    ///     .build();
    /// let user = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    /// let request = UserTokenRequest::new("acme", user)?.name("Alice").claim("roomId", "lobby")?;
    /// let token = registry.issue_user_token(request).await?;
    /// let principal = registry.verify(token.access_token.expose_secret()).await?;
    /// assert_eq!((principal.owner(), principal.name()), (Some(user), "Alice"));
    ///
    /// assert_eq!(registry.revoke_user("acme", user).await?, 1);
    /// assert!(registry.verify(token.access_token.expose_secret()).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn issue_user_token(
        &self,
        request: UserTokenRequest,
    ) -> Result<SessionToken, RegistryError> {
        let sessions = self
            .inner
            .sessions
            .as_ref()
            .ok_or(RegistryError::SessionsNotConfigured)?;
        self.check_declared(&request.scopes)?;
        let config = sessions.config();
        let config = &*config;
        let now = seconds(self.now_checked()?);
        let expires_at = now + request.lifetime;
        let (sid, jti) = (random_id()?, random_id()?);
        let kid = config.keys().signing_kid();
        let mut claims = SessionClaims::new(
            config.issuer_name(),
            &request.user_id,
            &sid,
            &request.tenant,
            &scope_claim(&request.scopes),
            now.unix_timestamp(),
            expires_at.unix_timestamp(),
            &jti,
        );
        claims.extra = request.claims.clone();
        // In the token, never in the row: see the module's documentation.
        claims
            .extra
            .insert("sec".to_owned(), Value::String(random_secret()?));
        let token = config.keys().sign(&claims);
        let mut metadata = Derivation {
            client_session_id: &request.user_id,
            sid: &sid,
            jti: &jti,
            kid,
            iss: config.issuer_name(),
        }
        .write();
        metadata.insert("subject".to_owned(), json!("user"));
        metadata.insert("claims".to_owned(), Value::Object(request.claims));
        let record = self
            .inner
            .store
            .insert(NewToken {
                name: request.name.unwrap_or_else(|| request.user_id.clone()),
                tenant: request.tenant,
                scopes: request.scopes,
                env: self.default_env(),
                kind: TokenKind::Session,
                display_prefix: String::new(),
                digest: jwt_digest(&token),
                created_at: now,
                expires_at: Some(expires_at),
                created_by: None,
                created_by_session: None,
                owner: Some(request.user_id),
                metadata: Some(metadata),
                policies: crate::policy::Policies::none(),
            })
            .await?;
        tracing::info!(target: "tower_bearer::registry", session_id = %record.id, tenant = %record.tenant, "user token issued");
        let session = login::SessionInfo::from_record(&record).expect("a user token as written");
        Ok(SessionToken {
            access_token: Secret::new(token),
            expires_in: request.lifetime.as_secs(),
            session,
            key: None,
        })
    }

    /// Revokes every token of user `user_id` in `tenant` ([`issue_user_token`](Self::issue_user_token)):
    /// they stop working on this registry when this returns, on the others when the
    /// change feed delivers. Returns how many there were.
    pub async fn revoke_user(&self, tenant: &str, user_id: &str) -> Result<usize, RegistryError> {
        let records = self
            .inner
            .store
            .list_by_tenant(
                tenant,
                ListQuery::all().kind(TokenKind::Session).owner(user_id),
            )
            .await?;
        let mut revoked = 0;
        for record in records.iter().filter(|record| record.created_by.is_none()) {
            self.remove_session(record, crate::store::RevocationReason::Manual)
                .await?;
            revoked += 1;
        }
        tracing::info!(target: "tower_bearer::registry", %tenant, revoked, "user tokens revoked");
        Ok(revoked)
    }
}
