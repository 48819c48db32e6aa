//! What the benchmarks share: a registry with many tokens.

#![allow(dead_code, unreachable_pub)]

pub mod hs256;

use std::time::Duration;

use tower_bearer::registry::IssueRequest;
use tower_bearer::{MemoryStore, Registry};

/// The scope sets tokens are issued with, in rotation: real deployments have a handful.
pub const SCOPE_SETS: [&[&str]; 3] = [&["read"], &["read", "write"], &["admin"]];

/// Issues `count` tokens over `tenants` tenants and returns their plaintexts.
pub async fn issue_many(registry: &Registry, count: usize, tenants: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let tenant = format!("tenant-{}", n % tenants);
        let request = IssueRequest::new(&format!("token {n}"), &tenant)
            .unwrap()
            .scopes(SCOPE_SETS[n % SCOPE_SETS.len()])
            .unwrap();
        let issued = registry.issue(request).await.unwrap();
        tokens.push(issued.secret.expose_secret().to_owned());
    }
    tokens
}

/// A registry over a memory store, sized for `count` cached tokens, whose cache entries
/// do not expire during a benchmark and whose usage is flushed rarely.
pub fn registry(store: MemoryStore, count: usize) -> Registry {
    builder(store, count).build()
}

/// Issues a token with one rate limit that a benchmark never exhausts (10^9 requests per
/// 31 days) and caches it: the cost of a key with a policy.
pub async fn issue_rate_limited(registry: &Registry) -> String {
    use tower_bearer::policy::{Policies, RateLimit};
    let limit = RateLimit::new("bench", 1_000_000_000, 2_678_400).unwrap();
    let request = IssueRequest::new("rate limited", "tenant-0")
        .unwrap()
        .scopes(["read"])
        .unwrap()
        .policies(Policies::none().rate_limit(limit))
        .unwrap();
    let issued = registry.issue(request).await.unwrap();
    let token = issued.secret.expose_secret().to_owned();
    registry.verify(&token).await.unwrap();
    token
}

/// The configuration of [`registry`], to add to.
pub fn builder(store: MemoryStore, count: usize) -> tower_bearer::registry::RegistryBuilder {
    Registry::builder(store)
        .max_cached_tokens(count * 2)
        .positive_ttl(Duration::from_secs(3600))
        .usage_flush_interval(Duration::from_secs(3600))
}

/// Verifies every token once, so that all of them are cached.
pub async fn warm(registry: &Registry, tokens: &[String]) {
    for token in tokens {
        registry.verify(token).await.unwrap();
    }
}

/// A current-thread runtime and, on it, a registry with [`token_count`] tokens issued
/// and cached.
pub fn cached_registry() -> (tokio::runtime::Runtime, Registry, Vec<String>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count = token_count();
    let (registry, tokens) = runtime.block_on(async {
        let registry = registry(MemoryStore::new(), count);
        let tokens = issue_many(&registry, count, 1_000).await;
        warm(&registry, &tokens).await;
        (registry, tokens)
    });
    (runtime, registry, tokens)
}

/// The number of tokens for "at 1M tokens" measurements; `TOWER_BEARER_BENCH_TOKENS`
/// overrides it for quick runs.
pub fn token_count() -> usize {
    std::env::var("TOWER_BEARER_BENCH_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000)
}

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_bearer::TokenId;
use tower_bearer::policy::{CreditGrant, RateGrant, RateLimit};
use tower_bearer::store::{
    ChangeStream, Invalidation, ListQuery, NewToken, RevocationReason, StoreError, TokenRecord,
    TokenStore, TokenUpdate, UsageUpdate,
};
use tower_bearer::token::Digest;

/// Wraps a store and counts digest lookups (the queries a cache exists to avoid).
#[derive(Clone)]
pub struct CountingStore<S> {
    pub inner: S,
    lookups: Arc<AtomicUsize>,
}

impl<S> CountingStore<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            lookups: Arc::default(),
        }
    }

    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for CountingStore<S> {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.inner.insert(token).await
    }
    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_digest(digest).await
    }
    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        self.inner.find_by_id(tenant, id).await
    }
    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.list_by_tenant(tenant, query).await
    }
    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        self.inner.delete(tenant, id, reason).await
    }
    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        self.inner.update(tenant, id, update).await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.inner.delete_with_descendants(tenant, id, reason).await
    }
    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        self.inner.rotate(old, replacement, grace_until).await
    }
    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.insert_once(marker, token).await
    }
    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        self.inner.record_usage(batch).await
    }
    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.inner.prune_expired(cutoff).await
    }
    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
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
        self.inner.reserve_credits(id, want, now).await
    }
    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.inner.return_credits(id, amount, since).await
    }
    fn shares_budgets(&self) -> bool {
        self.inner.shares_budgets()
    }
    fn changes(&self) -> Option<ChangeStream> {
        self.inner.changes()
    }
}

// ----- requests through a router ----------------------------------------------------------

use axum::Router;
use axum::body::Body;
use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, StatusCode};
use std::hint::black_box;
use std::time::Instant;
use tower::{Service, ServiceExt};

/// Mean time of `router.call(request)` with the given `Authorization` header.
pub fn bench_router(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    router: Router,
    header: HeaderValue,
) {
    // Check once that the request is let through: a benchmark of 401s would be a lie.
    let status = runtime
        .block_on(router.clone().oneshot(request(&header)))
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK, "{name}");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut service = router.clone();
                let start = Instant::now();
                for _ in 0..iters {
                    let ready = ServiceExt::<Request<Body>>::ready(&mut service)
                        .await
                        .unwrap();
                    black_box(ready.call(request(&header)).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
}

pub fn request(header: &HeaderValue) -> Request<Body> {
    Request::builder()
        .uri("/")
        .header(AUTHORIZATION, header.clone())
        .body(Body::empty())
        .unwrap()
}
