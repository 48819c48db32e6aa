//! The behaviour every `TokenStore` must have, run against each implementation.

use time::OffsetDateTime;
use time::macros::datetime;
use tower_bearer::principal::TokenId;
use tower_bearer::store::{NewToken, StoreError, TokenStore, UsageUpdate};
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
        .list_by_tenant("acme")
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(acme, [a.id, b.id]);
    assert!(store.list_by_tenant("initech").await.unwrap().is_empty());

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
    assert_eq!(store.list_by_tenant("acme").await.unwrap().len(), 1);

    // Ids are not reused after deletion.
    let d = store
        .insert(new_token("acme", "secret-d", None))
        .await
        .unwrap();
    assert!(d.id > c.id);
}
