//! `Registry::watch`: resolves the moment a credential stops being valid (revoked here or
//! on another node, expired, its key revoked), and not for a change that leaves it valid.
#![cfg(feature = "exchange")]

mod support;

use std::time::{Duration, Instant};

use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::store::TokenUpdate;
use tower_bearer::{MemoryStore, Registry, RejectCause, ScopeSet, TokenId, VerifyError};

fn registry() -> Registry {
    Registry::builder(MemoryStore::new())
        .sessions(SessionConfig::new(
            SessionKeys::new("w", &[9u8; 32]).unwrap(),
        ))
        .build()
}

async fn issue(registry: &Registry, expiry: Expiry) -> (TokenId, String) {
    let issued = registry
        .issue(
            IssueRequest::new("watched", "acme")
                .unwrap()
                .scopes(["read", "write"])
                .unwrap()
                .expires(expiry),
        )
        .await
        .unwrap();
    (issued.info.id, issued.secret.expose_secret().to_owned())
}

fn cause(error: &VerifyError) -> Option<RejectCause> {
    match error {
        VerifyError::Rejected { cause, .. } => Some(*cause),
        _ => None,
    }
}

/// Spawns a watch of `token`; waits until it is parked.
async fn watching(registry: &Registry, token: &str) -> tokio::task::JoinHandle<VerifyError> {
    let (registry, token) = (registry.clone(), token.to_owned());
    let handle = tokio::spawn(async move { registry.watch(&token).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!handle.is_finished(), "a valid token's watch waits");
    handle
}

/// The watch's answer; fails (instead of hanging) if it has not ended within 2 s.
async fn ended(watch: tokio::task::JoinHandle<VerifyError>) -> VerifyError {
    tokio::time::timeout(Duration::from_secs(2), watch)
        .await
        .expect("the watch ends")
        .unwrap()
}

/// On tokio's paused clock, which moves only when every task waits for a timer: had the
/// watch noticed the revocation by polling, the clock would have moved to the poll's
/// timer. It does not move at all: the revocation itself wakes the watch.
#[tokio::test(start_paused = true)]
async fn a_revocation_ends_the_watch_at_once() {
    let registry = registry();
    let (id, token) = issue(&registry, Expiry::Default).await;
    let (_, other) = issue(&registry, Expiry::Default).await;
    let watch = watching(&registry, &token).await;
    let bystander = watching(&registry, &other).await;
    let start = tokio::time::Instant::now();
    registry.revoke("acme", id).await.unwrap();
    let ended = ended(watch).await;
    assert_eq!(cause(&ended), Some(RejectCause::Revoked));
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "woken by a timer, not by the revocation"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!bystander.is_finished(), "another token's watch goes on");
    bystander.abort();
}

#[tokio::test]
async fn an_invalid_token_ends_at_once_and_expiry_ends_the_watch() {
    let registry = registry();
    let ended = registry.watch("sk_live_nope").await;
    assert!(cause(&ended).is_some());
    let (_, token) = issue(&registry, Expiry::In(Duration::from_millis(1500))).await;
    let start = Instant::now();
    let ended = registry.watch(&token).await;
    assert_eq!(cause(&ended), Some(RejectCause::Expired));
    let took = start.elapsed();
    assert!(
        took > Duration::from_millis(1000) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// Issue 26 #11: any change to a token (scopes, name, expiry) ends its watch like a
/// revocation does: a socket authenticated with it closes, and the client reconnects
/// with its new rights. A watch that wakes for another reason and finds the token as it
/// was goes on.
#[tokio::test]
async fn a_change_to_the_token_ends_the_watch() {
    let registry = registry();
    for update in [
        TokenUpdate::new().scopes(ScopeSet::parse(["read"]).unwrap()),
        TokenUpdate::new().name("renamed"),
        TokenUpdate::new().expires_at(time::OffsetDateTime::now_utc() + Duration::from_secs(3600)),
    ] {
        let (id, token) = issue(&registry, Expiry::Default).await;
        let (_, other) = issue(&registry, Expiry::Default).await;
        let watch = watching(&registry, &token).await;
        let bystander = watching(&registry, &other).await;
        registry.update("acme", id, update).await.unwrap();
        assert_eq!(cause(&ended(watch).await), Some(RejectCause::Changed));
        // The token itself still works: a new connection gets the new rights.
        registry.verify(&token).await.unwrap();
        assert!(!bystander.is_finished());
    }
}

#[tokio::test]
async fn a_session_watch_ends_with_its_session_or_its_key() {
    let registry = registry();
    let (id, key) = issue(&registry, Expiry::Default).await;
    let first = registry.login(&key, Some("a")).await.unwrap();
    let second = registry.login(&key, Some("b")).await.unwrap();
    let watch_first = watching(&registry, first.access_token.expose_secret()).await;
    let watch_second = watching(&registry, second.access_token.expose_secret()).await;
    registry
        .revoke_session("acme", first.session.id)
        .await
        .unwrap();
    assert!(cause(&ended(watch_first).await).is_some());
    assert!(!watch_second.is_finished());
    registry.revoke("acme", id).await.unwrap();
    assert!(cause(&ended(watch_second).await).is_some());
}

/// Thousands of watchers park without a task of their own or a periodic wake-up; a
/// revocation wakes its own token's watchers only.
#[tokio::test]
async fn many_watchers_each_wake_for_their_own_token() {
    let registry = registry();
    let mut tokens = Vec::new();
    for _ in 0..200 {
        tokens.push(issue(&registry, Expiry::Default).await);
    }
    let mut watches = Vec::new();
    for (_, token) in &tokens {
        for _ in 0..5 {
            let (registry, token) = (registry.clone(), token.clone());
            watches.push(tokio::spawn(async move { registry.watch(&token).await }));
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    registry.revoke("acme", tokens[7].0).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let finished: Vec<usize> = watches
        .iter()
        .enumerate()
        .filter(|(_, watch)| watch.is_finished())
        .map(|(at, _)| at / 5)
        .collect();
    assert_eq!(
        finished, [7; 5],
        "the five watchers of token 7, and no other"
    );
    for watch in watches {
        watch.abort();
    }
}

/// Two nodes on one PostgreSQL database: a revocation on A ends a watch on B as soon
/// as the change feed delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_another_node_ends_the_watch() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let (a, b) = (
        support::postgres::node(&url, "watch-a", |builder| builder).await,
        support::postgres::node(&url, "watch-b", |builder| builder).await,
    );
    let (id, token) = issue(&a, Expiry::Default).await;
    let watch = watching(&b, &token).await;
    let start = Instant::now();
    a.revoke("acme", id).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(2), watch)
        .await
        .expect("the watch on B ends")
        .unwrap();
    assert_eq!(cause(&ended), Some(RejectCause::Revoked));
    eprintln!(
        "revoke on A to the end of the watch on B: {:?}",
        start.elapsed()
    );
}

/// Waits for `watch` to end, within `bound` (`what` says why that bound), because its
/// token is gone from the store (unknown there, or revoked).
async fn ends_as_gone(watch: tokio::task::JoinHandle<VerifyError>, bound: Duration, what: &str) {
    let ended = tokio::time::timeout(bound, watch)
        .await
        .unwrap_or_else(|_| panic!("the watch did not end within {what}"))
        .unwrap();
    assert!(
        matches!(
            cause(&ended),
            Some(RejectCause::Unknown | RejectCause::Revoked)
        ),
        "{ended:?}"
    );
}

/// Issue 26 #3: two processes on one SQLite file (two registries on two connections, no
/// change feed between them). A revocation on A reaches B only by B's cache TTL; a watch
/// on B must end then, when B re-checks the token against the store, not live on.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_revocation_seen_only_through_the_store_ends_the_watch_after_the_ttl() {
    use tower_bearer::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let open = async || {
        Registry::builder(SqliteStore::open(&path).await.unwrap())
            .positive_ttl(Duration::from_secs(1))
            .build()
    };
    let (a, b) = (open().await, open().await);
    let (id, token) = issue(&a, Expiry::Default).await;
    let (_, other) = issue(&a, Expiry::Default).await;
    b.verify(&token).await.unwrap();
    let watch = watching(&b, &token).await;
    let bystander = watching(&b, &other).await;
    let start = Instant::now();
    a.revoke("acme", id).await.unwrap();
    ends_as_gone(watch, Duration::from_secs(6), "the positive TTL + 5 s").await;
    eprintln!("revoked on A, watch on B ended after {:?}", start.elapsed());
    // A token that is still valid is re-checked too, and goes on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!bystander.is_finished(), "a valid token's watch goes on");
}

/// Issue 26 #3: a node whose change feed goes down misses a revocation made elsewhere;
/// once the feed has been down for the feed-down TTL its cached entries are re-checked
/// against the store, and a watch of the revoked token ends then (not after the 60 s
/// positive TTL, nor never).
#[tokio::test]
async fn a_feed_down_past_its_ttl_ends_the_watch_of_a_token_revoked_meanwhile() {
    use tower_bearer::store::Change;
    let shared = MemoryStore::new();
    let (driven, feed) = support::InstrumentedStore::with_driven_feed(shared.clone());
    let b = Registry::builder(driven)
        .feed_down_ttl(Duration::from_secs(1))
        .build();
    let a = Registry::builder(shared).build();
    let (id, token) = issue(&a, Expiry::Default).await;
    b.verify(&token).await.unwrap();
    let watch = watching(&b, &token).await;
    // The feed breaks; the revocation on A never reaches B through it.
    feed.send(Change::FeedDown).unwrap();
    let start = Instant::now();
    a.revoke("acme", id).await.unwrap();
    ends_as_gone(
        watch,
        Duration::from_secs(4),
        "the feed-down TTL and a re-check",
    )
    .await;
    eprintln!("feed down, watch ended after {:?}", start.elapsed());
}
