//! PostgreSQL, measured in one run against one server (`DATABASE_URL`, or a throwaway
//! cluster from the installed server binaries):
//!
//! 1. cross-node revocation latency: revoke through node A, time until node B rejects
//!    (p50 / p99 over 300 revocations; target p99 <= 10 ms on loopback);
//! 2. cache misses: `verify` of uncached tokens beside the bare query it makes, both
//!    p50 / p99 (target: p99 within 1.5x the bare query's);
//! 3. cached requests: how many store queries 100,000 verifications of cached tokens
//!    cause on a PostgreSQL-backed registry (target: none).
//!
//! `cargo bench --bench postgres`

#[path = "../tests/support/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod server;
#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::CountingStore;
use tower_bearer::registry::IssueRequest;
use tower_bearer::store::PostgresStore;
use tower_bearer::token::Digest;
use tower_bearer::{Registry, VerifyError};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    println!(
        "{name:<44} p50 {p50:>10.1?}   p99 {p99:>10.1?}   (n = {})",
        samples.len()
    );
    (p50, p99)
}

async fn issue(registry: &Registry) -> (tower_bearer::TokenId, String) {
    let issued = registry
        .issue(IssueRequest::new("bench", "acme").unwrap())
        .await
        .unwrap();
    (issued.info.id, issued.secret.expose_secret().to_owned())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let Some(server) = server::server() else {
            println!("no PostgreSQL: set DATABASE_URL or install the postgresql package");
            return;
        };
        let url = server.database().await;
        let node = |_: &str| async {
            Registry::builder(PostgresStore::connect(&url).await.unwrap()).build()
        };
        let (a, b) = (node("a").await, node("b").await);

        // 1. Cross-node revocation.
        let mut from_call = Vec::new();
        let mut from_return = Vec::new();
        for _ in 0..300 {
            let (id, token) = issue(&a).await;
            b.verify(&token).await.unwrap();
            let called = Instant::now();
            a.revoke("acme", id).await.unwrap();
            let returned = Instant::now();
            loop {
                if let Err(VerifyError::Rejected { .. }) = b.verify(&token).await {
                    break;
                }
                tokio::task::yield_now().await;
            }
            from_call.push(called.elapsed());
            from_return.push(returned.elapsed());
        }
        let (_, p99) = report(
            "revocation on A → rejected on B (from call)",
            &mut from_call,
        );
        report("  (from revoke returning on A)", &mut from_return);
        println!(
            "  target p99 <= 10 ms: {}",
            if p99 <= Duration::from_millis(10) {
                "met"
            } else {
                "MISSED"
            }
        );

        // 2. Cache misses beside the bare query, interleaved.
        let mut tokens = Vec::new();
        for _ in 0..2000 {
            tokens.push(issue(&a).await.1);
        }
        let cold = node("cold").await;
        let bare = server::Server::client(&url).await;
        let statement = bare
            .prepare(
                "SELECT id, name, tenant, scopes, env, kind, display_prefix, digest, created_at, \
                 expires_at, last_used_at, use_count, created_by, rotated_to, owner, metadata \
                 FROM tower_bearer_tokens WHERE digest = $1",
            )
            .await
            .unwrap();
        let (mut misses, mut queries) = (Vec::new(), Vec::new());
        for token in &tokens {
            let digest = Digest::of(token.as_bytes());
            let started = Instant::now();
            let row = bare
                .query_opt(&statement, &[&digest.as_bytes().as_slice()])
                .await
                .unwrap();
            queries.push(started.elapsed());
            assert!(row.is_some());
            let started = Instant::now();
            cold.verify(token).await.unwrap();
            misses.push(started.elapsed());
        }
        let (_, bare_p99) = report("bare query (prepared, one round trip)", &mut queries);
        let (_, miss_p99) = report("Registry::verify, cache miss", &mut misses);
        let ratio = miss_p99.as_secs_f64() / bare_p99.as_secs_f64();
        println!(
            "  miss p99 / bare p99 = {ratio:.2} (target <= 1.5: {})",
            if ratio <= 1.5 { "met" } else { "MISSED" }
        );

        // 3. Cached requests never query.
        let counting = CountingStore::new(PostgresStore::connect(&url).await.unwrap());
        let warm = Registry::builder(counting.clone()).build();
        for token in &tokens[..100] {
            warm.verify(token).await.unwrap();
        }
        let before = counting.lookups();
        for round in 0..1000 {
            for token in &tokens[..100] {
                std::hint::black_box(warm.verify(token).await.unwrap());
            }
            if round == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        println!(
            "store queries for 100,000 cached verifications: {} (target: 0)",
            counting.lookups() - before
        );
    });
}
