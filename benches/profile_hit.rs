//! A loop of cache-hit requests through an axum `Router`, for profilers
//! (`perf record`, `valgrind --tool=callgrind`); not a criterion benchmark.
//!
//! `cargo bench --bench profile_hit -- [auth|auth-logged|auth-limited|none|tower-http|auth-outer|tower-http-outer] [iterations]`
//!
//! `auth-logged` records every request in an activity log whose writer does not run
//! during the loop (its queue holds every row): the request path's share of logging.
//! `auth-limited` uses a key with one rate limit (that the loop never exhausts).

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{HeaderValue, Request};
use tower::util::BoxCloneSyncService;
use tower::{Layer as _, Service, ServiceExt};
use tower_bearer::{BearerAuthLayer, MemoryStore};
use tower_http::validate_request::ValidateRequestHeaderLayer;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let variant = args.next().unwrap_or_else(|| "auth".into());
    let iterations: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let store = MemoryStore::new();
    let registry = if variant == "auth-logged" {
        let capacity = usize::try_from(iterations).unwrap_or(usize::MAX) + 1;
        support::builder(store.clone(), 1_000)
            .activity(
                tower_bearer::activity::ActivityConfig::new(store)
                    .queue_capacity(capacity)
                    .batch_size(capacity),
            )
            .build()
    } else {
        support::registry(store, 1_000)
    };
    let mut tokens = runtime.block_on(support::issue_many(&registry, 1_000, 10));
    runtime.block_on(support::warm(&registry, &tokens));
    if variant == "auth-limited" {
        tokens[500] = runtime.block_on(support::issue_rate_limited(&registry));
    }
    // `auth-metrics`: as `auth`, with a recorder installed (feature `metrics`) once the
    // tokens are issued and cached, so that the setup's store calls, timed into it, do
    // not weigh on the difference of two runs. The hit path never calls a recorder: any
    // will do, and metrics-util's counts the same instructions every run (Prometheus's
    // calibrates its clock for as long as it takes, a varying count).
    #[cfg(feature = "metrics")]
    if variant == "auth-metrics" {
        metrics_util::debugging::DebuggingRecorder::new()
            .install()
            .unwrap();
        tower_bearer::telemetry::describe();
        registry.publish_metrics();
    }
    let app = Router::new().route("/", get(|| async { "ok" }));
    #[allow(deprecated)]
    let (router, token) = match variant.as_str() {
        "auth" | "auth-metrics" | "auth-logged" | "auth-limited" => (
            app.layer(BearerAuthLayer::new(registry.clone())),
            tokens[500].clone(),
        ),
        "tower-http" => (
            app.layer(ValidateRequestHeaderLayer::bearer("static")),
            "static".to_owned(),
        ),
        _ => (app, tokens[500].clone()),
    };
    let header = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    // `*-outer`: the middleware around the whole Router instead of `Router::layer`, which
    // wraps (and boxes) every route.
    let service = match variant.as_str() {
        "auth-outer" => BoxCloneSyncService::new(
            BearerAuthLayer::new(registry.clone())
                .layer(Router::new().route("/", get(|| async { "ok" }))),
        ),
        #[allow(deprecated)]
        "tower-http-outer" => BoxCloneSyncService::new(
            ValidateRequestHeaderLayer::bearer("static")
                .layer(Router::new().route("/", get(|| async { "ok" }))),
        ),
        _ => BoxCloneSyncService::new(router),
    };
    let header = if variant == "tower-http-outer" {
        HeaderValue::from_static("Bearer static")
    } else {
        header
    };
    let elapsed = runtime.block_on(async {
        let mut service = service.clone();
        let start = Instant::now();
        for _ in 0..iterations {
            let request = support::request(&header);
            let ready = ServiceExt::<Request<Body>>::ready(&mut service)
                .await
                .unwrap();
            let response = ready.call(request).await.unwrap();
            assert!(response.status().is_success());
            black_box(response);
        }
        start.elapsed()
    });
    println!("{variant}: {:?} per request", elapsed / iterations as u32);
}
