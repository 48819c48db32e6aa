//! The activity store's contract (features `testing` and `activity`).

use time::macros::datetime;

use crate::identity::TokenId;
use crate::token::Digest;

/// The [`ActivityStore`](crate::store::activity::ActivityStore) contract (features `testing` and
/// `activity`): ids, order, every filter, pagination, `new_ip`, tenant isolation and
/// pruning, in one run on an empty store.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tower_bearer::testing::activity_contract(&tower_bearer::MemoryStore::new()).await;
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
pub async fn activity_contract(store: &impl crate::store::activity::ActivityStore) {
    use crate::store::activity::{ActivityQuery, NewActivity, Outcome};

    let t0 = datetime!(2026-11-01 12:00:00.123 UTC);
    let minutes = |n: i64| t0 + time::Duration::minutes(n);
    let key = TokenId::new(1);
    let other = TokenId::new(2);
    let home: std::net::IpAddr = "192.0.2.1".parse().unwrap();
    let away: std::net::IpAddr = "2001:db8::7".parse().unwrap();
    let mut full =
        NewActivity::new(minutes(0), key, "acme", "/items/{id}", 200, Outcome::Ok).client_ip(home);
    full.session_id = Some("41".to_owned());
    full.method = "POST".to_owned();
    full.latency_us = 1234;
    full.user_agent = Some("curl/8.5".to_owned());
    full.request_id = Some("req-1".to_owned());
    let batch = vec![
        full.clone(),
        // The same token and address in the same batch: not new.
        NewActivity::new(minutes(1), key, "acme", "/items", 403, Outcome::ScopeDenied)
            .client_ip(home),
        NewActivity::new(minutes(2), key, "acme", "/items", 401, Outcome::Revoked).client_ip(away),
        NewActivity::new(minutes(3), other, "acme", "/items", 200, Outcome::Ok).client_ip(home),
        NewActivity::new(minutes(4), other, "globex", "/items", 401, Outcome::Expired),
    ];
    store
        .append_activity(&batch, minutes(-60))
        .await
        .expect("append");
    // A later batch: the address is known (within the window), unless the window
    // starts after the rows that saw it.
    store
        .append_activity(
            &[
                NewActivity::new(minutes(5), key, "acme", "/items", 200, Outcome::Ok)
                    .client_ip(home),
            ],
            minutes(-60),
        )
        .await
        .expect("append");
    store
        .append_activity(
            &[
                NewActivity::new(minutes(6), key, "acme", "/items", 200, Outcome::Ok)
                    .client_ip(home),
            ],
            minutes(5) + time::Duration::milliseconds(1),
        )
        .await
        .expect("append");

    let all = store
        .activity("acme", &ActivityQuery::new())
        .await
        .expect("query");
    assert_eq!(all.len(), 6, "a tenant sees its own rows only");
    summary_contract(store, t0, key, other, home).await;
    assert!(
        all.windows(2).all(|w| w[0].id > w[1].id),
        "newest first, ids grow"
    );
    let oldest = all.last().unwrap();
    assert_eq!(
        oldest.request, full,
        "every field is kept, to the millisecond"
    );
    let flags: Vec<bool> = all.iter().rev().map(|row| row.new_ip).collect();
    assert_eq!(flags, [true, false, true, true, false, true], "new_ip");

    let globex = store
        .activity("globex", &ActivityQuery::new())
        .await
        .expect("query");
    assert_eq!(globex.len(), 1);
    assert_eq!((globex[0].client_ip, globex[0].new_ip), (None, false));

    let select = |query: ActivityQuery| async move {
        store
            .activity("acme", &query)
            .await
            .expect("query")
            .iter()
            .map(|row| row.at)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        select(ActivityQuery::new().token(other)).await,
        [minutes(3)]
    );
    assert_eq!(
        select(ActivityQuery::new().outcome(Outcome::Revoked)).await,
        [minutes(2)]
    );
    assert_eq!(
        select(ActivityQuery::new().status("4xx".parse().unwrap())).await,
        [minutes(2), minutes(1)]
    );
    assert_eq!(
        select(ActivityQuery::new().status("403".parse().unwrap())).await,
        [minutes(1)]
    );
    assert_eq!(
        select(ActivityQuery::new().since(minutes(2)).until(minutes(3))).await,
        [minutes(3), minutes(2)]
    );
    // Pages by id.
    let first = store
        .activity("acme", &ActivityQuery::new().limit(4))
        .await
        .expect("query");
    assert_eq!(first.len(), 4);
    let rest = store
        .activity("acme", &ActivityQuery::new().limit(4).before(first[3].id))
        .await
        .expect("query");
    assert_eq!(
        rest.iter().map(|row| row.at).collect::<Vec<_>>(),
        [minutes(1), minutes(0)]
    );

    // Pruning deletes what was recorded before the cutoff, in every tenant.
    assert_eq!(store.prune_activity(minutes(3)).await.expect("prune"), 3);
    assert_eq!(
        select(ActivityQuery::new()).await,
        [minutes(6), minutes(5), minutes(3)]
    );
    // Ids are never reused.
    store
        .append_activity(
            &[NewActivity::new(
                minutes(7),
                key,
                "acme",
                "/",
                200,
                Outcome::Ok,
            )],
            minutes(-60),
        )
        .await
        .expect("append");
    let newest = store
        .activity("acme", &ActivityQuery::new().limit(1))
        .await
        .expect("query");
    assert!(newest[0].id > all[0].id);

    // Revoked tokens, remembered by digest, replaced when remembered again, pruned.
    use crate::store::activity::RevokedToken;
    let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
    let mut session = RevokedToken::new(b, key, "acme", minutes(10));
    session.session_id = Some("41".to_owned());
    store
        .remember_revoked(&[
            RevokedToken::new(a, other, "globex", minutes(0)),
            session.clone(),
        ])
        .await
        .expect("remember");
    store
        .remember_revoked(&[RevokedToken::new(a, other, "acme", minutes(1))])
        .await
        .expect("remember again");
    let mut found = store.find_revoked(&[c, b, a]).await.expect("find");
    found.sort_by_key(|token| token.revoked_at);
    assert_eq!(
        found,
        [RevokedToken::new(a, other, "acme", minutes(1)), session]
    );
    assert!(store.find_revoked(&[]).await.expect("find").is_empty());

    // A revoked key is found by id in its tenant, with why and where it leaked; a
    // session remembered under its key's id is not the key.
    use crate::store::RevocationReason;
    let mut leaked =
        RevokedToken::new(c, key, "acme", minutes(2)).because(RevocationReason::Leaked);
    leaked.leak_url = Some("https://github.com/octo/app/blob/1/.env".to_owned());
    leaked.leak_source = Some("commit".to_owned());
    store
        .remember_revoked(std::slice::from_ref(&leaked))
        .await
        .expect("remember a leak");
    assert_eq!(
        store.find_revoked_key("acme", key).await.expect("find key"),
        Some(leaked)
    );
    assert_eq!(
        store
            .find_revoked_key("globex", key)
            .await
            .expect("find key"),
        None,
        "another tenant's"
    );
    assert_eq!(
        store
            .find_revoked_key("acme", other)
            .await
            .expect("find key"),
        Some(RevokedToken::new(a, other, "acme", minutes(1)))
    );
    for reason in RevocationReason::ALL {
        let token = RevokedToken::new(a, other, "acme", minutes(1)).because(reason);
        store
            .remember_revoked(std::slice::from_ref(&token))
            .await
            .expect("remember");
        let found = store.find_revoked_key("acme", other).await.expect("find");
        assert_eq!(found.map(|t| t.reason), Some(reason));
    }
    store.prune_activity(minutes(5)).await.expect("prune");
    let left = store.find_revoked(&[a, b, c]).await.expect("find");
    assert_eq!(left.iter().map(|t| t.digest).collect::<Vec<_>>(), [b]);
    assert_eq!(
        store.find_revoked_key("acme", key).await.expect("find key"),
        None,
        "pruned"
    );
}

/// The summary of the rows the contract appended first (acme: `key` ok at minutes 0, 5
/// and 6, scope denied at 1, revoked at 2; `other` ok at 3; globex: `other` expired at
/// 4), against the reference [`Summary::of`](crate::store::activity::Summary::of).
async fn summary_contract(
    store: &impl crate::store::activity::ActivityStore,
    t0: time::OffsetDateTime,
    key: TokenId,
    other: TokenId,
    home: std::net::IpAddr,
) {
    use crate::store::activity::{ActivityQuery, Bucket, Outcome, SummaryQuery};
    let minutes = |n: i64| t0 + time::Duration::minutes(n);
    let mut rows = store
        .activity("acme", &ActivityQuery::new().limit(100))
        .await
        .expect("query");
    rows.extend(
        store
            .activity("globex", &ActivityQuery::new().limit(100))
            .await
            .expect("query"),
    );
    let hour = datetime!(2026-11-01 12:00 UTC);
    let day = datetime!(2026-11-01 00:00 UTC);
    let counts = |summary: &crate::store::activity::Summary| {
        summary
            .counts
            .iter()
            .map(|count| (count.start, count.outcome, count.count))
            .collect::<Vec<_>>()
    };
    let around = SummaryQuery::new(Bucket::Hour, minutes(-60), minutes(60));
    let cases = [
        ("acme", around.clone()),
        ("acme", around.clone().token(key)),
        ("acme", around.clone().token(other)),
        (
            "acme",
            SummaryQuery::new(Bucket::Hour, minutes(-60), minutes(3)),
        ),
        (
            "acme",
            SummaryQuery::new(Bucket::Day, minutes(-600), minutes(600)),
        ),
        ("globex", around.clone()),
    ];
    for (tenant, query) in &cases {
        let summary = store.summary(tenant, query).await.expect("summary");
        assert_eq!(
            summary,
            crate::store::activity::Summary::of(tenant, query, &rows),
            "{tenant} {query:?}"
        );
    }
    // And what the reference says, spelled out.
    let tenant = store.summary("acme", &around).await.expect("summary");
    assert_eq!(
        counts(&tenant),
        [
            (hour, Outcome::Ok, 4),
            (hour, Outcome::Revoked, 1),
            (hour, Outcome::ScopeDenied, 1)
        ]
    );
    assert_eq!(tenant.busiest, [(key, 5), (other, 1)]);
    let last = tenant.last_use.expect("a last use");
    assert_eq!((last.at, last.client_ip), (minutes(6), Some(home)));
    let of_other = store
        .summary("acme", &around.clone().token(other))
        .await
        .expect("summary");
    assert_eq!(counts(&of_other), [(hour, Outcome::Ok, 1)]);
    assert!(of_other.busiest.is_empty());
    assert_eq!(of_other.last_use.map(|last| last.at), Some(minutes(3)));
    let until = store
        .summary(
            "acme",
            &SummaryQuery::new(Bucket::Hour, minutes(-60), minutes(3)),
        )
        .await
        .expect("summary");
    assert_eq!(until.busiest, [(key, 3)], "until is exclusive");
    let by_day = store
        .summary(
            "acme",
            &SummaryQuery::new(Bucket::Day, minutes(-600), minutes(600)),
        )
        .await
        .expect("summary");
    assert_eq!(by_day.counts.first().map(|count| count.start), Some(day));
    let globex = store.summary("globex", &around).await.expect("summary");
    assert_eq!(counts(&globex), [(hour, Outcome::Expired, 1)]);
    assert_eq!(globex.last_use, None);
}
