//! The token lifecycle: issuing, listing, changing, revoking, rotating, pruning, and
//! writing usage.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::truncate_to_millis;
use crate::identity::{TokenId, TokenKind};
use crate::registry::error::RandomError;
use crate::registry::lifecycle::issue;
use crate::registry::{
    Expiry, IssueRequest, Issued, ListQuery, MAX_GRACE, Registry, RegistryError, RotateRequest,
    TokenPage,
};
use crate::scope::{Scope, ScopeSet};
use crate::store::{
    Invalidation, NewToken, RevocationReason, StoreError, TokenInfo, TokenRecord, TokenUpdate,
};
use crate::token::PendingToken;

impl Registry {
    // ----- lifecycle ----------------------------------------------------------------

    /// Issues a token. The plaintext is in the returned [`Issued::secret`], and nowhere
    /// else, ever.
    ///
    /// Fails with [`RegistryError::LifetimeTooLong`] beyond the lifetime policy (or 100
    /// years), [`RegistryError::InvalidExpiry`] for an expiry that is not in the future.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, RegistryError> {
        let (token, minted) = self.prepare(request)?;
        let now = token.created_at;
        let record = self.inner.store.insert(token).await?;
        Ok(self.issued(record, minted, now))
    }

    /// Issues a token unless `marker` was used before on this store: `Ok(None)` then.
    /// The marker is written in the same transaction as the token, so two processes
    /// starting together on one database issue one token, and a bootstrap token is
    /// minted once per database, never again (even after it was revoked).
    pub async fn issue_once(
        &self,
        marker: &str,
        request: IssueRequest,
    ) -> Result<Option<Issued>, RegistryError> {
        let (token, minted) = self.prepare(request)?;
        let now = token.created_at;
        let record = self.inner.store.insert_once(marker, token).await?;
        Ok(record.map(|record| self.issued(record, minted, now)))
    }

    /// Checks the lifetime and mints the secret of a token to store.
    fn prepare(&self, request: IssueRequest) -> Result<(NewToken, PendingToken), RegistryError> {
        let inner = &self.inner;
        self.check_declared(&request.scopes)?;
        let now = truncate_to_millis(self.now_checked()?);
        let limit = add(now, inner.max_lifetime)?;
        let expires_at = match request.expiry {
            Expiry::Default => Some(add(now, inner.default_lifetime)?),
            // Capped just past the limit, so that an absurd duration is "too long", not
            // an overflow.
            Expiry::In(lifetime) => Some(add(
                now,
                lifetime.min(inner.max_lifetime + Duration::from_secs(1)),
            )?),
            Expiry::At(at) => Some(truncate_to_millis(at)),
            Expiry::Never if inner.lifetime_policy => return Err(RegistryError::LifetimeTooLong),
            Expiry::Never => None,
        };
        if expires_at.is_some_and(|at| at <= now) {
            return Err(RegistryError::InvalidExpiry);
        }
        if expires_at.is_some_and(|at| at > limit) {
            return Err(RegistryError::LifetimeTooLong);
        }
        let minted = inner
            .formats
            .mint(inner.issue_format, request.env)
            .map_err(|e| RegistryError::Random(RandomError::new(e)))?;
        let token = NewToken {
            name: request.name,
            tenant: request.tenant,
            scopes: request.scopes,
            env: request.env,
            kind: request.kind,
            display_prefix: minted.display_prefix.clone(),
            digest: minted.digest,
            created_at: now,
            expires_at,
            created_by: request.created_by,
            created_by_session: request.created_by_session,
            owner: request.owner,
            metadata: request.metadata,
            policies: counted_from(request.policies, now),
        };
        Ok((token, minted))
    }

    fn issued(&self, record: TokenRecord, minted: PendingToken, now: OffsetDateTime) -> Issued {
        tracing::info!(
            target: "tower_bearer::registry",
            token_id = %record.id,
            tenant = %record.tenant,
            created_by = record.created_by.map(TokenId::get),
            "token issued"
        );
        Issued {
            secret: minted.finish(record.id),
            info: TokenInfo::from_record(record, now),
        }
    }

    /// The current time, or [`RegistryError::ClockUnreadable`].
    pub(in crate::registry) fn now_checked(&self) -> Result<OffsetDateTime, RegistryError> {
        match self.inner.clock.now_nanos() {
            i64::MAX => Err(RegistryError::ClockUnreadable),
            nanos => Ok(crate::clock::from_nanos(nanos)),
        }
    }

    /// The API keys of `tenant`, without secrets, ordered by id. Expired tokens are
    /// listed (flagged `expired`) until deleted or pruned; revoked tokens are gone.
    /// Sessions are not tokens here: see `Registry::sessions` (feature `exchange`).
    pub async fn list(&self, tenant: &str) -> Result<Vec<TokenInfo>, RegistryError> {
        Ok(self.list_page(tenant, ListQuery::all()).await?.tokens)
    }

    /// One page of the tokens of `tenant`: at most `query.limit` of them after
    /// `query.after`, and whether more follow.
    pub async fn list_page(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<TokenPage, RegistryError> {
        let now = self.inner.clock.now();
        let (records, has_more) = self.page(tenant, query.kind(TokenKind::ApiKey)).await?;
        Ok(TokenPage {
            tokens: records
                .into_iter()
                .map(|record| TokenInfo::from_record(record, now))
                .collect(),
            has_more,
        })
    }

    /// The records `query` selects (at most its `limit`), and whether more follow: one
    /// more is asked for, to know.
    pub(in crate::registry) async fn page(
        &self,
        tenant: &str,
        mut query: ListQuery,
    ) -> Result<(Vec<TokenRecord>, bool), StoreError> {
        let limit = query.limit;
        query.limit = limit.saturating_add(1);
        let mut records = self.inner.store.list_by_tenant(tenant, query).await?;
        let has_more = records.len() > limit;
        records.truncate(limit);
        Ok((records, has_more))
    }

    /// Evicts what a prune deleted from the store, for good.
    pub(in crate::registry) fn evict_pruned(&self, pruned: &[Invalidation]) {
        let now = self.inner.clock.now_nanos();
        for invalidation in pruned {
            self.inner
                .cache
                .invalidate(&invalidation.digest, invalidation.id, now);
        }
    }

    /// One API key of `tenant`, without its secret.
    pub async fn get(&self, tenant: &str, id: TokenId) -> Result<TokenInfo, RegistryError> {
        let record = self.find_api_key(tenant, id).await?;
        Ok(TokenInfo::from_record(record, self.inner.clock.now()))
    }

    /// The API key `id` of `tenant`: a session's id is [`RegistryError::NotFound`], like
    /// an id that does not exist.
    async fn find_api_key(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, RegistryError> {
        let record = self.inner.store.find_by_id(tenant, id).await?;
        if record.kind != TokenKind::ApiKey {
            return Err(RegistryError::NotFound);
        }
        Ok(record)
    }

    /// Revokes (deletes) a token of `tenant`, and every session opened with it. When
    /// this returns, neither verifies on this registry. A token of another tenant, or a
    /// session's id, is [`RegistryError::NotFound`], exactly like a token that does not
    /// exist (sessions are revoked with `Registry::revoke_session`).
    pub async fn revoke(&self, tenant: &str, id: TokenId) -> Result<(), RegistryError> {
        self.revoke_because(tenant, id, RevocationReason::Manual)
            .await
    }

    /// [`revoke`](Self::revoke) for `reason`.
    pub(crate) async fn revoke_because(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<(), RegistryError> {
        self.find_api_key(tenant, id).await?;
        self.revoke_key(tenant, id, reason, None).await
    }

    /// Revokes API key `id` of `tenant` (known to be one) and its sessions, for `reason`.
    pub(in crate::registry) async fn revoke_key(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
        leak: Option<&crate::registry::LeakReport>,
    ) -> Result<(), RegistryError> {
        let invalidation = self.inner.store.delete(tenant, id, reason).await?;
        self.inner.cache.invalidate(
            &invalidation.digest,
            invalidation.id,
            self.inner.clock.now_nanos(),
        );
        self.remember_revoked(&invalidation.digest, id, None, tenant, reason, leak);
        self.inner.meters.forget(id);
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, %reason, "token revoked");
        self.revoke_sessions_of(tenant, id).await?;
        Ok(())
    }

    /// Changes a token of `tenant`: renames it, replaces its scopes (declared ones), or
    /// brings its expiry forward (never later: [`RegistryError::ExpiryExtended`]; not into
    /// the past: [`RegistryError::InvalidExpiry`]). When this returns, the change holds
    /// on this registry; other nodes read the token again when the change feed delivers,
    /// as for a revocation. A change of scopes or expiry revokes the token's sessions
    /// (their tokens carry the scopes and expiry of the login).
    pub async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenInfo, RegistryError> {
        if let Some(scopes) = &update.scopes {
            self.check_declared(scopes)?;
        }
        if let Some(name) = &update.name {
            if !issue::is_valid_name(name) {
                return Err(RegistryError::InvalidName);
            }
        }
        let current = self.find_api_key(tenant, id).await?;
        let mut update = update;
        if let Some(at) = update.expires_at {
            let at = truncate_to_millis(at);
            let now = self.now_checked()?;
            if at <= now {
                return Err(RegistryError::InvalidExpiry);
            }
            if at > add(now, self.inner.max_lifetime)? {
                return Err(RegistryError::LifetimeTooLong);
            }
            if current.expires_at.is_some_and(|current| at > current) {
                return Err(RegistryError::ExpiryExtended);
            }
            update.expires_at = Some(at);
        }
        if update.changes_policies() {
            let mut changed = current.clone();
            update.apply(&mut changed);
            changed
                .policies
                .validate()
                .map_err(RegistryError::InvalidPolicy)?;
            if let Some(Some(credits)) = &mut update.credits {
                // A balance set now counts from now.
                credits.counted_since = self.now_checked()?;
            }
        }
        let ends_sessions = update.scopes.is_some() || update.expires_at.is_some();
        let record = self.inner.store.update(tenant, id, update).await?;
        self.inner.cache.evict(&record.digest);
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, "token updated");
        if ends_sessions {
            self.revoke_sessions_of(tenant, id).await?;
        }
        Ok(TokenInfo::from_record(record, self.inner.clock.now()))
    }

    /// Whether removing the tokens `removing` from `tenant` (revoking them, or taking
    /// `admin` from them), with every token they created when `with_descendants` (a
    /// cascading revocation), would leave the tenant without any live token that holds
    /// `admin`, when one of them holds it: the check that keeps the last admin from
    /// locking everyone out. One pass over the tenant's tokens.
    pub async fn would_remove_last_admin(
        &self,
        tenant: &str,
        removing: &[TokenId],
        with_descendants: bool,
    ) -> Result<bool, RegistryError> {
        let records = self
            .inner
            .store
            .list_by_tenant(tenant, ListQuery::all())
            .await?;
        let mut removed: HashSet<TokenId> = removing.iter().copied().collect();
        if with_descendants {
            // The same lineage the store's cascading delete walks.
            let mut frontier: Vec<TokenId> = removing.to_vec();
            while let Some(parent) = frontier.pop() {
                for child in records.iter().filter(|r| r.created_by == Some(parent)) {
                    if removed.insert(child.id) {
                        frontier.push(child.id);
                    }
                }
            }
        }
        let now = self.inner.clock.now();
        let admins = records.iter().filter(|r| {
            r.kind == TokenKind::ApiKey
                && !r.is_expired_at(now)
                && self.grants(&r.scopes, Scope::ADMIN)
        });
        let (mut removes_an_admin, mut keeps_an_admin) = (false, false);
        for admin in admins {
            if removed.contains(&admin.id) {
                removes_an_admin = true;
            } else {
                keeps_an_admin = true;
            }
        }
        Ok(removes_an_admin && !keeps_an_admin)
    }

    /// Issues a new token with scope `admin` in `tenant` (the registry's default
    /// lifetime): the way back in when a tenant's last admin token is gone, like
    /// Django's `createsuperuser`. Call it from a command line, never from a request.
    pub async fn issue_recovery_admin(&self, tenant: &str) -> Result<Issued, RegistryError> {
        let request = IssueRequest::new("recovery admin", tenant)
            .map_err(|_| RegistryError::InvalidTenant)?
            .scopes([Scope::ADMIN])
            .map_err(|_| RegistryError::InvalidTenant)?
            .env(self.default_env());
        let issued = self.issue(request).await?;
        tracing::warn!(target: "tower_bearer::registry", token_id = %issued.info.id, %tenant, "recovery admin token issued");
        Ok(issued)
    }

    /// Revokes a token of `tenant` and every token it created, recursively (the tokens
    /// it issued through the management API, and theirs, and their sessions), in one
    /// store transaction: what an incident responder runs on a stolen admin token.
    /// Returns the revoked ids, the token's own first.
    pub async fn revoke_cascade(
        &self,
        tenant: &str,
        id: TokenId,
    ) -> Result<Vec<TokenId>, RegistryError> {
        self.revoke_cascade_because(tenant, id, RevocationReason::Manual)
            .await
    }

    /// [`revoke_cascade`](Self::revoke_cascade), the token named revoked for `reason`.
    pub(crate) async fn revoke_cascade_because(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<TokenId>, RegistryError> {
        self.find_api_key(tenant, id).await?;
        let removed = self
            .inner
            .store
            .delete_with_descendants(tenant, id, reason)
            .await?;
        let now = self.inner.clock.now_nanos();
        for invalidation in &removed {
            self.inner
                .cache
                .invalidate(&invalidation.digest, invalidation.id, now);
            // The token named is revoked for the reason given; the others with it.
            let reason = if invalidation.id == id {
                reason
            } else {
                RevocationReason::Cascade
            };
            self.remember_revoked(
                &invalidation.digest,
                invalidation.id,
                None,
                tenant,
                reason,
                None,
            );
        }
        let ids: Vec<TokenId> = removed.iter().map(|i| i.id).collect();
        tracing::info!(target: "tower_bearer::registry", token_id = %id, %tenant, revoked = ids.len(), "token revoked with its descendants");
        Ok(ids)
    }

    /// Replaces a token with a new one with the same name, scopes, environment, kind and
    /// lifetime length (a token that never expired still never expires), in one store
    /// transaction: two racing rotations, or a rotation racing a revocation, leave one
    /// live token whose plaintext was returned ([`RegistryError::Conflict`] or
    /// [`RegistryError::NotFound`] for the loser, with nothing issued).
    ///
    /// Without a grace period the old token stops working when this returns; with one it
    /// works until the grace period ends (or its own expiry, if sooner).
    ///
    /// Refused, with nothing issued and the old token untouched, when the token has
    /// expired ([`RegistryError::Expired`]: create a new one) or when the rotation is on
    /// behalf of a caller that does not hold every scope of the token
    /// ([`RegistryError::ScopesNotHeld`]).
    pub async fn rotate(&self, request: RotateRequest) -> Result<Issued, RegistryError> {
        let RotateRequest {
            tenant,
            id,
            caller,
            grace,
        } = request;
        if grace > MAX_GRACE {
            return Err(RegistryError::InvalidGrace);
        }
        let old = self.find_api_key(&tenant, id).await?;
        let now = truncate_to_millis(self.now_checked()?);
        if old.is_expired_at(now) {
            return Err(RegistryError::Expired);
        }
        if old.rotated_to.is_some() {
            return Err(RegistryError::Conflict);
        }
        if let Some(caller) = &caller {
            let missing: ScopeSet = old
                .scopes
                .iter()
                .filter(|scope| !caller.has_scope(scope.as_str()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(RegistryError::ScopesNotHeld(missing));
            }
        }
        let lifetime = old.expires_at.map(|expires_at| {
            (expires_at - old.created_at)
                .try_into()
                .unwrap_or(self.inner.default_lifetime)
        });
        // The new token's creator: the caller, unless it rotates itself (then its own
        // creator), so that cascading revocation still reaches it.
        let (created_by, created_by_session) = match &caller {
            Some(caller) if caller.id() != old.id => (Some(caller.id()), caller.session_record()),
            _ => (old.created_by, old.created_by_session),
        };
        let request = IssueRequest {
            name: old.name.clone(),
            tenant: old.tenant.clone(),
            scopes: old.scopes.clone(),
            // The same lifetime, within the policy in force now (a token that never
            // expired gets the longest lifetime allowed when a policy was set since).
            expiry: match lifetime {
                Some(lifetime) => Expiry::In(lifetime.min(self.inner.max_lifetime)),
                None if self.inner.lifetime_policy => Expiry::In(self.inner.max_lifetime),
                None => Expiry::Never,
            },
            env: old.env,
            kind: old.kind,
            created_by,
            created_by_session,
            owner: old.owner.clone(),
            metadata: old.metadata.clone(),
            // The replacement inherits the limits and the balance; during a grace
            // period the old key draws on what it had.
            policies: old.policies.clone(),
        };
        let (token, minted) = self.prepare(request)?;
        let grace_until = (!grace.is_zero()).then(|| add(now, grace)).transpose()?;
        let record = self.inner.store.rotate(&old, token, grace_until).await?;
        let at = self.inner.clock.now_nanos();
        match grace_until {
            None => {
                self.inner.cache.invalidate(&old.digest, old.id, at);
                self.remember_revoked(
                    &old.digest,
                    old.id,
                    None,
                    &tenant,
                    RevocationReason::Rotated,
                    None,
                );
            }
            Some(_) => {
                self.inner.cache.evict(&old.digest);
            }
        }
        tracing::info!(target: "tower_bearer::registry", token_id = %id, new_token_id = %record.id, %tenant, grace_secs = grace.as_secs(), "token rotated");
        // The store handed the old token's sessions to the new one (as it does every
        // record the old token created); a rotation ends them. Nobody can have opened a
        // session with the new token yet: its plaintext has not been returned.
        self.revoke_sessions_of(&tenant, record.id).await?;
        Ok(self.issued(record, minted, now))
    }

    /// Deletes tokens that expired more than `older_than` ago; returns how many.
    pub async fn prune_expired(&self, older_than: Duration) -> Result<usize, RegistryError> {
        let now = self.inner.clock.now();
        let cutoff = time::Duration::try_from(older_than)
            .ok()
            .and_then(|age| now.checked_sub(age))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pruned = self.inner.store.prune_expired(cutoff).await?;
        self.evict_pruned(&pruned);
        Ok(pruned.len())
    }

    /// Writes the usage counted so far to the store, and the activity log's waiting rows
    /// (feature `activity`). The background tasks do this every interval; call it once
    /// more at shutdown. Returns how many tokens' usage was updated.
    pub async fn flush(&self) -> Result<usize, RegistryError> {
        let flushed = self.inner.usage.flush(&*self.inner.store).await?;
        #[cfg(feature = "activity")]
        if let Some(log) = &self.inner.activity {
            log.flush().await?;
        }
        Ok(flushed)
    }
}

/// `policies` with their credits' balance counting from `now` (refilled first when a
/// refill was due).
fn counted_from(
    mut policies: crate::policy::Policies,
    now: OffsetDateTime,
) -> crate::policy::Policies {
    if let Some(credits) = &mut policies.credits {
        credits.remaining = credits.remaining_at(now);
        credits.counted_since = now;
    }
    policies
}

fn add(now: OffsetDateTime, lifetime: Duration) -> Result<OffsetDateTime, RegistryError> {
    time::Duration::try_from(lifetime)
        .ok()
        .and_then(|lifetime| now.checked_add(lifetime))
        .map(truncate_to_millis)
        .ok_or(RegistryError::InvalidExpiry)
}
