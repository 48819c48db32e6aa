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
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower_bearer::BearerAuthLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

#[derive(Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    scope: String,
    exp: u64,
}

/// A HS256 check: what a JWT-based API does on every request. (The `Response` error is
/// tower-http's `ValidateRequest` signature.)
#[allow(clippy::result_large_err)]
fn jwt_check(
    key: DecodingKey,
) -> impl FnMut(&mut Request<Body>) -> Result<(), Response<Body>> + Clone {
    let validation = Validation::new(Algorithm::HS256);
    move |request: &mut Request<Body>| {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match token.map(|token| jsonwebtoken::decode::<Claims>(token, &key, &validation)) {
            Some(Ok(data)) => {
                request.extensions_mut().insert(data.claims);
                Ok(())
            }
            _ => Err(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Body::empty())
                .unwrap()),
        }
    }
}

async fn ok() -> &'static str {
    "ok"
}

fn overhead(c: &mut Criterion) {
    let (runtime, registry, tokens) = support::cached_registry();
    let count = tokens.len();
    let token = &tokens[count / 2];
    let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).unwrap();

    let secret = b"an HS256 secret of a reasonable length, 32+ bytes";
    let claims = Claims {
        sub: "42".into(),
        tenant: "tenant-1".into(),
        scope: "read write".into(),
        exp: 4_102_444_800, // 2100-01-01
    };
    let jwt = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap();

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
        app().layer(ValidateRequestHeaderLayer::custom(jwt_check(
            DecodingKey::from_secret(secret),
        ))),
        bearer(&jwt),
    );
    // Keep the registry (and its million tokens) alive through the measurements.
    drop(registry);
}

criterion_group!(benches, overhead);
criterion_main!(benches);
