//! The issue "Performance"'s table, every figure from one run: a cache hit's overhead
//! through an axum `Router` against the floor (SHA-256 of the presented token and one
//! lookup in a map of 1,000,000 entries), for one hot token and for 65,536 tokens
//! rotating over the 1,000,000 cached; with the layer around the whole `Router` and with
//! `Router::layer`, beside what a no-op layer costs there, tower-http's static compare
//! and a `jsonwebtoken` HS256 check.
//!
//! `cargo bench --bench hit_floor`. A plain harness: the variants run in alternating
//! blocks of requests (on a current-thread runtime, in-process `Service::call`), and each
//! overhead is the median over the rounds of the block's time per request minus the
//! same round's no-auth time, which moves least on a noisy machine.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use dashmap::DashMap;
use http::{HeaderValue, Request, StatusCode};
use sha2::{Digest as _, Sha256};
use tower::util::{BoxCloneSyncService, MapRequestLayer};
use tower::{Layer as _, Service, ServiceExt};
use tower_bearer::BearerAuthLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;

const ROTATING: usize = 65_536;
const ROUNDS: usize = 41;
const BLOCK: usize = 20_000;

type Boxed = BoxCloneSyncService<Request<Body>, Response, Infallible>;

fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
}

/// One variant: a service and the headers its requests carry in turn.
struct Variant {
    name: &'static str,
    service: Boxed,
    headers: Vec<HeaderValue>,
}

impl Variant {
    fn new(name: &'static str, service: Boxed, headers: Vec<HeaderValue>) -> Self {
        Self {
            name,
            service,
            headers,
        }
    }

    /// Nanoseconds per request over one block.
    async fn block(&self, offset: usize) -> f64 {
        let mut service = self.service.clone();
        let start = Instant::now();
        for i in 0..BLOCK {
            let header = &self.headers[(offset + i) % self.headers.len()];
            let request = support::request(header);
            let ready = ServiceExt::<Request<Body>>::ready(&mut service)
                .await
                .unwrap();
            let response = ready.call(request).await.unwrap();
            debug_assert!(response.status().is_success());
            black_box(response);
        }
        start.elapsed().as_nanos() as f64 / BLOCK as f64
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let (runtime, registry, tokens) = support::cached_registry();
    let hot = vec![bearer(&tokens[tokens.len() / 2])];
    let step = (tokens.len() / ROTATING).max(1);
    let rotating_tokens: Vec<&String> = tokens.iter().step_by(step).take(ROTATING).collect();
    let rotating: Vec<HeaderValue> = rotating_tokens.iter().map(|t| bearer(t)).collect();

    let limited = runtime.block_on(support::issue_rate_limited(&registry));
    let limited = vec![bearer(&limited)];
    let jwt = vec![bearer(&support::hs256::token())];
    let static_token = vec![bearer("a-static-token-of-44-characters-length-xxxx")];
    let auth = || BearerAuthLayer::new(registry.clone());
    #[allow(deprecated)]
    let static_bearer =
        || ValidateRequestHeaderLayer::bearer("a-static-token-of-44-characters-length-xxxx");
    let hs256_layer = support::hs256::layer;
    let noop = || MapRequestLayer::new(|request: Request<Body>| request);
    // What inserting a principal into the request's extensions costs by itself (an
    // allocation for the map, one for the value, and axum's later inserts growing it).
    let principal =
        tower_bearer::Principal::builder(tower_bearer::TokenId::new(7), "a", "b").build();
    let insert_only = move || {
        let principal = principal.clone();
        MapRequestLayer::new(move |mut request: Request<Body>| {
            request.extensions_mut().insert(principal.clone());
            request
        })
    };

    let variants = [
        Variant::new("no auth", Boxed::new(app()), hot.clone()),
        Variant::new("outer, hot", Boxed::new(auth().layer(app())), hot.clone()),
        Variant::new(
            "outer, rotating",
            Boxed::new(auth().layer(app())),
            rotating.clone(),
        ),
        Variant::new(
            "outer, hot, one rate limit",
            Boxed::new(auth().layer(app())),
            limited,
        ),
        Variant::new(
            "Router::layer, no-op",
            Boxed::new(app().layer(noop())),
            hot.clone(),
        ),
        Variant::new(
            "Router::layer, hot",
            Boxed::new(app().layer(auth())),
            hot.clone(),
        ),
        Variant::new(
            "Router::layer, rotating",
            Boxed::new(app().layer(auth())),
            rotating,
        ),
        Variant::new(
            "outer, inserting a principal only",
            Boxed::new(insert_only().layer(app())),
            hot.clone(),
        ),
        Variant::new(
            "outer, tower-http static",
            Boxed::new(static_bearer().layer(app())),
            static_token.clone(),
        ),
        Variant::new(
            "Router::layer, tower-http static",
            Boxed::new(app().layer(static_bearer())),
            static_token,
        ),
        Variant::new(
            "outer, HS256",
            Boxed::new(hs256_layer().layer(app())),
            jwt.clone(),
        ),
        Variant::new(
            "Router::layer, HS256",
            Boxed::new(app().layer(hs256_layer())),
            jwt,
        ),
    ];
    for variant in &variants {
        let response = runtime
            .block_on(
                variant
                    .service
                    .clone()
                    .oneshot(support::request(&variant.headers[0])),
            )
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", variant.name);
    }

    // The floor: SHA-256 of the token, one read of a 1M-entry map.
    let floor: DashMap<[u8; 32], u64> = DashMap::with_capacity(tokens.len());
    for (n, token) in tokens.iter().enumerate() {
        floor.insert(Sha256::digest(token.as_bytes()).into(), n as u64);
    }
    let floor_block = |tokens: &[&String], offset: usize| {
        let start = Instant::now();
        for i in 0..BLOCK {
            let token = tokens[(offset + i) % tokens.len()];
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            black_box(*floor.get(&digest).unwrap());
        }
        start.elapsed().as_nanos() as f64 / BLOCK as f64
    };
    let hot_token = [&tokens[tokens.len() / 2]];

    let mut times = vec![Vec::with_capacity(ROUNDS); variants.len()];
    let (mut floor_hot, mut floor_rotating) = (Vec::new(), Vec::new());
    runtime.block_on(async {
        for round in 0..ROUNDS {
            let offset = round * BLOCK;
            for (variant, times) in variants.iter().zip(&mut times) {
                times.push(variant.block(offset).await);
            }
            floor_hot.push(floor_block(&hot_token, offset));
            floor_rotating.push(floor_block(&rotating_tokens, offset));
        }
    });
    let overhead = |index: usize| {
        let mut differences: Vec<f64> =
            (0..ROUNDS).map(|r| times[index][r] - times[0][r]).collect();
        median(&mut differences)
    };
    let floor_hot = median(&mut floor_hot);
    let floor_rotating = median(&mut floor_rotating);
    let index = |name: &str| variants.iter().position(|v| v.name == name).unwrap();
    let noop = overhead(index("Router::layer, no-op"));
    println!(
        "hit_floor: {} tokens cached, {ROUNDS} rounds of {BLOCK} requests",
        tokens.len()
    );
    println!(
        "  no auth: {:.0} ns per request (median)",
        median(&mut times[0].clone())
    );
    println!("  floor, one hot token: {floor_hot:.0} ns; 65,536 rotating: {floor_rotating:.0} ns");
    for (index, variant) in variants.iter().enumerate().skip(1) {
        let over = overhead(index);
        let floor = if variant.name.ends_with("rotating") {
            floor_rotating
        } else {
            floor_hot
        };
        let versus = if variant.name.starts_with("Router::layer, ")
            && variant.name != "Router::layer, no-op"
        {
            format!(
                "{:.2}x the floor; {:.2}x after the no-op layer's {noop:.0} ns",
                over / floor,
                (over - noop) / floor
            )
        } else {
            format!("{:.2}x the floor", over / floor)
        };
        println!("  {}: +{over:.0} ns ({versus})", variant.name);
    }
    println!(
        "  one rate limit: +{:.0} ns per request over the same key without (target: at most +60 ns)",
        overhead(index("outer, hot, one rate limit")) - overhead(index("outer, hot"))
    );
    println!(
        "  HS256 / ours, outer: {:.1}x; Router::layer: {:.1}x",
        overhead(index("outer, HS256")) / overhead(index("outer, hot")),
        overhead(index("Router::layer, HS256")) / overhead(index("Router::layer, hot"))
    );
    drop((registry, runtime));
}
