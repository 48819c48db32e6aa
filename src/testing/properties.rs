//! The properties of the token store contract, one public function each.

use time::OffsetDateTime;
use time::macros::datetime;

use crate::identity::{TokenId, TokenKind};
use crate::scope::ScopeSet;
use crate::store::{
    Change, ListQuery, NewToken, RevocationReason, StoreError, TokenRecord, TokenStore,
    TokenUpdate, UsageUpdate,
};
use crate::token::{Digest, Env};

pub(super) fn token(tenant: &str, secret: &str, expires_at: Option<OffsetDateTime>) -> NewToken {
    NewToken {
        name: format!("token {secret}"),
        tenant: tenant.to_owned(),
        scopes: ScopeSet::parse(["read", "billing:read"]).expect("valid scopes"),
        env: Env::Test,
        kind: TokenKind::ApiKey,
        display_prefix: secret.chars().take(2).collect(),
        digest: Digest::of(secret.as_bytes()),
        created_at: datetime!(2030-01-01 0:00 UTC),
        expires_at,
        created_by: None,
        created_by_session: None,
        owner: None,
        metadata: None,
        policies: crate::policy::Policies::none(),
    }
}

fn child(parent: TokenId, tenant: &str, secret: &str) -> NewToken {
    NewToken {
        created_by: Some(parent),
        ..token(tenant, secret, None)
    }
}

async fn insert(store: &impl TokenStore, token: NewToken) -> TokenRecord {
    store.insert(token).await.expect("insert")
}

async fn ids(store: &impl TokenStore, tenant: &str, query: ListQuery) -> Vec<TokenId> {
    let records = store.list_by_tenant(tenant, query).await.expect("list");
    records.iter().map(|record| record.id).collect()
}

async fn gone(store: &impl TokenStore, secret: &str) -> bool {
    matches!(
        store.find_by_digest(&Digest::of(secret.as_bytes())).await,
        Err(StoreError::NotFound)
    )
}

/// Ids grow; every field written is read back as written (milliseconds kept).
pub async fn insert_assigns_increasing_ids_and_keeps_every_field(store: &impl TokenStore) {
    let mut metadata = crate::store::Metadata::new();
    metadata.insert("team".into(), "ops".into());
    let a = insert(
        store,
        NewToken {
            owner: Some("user-1".into()),
            metadata: Some(metadata.clone()),
            ..token(
                "acme",
                "secret-a",
                Some(datetime!(2030-02-01 0:00:00.123 UTC)),
            )
        },
    )
    .await;
    let b = insert(store, token("acme", "secret-b", None)).await;
    assert!(a.id < b.id, "ids increase");
    assert_eq!(a.scopes, ScopeSet::parse(["billing:read", "read"]).unwrap());
    assert_eq!(a.env, Env::Test);
    assert_eq!(a.expires_at, Some(datetime!(2030-02-01 0:00:00.123 UTC)));
    assert_eq!((a.last_used_at, a.use_count), (None, 0));
    assert_eq!((a.created_by, a.rotated_to), (None, None));
    assert_eq!(a.owner.as_deref(), Some("user-1"));
    assert_eq!(a.metadata.as_ref(), Some(&metadata));
    assert_eq!(store.find_by_digest(&a.digest).await.unwrap(), a);
    assert_eq!(b.expires_at, None);
}

/// A second record with the same digest is a conflict.
pub async fn digests_are_unique(store: &impl TokenStore) {
    insert(store, token("acme", "same", None)).await;
    assert!(matches!(
        store.insert(token("globex", "same", None)).await,
        Err(StoreError::Conflict)
    ));
}

/// Lookups by digest, and by id within a tenant only.
pub async fn finds_by_digest_and_by_id_within_the_tenant(store: &impl TokenStore) {
    let a = insert(store, token("acme", "find-a", None)).await;
    assert_eq!(store.find_by_digest(&a.digest).await.unwrap(), a);
    assert!(gone(store, "nope").await);
    assert_eq!(store.find_by_id("acme", a.id).await.unwrap(), a);
    for (tenant, id) in [("globex", a.id), ("acme", TokenId::new(u64::MAX))] {
        assert!(matches!(
            store.find_by_id(tenant, id).await,
            Err(StoreError::NotFound)
        ));
    }
}

/// Lists hold one tenant's records in id order, page by page, filtered by owner.
pub async fn lists_are_per_tenant_in_id_order_and_paginated(store: &impl TokenStore) {
    let mut all = Vec::new();
    for n in 0..5 {
        let owner = (n % 2 == 0).then(|| "even".to_owned());
        let record = insert(
            store,
            NewToken {
                owner,
                ..token("paged", &format!("page-{n}"), None)
            },
        )
        .await;
        all.push(record.id);
    }
    insert(store, token("other", "other-tenant", None)).await;
    assert_eq!(ids(store, "paged", ListQuery::all()).await, all);
    assert!(ids(store, "nobody", ListQuery::all()).await.is_empty());
    assert_eq!(ids(store, "paged", ListQuery::first(2)).await, all[..2]);
    assert_eq!(
        ids(store, "paged", ListQuery::first(2).after(all[1])).await,
        all[2..4]
    );
    assert_eq!(
        ids(store, "paged", ListQuery::first(10).after(all[3])).await,
        all[4..]
    );
    assert!(ids(store, "paged", ListQuery::first(0)).await.is_empty());
    assert_eq!(
        ids(store, "paged", ListQuery::all().owner("even")).await,
        [all[0], all[2], all[4]]
    );
    assert_eq!(
        ids(
            store,
            "paged",
            ListQuery::first(1).after(all[0]).owner("even")
        )
        .await,
        [all[2]]
    );
}

/// Lists select by kind and by creator (an API key's sessions), with the other filters
/// and pagination.
pub async fn lists_filter_by_kind_and_creator(store: &impl TokenStore) {
    let key = insert(store, token("kinds", "key", None)).await;
    let other_key = insert(store, token("kinds", "other-key", None)).await;
    let session = |parent: TokenId, secret: &str| NewToken {
        kind: TokenKind::Session,
        ..child(parent, "kinds", secret)
    };
    let first = insert(store, session(key.id, "session-1")).await;
    let issued = insert(store, child(key.id, "kinds", "issued-by-key")).await;
    let second = insert(store, session(key.id, "session-2")).await;
    let elsewhere = insert(store, session(other_key.id, "session-3")).await;
    assert_eq!(
        ids(store, "kinds", ListQuery::all().kind(TokenKind::ApiKey)).await,
        [key.id, other_key.id, issued.id]
    );
    assert_eq!(
        ids(store, "kinds", ListQuery::all().kind(TokenKind::Session)).await,
        [first.id, second.id, elsewhere.id]
    );
    assert_eq!(
        ids(
            store,
            "kinds",
            ListQuery::all().kind(TokenKind::Session).created_by(key.id)
        )
        .await,
        [first.id, second.id]
    );
    assert_eq!(
        ids(store, "kinds", ListQuery::all().created_by(key.id)).await,
        [first.id, issued.id, second.id]
    );
    assert_eq!(
        ids(
            store,
            "kinds",
            ListQuery::first(1)
                .after(first.id)
                .kind(TokenKind::Session)
                .created_by(key.id)
        )
        .await,
        [second.id]
    );
    assert!(
        ids(store, "other", ListQuery::all().created_by(key.id))
            .await
            .is_empty()
    );
}

/// Counts add up, the latest use wins, unknown ids are ignored.
pub async fn usage_adds_up_and_keeps_the_latest_use(store: &impl TokenStore) {
    let a = insert(store, token("acme", "used-a", None)).await;
    let b = insert(store, token("acme", "used-b", None)).await;
    let usage = |id, at, uses| UsageUpdate {
        id,
        last_used_at: at,
        uses,
    };
    store
        .record_usage(&[
            usage(a.id, datetime!(2030-01-05 0:00 UTC), 3),
            usage(b.id, datetime!(2030-01-06 0:00 UTC), 1),
            usage(TokenId::new(999_999), datetime!(2030-01-06 0:00 UTC), 1),
        ])
        .await
        .unwrap();
    store
        .record_usage(&[usage(a.id, datetime!(2030-01-04 0:00 UTC), 2)])
        .await
        .unwrap();
    let a = store.find_by_id("acme", a.id).await.unwrap();
    assert_eq!(a.use_count, 5);
    assert_eq!(a.last_used_at, Some(datetime!(2030-01-05 0:00 UTC)));
}

/// Deletion needs the right tenant and reports the id and digest to evict.
pub async fn delete_is_tenant_scoped_and_says_what_to_evict(store: &impl TokenStore) {
    let a = insert(store, token("acme", "doomed", None)).await;
    assert!(matches!(
        store.delete("globex", a.id, RevocationReason::Manual).await,
        Err(StoreError::NotFound)
    ));
    let gone_now = store
        .delete("acme", a.id, RevocationReason::Manual)
        .await
        .unwrap();
    assert_eq!((gone_now.id, gone_now.digest), (a.id, a.digest));
    assert!(matches!(
        store.delete("acme", a.id, RevocationReason::Manual).await,
        Err(StoreError::NotFound)
    ));
    assert!(gone(store, "doomed").await);
}

/// Pruning removes the records that expired before the cutoff, and reports them.
pub async fn prune_deletes_only_what_expired_before_the_cutoff(store: &impl TokenStore) {
    let old = insert(
        store,
        token("acme", "old", Some(datetime!(2030-01-02 0:00 UTC))),
    )
    .await;
    insert(
        store,
        token("acme", "later", Some(datetime!(2030-01-05 0:00 UTC))),
    )
    .await;
    insert(store, token("acme", "never", None)).await;
    let pruned = store
        .prune_expired(datetime!(2030-01-03 0:00 UTC))
        .await
        .unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!((pruned[0].id, pruned[0].digest), (old.id, old.digest));
    assert_eq!(ids(store, "acme", ListQuery::all()).await.len(), 2);
}

/// Pruning sessions removes the sessions that expired before the cutoff, and nothing
/// else: expired API keys stay listed until deleted.
pub async fn session_pruning_keeps_api_keys(store: &impl TokenStore) {
    let expired = Some(datetime!(2030-01-02 0:00 UTC));
    let key = insert(store, token("acme", "expired key", expired)).await;
    let session = |secret: &str, expires_at| NewToken {
        kind: TokenKind::Session,
        created_by: Some(key.id),
        ..token("acme", secret, expires_at)
    };
    let old = insert(store, session("old session", expired)).await;
    let live = insert(
        store,
        session("live session", Some(datetime!(2030-01-05 0:00 UTC))),
    )
    .await;
    let pruned = store
        .prune_expired_sessions(datetime!(2030-01-03 0:00 UTC))
        .await
        .unwrap();
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    assert_eq!((pruned[0].id, pruned[0].digest), (old.id, old.digest));
    assert_eq!(
        ids(store, "acme", ListQuery::all()).await,
        [key.id, live.id],
        "the expired key and the live session stay"
    );
}

/// A token issued through a session keeps that session in its lineage, and lists select
/// by it.
pub async fn lineage_keeps_the_session_a_token_was_issued_through(store: &impl TokenStore) {
    let key = insert(store, token("acme", "admin key", None)).await;
    let session = insert(
        store,
        NewToken {
            kind: TokenKind::Session,
            created_by: Some(key.id),
            ..token("acme", "its session", None)
        },
    )
    .await;
    let minted = insert(
        store,
        NewToken {
            created_by: Some(key.id),
            created_by_session: Some(session.id),
            ..token("acme", "minted in the session", None)
        },
    )
    .await;
    insert(store, child(key.id, "acme", "minted with the key itself")).await;
    assert_eq!(minted.created_by_session, Some(session.id));
    let found = store.find_by_id("acme", minted.id).await.unwrap();
    assert_eq!(found.created_by_session, Some(session.id));
    assert_eq!(
        ids(
            store,
            "acme",
            ListQuery::all().created_by_session(session.id)
        )
        .await,
        [minted.id]
    );
    assert!(
        ids(
            store,
            "other",
            ListQuery::all().created_by_session(session.id)
        )
        .await
        .is_empty()
    );
}

/// A deleted record's id is never given to another.
pub async fn ids_are_never_reused(store: &impl TokenStore) {
    let a = insert(store, token("acme", "first", None)).await;
    let b = insert(store, token("acme", "second", None)).await;
    store
        .delete("acme", b.id, RevocationReason::Manual)
        .await
        .unwrap();
    let c = insert(store, token("acme", "third", None)).await;
    assert!(c.id > b.id && b.id > a.id);
}

/// A cascade takes the token and, recursively, what it created; nothing else, and
/// nothing of another tenant.
pub async fn cascade_deletes_a_token_and_its_descendants_only(store: &impl TokenStore) {
    let root = insert(store, token("lin", "root", None)).await;
    let child = insert(store, child(root.id, "lin", "child")).await;
    let grandchild = insert(store, self::child(child.id, "lin", "grandchild")).await;
    let sibling = insert(store, token("lin", "sibling", None)).await;
    assert_eq!(child.created_by, Some(root.id));
    assert!(matches!(
        store
            .delete_with_descendants("acme", root.id, RevocationReason::Manual)
            .await,
        Err(StoreError::NotFound)
    ));
    let removed = store
        .delete_with_descendants("lin", root.id, RevocationReason::Manual)
        .await
        .unwrap();
    assert_eq!(
        removed[0].id, root.id,
        "the token's own invalidation comes first"
    );
    let mut removed_ids: Vec<TokenId> = removed.iter().map(|i| i.id).collect();
    removed_ids.sort();
    assert_eq!(removed_ids, [root.id, child.id, grandchild.id]);
    assert!(removed.iter().any(|i| i.digest == grandchild.digest));
    assert_eq!(ids(store, "lin", ListQuery::all()).await, [sibling.id]);
}

/// The replacement is inserted and the old record deleted together; what the old one
/// created now descends from the new one; the same old record cannot be replaced twice,
/// nor a record that changed since it was read.
pub async fn rotation_replaces_a_token_in_one_transaction(store: &impl TokenStore) {
    let old = insert(store, token("rot", "rot-old", None)).await;
    let kid = insert(store, child(old.id, "rot", "rot-child")).await;
    let new = store
        .rotate(&old, token("rot", "rot-new", None), None)
        .await
        .unwrap();
    assert!(new.id > old.id);
    assert!(gone(store, "rot-old").await);
    assert_eq!(
        store.find_by_id("rot", kid.id).await.unwrap().created_by,
        Some(new.id)
    );
    assert!(matches!(
        store
            .rotate(&old, token("rot", "rot-twin", None), None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(gone(store, "rot-twin").await, "the loser inserted nothing");
    let changed = TokenRecord {
        scopes: ScopeSet::parse(["admin"]).unwrap(),
        ..new.clone()
    };
    assert!(matches!(
        store
            .rotate(&changed, token("rot", "rot-twin-2", None), None)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(gone(store, "rot-twin-2").await);
}

/// Two rotations of one record at once: exactly one replacement exists afterwards.
pub async fn racing_rotations_leave_one_replacement(store: &impl TokenStore) {
    let racer = insert(store, token("race", "racer", None)).await;
    let (a, b) = tokio::join!(
        store.rotate(&racer, token("race", "racer-a", None), None),
        store.rotate(&racer, token("race", "racer-b", None), None),
    );
    assert!(a.is_ok() ^ b.is_ok(), "{a:?} {b:?}");
    let mut live = 0;
    for secret in ["racer-a", "racer-b"] {
        live += usize::from(!gone(store, secret).await);
    }
    assert_eq!(live, 1, "one replacement, never an unseen twin");
}

/// With a grace period the old record lives on, marked and expiring at the end of it
/// at the latest, and cannot be rotated again.
pub async fn a_grace_period_keeps_the_old_token_marked(store: &impl TokenStore) {
    let old = insert(store, token("grace", "grace-old", None)).await;
    let grace_until = datetime!(2030-01-01 1:00 UTC);
    let new = store
        .rotate(&old, token("grace", "grace-new", None), Some(grace_until))
        .await
        .unwrap();
    let kept = store.find_by_digest(&old.digest).await.unwrap();
    assert_eq!(kept.rotated_to, Some(new.id));
    assert_eq!(kept.expires_at, Some(grace_until));
    assert!(matches!(
        store
            .rotate(&old, token("grace", "grace-twin", None), None)
            .await,
        Err(StoreError::Conflict)
    ));
    let short = insert(
        store,
        token("grace", "grace-short", Some(datetime!(2030-01-01 0:30 UTC))),
    )
    .await;
    store
        .rotate(
            &short,
            token("grace", "grace-short-new", None),
            Some(grace_until),
        )
        .await
        .unwrap();
    let kept = store.find_by_digest(&short.digest).await.unwrap();
    assert_eq!(
        kept.expires_at,
        Some(datetime!(2030-01-01 0:30 UTC)),
        "a grace period never lengthens a life"
    );
}

/// A marker inserts once, ever, even after its token is gone.
pub async fn insert_once_uses_a_marker_once(store: &impl TokenStore) {
    let first = store
        .insert_once("bootstrap:once", token("once", "once-1", None))
        .await
        .unwrap()
        .expect("the first use inserts");
    store
        .delete("once", first.id, RevocationReason::Manual)
        .await
        .unwrap();
    let again = store
        .insert_once("bootstrap:once", token("once", "once-2", None))
        .await
        .unwrap();
    assert!(again.is_none());
    assert!(gone(store, "once-2").await);
}

/// An update changes the named fields of a record of the tenant, and only those.
pub async fn update_changes_only_what_it_names(store: &impl TokenStore) {
    let a = insert(store, token("upd", "upd-a", None)).await;
    let renamed = store
        .update("upd", a.id, TokenUpdate::new().name("renamed"))
        .await
        .unwrap();
    assert_eq!(renamed.name, "renamed");
    assert_eq!(
        (renamed.scopes.clone(), renamed.expires_at),
        (a.scopes.clone(), None)
    );
    let at = datetime!(2030-03-01 0:00 UTC);
    let updated = store
        .update(
            "upd",
            a.id,
            TokenUpdate::new()
                .scopes(ScopeSet::parse(["write"]).unwrap())
                .expires_at(at),
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.scopes, ScopeSet::parse(["write"]).unwrap());
    assert_eq!(updated.expires_at, Some(at));
    assert_eq!(store.find_by_digest(&a.digest).await.unwrap(), updated);
    assert!(matches!(
        store
            .update("other", a.id, TokenUpdate::new().name("x"))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// A store with a change feed announces deletions as invalidations and changes as
/// updates. Stores without one pass trivially.
pub async fn the_change_feed_announces_deletions_and_updates(store: &impl TokenStore) {
    use futures_util::StreamExt as _;
    let Some(mut changes) = store.changes() else {
        return;
    };
    let a = insert(store, token("feed", "feed-a", None)).await;
    let b = insert(store, token("feed", "feed-b", None)).await;
    store
        .update("feed", a.id, TokenUpdate::new().name("x"))
        .await
        .unwrap();
    store
        .delete("feed", b.id, RevocationReason::Manual)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Duration::from_secs(10);
    while seen.len() < 2 {
        match tokio::time::timeout(deadline, changes.next()).await {
            Ok(Some(Change::Reset)) | Ok(None) | Err(_) => break,
            Ok(Some(change)) => seen.push(change),
        }
    }
    let has = |wanted: &dyn Fn(&Change) -> bool| seen.iter().any(wanted);
    assert!(
        has(&|c| matches!(c, Change::Updated(i) if i.id == a.id && i.digest == a.digest)),
        "{seen:?}"
    );
    assert!(
        has(&|c| matches!(c, Change::Invalidated(i) if i.id == b.id && i.digest == b.digest)),
        "{seen:?}"
    );
}
