//! The activity log's cost on the request path: cache-hit overhead through an axum
//! `Router` (layer via `Router::layer`, and around the whole router with `protect`,
//! called in-process) with the log on and off, in the same run, with 1,000,000 tokens
//! cached.
//!
//! `cargo bench --bench activity_overhead`, then `python3 scripts/bench_report.py`:
//! target: log on ≤ log off + 10% and + 50 ns. (That the log adds exactly one allocation
//! per request, the row's, is a test: `tests/activity_allocations.rs`.)
//!
//! The writer runs on a runtime of its own (one worker thread, the machine's other core)
//! and hands its batches to a store that discards them, so that what is measured is the
//! request path.
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
use time::OffsetDateTime;
use tower_bearer::activity::ActivityConfig;
use tower_bearer::store::StoreError;
use tower_bearer::store::activity::{
    Activity, ActivityQuery, ActivityStore, NewActivity, RevokedToken,
};
use tower_bearer::token::Digest;
use tower_bearer::{BearerAuthLayer, MemoryStore, TokenId};

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

    async fn remember_revoked(&self, _: &[RevokedToken]) -> Result<(), StoreError> {
        Ok(())
    }

    async fn find_revoked(&self, _: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        Ok(Vec::new())
    }

    async fn find_revoked_key(
        &self,
        _: &str,
        _: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        Ok(None)
    }

    async fn summary(
        &self,
        _: &str,
        _: &tower_bearer::store::activity::SummaryQuery,
    ) -> Result<tower_bearer::store::activity::Summary, StoreError> {
        Ok(Default::default())
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
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let count = support::token_count();
    let store = MemoryStore::new();
    let (off, on, tokens) = background.block_on(async {
        let off = support::registry(store.clone(), count);
        let config = ActivityConfig::new(Discard);
        let on = support::builder(store.clone(), count)
            .activity(config)
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
    let bench = &mut group;
    support::bench_router(bench, &runtime, "no_auth", app(), header.clone());
    let log_off = app().layer(BearerAuthLayer::new(off.clone()));
    let log_on = app().layer(BearerAuthLayer::new(on.clone()));
    support::bench_router(bench, &runtime, "log_off", log_off.clone(), header.clone());
    support::bench_router(bench, &runtime, "log_on", log_on.clone(), header.clone());
    // Around the whole router (`protect`): with the log on, each route passes its
    // template on to the row through one more route layer.
    let outer = |registry: &tower_bearer::Registry| {
        Router::new().fallback_service(BearerAuthLayer::new(registry.clone()).protect(app()))
    };
    let (outer_off, outer_on) = (outer(&off), outer(&on));
    support::bench_router(
        bench,
        &runtime,
        "outer_log_off",
        outer_off.clone(),
        header.clone(),
    );
    support::bench_router(
        bench,
        &runtime,
        "outer_log_on",
        outer_on.clone(),
        header.clone(),
    );
    group.finish();

    interleaved(
        &runtime,
        &[
            ("no_auth", app()),
            ("log_off", log_off.clone()),
            ("log_on", log_on.clone()),
            ("outer_log_off", outer_off),
            ("outer_log_on", outer_on),
        ],
        &header,
    );
    let stats = on.activity().unwrap().stats();
    println!(
        "activity_overhead/log_on: {} rows written, {} dropped",
        stats.written, stats.dropped
    );
    drop((off, on, background));
}

/// The same three routers measured in alternation (blocks of 10,000 requests, the order
/// rotated every round) for about 15 s: on a shared, noisy machine the per-round
/// difference between log on and log off is steadier than separate runs of each.
fn interleaved(
    runtime: &tokio::runtime::Runtime,
    routers: &[(&str, Router)],
    header: &HeaderValue,
) {
    use std::time::Instant;
    use tower::{Service, ServiceExt};
    const BLOCK: u32 = 10_000;
    let mut samples = vec![Vec::new(); routers.len()];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut round = 0;
    while Instant::now() < deadline {
        for k in 0..routers.len() {
            let at = (k + round) % routers.len();
            let mut service = routers[at].1.clone();
            let nanos = runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..BLOCK {
                    let ready = ServiceExt::<http::Request<axum::body::Body>>::ready(&mut service)
                        .await
                        .unwrap();
                    black_box(ready.call(support::request(header)).await.unwrap());
                }
                start.elapsed().as_nanos() as f64 / f64::from(BLOCK)
            });
            samples[at].push(nanos);
        }
        round += 1;
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let mut added: Vec<f64> = samples[2]
        .iter()
        .zip(&samples[1])
        .map(|(on, off)| on - off)
        .collect();
    let mut medians: Vec<f64> = samples.iter().map(|s| median(&mut s.clone())).collect();
    for ((name, _), value) in routers.iter().zip(&mut medians) {
        println!(
            "activity_overhead/interleaved/{name}: {value:.1} ns per request (median of {round} blocks)"
        );
    }
    let added = median(&mut added);
    let off_overhead = medians[1] - medians[0];
    println!(
        "activity_overhead/interleaved: the log adds {added:.1} ns per request \
         ({:.1}% of log off's overhead over no auth, {:.1}% of the request); target <= 50 ns and <= 10%",
        100.0 * added / off_overhead,
        100.0 * added / medians[1],
    );
}

criterion_group!(benches, overhead);
criterion_main!(benches);
