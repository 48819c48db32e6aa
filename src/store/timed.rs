//! [`TimedStore`]: the registry's store, each call timed into
//! `tower_bearer_store_duration_seconds{op, backend, result}` (feature `metrics`).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    ChangeStream, Invalidation, ListQuery, NewToken, RevocationReason, StoreError, TokenRecord,
    TokenStore, TokenUpdate, UsageUpdate,
};
use crate::identity::TokenId;
use crate::policy::{CreditGrant, RateGrant, RateLimit};
use crate::telemetry::STORE_DURATION_SECONDS;
use crate::token::Digest;

/// A store whose every call is timed (none is on the hit path: a store call takes
/// microseconds at least, the recording a fraction of one).
pub(crate) struct TimedStore {
    inner: Arc<dyn TokenStore>,
    backend: &'static str,
}

impl TimedStore {
    pub(crate) fn wrap(inner: Arc<dyn TokenStore>) -> Arc<dyn TokenStore> {
        let backend = inner.backend();
        Arc::new(Self { inner, backend })
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StoreError::NotFound) => "not_found",
            Err(StoreError::Conflict) => "conflict",
            Err(_) => "error",
        };
        ::metrics::histogram!(
            STORE_DURATION_SECONDS,
            "op" => op,
            "backend" => self.backend,
            "result" => outcome,
        )
        .record(started.elapsed().as_secs_f64());
        result
    }
}

#[async_trait]
impl TokenStore for TimedStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.timed("insert", self.inner.insert(token)).await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        self.timed("find_by_digest", self.inner.find_by_digest(digest))
            .await
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        self.timed("find_by_id", self.inner.find_by_id(tenant, id))
            .await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.timed("list_by_tenant", self.inner.list_by_tenant(tenant, query))
            .await
    }

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        self.timed("delete", self.inner.delete(tenant, id, reason))
            .await
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        self.timed("update", self.inner.update(tenant, id, update))
            .await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.timed(
            "delete_with_descendants",
            self.inner.delete_with_descendants(tenant, id, reason),
        )
        .await
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        self.timed("rotate", self.inner.rotate(old, replacement, grace_until))
            .await
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.timed("insert_once", self.inner.insert_once(marker, token))
            .await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        self.timed("record_usage", self.inner.record_usage(batch))
            .await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.timed("prune_expired", self.inner.prune_expired(cutoff))
            .await
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.timed(
            "prune_expired_sessions",
            self.inner.prune_expired_sessions(cutoff),
        )
        .await
    }

    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
        self.timed(
            "reserve_requests",
            self.inner.reserve_requests(id, rate, window_start, want),
        )
        .await
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        self.timed("reserve_credits", self.inner.reserve_credits(id, want, now))
            .await
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.timed(
            "return_credits",
            self.inner.return_credits(id, amount, counted_since),
        )
        .await
    }

    fn shares_budgets(&self) -> bool {
        self.inner.shares_budgets()
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.inner.changes()
    }

    fn backend(&self) -> &'static str {
        self.backend
    }
}
