//! A real [`MemoryStore`] with instruments attached: it counts digest lookups, can be
//! switched to "unavailable" (like a database that went away), and can hold a lookup
//! after it has read the record (to replay races deterministically).

#![allow(dead_code, unreachable_pub)]

pub mod browser;
pub mod example;
pub mod http;
pub mod logs;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "secret-scanning")]
pub mod scanning;
#[cfg(feature = "webhooks")]
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tower_bearer::MemoryStore;
use tower_bearer::TokenId;
use tower_bearer::policy::{CreditGrant, RateGrant, RateLimit};
use tower_bearer::store::{
    Change, ChangeStream, Invalidation, ListQuery, NewToken, RevocationReason, StoreError,
    TokenRecord, TokenStore, TokenUpdate, UsageUpdate,
};
use tower_bearer::token::Digest;

#[derive(Clone, Default)]
pub struct InstrumentedStore {
    pub inner: MemoryStore,
    probes: Arc<Probes>,
}

struct Probes {
    lookups: AtomicUsize,
    usage_writes: AtomicUsize,
    down: AtomicBool,
    hang: AtomicBool,
    lookup_delay_micros: std::sync::atomic::AtomicU64,
    list_delay_micros: std::sync::atomic::AtomicU64,
    hold: AtomicBool,
    no_feed: AtomicBool,
    /// Reservations of budgets (rate-limit windows, credits) asked of the store.
    reservations: AtomicUsize,
    /// Whether the store says several nodes share its budgets.
    shared_budgets: AtomicBool,
    /// A change feed the test drives, instead of the memory store's.
    driven_feed: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Change>>>,
    record_read: Notify,
    release: Semaphore,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            lookups: AtomicUsize::new(0),
            usage_writes: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            lookup_delay_micros: std::sync::atomic::AtomicU64::new(0),
            list_delay_micros: std::sync::atomic::AtomicU64::new(0),
            hold: AtomicBool::new(false),
            no_feed: AtomicBool::new(false),
            reservations: AtomicUsize::new(0),
            shared_budgets: AtomicBool::new(false),
            driven_feed: std::sync::Mutex::new(None),
            record_read: Notify::new(),
            release: Semaphore::new(0),
        }
    }
}

impl InstrumentedStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store without a change feed, like one shared by nodes that cannot notify
    /// each other.
    pub fn without_change_feed() -> Self {
        let store = Self::default();
        store.probes.no_feed.store(true, Ordering::SeqCst);
        store
    }

    /// The records of `shared` (another registry's store, say), with a change feed that
    /// carries only what the test sends: a node whose feed connection broke.
    pub fn with_driven_feed(
        shared: MemoryStore,
    ) -> (Self, tokio::sync::mpsc::UnboundedSender<Change>) {
        let (feed, receiver) = tokio::sync::mpsc::unbounded_channel();
        let store = Self {
            inner: shared,
            probes: Arc::default(),
        };
        *store.probes.driven_feed.lock().unwrap() = Some(receiver);
        (store, feed)
    }

    /// Digest lookups made so far.
    pub fn lookups(&self) -> usize {
        self.probes.lookups.load(Ordering::SeqCst)
    }

    /// `record_usage` batches written so far.
    pub fn usage_writes(&self) -> usize {
        self.probes.usage_writes.load(Ordering::SeqCst)
    }

    /// While down, every call fails with `StoreError::Unavailable`.
    pub fn set_down(&self, down: bool) {
        self.probes.down.store(down, Ordering::SeqCst);
    }

    /// While hanging, digest lookups never answer (a store that accepted the connection
    /// and went silent).
    pub fn set_hanging(&self, hang: bool) {
        self.probes.hang.store(hang, Ordering::SeqCst);
    }

    /// Every digest lookup takes this long (a store across a network).
    pub fn set_lookup_delay(&self, delay: std::time::Duration) {
        self.probes
            .lookup_delay_micros
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// Every listing takes this long: widens the window between reading and writing
    /// for races to show.
    #[allow(dead_code)]
    pub fn set_list_delay(&self, delay: std::time::Duration) {
        self.probes
            .list_delay_micros
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// While holding, a digest lookup reads its record, announces it, and waits for
    /// `release` before returning it.
    pub fn hold_lookups(&self, hold: bool) {
        self.probes.hold.store(hold, Ordering::SeqCst);
    }

    /// Waits until a held lookup has read its record.
    pub async fn record_read(&self) {
        self.probes.record_read.notified().await;
    }

    /// How many budget reservations reached the store.
    #[allow(dead_code)]
    pub fn reservations(&self) -> usize {
        self.probes.reservations.load(Ordering::SeqCst)
    }

    /// Makes the store say that several nodes share its budgets (nodes then take
    /// slices of them), as SQLite and PostgreSQL do.
    #[allow(dead_code)]
    pub fn share_budgets(&self) {
        self.probes.shared_budgets.store(true, Ordering::SeqCst);
    }

    /// Lets `n` held lookups return.
    pub fn release(&self, n: usize) {
        self.probes.release.add_permits(n);
    }

    fn check_up(&self) -> Result<(), StoreError> {
        if self.probes.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("connection refused"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl TokenStore for InstrumentedStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.check_up()?;
        self.inner.insert(token).await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        self.probes.lookups.fetch_add(1, Ordering::SeqCst);
        if self.probes.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = self.probes.lookup_delay_micros.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
        }
        self.check_up()?;
        let found = self.inner.find_by_digest(digest).await;
        if self.probes.hold.load(Ordering::SeqCst) {
            self.probes.record_read.notify_one();
            self.probes.release.acquire().await.unwrap().forget();
        }
        found
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        self.check_up()?;
        self.inner.find_by_id(tenant, id).await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.check_up()?;
        let records = self.inner.list_by_tenant(tenant, query).await;
        let delay = self.probes.list_delay_micros.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
        }
        records
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        self.check_up()?;
        self.inner.update(tenant, id, update).await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.check_up()?;
        self.inner.delete_with_descendants(tenant, id, reason).await
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        self.check_up()?;
        self.inner.rotate(old, replacement, grace_until).await
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.check_up()?;
        self.inner.insert_once(marker, token).await
    }

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        self.check_up()?;
        self.inner.delete(tenant, id, reason).await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        self.check_up()?;
        self.probes.usage_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.record_usage(batch).await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.check_up()?;
        self.inner.prune_expired(cutoff).await
    }

    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
        self.probes.reservations.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        self.inner
            .reserve_requests(id, rate, window_start, want)
            .await
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        self.probes.reservations.fetch_add(1, Ordering::SeqCst);
        self.check_up()?;
        self.inner.reserve_credits(id, want, now).await
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.check_up()?;
        self.inner.return_credits(id, amount, counted_since).await
    }

    fn shares_budgets(&self) -> bool {
        self.probes.shared_budgets.load(Ordering::SeqCst)
    }

    fn changes(&self) -> Option<ChangeStream> {
        if self.probes.no_feed.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(receiver) = self.probes.driven_feed.lock().unwrap().take() {
            use futures_util::StreamExt as _;
            return Some(
                futures_util::stream::unfold(receiver, |mut receiver| async move {
                    receiver.recv().await.map(|change| (change, receiver))
                })
                .boxed(),
            );
        }
        self.inner.changes()
    }
}

/// A token that has expired and one that was revoked, both of tenant `acme`.
pub async fn expired_and_revoked(registry: &tower_bearer::Registry) -> (String, String) {
    use tower_bearer::registry::{Expiry, IssueRequest};
    let expired = registry
        .issue(
            IssueRequest::new("expired", "acme")
                .unwrap()
                .expires(Expiry::In(std::time::Duration::from_millis(1))),
        )
        .await
        .unwrap();
    let revoked = registry
        .issue(IssueRequest::new("revoked", "acme").unwrap())
        .await
        .unwrap();
    registry.revoke("acme", revoked.info.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    (
        expired.secret.expose_secret().to_owned(),
        revoked.secret.expose_secret().to_owned(),
    )
}

/// Every `$ref` of an OpenAPI document (as JSON) names a schema the document has.
pub fn assert_references_resolve(document: &serde_json::Value) {
    let text = document.to_string();
    for reference in text.split(r##""$ref":"#/components/schemas/"##).skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            document["components"]["schemas"][name].is_object(),
            "unresolved {name}"
        );
    }
}

/// An OpenAPI example is shaped like a real answer: `example` has the keys of `real`,
/// and each value the same JSON type (null matches anything: the field is nullable),
/// recursively through objects.
pub fn assert_shaped_like(example: &serde_json::Value, real: &serde_json::Value) {
    use serde_json::Value;
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(keys(example), keys(real), "{example} vs {real}");
    for (key, value) in example.as_object().unwrap() {
        let other = &real[key];
        match (value, other) {
            (Value::Null, _) | (_, Value::Null) => {}
            (Value::Object(_), Value::Object(_)) => assert_shaped_like(value, other),
            (Value::Array(_), Value::Array(_))
            | (Value::String(_), Value::String(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::Bool(_), Value::Bool(_)) => {}
            _ => panic!("{key}: {value} vs {other}"),
        }
    }
}
