//! `Registry::verify` on a cache hit against the floor: SHA-256 of the token plus one
//! DashMap lookup, with 1,000,000 tokens cached. Target: within 2× of the floor.
//!
//! `cargo bench --bench registry_verify`
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use dashmap::DashMap;
use sha2::{Digest as _, Sha256};
use tower_bearer::registry::Check;

fn verify(c: &mut Criterion) {
    let (runtime, registry, tokens) = support::cached_registry();
    let count = tokens.len();
    let token = tokens[count / 2].as_str();

    // The floor: hash the token, look the digest up in a million-entry DashMap.
    let floor: DashMap<[u8; 32], Arc<()>> = DashMap::with_capacity(count);
    for token in &tokens {
        floor.insert(Sha256::digest(token.as_bytes()).into(), Arc::new(()));
    }

    let mut group = c.benchmark_group("verify_hit");
    group.bench_function("floor_sha256_plus_dashmap_get", |b| {
        b.iter(|| {
            let digest: [u8; 32] = Sha256::digest(black_box(token).as_bytes()).into();
            black_box(floor.get(&digest).map(|entry| entry.value().clone()))
        })
    });
    group.bench_function("tower_bearer_check", |b| {
        b.iter(|| match registry.check(black_box(token)) {
            Check::Done(Ok(principal)) => black_box(principal),
            other => panic!("not a hit: {other:?}"),
        })
    });
    group.bench_function("tower_bearer_verify_async", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(registry.verify(black_box(token)).await.unwrap()) })
    });
    group.finish();

    // Where the time of a hit goes.
    let mut parts = c.benchmark_group("verify_parts");
    let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    parts.bench_function("parse_authorization_header", |b| {
        b.iter(|| {
            black_box(
                tower_bearer::header::parse_authorization(black_box(header.as_bytes())).unwrap(),
            )
        })
    });
    let format = tower_bearer::token::PrefixedFormat::default();
    parts.bench_function("shape_and_checksum", |b| {
        b.iter(|| black_box(format.decode(black_box(token)).unwrap()))
    });
    parts.bench_function("sha256", |b| {
        b.iter(|| black_box(tower_bearer::token::Digest::of(black_box(token).as_bytes())))
    });
    let formats = tower_bearer::token::Formats::default();
    parts.bench_function("decode_shape_checksum_sha256", |b| {
        b.iter(|| black_box(formats.decode(black_box(token)).unwrap()))
    });
    let checked = &token.as_bytes()[..token.len() - 6];
    parts.bench_function("crc32", |b| {
        b.iter(|| black_box(crc32fast::hash(black_box(checked))))
    });
    let clock = tower_bearer::Clock::system();
    parts.bench_function("clock_read", |b| b.iter(|| black_box(clock.now_nanos())));
    parts.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
