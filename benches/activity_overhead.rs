//! The activity log's cost on the request path: cache-hit overhead through an axum
//! `Router` (layer via `Router::layer`, called in-process) with the log on and off, in
//! the same run, with 1,000,000 tokens cached; then the allocations per request of each.
//!
//! `cargo bench --bench activity_overhead`, then `python3 scripts/bench_report.py`:
//! target: log on ≤ log off + 10% and + 50 ns; one allocation per request beyond the
//! log-off path (the row).
//!
//! The writer runs on a runtime of its own (two worker threads) and hands its batches to
//! a store that discards them, so that what is measured is the request path.
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use time::OffsetDateTime;
use tower::{Service, ServiceExt};
use tower_bearer::activity::{Activity, ActivityConfig, ActivityQuery, ActivityStore, NewActivity};
use tower_bearer::store::StoreError;
use tower_bearer::{BearerAuthLayer, MemoryStore};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Accepts every batch and keeps nothing.
struct Discard;

#[async_trait]
impl ActivityStore for Discard {
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        _: OffsetDateTime,
    ) -> Result<(), StoreError> {
        black_box(rows.len());
        Ok(())
    }

    async fn activity(&self, _: &str, _: &ActivityQuery) -> Result<Vec<Activity>, StoreError> {
        Ok(Vec::new())
    }

    async fn prune_activity(&self, _: OffsetDateTime) -> Result<u64, StoreError> {
        Ok(0)
    }
}

async fn ok() -> &'static str {
    "ok"
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The writer's runtime: its tasks run beside the measured thread, as in a server.
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let count = support::token_count();
    let store = MemoryStore::new();
    let (off, on, tokens) = background.block_on(async {
        let off = support::registry(store.clone(), count);
        let on = support::builder(store.clone(), count)
            .activity(ActivityConfig::new(Discard))
            .build();
        let tokens = support::issue_many(&off, count, 1_000).await;
        support::warm(&off, &tokens).await;
        support::warm(&on, &tokens).await;
        (off, on, tokens)
    });
    let header = HeaderValue::from_str(&format!("Bearer {}", tokens[count / 2])).unwrap();

    let app = || Router::new().route("/", get(ok));
    let mut group = c.benchmark_group("activity_overhead");
    group.measurement_time(Duration::from_secs(5));
    let group = &mut group;
    support::bench_router(group, &runtime, "no_auth", app(), header.clone());
    let log_off = app().layer(BearerAuthLayer::new(off.clone()));
    let log_on = app().layer(BearerAuthLayer::new(on.clone()));
    support::bench_router(group, &runtime, "log_off", log_off.clone(), header.clone());
    support::bench_router(group, &runtime, "log_on", log_on.clone(), header.clone());

    // Allocations per request, counted over many requests (the writer drains meanwhile).
    for (name, router) in [("log_off", log_off), ("log_on", log_on)] {
        let requests = 100_000u32;
        let allocations = runtime.block_on(async {
            let mut service = router.clone();
            let region = Region::new(GLOBAL);
            for _ in 0..requests {
                let ready = ServiceExt::<http::Request<axum::body::Body>>::ready(&mut service)
                    .await
                    .unwrap();
                black_box(ready.call(support::request(&header)).await.unwrap());
            }
            region.change().allocations
        });
        println!(
            "activity_overhead/{name}: {:.2} allocations per request",
            allocations as f64 / f64::from(requests)
        );
    }
    let stats = on.activity().unwrap().stats();
    println!(
        "activity_overhead/log_on: {} rows written, {} dropped",
        stats.written, stats.dropped
    );
    drop((off, on, background));
}

criterion_group!(benches, overhead);
criterion_main!(benches);
