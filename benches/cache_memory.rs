//! Memory per cached token at 1,000,000 tokens, by counting allocations.
//!
//! `cargo bench --bench cache_memory`. Target: at most 200 bytes per cached token.
//! Reports bytes requested from the allocator (what the cache holds; malloc adds its own
//! chunk overhead per allocation, reported as allocations per token).

#[path = "support/mod.rs"]
mod support;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use tower_bearer::MemoryStore;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let count = support::token_count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let registry = support::registry(MemoryStore::new(), count);
        let tokens = support::issue_many(&registry, count, 1_000).await;
        // Nothing is cached by issuance; the store's records are outside the region.
        assert_eq!(registry.cache_stats().tokens, 0);

        let region = Region::new(GLOBAL);
        support::warm(&registry, &tokens).await;
        registry.flush().await.unwrap();
        let change = region.change();
        assert_eq!(registry.cache_stats().tokens, count);

        let live = change.bytes_allocated as isize - change.bytes_deallocated as isize
            + change.bytes_reallocated;
        let per_token = live as f64 / count as f64;
        let allocations = change.allocations as isize - change.deallocations as isize;
        println!("cached tokens:             {count}");
        println!("live bytes in the cache:   {live}");
        println!("bytes per cached token:    {per_token:.1} (target <= 200)");
        println!(
            "live allocations per token: {:.2}",
            allocations as f64 / count as f64
        );
        println!(
            "result: {}",
            if per_token <= 200.0 {
                "within target"
            } else {
                "OVER TARGET"
            }
        );
    });
}
