//! The behaviour every `TokenStore` must have, run against each implementation.

use time::OffsetDateTime;
use time::macros::datetime;
use tower_bearer::principal::TokenId;
use tower_bearer::store::{ListQuery, NewToken, StoreError, TokenStore, UsageUpdate};
use tower_bearer::token::{Digest, Env};
use tower_bearer::{ScopeSet, TokenKind};

fn new_token(tenant: &str, secret: &str, expires_at: Option<OffsetDateTime>) -> NewToken {
    NewToken {
        name: format!("token {secret}"),
        tenant: tenant.to_owned(),
        scopes: ScopeSet::parse(["read", "billing:read"]).unwrap(),
        env: Env::Test,
        kind: TokenKind::ApiKey,
        display_prefix: secret[..2].to_owned(),
        digest: Digest::of(secret.as_bytes()),
        created_at: datetime!(2030-01-01 0:00 UTC),
        expires_at,
        created_by: None,
        owner: None,
        metadata: None,
    }
}

pub async fn store_contract(store: impl TokenStore) {
    let a = store
        .insert(new_token(
            "acme",
            "secret-a",
            Some(datetime!(2030-02-01 0:00:00.123 UTC)),
        ))
        .await
        .unwrap();
    let b = store
        .insert(new_token("acme", "secret-b", None))
        .await
        .unwrap();
    let c = store
        .insert(new_token(
            "globex",
            "secret-c",
            Some(datetime!(2030-01-02 0:00 UTC)),
        ))
        .await
        .unwrap();
    assert!(a.id < b.id && b.id < c.id, "ids increase");
    assert_eq!(a.scopes, ScopeSet::parse(["billing:read", "read"]).unwrap());
    assert_eq!(a.env, Env::Test);
    assert_eq!(a.expires_at, Some(datetime!(2030-02-01 0:00:00.123 UTC)));
    assert_eq!((a.last_used_at, a.use_count), (None, 0));

    // Unique digests.
    assert!(matches!(
        store.insert(new_token("acme", "secret-a", None)).await,
        Err(StoreError::Conflict)
    ));

    // Lookups.
    assert_eq!(store.find_by_digest(&a.digest).await.unwrap(), a);
    assert!(matches!(
        store.find_by_digest(&Digest::of(b"nope")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.find_by_id("acme", b.id).await.unwrap(), b);
    assert!(matches!(
        store.find_by_id("globex", b.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.find_by_id("acme", TokenId::new(u64::MAX)).await,
        Err(StoreError::NotFound)
    ));

    // Lists are per tenant, ordered by id.
    let acme: Vec<TokenId> = store
        .list_by_tenant("acme", ListQuery::all())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(acme, [a.id, b.id]);
    assert!(
        store
            .list_by_tenant("initech", ListQuery::all())
            .await
            .unwrap()
            .is_empty()
    );

    // Usage: counts add up, last use is the latest.
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
    let a_now = store.find_by_id("acme", a.id).await.unwrap();
    assert_eq!(a_now.use_count, 5);
    assert_eq!(a_now.last_used_at, Some(datetime!(2030-01-05 0:00 UTC)));

    // Delete is tenant-scoped and says what to evict.
    assert!(matches!(
        store.delete("globex", a.id).await,
        Err(StoreError::NotFound)
    ));
    let gone = store.delete("acme", a.id).await.unwrap();
    assert_eq!((gone.id, gone.digest), (a.id, a.digest));
    assert!(matches!(
        store.delete("acme", a.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.find_by_digest(&a.digest).await,
        Err(StoreError::NotFound)
    ));

    // Pruning removes only what expired before the cutoff.
    let pruned = store
        .prune_expired(datetime!(2030-01-03 0:00 UTC))
        .await
        .unwrap();
    assert_eq!(pruned.len(), 1);
    assert_eq!((pruned[0].id, pruned[0].digest), (c.id, c.digest));
    assert_eq!(
        store
            .list_by_tenant("acme", ListQuery::all())
            .await
            .unwrap()
            .len(),
        1
    );

    // Ids are not reused after deletion.
    let d = store
        .insert(new_token("acme", "secret-d", None))
        .await
        .unwrap();
    assert!(d.id > c.id);

    lineage_and_cascade(&store).await;
    pagination(&store).await;
    rotation(&store).await;
    insert_once(&store).await;
}

fn child_of(parent: TokenId, tenant: &str, secret: &str) -> NewToken {
    NewToken {
        created_by: Some(parent),
        ..new_token(tenant, secret, None)
    }
}

async fn lineage_and_cascade(store: &impl TokenStore) {
    let root = store.insert(new_token("lin", "root", None)).await.unwrap();
    let child = store
        .insert(child_of(root.id, "lin", "child"))
        .await
        .unwrap();
    let grandchild = store
        .insert(child_of(child.id, "lin", "grandchild"))
        .await
        .unwrap();
    let sibling = store
        .insert(new_token("lin", "sibling", None))
        .await
        .unwrap();
    assert_eq!(child.created_by, Some(root.id));
    assert_eq!(
        store
            .find_by_id("lin", grandchild.id)
            .await
            .unwrap()
            .created_by,
        Some(child.id)
    );
    // Another tenant's id reaches nothing.
    assert!(matches!(
        store.delete_with_descendants("acme", root.id).await,
        Err(StoreError::NotFound)
    ));
    let removed = store.delete_with_descendants("lin", root.id).await.unwrap();
    let mut ids: Vec<TokenId> = removed.iter().map(|i| i.id).collect();
    assert_eq!(ids[0], root.id, "the token's own invalidation comes first");
    ids.sort();
    assert_eq!(ids, [root.id, child.id, grandchild.id]);
    assert!(removed.iter().any(|i| i.digest == grandchild.digest));
    let left: Vec<TokenId> = store
        .list_by_tenant("lin", ListQuery::all())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [sibling.id]);
}

async fn pagination(store: &impl TokenStore) {
    let mut ids = Vec::new();
    for n in 0..5 {
        let record = store
            .insert(new_token("paged", &format!("page-{n}"), None))
            .await
            .unwrap();
        ids.push(record.id);
    }
    let page = |query| async move {
        store
            .list_by_tenant("paged", query)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(page(ListQuery::first(2)).await, ids[..2]);
    assert_eq!(page(ListQuery::first(2).after(ids[1])).await, ids[2..4]);
    assert_eq!(page(ListQuery::first(10).after(ids[3])).await, ids[4..]);
    assert!(page(ListQuery::first(10).after(ids[4])).await.is_empty());
    assert!(page(ListQuery::first(0)).await.is_empty());
}

async fn rotation(store: &impl TokenStore) {
    let old = store
        .insert(new_token("rot", "rot-old", None))
        .await
        .unwrap();
    let child = store
        .insert(child_of(old.id, "rot", "rot-child"))
        .await
        .unwrap();
    let new = store
        .rotate(&old, new_token("rot", "rot-new", None), None)
        .await
        .unwrap();
    assert!(new.id > old.id);
    assert!(matches!(
        store.find_by_digest(&old.digest).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.find_by_id("rot", child.id).await.unwrap().created_by,
        Some(new.id),
        "what the old token created now descends from its replacement"
    );
    // A second rotation of the same token loses and inserts nothing.
    assert!(matches!(
        store
            .rotate(&old, new_token("rot", "rot-twin", None), None)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.find_by_digest(&Digest::of(b"rot-twin")).await,
        Err(StoreError::NotFound)
    ));

    // With a grace period the old record lives on, marked, until then at the latest.
    let grace_until = datetime!(2030-01-01 1:00 UTC);
    let newer = store
        .rotate(&new, new_token("rot", "rot-newer", None), Some(grace_until))
        .await
        .unwrap();
    let kept = store.find_by_digest(&new.digest).await.unwrap();
    assert_eq!(kept.rotated_to, Some(newer.id));
    assert_eq!(kept.expires_at, Some(grace_until));
    // …and cannot be rotated again.
    assert!(matches!(
        store
            .rotate(&new, new_token("rot", "rot-twin-2", None), None)
            .await,
        Err(StoreError::Conflict)
    ));
    // A record that changed since it was read is a conflict.
    let stale = tower_bearer::store::TokenRecord {
        scopes: ScopeSet::parse(["admin"]).unwrap(),
        ..newer.clone()
    };
    assert!(matches!(
        store
            .rotate(&stale, new_token("rot", "rot-twin-3", None), None)
            .await,
        Err(StoreError::Conflict)
    ));
    // Racing rotations: exactly one wins.
    let racer = store.insert(new_token("rot", "racer", None)).await.unwrap();
    let (a, b) = tokio::join!(
        store.rotate(&racer, new_token("rot", "racer-a", None), None),
        store.rotate(&racer, new_token("rot", "racer-b", None), None),
    );
    assert!(a.is_ok() ^ b.is_ok(), "{a:?} {b:?}");
    let mut live = 0;
    for secret in ["racer-a", "racer-b"] {
        live += usize::from(
            store
                .find_by_digest(&Digest::of(secret.as_bytes()))
                .await
                .is_ok(),
        );
    }
    assert_eq!(live, 1, "one replacement, never an unseen twin");
}

async fn insert_once(store: &impl TokenStore) {
    let first = store
        .insert_once("bootstrap:once", new_token("once", "once-1", None))
        .await
        .unwrap();
    assert!(first.is_some());
    store.delete("once", first.unwrap().id).await.unwrap();
    let again = store
        .insert_once("bootstrap:once", new_token("once", "once-2", None))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "a marker is used once, even after its token is gone"
    );
    assert!(matches!(
        store.find_by_digest(&Digest::of(b"once-2")).await,
        Err(StoreError::NotFound)
    ));
}
