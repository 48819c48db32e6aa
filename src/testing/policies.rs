//! The store contract for per-key policies: kept with the record, changed field by
//! field, and budgets reserved atomically (never beyond a limit, whoever asks).

use time::macros::datetime;

use crate::identity::TokenId;
use crate::policy::{Credits, Policies, RateLimit, Refill, RefillPeriod};
use crate::store::{NewToken, StoreError, TokenStore, TokenUpdate};
use crate::token::Digest;

fn limited(tenant: &str, secret: &str) -> NewToken {
    let policies = Policies::none()
        .rate_limit(RateLimit::new("burst", 100, 60).expect("valid"))
        .rate_limit(RateLimit::new("daily", 1_000, 86_400).expect("valid"))
        .credits(Credits {
            remaining: 10,
            refill: Some(Refill::new(25, RefillPeriod::Day)),
            counted_since: datetime!(2030-01-01 0:00 UTC),
            allotted: 25,
        })
        .allowed_ips(["203.0.113.0/24", "2001:db8::/32"])
        .expect("valid");
    NewToken {
        policies,
        digest: Digest::of(secret.as_bytes()),
        ..super::properties::token(tenant, secret, None)
    }
}

/// Policies come back as they were stored, and an update changes only the ones it names.
pub async fn policies_are_kept_and_changed_field_by_field(store: &impl TokenStore) {
    let token = limited("pol", "pol-kept");
    let stored = store.insert(token.clone()).await.expect("insert");
    assert_eq!(stored.policies, token.policies);
    let found = store.find_by_digest(&token.digest).await.expect("find");
    assert_eq!(found.policies, token.policies);

    let fewer = vec![RateLimit::new("burst", 5, 10).expect("valid")];
    let changed = store
        .update(
            "pol",
            stored.id,
            TokenUpdate::new().rate_limits(fewer.clone()),
        )
        .await
        .expect("update");
    assert_eq!(changed.policies.rate_limits, fewer);
    assert_eq!(changed.policies.credits, token.policies.credits);
    assert_eq!(changed.policies.allowed_ips, token.policies.allowed_ips);

    let changed = store
        .update(
            "pol",
            stored.id,
            TokenUpdate::new().credits(None).allowed_ips(Vec::new()),
        )
        .await
        .expect("update");
    assert_eq!(changed.policies.credits, None);
    assert!(changed.policies.allowed_ips.is_empty());
    assert_eq!(changed.policies.rate_limits, fewer);
    let found = store.find_by_id("pol", stored.id).await.expect("find");
    assert_eq!(found.policies, changed.policies);

    let plain = store
        .insert(super::properties::token("pol", "pol-plain", None))
        .await
        .expect("insert");
    assert!(plain.policies.is_empty());
}

/// Reservations of one window never add up beyond its limit, however many ask at once;
/// a new window starts from nothing; a window that is over grants nothing.
pub async fn rate_windows_never_grant_beyond_the_limit(store: &impl TokenStore) {
    let id = store
        .insert(limited("rate", "rate-window"))
        .await
        .expect("insert")
        .id;
    let rate = RateLimit::new("burst", 100, 60).expect("valid");
    let window = 1_900_000_020;
    let asks = (0..20).map(|_| store.reserve_requests(id, &rate, window, 7));
    let grants = futures_util::future::join_all(asks).await;
    let granted: u64 = grants
        .iter()
        .map(|grant| grant.as_ref().expect("reserve").granted)
        .sum();
    assert_eq!(granted, 100);
    let last = store.reserve_requests(id, &rate, window, 7).await.unwrap();
    assert_eq!((last.granted, last.reserved), (0, 100));

    let next = store
        .reserve_requests(id, &rate, window + 60, 30)
        .await
        .unwrap();
    assert_eq!((next.granted, next.reserved), (30, 30));
    let late = store.reserve_requests(id, &rate, window, 30).await.unwrap();
    assert_eq!(late.granted, 0, "a window that is over grants nothing");
    // Another limit of the same key counts apart.
    let daily = RateLimit::new("daily", 1_000, 86_400).expect("valid");
    let other = store
        .reserve_requests(id, &daily, 1_899_993_600, 10)
        .await
        .unwrap();
    assert_eq!(other.granted, 10);

    let missing = store
        .reserve_requests(TokenId::new(987_654_321), &rate, window, 1)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}

/// Credits are taken atomically and never below zero, refilled at the first use of a
/// new period, given back only to the balance they came from; an unlimited key has none.
pub async fn credits_are_taken_refilled_and_given_back(store: &impl TokenStore) {
    let id = store
        .insert(limited("cred", "cred-key"))
        .await
        .expect("insert")
        .id;
    let day = datetime!(2030-01-01 12:00 UTC);
    let asks = (0..8).map(|_| store.reserve_credits(id, 3, day));
    let grants = futures_util::future::join_all(asks).await;
    let granted: u64 = grants
        .iter()
        .map(|grant| grant.as_ref().expect("reserve").expect("limited").granted)
        .sum();
    assert_eq!(granted, 10, "never more than the balance");
    let empty = store.reserve_credits(id, 3, day).await.unwrap().unwrap();
    assert_eq!((empty.granted, empty.remaining), (0, 0));

    let since = empty.counted_since;
    store.return_credits(id, 2, since).await.unwrap();
    let back = store.reserve_credits(id, 5, day).await.unwrap().unwrap();
    assert_eq!((back.granted, back.remaining), (2, 0));

    let next_day = datetime!(2030-01-02 00:00:01 UTC);
    let refilled = store
        .reserve_credits(id, 5, next_day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((refilled.granted, refilled.remaining), (5, 20));
    assert_eq!(refilled.counted_since, next_day);
    // Credits of the day before do not come back into the refilled balance.
    store.return_credits(id, 4, since).await.unwrap();
    let after = store
        .reserve_credits(id, 0, next_day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.remaining, 20);
    let listed = store.find_by_id("cred", id).await.unwrap();
    assert_eq!(listed.policies.credits.map(|c| c.remaining), Some(20));

    let plain = store
        .insert(super::properties::token("cred", "cred-plain", None))
        .await
        .unwrap();
    assert_eq!(store.reserve_credits(plain.id, 1, day).await.unwrap(), None);
    let missing = store
        .reserve_credits(TokenId::new(987_654_321), 1, day)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
}
