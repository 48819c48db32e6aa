//! How cache hits scale with cores: `Registry::verify` (decode, SHA-256, lookup, checks,
//! usage counting, the principal) from one thread and from two, for one hot token and
//! for 65,536 tokens rotating over 1,000,000 cached; beside the floor (SHA-256 and a
//! DashMap lookup), read-only and with the `Arc` clone a lookup hands out.
//!
//! `cargo bench --bench multicore`. Target (issue "Performance"): two threads reach
//! ≥ 1.8× one thread's throughput. One thread and two alternate over several rounds. A write every request makes to a cache line shared
//! by all requests (or by all requests of one token) shows up as poor scaling of the hot
//! token against the rotating tokens and against the floor.
// A plain harness: each measurement is a fixed time on N threads, counted.
#![allow(missing_docs)]

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use sha2::{Digest as _, Sha256};
use tower_bearer::Registry;
use tower_bearer::registry::Check;

const ROTATING: usize = 65_536;
/// Each round measures one thread, then two, for this long each.
const RUN: Duration = Duration::from_millis(400);
/// Rounds per measurement: the ratio reported is the median of the rounds' ratios, so
/// that a noisy neighbour during one round does not decide it.
const ROUNDS: usize = 7;

/// Operations per second of `work(thread, i)` on `threads` threads for [`RUN`].
fn throughput(threads: usize, work: &(dyn Fn(usize, usize) + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let total: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..256 {
                            work(thread, done as usize);
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(name: &str, work: &(dyn Fn(usize, usize) + Sync)) {
    let (mut ones, mut twos, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let one = throughput(1, work);
        let two = throughput(2, work);
        ones.push(one);
        twos.push(two);
        ratios.push(two / one);
    }
    let (one, two) = (median(&mut ones), median(&mut twos));
    println!(
        "multicore/{name}: 1 thread {:.2} M/s ({:.0} ns each), 2 threads {:.2} M/s: {:.2}x (median of {ROUNDS} rounds' ratios; lowest {:.2}x)",
        one / 1e6,
        1e9 / one,
        two / 1e6,
        median(&mut ratios),
        ratios[0]
    );
}

fn main() {
    let (runtime, registry, tokens): (_, Registry, Vec<String>) = support::cached_registry();
    let hot = &tokens[tokens.len() / 2];
    // The rotating tokens, spread over the million: each thread walks them from its own
    // offset.
    let step = tokens.len() / ROTATING;
    let rotating: Vec<&String> = tokens.iter().step_by(step.max(1)).take(ROTATING).collect();
    let verify = |token: &str| {
        let Check::Done(Ok(principal)) = registry.check(token) else {
            panic!("not a hit")
        };
        black_box(principal);
    };
    report("verify_hot", &|_, _| verify(hot));
    report("verify_rotating", &|thread, i| {
        verify(rotating[(i + thread * ROTATING / 2) % rotating.len()])
    });

    // Through the layer (the policies are the layer's), each thread with its own service
    // and header value, so that nothing but the token's state is shared: the same hot
    // key without policies, and with one rate limit.
    let limited = runtime.block_on(support::issue_rate_limited(&registry));
    for (name, token) in [
        ("layer_hot", hot.as_str()),
        ("layer_hot_rate_limited", limited.as_str()),
    ] {
        let header = http::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        let per_thread: Vec<_> = (0..2)
            .map(|_| {
                let service = tower::Layer::layer(
                    &tower_bearer::BearerAuthLayer::new(registry.clone()),
                    tower::service_fn(|_: http::Request<axum::body::Body>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            axum::body::Body::empty(),
                        ))
                    }),
                );
                let header = http::HeaderValue::from_bytes(header.as_bytes()).unwrap();
                std::sync::Mutex::new((service, header))
            })
            .collect();
        // The first request reserves the key's budget (a store call, on the runtime).
        for slot in &per_thread {
            let (service, header) = &mut *slot.lock().unwrap();
            let call = tower::Service::call(service, support::request(header));
            assert!(runtime.block_on(call).unwrap().status().is_success());
        }
        report(name, &|thread, _| {
            let mut slot = per_thread[thread].lock().unwrap();
            let (service, header) = &mut *slot;
            let request = support::request(header);
            let future = tower::Service::call(service, request);
            let response = futures_util::FutureExt::now_or_never(future)
                .expect("a cache hit answers at once")
                .unwrap();
            assert!(response.status().is_success());
            black_box(response);
        });
    }

    let floor: DashMap<[u8; 32], Arc<()>> = DashMap::with_capacity(tokens.len());
    for token in &tokens {
        floor.insert(Sha256::digest(token.as_bytes()).into(), Arc::new(()));
    }
    let lookup = |token: &str, clone: bool| {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let entry = floor.get(&digest).unwrap();
        if clone {
            black_box(entry.value().clone());
        } else {
            black_box(entry.value());
        }
    };
    report("floor_hot_read_only", &|_, _| lookup(hot, false));
    report("floor_hot_arc_clone", &|_, _| lookup(hot, true));
    report("floor_rotating_arc_clone", &|thread, i| {
        lookup(rotating[(i + thread * ROTATING / 2) % rotating.len()], true)
    });
    report("floor_rotating_read_only", &|thread, i| {
        lookup(
            rotating[(i + thread * ROTATING / 2) % rotating.len()],
            false,
        )
    });
    // The same reads from a map no thread writes to, without a lock: what the machine
    // itself allows (two cores sharing the last-level cache and memory).
    let unlocked: std::collections::HashMap<[u8; 32], Arc<()>, foldhash::fast::RandomState> = floor
        .iter()
        .map(|entry| (*entry.key(), entry.value().clone()))
        .collect();
    report("floor_rotating_no_lock", &|thread, i| {
        let token = rotating[(i + thread * ROTATING / 2) % rotating.len()];
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        black_box(unlocked.get(&digest).unwrap());
    });
    drop((registry, runtime));
}
