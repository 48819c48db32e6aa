//! Per-request overhead of authentication through an axum `Router`, called in-process
//! with `tower::Service::call`, with 1,000,000 tokens in the registry.
//!
//! `cargo bench --bench request_overhead`, then `python3 scripts/bench_report.py` for the
//! overheads over "no auth" and the ratios against the targets:
//! tower-bearer ≤ tower-http's static bearer compare, and ≥ 10× below a jsonwebtoken HS256
//! check (run as a tower-http `ValidateRequestHeaderLayer::custom`, the same harness as
//! the static compare).
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderValue;
use tower_bearer::BearerAuthLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

async fn ok() -> &'static str {
    "ok"
}

fn overhead(c: &mut Criterion) {
    let (runtime, registry, tokens) = support::cached_registry();
    let count = tokens.len();
    let token = &tokens[count / 2];
    let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).unwrap();

    let jwt = support::hs256::token();

    let app = || Router::new().route("/", get(ok));
    let mut group = c.benchmark_group("request_overhead");
    group.measurement_time(Duration::from_secs(5));
    let group = &mut group;
    support::bench_router(group, &runtime, "no_auth", app(), bearer(token));
    support::bench_router(
        group,
        &runtime,
        "tower_bearer_cache_hit",
        app().layer(BearerAuthLayer::new(registry.clone())),
        bearer(token),
    );
    support::bench_router(
        group,
        &runtime,
        "tower_http_static_bearer",
        // Deprecated upstream as "too basic", which is exactly why it is the baseline.
        #[allow(deprecated)]
        app().layer(ValidateRequestHeaderLayer::bearer(
            "a-static-token-of-44-characters-length-xxxx",
        )),
        bearer("a-static-token-of-44-characters-length-xxxx"),
    );
    support::bench_router(
        group,
        &runtime,
        "jsonwebtoken_hs256",
        app().layer(support::hs256::layer()),
        bearer(&jwt),
    );
    // Keep the registry (and its million tokens) alive through the measurements.
    drop(registry);
}

criterion_group!(benches, overhead);
criterion_main!(benches);
