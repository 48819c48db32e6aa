//! The session rows of an API key: listed and revoked with the key, whether or not this
//! build mints sessions (feature `exchange`), so that a key revoked here never leaves a
//! session of it alive.

use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind};
use crate::registry::{Registry, RegistryError};
use crate::store::{ListQuery, RevocationReason, StoreError, TokenRecord, TokenStore};

impl Registry {
    /// The session records of key `key` in `tenant`, oldest first.
    pub(in crate::registry) async fn session_records(
        &self,
        tenant: &str,
        key: TokenId,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner
            .store
            .list_by_tenant(
                tenant,
                ListQuery::all().kind(TokenKind::Session).created_by(key),
            )
            .await
    }

    pub(in crate::registry) async fn remove_session(
        &self,
        record: &TokenRecord,
        reason: RevocationReason,
    ) -> Result<(), StoreError> {
        let removed = self
            .inner
            .store
            .delete(&record.tenant, record.id, reason)
            .await;
        // Named as the session's principal is: its key's (or its user's own) id.
        let token_id = record.created_by.unwrap_or(record.id);
        self.inner
            .cache
            .invalidate(&record.digest, token_id, self.inner.clock.now_nanos());
        self.remember_revoked(
            &record.digest,
            token_id,
            Some(record.id),
            &record.tenant,
            reason,
            None,
        );
        match removed {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Deletes every session that has expired, in every tenant (the registry does so
    /// hourly): their rows would otherwise accumulate. Returns how many.
    pub async fn prune_expired_sessions(&self) -> Result<usize, RegistryError> {
        let pruned = self
            .inner
            .store
            .prune_expired_sessions(self.inner.clock.now())
            .await?;
        self.evict_pruned(&pruned);
        if !pruned.is_empty() {
            tracing::debug!(target: "tower_bearer::registry", sessions = pruned.len(), "expired sessions pruned");
        }
        Ok(pruned.len())
    }

    /// Revokes every session of API key `key` (it was revoked, rotated, or its scopes or
    /// expiry changed): returns how many.
    pub(in crate::registry) async fn revoke_sessions_of(
        &self,
        tenant: &str,
        key: TokenId,
    ) -> Result<usize, RegistryError> {
        let records = self.session_records(tenant, key).await?;
        for record in &records {
            self.remove_session(record, RevocationReason::Cascade)
                .await?;
        }
        if !records.is_empty() {
            tracing::info!(target: "tower_bearer::registry", token_id = %key, %tenant, sessions = records.len(), "sessions revoked with their key");
        }
        Ok(records.len())
    }
}

/// What the API key behind a session says of it.
pub(in crate::registry) enum KeyOfSession {
    /// An end user's token: it has no key.
    NoKey,
    /// The key is live (not revoked, not expired): its record, whose policies the
    /// session's requests count against.
    Live(Box<TokenRecord>),
    /// The key is gone or expired: so is the session.
    Gone,
}

/// The API key behind session `record`. Sessions die with their key; this guards the
/// rare race a login re-checks for, and gives a session its key's policies.
pub(in crate::registry) async fn key_of_session(
    store: &dyn TokenStore,
    record: &TokenRecord,
    now: OffsetDateTime,
) -> Result<KeyOfSession, StoreError> {
    let Some(key) = record.created_by else {
        return Ok(KeyOfSession::NoKey);
    };
    match store.find_by_id(&record.tenant, key).await {
        Ok(key) if key.kind == TokenKind::ApiKey && !key.is_expired_at(now) => {
            Ok(KeyOfSession::Live(Box::new(key)))
        }
        Ok(_) | Err(StoreError::NotFound) => Ok(KeyOfSession::Gone),
        Err(error) => Err(error),
    }
}
