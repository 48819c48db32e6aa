//! The activity log allocates nothing per request on the request path: a row's text is
//! copied into its queue shard's buffer, which the writer hands back emptied. Counted
//! over many cache hits through a real axum `Router`, log off against log on, on one
//! thread (the writer, on the same runtime, does not run while the requests do: nothing
//! in the loop waits). The shard's buffers grow while they fill (reallocations, amortized
//! and reused after each write): those are not allocations per request.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};
use tower_bearer::activity::ActivityConfig;
use tower_bearer::registry::IssueRequest;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 2_000;

async fn allocations(registry: &Registry, token: &str) -> usize {
    let mut router = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(BearerAuthLayer::new(registry.clone()));
    let request = || {
        Request::get("/items/7")
            .header("authorization", format!("Bearer {token}"))
            .header("user-agent", "allocation-test/1.0")
            .header("x-request-id", "req-1")
            .body(Body::empty())
            .unwrap()
    };
    // Warm: the token cached, the queue's shard and the router's internals grown.
    for _ in 0..100 {
        let ready = ServiceExt::<Request<Body>>::ready(&mut router)
            .await
            .unwrap();
        assert_eq!(ready.call(request()).await.unwrap().status(), 200);
    }
    let requests: Vec<_> = (0..REQUESTS).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        let ready = ServiceExt::<Request<Body>>::ready(&mut router)
            .await
            .unwrap();
        black_box(ready.call(request).await.unwrap());
    }
    region.change().allocations
}

#[tokio::test(flavor = "current_thread")]
async fn the_log_allocates_nothing_per_request() {
    let store = MemoryStore::new();
    let off = Registry::builder(store.clone()).build();
    let on = Registry::builder(store.clone())
        // Room for every row of the run: nothing is dropped.
        .activity(
            ActivityConfig::new(store)
                .queue_capacity(10 * REQUESTS)
                .batch_size(10 * REQUESTS),
        )
        .build();
    let issued = off
        .issue(IssueRequest::new("ci", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let without = allocations(&off, &token).await;
    let with = allocations(&on, &token).await;
    println!(
        "allocations per request: log off {:.2}, log on {:.2}",
        without as f64 / REQUESTS as f64,
        with as f64 / REQUESTS as f64
    );
    assert_eq!(with, without, "off {without}, on {with}");
    let stats = on.activity().unwrap().stats();
    assert_eq!((stats.waiting, stats.dropped), (REQUESTS + 100, 0));
}
