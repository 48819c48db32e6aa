//! Tokens that threads verify again and again are served from each thread's own copy of
//! the cache entry (so that cores share no cache line per request): revocation, change,
//! expiry and usage counting hold for those copies as for the shared entry, on every
//! thread. Real OS threads, each verifying on a runtime of its own.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::InstrumentedStore;
use time::macros::datetime;
use tokio::runtime::Runtime;
use tower_bearer::clock::ManualClock;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::scope::ScopeSet;
use tower_bearer::store::TokenUpdate;
use tower_bearer::{MemoryStore, Principal, Registry, RejectCause, VerifyError};

const THREADS: usize = 4;
/// Enough hits for every thread to have made its copy many times over.
const HITS: usize = 200;

/// Runs `work` on [`THREADS`] OS threads, each with a runtime of its own, and `between`
/// on this thread while they all wait: every thread makes `HITS` verifications of
/// `token` first, then `work`'s after `between`.
fn on_threads<T: Send + 'static>(
    registry: &Registry,
    token: &str,
    between: impl FnOnce(),
    work: impl Fn(&Runtime, &Registry, &str) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let warm = Arc::new(Barrier::new(THREADS + 1));
    let go = Arc::new(Barrier::new(THREADS + 1));
    let work = Arc::new(work);
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (registry, token) = (registry.clone(), token.to_owned());
            let (warm, go, work) = (warm.clone(), go.clone(), work.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                for _ in 0..HITS {
                    runtime.block_on(registry.verify(&token)).unwrap();
                }
                warm.wait();
                go.wait();
                work(&runtime, &registry, &token)
            })
        })
        .collect();
    warm.wait();
    between();
    go.wait();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn verify(runtime: &Runtime, registry: &Registry, token: &str) -> Result<Principal, VerifyError> {
    runtime.block_on(registry.verify(token))
}

fn cause(result: Result<Principal, VerifyError>) -> Option<RejectCause> {
    result.err().and_then(|error| error.cause())
}

async fn issue(registry: &Registry, request: IssueRequest) -> (tower_bearer::TokenId, String) {
    let issued = registry.issue(request).await.unwrap();
    (issued.info.id, issued.secret.expose_secret().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_hot_on_every_thread_is_rejected_on_every_thread_once_revoked() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let (id, token) = issue(&registry, IssueRequest::new("hot", "acme").unwrap()).await;

    let revoker = registry.clone();
    let handle = tokio::runtime::Handle::current();
    let causes = tokio::task::spawn_blocking(move || {
        on_threads(
            &revoker.clone(),
            &token,
            || handle.block_on(revoker.revoke("acme", id)).unwrap(),
            |runtime, registry, token| cause(verify(runtime, registry, token)),
        )
    })
    .await
    .unwrap();
    assert_eq!(causes, vec![Some(RejectCause::Revoked); THREADS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_a_token_hot_on_every_thread_holds_on_every_thread() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let request = IssueRequest::new("hot", "acme")
        .unwrap()
        .scopes(["read"])
        .unwrap();
    let (id, token) = issue(&registry, request).await;

    let changer = registry.clone();
    let handle = tokio::runtime::Handle::current();
    let seen = tokio::task::spawn_blocking(move || {
        on_threads(
            &changer.clone(),
            &token,
            || {
                let update = TokenUpdate::new()
                    .name("renamed")
                    .scopes(ScopeSet::parse(["write"]).unwrap());
                handle.block_on(changer.update("acme", id, update)).unwrap();
            },
            |runtime, registry, token| {
                let principal = verify(runtime, registry, token).unwrap();
                (principal.name().to_owned(), principal.has_scope("write"))
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(seen, vec![("renamed".to_owned(), true); THREADS]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_hot_on_every_thread_stops_working_exactly_at_expires_at() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .positive_ttl(Duration::from_secs(3600))
        .build();
    let request = IssueRequest::new("short", "acme")
        .unwrap()
        .expires(Expiry::In(Duration::from_secs(60)));
    let (_, token) = issue(&registry, request).await;

    let before = {
        let (registry, token, clock) = (registry.clone(), token.clone(), clock.clone());
        tokio::task::spawn_blocking(move || {
            on_threads(
                &registry,
                &token,
                || clock.advance(Duration::from_secs(60) - Duration::from_nanos(1)),
                |runtime, registry, token| verify(runtime, registry, token).is_ok(),
            )
        })
        .await
        .unwrap()
    };
    assert_eq!(before, vec![true; THREADS]);

    let after = tokio::task::spawn_blocking(move || {
        on_threads(
            &registry,
            &token,
            || clock.advance(Duration::from_nanos(1)),
            |runtime, registry, token| cause(verify(runtime, registry, token)),
        )
    })
    .await
    .unwrap();
    assert_eq!(after, vec![Some(RejectCause::Expired); THREADS]);
    assert_eq!(store.lookups(), 1, "every thread answered from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uses_of_a_token_hot_on_every_thread_add_up() {
    let registry = Registry::builder(MemoryStore::new())
        .usage_flush_interval(Duration::from_secs(3600))
        .build();
    let (id, token) = issue(&registry, IssueRequest::new("hot", "acme").unwrap()).await;

    let counted = registry.clone();
    tokio::task::spawn_blocking(move || {
        on_threads(
            &counted.clone(),
            &token,
            || {},
            |runtime, registry, token| {
                for _ in 0..HITS {
                    verify(runtime, registry, token).unwrap();
                }
            },
        )
    })
    .await
    .unwrap();
    // Flushed twice, so that counts taken from the threads' copies and from the shared
    // entry both reach the store once.
    registry.flush().await.unwrap();
    registry.flush().await.unwrap();
    let info = registry.get("acme", id).await.unwrap();
    assert_eq!(info.use_count, (THREADS * HITS * 2) as u64);
}
