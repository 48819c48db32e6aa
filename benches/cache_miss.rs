//! Cache misses against SQLite: latency percentiles (target p99 ≤ 50 µs), and
//! single-flight under contention (N concurrent misses, one store query).
//!
//! `cargo bench --bench cache_miss`
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::CountingStore;
use tower_bearer::registry::IssueRequest;
use tower_bearer::store::SqliteStore;
use tower_bearer::{Registry, TokenStore as _};

const TOKENS: usize = 10_000;

struct Fixture {
    registry: Registry,
    store: CountingStore<SqliteStore>,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A registry over SQLite whose cache never holds a token: every verification misses.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = CountingStore::new(
        SqliteStore::open(dir.path().join("bench.db"))
            .await
            .unwrap(),
    );
    let issuer = Registry::builder(store.clone()).build();
    let mut tokens = Vec::with_capacity(TOKENS);
    for n in 0..TOKENS {
        let request = IssueRequest::new(&format!("token {n}"), "acme")
            .unwrap()
            .scopes(["read"])
            .unwrap();
        tokens.push(
            issuer
                .issue(request)
                .await
                .unwrap()
                .secret
                .expose_secret()
                .to_owned(),
        );
    }
    let registry = Registry::builder(store.clone())
        .positive_ttl(Duration::ZERO)
        .usage_flush_interval(Duration::from_secs(3600))
        .build();
    Fixture {
        registry,
        store,
        tokens,
        _dir: dir,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn miss(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = runtime.block_on(fixture());

    // Percentiles, measured one miss at a time.
    let (verify, query) = runtime.block_on(async {
        for token in f.tokens.iter().take(1_000) {
            f.registry.verify(token).await.unwrap(); // warm SQLite's page cache
        }
        let mut verify = Vec::with_capacity(TOKENS);
        for token in &f.tokens {
            let start = Instant::now();
            black_box(f.registry.verify(token).await.unwrap());
            verify.push(start.elapsed());
        }
        let digests: Vec<_> = f
            .tokens
            .iter()
            .map(|t| tower_bearer::token::Digest::of(t.as_bytes()))
            .collect();
        let mut query = Vec::with_capacity(TOKENS);
        for digest in &digests {
            let start = Instant::now();
            black_box(f.store.inner.find_by_digest(digest).await.unwrap());
            query.push(start.elapsed());
        }
        verify.sort();
        query.sort();
        (verify, query)
    });
    println!(
        "cache miss against SQLite ({TOKENS} misses): p50 {:?}, p99 {:?}, max {:?} (target p99 <= 50µs)",
        percentile(&verify, 0.50),
        percentile(&verify, 0.99),
        verify[verify.len() - 1]
    );
    println!(
        "  of which the SQLite query alone: p50 {:?}, p99 {:?}",
        percentile(&query, 0.50),
        percentile(&query, 0.99)
    );

    // Single-flight: 64 concurrent verifications of a token this registry has not seen.
    // (Its cache keeps what it learns, so requests arriving after the lookup are hits.)
    let bursts = 200;
    let (queries, elapsed) = runtime.block_on(async {
        let registry = Registry::builder(f.store.clone()).build();
        let before = f.store.lookups();
        let start = Instant::now();
        for token in f.tokens.iter().take(bursts) {
            let waiting: Vec<_> = (0..64)
                .map(|_| {
                    let (registry, token) = (registry.clone(), token.clone());
                    tokio::spawn(async move { registry.verify(&token).await.unwrap() })
                })
                .collect();
            for task in waiting {
                task.await.unwrap();
            }
        }
        (f.store.lookups() - before, start.elapsed())
    });
    println!(
        "single-flight: {bursts} bursts of 64 concurrent verifications of an uncached token made {queries} store queries ({:.2} per burst; {:?} per burst)",
        queries as f64 / bursts as f64,
        elapsed / bursts as u32
    );

    let mut group = c.benchmark_group("cache_miss");
    let mut next = 0;
    group.bench_function("sqlite_verify_miss", |b| {
        b.to_async(&runtime).iter(|| {
            next = (next + 1) % TOKENS;
            let (registry, token) = (&f.registry, &f.tokens[next]);
            async move { black_box(registry.verify(token).await.unwrap()) }
        })
    });
    group.finish();
}

criterion_group!(benches, miss);
criterion_main!(benches);
