//! The registry against a real in-memory store: caching, single-flight, revocation,
//! expiry, bounds, failures, lifecycle and usage.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use support::InstrumentedStore;
use time::macros::datetime;
use tower_bearer::clock::ManualClock;
use tower_bearer::registry::{Expiry, IssueRequest, Issued, RegistryError, RotateRequest};
use tower_bearer::token::{Env, Formats, IssueFormat, Malformed, PrefixedFormat};
use tower_bearer::{MemoryStore, Registry, RejectCause, TokenKind, TokenStore as _, VerifyError};

fn request(name: &str, tenant: &str, scopes: &[&str]) -> IssueRequest {
    IssueRequest::new(name, tenant)
        .unwrap()
        .scopes(scopes)
        .unwrap()
}

async fn issue(registry: &Registry, tenant: &str, scopes: &[&str]) -> (Issued, String) {
    let issued = registry
        .issue(request("test token", tenant, scopes))
        .await
        .unwrap();
    let plaintext = issued.secret.expose_secret().to_owned();
    (issued, plaintext)
}

fn cause(result: Result<tower_bearer::Principal, VerifyError>) -> RejectCause {
    match result {
        Err(VerifyError::Rejected { cause, .. }) => cause,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// A well-formed token (valid checksum) that was never issued.
fn unknown_token() -> String {
    PrefixedFormat::default()
        .mint(Env::Live)
        .unwrap()
        .secret
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn issued_token_verifies_with_its_principal() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let (issued, token) = issue(&registry, "acme", &["write", "billing:read"]).await;

    assert!(token.starts_with("sk_live_"));
    let principal = registry.verify(&token).await.unwrap();
    assert_eq!(principal.id(), issued.info.id);
    assert_eq!(principal.name(), "test token");
    assert_eq!(principal.tenant(), "acme");
    assert_eq!(principal.env(), Env::Live);
    assert_eq!(principal.kind(), TokenKind::ApiKey);
    assert!(principal.has_scope("write"));
    assert!(principal.has_scope("read"), "write implies read");
    assert!(principal.has_scope("billing:read"));
    assert!(!principal.has_scope("admin"));
    assert!(!principal.has_scope("billing:write"));
    let expires_at = principal.expires_at().expect("default expiry");
    let lifetime = expires_at - principal.created_at();
    assert_eq!(lifetime, time::Duration::days(180));
}

#[tokio::test]
async fn plaintext_never_appears_in_debug_output() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let (issued, token) = issue(&registry, "acme", &["read"]).await;
    let principal = registry.verify(&token).await.unwrap();
    for debug in [
        format!("{issued:?}"),
        format!("{principal:?}"),
        format!("{registry:?}"),
        format!("{}", issued.secret),
        serde_json::to_string(&principal).unwrap(),
        serde_json::to_string(&issued.info).unwrap(),
    ] {
        assert!(!debug.contains(&token), "{debug}");
        assert!(!debug.contains(&token[8..]), "{debug}");
    }
}

#[tokio::test]
async fn junk_is_rejected_without_a_store_query() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;
    let mut bad_checksum = token.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });

    for junk in [
        "",
        "sk_live_short",
        "pk_live_0123456789012345678901234567890123456",
        "sk_prod_0123456789012345678901234567890123456",
        bad_checksum.as_str(),
        "1|sanctum-is-not-accepted-here",
        "not a token",
    ] {
        assert!(
            matches!(
                cause(registry.verify(junk).await),
                RejectCause::Malformed(_)
            ),
            "{junk}"
        );
    }
    assert_eq!(store.lookups(), 0);
}

#[tokio::test]
async fn a_cache_hit_makes_no_store_query() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;

    for _ in 0..100 {
        registry.verify(&token).await.unwrap();
    }
    assert_eq!(store.lookups(), 1);

    // The store going away does not affect cached tokens.
    store.set_down(true);
    registry.verify(&token).await.unwrap();
}

#[tokio::test]
async fn concurrent_misses_for_one_digest_make_one_store_query() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;

    store.hold_lookups(true);
    let waiting: Vec<_> = (0..64)
        .map(|_| {
            let registry = registry.clone();
            let token = token.clone();
            tokio::spawn(async move { registry.verify(&token).await })
        })
        .collect();
    // On this single-threaded runtime, every verify task runs up to its wait before the
    // lookup task (spawned by the first of them) gets to read the record.
    store.record_read().await;
    store.release(1);
    for verify in waiting {
        verify.await.unwrap().unwrap();
    }
    assert_eq!(store.lookups(), 1);
}

/// A request that missed the cache while another request's lookup was in flight, and
/// that gets to the store only after that lookup landed (a thread preempted between the
/// two, as CI saw once), finds the cache filled: it makes no second query. The layer
/// looks in the cache when it is called and asks the store when its answer is polled,
/// which replays that interleaving on one thread.
#[tokio::test]
async fn a_miss_that_reaches_the_store_after_another_filled_the_cache_makes_no_query() {
    use tower::{Layer as _, Service as _, ServiceExt as _};

    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;
    let mut service = tower_bearer::BearerAuthLayer::new(registry.clone()).layer(
        tower::service_fn(|_: http::Request<String>| async {
            let answer = http_body_util::Full::new(bytes::Bytes::new());
            Ok::<_, std::convert::Infallible>(http::Response::new(answer))
        }),
    );
    let request = http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();

    let late = service.ready().await.unwrap().call(request);
    registry.verify(&token).await.unwrap();
    assert_eq!(store.lookups(), 1);
    let answer = late.await.unwrap();

    assert_eq!(answer.status(), http::StatusCode::OK);
    assert_eq!(
        store.lookups(),
        1,
        "the late miss was answered from the cache"
    );
}

#[tokio::test]
async fn a_waiter_takes_over_when_the_request_asking_the_store_is_cancelled() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;

    store.hold_lookups(true);
    let spawn_verify = || {
        let (registry, token) = (registry.clone(), token.clone());
        tokio::spawn(async move { registry.verify(&token).await })
    };
    let leader = spawn_verify();
    store.record_read().await;
    let waiter = spawn_verify();
    tokio::task::yield_now().await; // the waiter joins the flight
    // The client of the request that asks the store hangs up.
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // The waiter asks the store itself and gets its answer.
    store.record_read().await;
    store.release(1);
    waiter.await.unwrap().unwrap();
    assert_eq!(store.lookups(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_on_many_threads_make_one_store_query() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;

    store.hold_lookups(true);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(33));
    let waiting: Vec<_> = (0..32)
        .map(|_| {
            let (registry, token, barrier) = (registry.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                registry.verify(&token).await
            })
        })
        .collect();
    barrier.wait().await;
    store.record_read().await;
    // Give the other threads time to join the flight; late joiners would find the cache
    // filled anyway, so the count below holds either way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.release(1);
    for verify in waiting {
        verify.await.unwrap().unwrap();
    }
    assert_eq!(store.lookups(), 1);
}

#[tokio::test]
async fn revoked_token_is_rejected_after_revoke_returns() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let (issued, token) = issue(&registry, "acme", &[]).await;
    registry.verify(&token).await.unwrap();

    registry.revoke("acme", issued.info.id).await.unwrap();
    assert_eq!(cause(registry.verify(&token).await), RejectCause::Revoked);
    assert!(registry.list("acme").await.unwrap().is_empty());
    assert!(matches!(
        registry.revoke("acme", issued.info.id).await,
        Err(RegistryError::NotFound)
    ));
}

/// Replays the revocation race: a verification's lookup reads the record, the token is
/// revoked, and only then does the lookup complete. Returns the in-flight answer and the
/// answer of a verification started after `revoke` returned.
async fn race_a_fill_against_revoke(
    max_negative_entries: usize,
) -> (
    Result<tower_bearer::Principal, VerifyError>,
    Result<tower_bearer::Principal, VerifyError>,
) {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .max_negative_entries(max_negative_entries)
        .build();
    let (issued, token) = issue(&registry, "acme", &[]).await;

    // A verification misses the cache; its lookup reads the (still valid) record and is
    // held there.
    store.hold_lookups(true);
    let in_flight = {
        let (registry, token) = (registry.clone(), token.clone());
        tokio::spawn(async move { registry.verify(&token).await })
    };
    store.record_read().await;

    // The token is revoked while the lookup holds the stale record.
    store.hold_lookups(false);
    registry.revoke("acme", issued.info.id).await.unwrap();

    // The stale lookup completes after revoke returned.
    store.release(1);
    let stale = in_flight.await.unwrap();
    let after = registry.verify(&token).await;
    assert_eq!(registry.cache_stats().tokens, 0);
    (stale, after)
}

#[tokio::test]
async fn a_fill_that_read_the_record_before_revoke_cannot_resurrect_it() {
    let (stale, after) = race_a_fill_against_revoke(100).await;
    assert_eq!(cause(stale), RejectCause::Revoked);
    assert_eq!(cause(after), RejectCause::Revoked);
}

#[tokio::test]
async fn a_stale_fill_cannot_resurrect_a_token_even_when_its_tombstone_was_evicted() {
    // With no room for negative entries, the revocation tombstone is evicted at once:
    // only the revocation epoch stands between the stale record and the cache.
    let (stale, after) = race_a_fill_against_revoke(0).await;
    assert_eq!(cause(stale), RejectCause::Unknown);
    assert_eq!(cause(after), RejectCause::Unknown);
}

#[tokio::test]
async fn a_cached_token_stops_working_exactly_at_expires_at() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .positive_ttl(Duration::from_secs(3600))
        .build();
    let issued = registry
        .issue(request("short", "acme", &[]).expires(Expiry::In(Duration::from_secs(60))))
        .await
        .unwrap();
    let token = issued.secret.expose_secret();
    assert_eq!(issued.info.expires_at, Some(datetime!(2030-01-01 0:01 UTC)));

    registry.verify(token).await.unwrap();
    clock.advance(Duration::from_secs(60) - Duration::from_nanos(1));
    registry.verify(token).await.unwrap();
    clock.advance(Duration::from_nanos(1));
    assert_eq!(cause(registry.verify(token).await), RejectCause::Expired);
    assert_eq!(store.lookups(), 1, "expiry was decided from the cache");

    // Expired tokens stay listed, flagged, until deleted.
    let listed = registry.list("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].expired);
}

/// On the system clock, whose coarse reading (what a cache hit reads) lags by a tick: the
/// first verification after `expires_at` is rejected all the same.
#[tokio::test]
async fn a_cached_token_stops_working_at_expires_at_on_the_system_clock() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(request("short", "acme", &[]).expires(Expiry::In(Duration::from_millis(300))))
        .await
        .unwrap();
    let token = issued.secret.expose_secret();
    let expires_at = issued.info.expires_at.unwrap();
    for _ in 0..3 {
        registry.verify(token).await.unwrap();
    }
    let until_then =
        expires_at - time::OffsetDateTime::now_utc() - time::Duration::milliseconds(20);
    if until_then.is_positive() {
        tokio::time::sleep(until_then.unsigned_abs()).await;
    }
    // Spin over the last milliseconds, so that the expiry is checked right after it.
    while time::OffsetDateTime::now_utc() < expires_at {
        std::hint::spin_loop();
    }
    assert_eq!(cause(registry.verify(token).await), RejectCause::Expired);
}

#[tokio::test]
async fn positive_entries_are_refreshed_after_their_ttl() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let store = InstrumentedStore::without_change_feed();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .positive_ttl(Duration::from_secs(60))
        .build();
    let (issued, token) = issue(&registry, "acme", &[]).await;
    registry.verify(&token).await.unwrap();

    // Deleted behind the registry's back (as another node without a change feed would).
    store
        .inner
        .delete(
            "acme",
            issued.info.id,
            tower_bearer::store::RevocationReason::Manual,
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(59));
    registry.verify(&token).await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(cause(registry.verify(&token).await), RejectCause::Unknown);
    assert_eq!(store.lookups(), 2);
}

#[tokio::test]
async fn unknown_digests_are_cached_negatively_and_bounded() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .max_negative_entries(10)
        .build();

    let unknown = unknown_token();
    for _ in 0..5 {
        assert_eq!(cause(registry.verify(&unknown).await), RejectCause::Unknown);
    }
    assert_eq!(store.lookups(), 1, "one query per distinct unknown per TTL");
    clock.advance(Duration::from_secs(10));
    assert_eq!(cause(registry.verify(&unknown).await), RejectCause::Unknown);
    assert_eq!(store.lookups(), 2, "negative entries expire");

    for _ in 0..1_000 {
        assert_eq!(
            cause(registry.verify(&unknown_token()).await),
            RejectCause::Unknown
        );
        assert!(registry.cache_stats().negative <= 10);
    }
    assert_eq!(store.lookups(), 1_002);
}

#[tokio::test]
async fn store_unavailable_is_never_reported_as_unknown() {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let (_, token) = issue(&registry, "acme", &[]).await;

    store.set_down(true);
    let error = registry.verify(&token).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        registry
            .verify(&unknown_token())
            .await
            .unwrap_err()
            .is_unavailable()
    );

    // Failures are not cached: the token works as soon as the store is back.
    store.set_down(false);
    registry.verify(&token).await.unwrap();
}

#[tokio::test]
async fn list_and_revoke_are_isolated_by_tenant() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let (acme, acme_token) = issue(&registry, "acme", &["admin"]).await;
    let (globex, _) = issue(&registry, "globex", &["read"]).await;

    let listed = registry.list("acme").await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [acme.info.id]
    );
    assert_eq!(listed[0].prefix, &acme_token[..12]);

    for result in [
        registry.revoke("globex", acme.info.id).await,
        registry
            .rotate(RotateRequest::new("globex", acme.info.id))
            .await
            .map(drop),
        registry.get("globex", acme.info.id).await.map(drop),
    ] {
        assert!(matches!(result, Err(RegistryError::NotFound)), "{result:?}");
    }
    registry.verify(&acme_token).await.unwrap();
    assert_eq!(registry.list("globex").await.unwrap()[0].id, globex.info.id);
}

#[tokio::test]
async fn rotate_issues_a_twin_and_revokes_the_original() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let original = registry
        .issue(request("ci", "acme", &["write"]).expires(Expiry::Never))
        .await
        .unwrap();
    let old_token = original.secret.expose_secret().to_owned();
    registry.verify(&old_token).await.unwrap();

    let rotated = registry
        .rotate(RotateRequest::new("acme", original.info.id))
        .await
        .unwrap();
    assert_ne!(rotated.info.id, original.info.id);
    assert_eq!(rotated.info.name, "ci");
    assert_eq!(rotated.info.scopes, original.info.scopes);
    assert_eq!(rotated.info.expires_at, None);

    assert_eq!(
        cause(registry.verify(&old_token).await),
        RejectCause::Revoked
    );
    let principal = registry
        .verify(rotated.secret.expose_secret())
        .await
        .unwrap();
    assert!(principal.has_scope("write"));
}

#[tokio::test]
async fn prune_removes_tokens_expired_long_enough() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let registry = Registry::builder(MemoryStore::new())
        .clock(clock.clone())
        .build();
    registry
        .issue(request("a", "acme", &[]).expires(Expiry::days(1)))
        .await
        .unwrap();
    registry
        .issue(request("b", "acme", &[]).expires(Expiry::days(5)))
        .await
        .unwrap();
    registry
        .issue(request("c", "acme", &[]).expires(Expiry::Never))
        .await
        .unwrap();

    clock.advance(Duration::from_secs(10 * 86_400));
    let pruned = registry
        .prune_expired(Duration::from_secs(7 * 86_400))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let names: Vec<_> = registry
        .list("acme")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.expired))
        .collect();
    assert_eq!(names, [("b".into(), true), ("c".into(), false)]);
}

#[tokio::test]
async fn expiry_options() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let registry = Registry::builder(MemoryStore::new())
        .clock(clock.clone())
        .build();
    let at = registry
        .issue(request("at", "acme", &[]).expires(Expiry::At(datetime!(2030-06-01 12:00 UTC))))
        .await
        .unwrap();
    assert_eq!(at.info.expires_at, Some(datetime!(2030-06-01 12:00 UTC)));
    let days = registry
        .issue(request("days", "acme", &[]).expires(Expiry::days(30)))
        .await
        .unwrap();
    assert_eq!(days.info.expires_at, Some(datetime!(2030-01-31 0:00 UTC)));

    for past in [
        Expiry::At(datetime!(2029-12-31 23:59 UTC)),
        Expiry::At(datetime!(2030-01-01 0:00 UTC)),
        Expiry::In(Duration::ZERO),
    ] {
        let result = registry
            .issue(request("bad", "acme", &[]).expires(past))
            .await;
        assert!(
            matches!(result, Err(RegistryError::InvalidExpiry)),
            "{past:?}"
        );
    }
    // Absurd lifetimes are "too long", never an overflow.
    for absurd in [
        Expiry::In(Duration::MAX),
        Expiry::At(datetime!(9999-12-31 0:00 UTC)),
    ] {
        let result = registry
            .issue(request("bad", "acme", &[]).expires(absurd))
            .await;
        assert!(
            matches!(result, Err(RegistryError::LifetimeTooLong)),
            "{absurd:?}"
        );
    }
    assert_eq!(registry.list("acme").await.unwrap().len(), 2);
}

#[tokio::test]
async fn usage_is_counted_in_memory_and_flushed_in_batches() {
    let clock = ManualClock::new(datetime!(2030-01-01 0:00 UTC));
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .usage_flush_interval(Duration::from_secs(3600))
        .build();
    let (a, token_a) = issue(&registry, "acme", &[]).await;
    let (b, token_b) = issue(&registry, "acme", &[]).await;

    for _ in 0..3 {
        registry.verify(&token_a).await.unwrap();
    }
    clock.advance(Duration::from_secs(5));
    registry.verify(&token_b).await.unwrap();
    // Nothing reaches the store until a flush.
    assert!(
        registry
            .list("acme")
            .await
            .unwrap()
            .iter()
            .all(|t| t.last_used_at.is_none())
    );

    assert_eq!(registry.flush().await.unwrap(), 2);
    assert_eq!(store.usage_writes(), 1, "one batch for both tokens");
    let listed = registry.list("acme").await.unwrap();
    let usage: Vec<_> = listed
        .iter()
        .map(|t| (t.id, t.use_count, t.last_used_at))
        .collect();
    assert_eq!(
        usage,
        [
            (a.info.id, 3, Some(datetime!(2030-01-01 0:00 UTC))),
            (b.info.id, 1, Some(datetime!(2030-01-01 0:00:05 UTC))),
        ]
    );

    // An empty flush writes nothing.
    assert_eq!(registry.flush().await.unwrap(), 0);
    assert_eq!(store.usage_writes(), 1);

    // A failed flush is retried, not lost.
    registry.verify(&token_a).await.unwrap();
    store.set_down(true);
    assert!(registry.flush().await.is_err());
    store.set_down(false);
    assert_eq!(registry.flush().await.unwrap(), 1);
    assert_eq!(registry.get("acme", a.info.id).await.unwrap().use_count, 4);
}

#[tokio::test]
async fn usage_is_flushed_in_the_background() {
    let registry = Registry::builder(MemoryStore::new())
        .usage_flush_interval(Duration::from_millis(20))
        .build();
    let (issued, token) = issue(&registry, "acme", &[]).await;
    registry.verify(&token).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info = registry.get("acme", issued.info.id).await.unwrap();
        if info.use_count == 1 {
            assert!(info.last_used_at.is_some());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "usage never flushed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_node_reaches_another_through_the_change_feed() {
    let store = MemoryStore::new();
    let node_a = Registry::builder(store.clone()).build();
    let node_b = Registry::builder(store.clone())
        .positive_ttl(Duration::from_secs(3600))
        .build();
    let (issued, token) = issue(&node_a, "acme", &[]).await;
    node_b.verify(&token).await.unwrap();

    node_a.revoke("acme", issued.info.id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match node_b.verify(&token).await {
            Err(error) => {
                assert_eq!(error.cause(), Some(RejectCause::Revoked));
                break;
            }
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "never evicted");
                tokio::task::yield_now().await;
            }
        }
    }
}

#[tokio::test]
async fn sanctum_tokens_must_match_their_record_id() {
    let registry = Registry::builder(MemoryStore::new())
        .issue_format(IssueFormat::Sanctum)
        .build();
    let (first, _) = issue(&registry, "acme", &[]).await;
    let (second, token) = issue(&registry, "acme", &[]).await;
    let (id, secret) = token.split_once('|').unwrap();
    assert_eq!(id, second.info.id.to_string());
    assert_eq!(secret.len(), 40);

    registry.verify(&token).await.unwrap();
    let wrong_id = format!("{}|{secret}", first.info.id);
    assert_eq!(
        cause(registry.verify(&wrong_id).await),
        RejectCause::Unknown
    );
    for malformed in [
        "x|abc",
        "|abc",
        "1|",
        "0|abc",
        "99999999999999999999999|abc",
        "1|a|b",
    ] {
        assert!(
            matches!(
                cause(registry.verify(malformed).await),
                RejectCause::Malformed(_)
            ),
            "{malformed}"
        );
    }
}

#[tokio::test]
async fn account_credentials_must_name_the_tokens_tenant() {
    let registry = Registry::builder(MemoryStore::new())
        .formats(Formats::default().account())
        .build();
    let (_, token) = issue(&registry, "acct-042", &["read"]).await;

    let padded = STANDARD.encode(format!("acct-042:{token}"));
    let unpadded = STANDARD_NO_PAD.encode(format!("acct-042:{token}"));
    assert_ne!(padded, unpadded);
    for credential in [&padded, &unpadded] {
        assert_eq!(
            registry.verify(credential).await.unwrap().tenant(),
            "acct-042"
        );
    }
    let other = STANDARD.encode(format!("acct-7:{token}"));
    assert_eq!(
        cause(registry.verify(&other).await),
        RejectCause::TenantMismatch
    );
    for broken in [
        STANDARD.encode(token.as_bytes()),    // no account
        STANDARD.encode(format!(":{token}")), // empty account
        STANDARD.encode("acct-042:garbage"),  // api key of no format
        "YWJj$".to_owned(),                   // not base64
        "Zm9vOmJhcg===".to_owned(),           // wrong padding
    ] {
        assert!(
            matches!(
                cause(registry.verify(&broken).await),
                RejectCause::Malformed(_)
            ),
            "{broken}"
        );
    }
}

#[tokio::test]
async fn tokens_of_the_other_environment_are_rejected() {
    let store = MemoryStore::new();
    let issuer = Registry::builder(store.clone()).any_env().build();
    let test_token = issuer
        .issue(request("t", "acme", &[]).env(Env::Test))
        .await
        .unwrap();
    let test_token = test_token.secret.expose_secret();
    assert!(test_token.starts_with("sk_test_"));

    let live = Registry::builder(store.clone()).build();
    assert_eq!(cause(live.verify(test_token).await), RejectCause::WrongEnv);
    let test = Registry::builder(store).env(Env::Test).build();
    test.verify(test_token).await.unwrap();
}

#[tokio::test]
async fn custom_prefix_and_implications() {
    use tower_bearer::scope::Implications;
    let registry = Registry::builder(MemoryStore::new())
        .formats(Formats::none().prefixed(PrefixedFormat::new("acme").unwrap()))
        .implications(
            Implications::none()
                .imply("admin", "reports:export")
                .unwrap(),
        )
        .build();
    let (_, token) = issue(&registry, "t1", &["admin"]).await;
    assert!(token.starts_with("acme_live_"));
    let principal = registry.verify(&token).await.unwrap();
    assert!(principal.has_scope("reports:export"));
    assert!(
        !principal.has_scope("write"),
        "default implications replaced"
    );

    let (_, star) = issue(&registry, "t1", &["*"]).await;
    let principal = registry.verify(&star).await.unwrap();
    assert!(principal.has_scope("anything:at-all") && principal.has_scope("admin"));

    assert_eq!(
        cause(registry.verify("sk_live_whatever").await),
        RejectCause::Malformed(Malformed::Prefix)
    );
}
