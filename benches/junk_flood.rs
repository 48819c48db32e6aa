//! Junk floods: how many store queries junk tokens cause (target: none for bad checksums
//! and wrong shapes; one per distinct well-formed unknown per negative TTL), and how fast
//! they are rejected.
//!
//! `cargo bench --bench junk_flood`
// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use support::CountingStore;
use tower_bearer::registry::Check;
use tower_bearer::token::{Env, PrefixedFormat};
use tower_bearer::{MemoryStore, Registry};

fn flood(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let store = CountingStore::new(MemoryStore::new());
    let registry = Registry::builder(store.clone()).build();
    let format = PrefixedFormat::default();

    let well_formed: Vec<String> = (0..10_000)
        .map(|_| {
            format
                .mint(Env::Live)
                .unwrap()
                .secret
                .expose_secret()
                .to_owned()
        })
        .collect();
    let bad_checksum: Vec<String> = well_formed
        .iter()
        .map(|token| {
            let mut bytes = token.clone().into_bytes();
            let last = bytes.len() - 1;
            bytes[last] = if bytes[last] == b'a' { b'b' } else { b'a' };
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    let wrong_shape: Vec<String> = (0..10_000).map(|n| format!("not-a-token-{n}")).collect();

    let counted = |tokens: &[String], rounds: usize| {
        runtime.block_on(async {
            let before = store.lookups();
            for _ in 0..rounds {
                for token in tokens {
                    assert!(registry.verify(token).await.is_err());
                }
            }
            store.lookups() - before
        })
    };
    let checksum_queries = counted(&bad_checksum, 10);
    let shape_queries = counted(&wrong_shape, 10);
    let unknown_queries = counted(&well_formed, 10);
    println!("100,000 bad-checksum tokens:        {checksum_queries} store queries (target 0)");
    println!("100,000 wrong-shape tokens:         {shape_queries} store queries (target 0)");
    println!(
        "10,000 unknown tokens x 10 rounds:  {unknown_queries} store queries (target 10,000: one per distinct unknown per negative TTL)"
    );

    let mut group = c.benchmark_group("junk_rejection");
    let token = &bad_checksum[0];
    group.bench_function("bad_checksum", |b| {
        b.iter(|| {
            black_box(matches!(
                registry.check(black_box(token)),
                Check::Done(Err(_))
            ))
        })
    });
    let token = &wrong_shape[0];
    group.bench_function("wrong_shape", |b| {
        b.iter(|| {
            black_box(matches!(
                registry.check(black_box(token)),
                Check::Done(Err(_))
            ))
        })
    });
    let token = &well_formed[0];
    group.bench_function("negative_cache_hit", |b| {
        b.iter(|| {
            black_box(matches!(
                registry.check(black_box(token)),
                Check::Done(Err(_))
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, flood);
criterion_main!(benches);
