//! A cache hit allocates one thing: the box `http::Extensions` puts the principal in.
//! Counted over many requests through a real axum `Router`, without the layer and with it
//! around the whole `Router` (`protect`), on one thread.

use std::hint::black_box;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Service, ServiceExt};
use tower_bearer::registry::IssueRequest;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 2_000;

fn router() -> Router {
    Router::new().route("/items/{id}", get(|| async { "item" }))
}

/// Allocations (and reallocations) of `REQUESTS` requests through `service`, warmed first.
async fn allocations<S>(mut service: S, token: &str) -> usize
where
    S: Service<Request<Body>, Response = http::Response<Body>>,
    S::Error: std::fmt::Debug,
{
    let request = || {
        Request::get("/items/7")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..100 {
        let ready = service.ready().await.unwrap();
        assert_eq!(ready.call(request()).await.unwrap().status(), 200);
    }
    let requests: Vec<_> = (0..REQUESTS).map(|_| request()).collect();
    let region = Region::new(GLOBAL);
    for request in requests {
        let ready = service.ready().await.unwrap();
        black_box(ready.call(request).await.unwrap());
    }
    let change = region.change();
    change.allocations + change.reallocations
}

#[tokio::test(flavor = "current_thread")]
async fn a_cache_hit_allocates_only_the_principals_box() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(IssueRequest::new("ci", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let without = allocations(router(), &token).await;
    let with = allocations(BearerAuthLayer::new(registry).protect(router()), &token).await;
    println!(
        "allocations per request: without the layer {:.2}, with it {:.2}",
        without as f64 / REQUESTS as f64,
        with as f64 / REQUESTS as f64
    );
    // Before: the principal made the fourth entry of a map made for three (axum inserts
    // `OriginalUri`, `UrlParams` and `MatchedPath` after it), and the map grew.
    assert_eq!(with, without + REQUESTS, "without {without}, with {with}");
}
