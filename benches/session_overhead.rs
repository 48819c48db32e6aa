//! A session access token (a JWT from `POST /auth/login`) once cached, against a cached
//! opaque API key and a fresh HS256 verification of the same JWT, per request through an
//! axum `Router` called in-process, with 1,000,000 API keys cached beside it.
//!
//! `cargo bench --bench session_overhead`, then `python3 scripts/bench_report.py`:
//! targets: cached JWT overhead ≤ 1.2× a cached opaque token's, and ≥ 10× below a fresh
//! HS256 verification, in the same run.
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
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::{BearerAuthLayer, MemoryStore};
use tower_http::validate_request::ValidateRequestHeaderLayer;

const ISSUER: &str = "tower-bearer";

async fn ok() -> &'static str {
    "ok"
}

fn overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count = support::token_count();
    let keys = SessionKeys::new("bench", &[7u8; 32]).unwrap();
    let (registry, tokens, jwt) = runtime.block_on(async {
        let registry = support::builder(MemoryStore::new(), count)
            .sessions(SessionConfig::new(keys.clone()))
            .build();
        let tokens = support::issue_many(&registry, count, 1_000).await;
        support::warm(&registry, &tokens).await;
        let login = registry.login(&tokens[count / 2], None).await.unwrap();
        let jwt = login.access_token.expose_secret().to_owned();
        registry.verify(&jwt).await.unwrap();
        (registry, tokens, jwt)
    });
    let bearer = |token: &str| HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    let opaque = bearer(&tokens[count / 3]);
    let session = bearer(&jwt);

    let app = || Router::new().route("/", get(ok));
    let fresh_hs256 = {
        let keys = keys.clone();
        // The signature and claims check a cache miss makes, on every request.
        #[allow(clippy::result_large_err)]
        move |request: &mut Request<Body>| -> Result<(), Response<Body>> {
            let token = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "));
            match token.map(|token| keys.verify(token, ISSUER)) {
                Some(Ok(claims)) => {
                    request.extensions_mut().insert(claims);
                    Ok(())
                }
                _ => Err(Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .body(Body::empty())
                    .unwrap()),
            }
        }
    };
    let cases: [(&str, Router, &HeaderValue); 4] = [
        ("no_auth", app(), &opaque),
        (
            "opaque_cache_hit",
            app().layer(BearerAuthLayer::new(registry.clone())),
            &opaque,
        ),
        (
            "session_jwt_cache_hit",
            app().layer(BearerAuthLayer::new(registry.clone())),
            &session,
        ),
        (
            "session_jwt_fresh_hs256",
            app().layer(ValidateRequestHeaderLayer::custom(fresh_hs256)),
            &session,
        ),
    ];
    let mut group = c.benchmark_group("session_overhead");
    group.measurement_time(Duration::from_secs(5));
    for (name, router, header) in cases {
        support::bench_router(&mut group, &runtime, name, router, header.clone());
    }
    group.finish();
    drop(registry);
}

criterion_group!(benches, overhead);
criterion_main!(benches);
