//! The contract every [`WebhookStore`] keeps.

use time::macros::datetime;

use crate::store::StoreError;
use crate::store::webhooks::{EndpointUpdate, NewEndpoint, WebhookStore};
use crate::webhooks::WebhookSecret;

/// Checks `store` (empty) against the [`WebhookStore`] contract: endpoints are read
/// back as written, per tenant; another tenant's is not found; changes replace what they
/// give; a rotation keeps the secret before it; ids are never reused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// tower_bearer::testing::webhook_contract(&tower_bearer::MemoryStore::new()).await;
/// # }
/// ```
pub async fn webhook_contract(store: &impl WebhookStore) {
    let at = datetime!(2026-12-04 10:00:00.123 UTC);
    let secret = WebhookSecret::generate().expect("randomness");
    let events = vec!["token.created".to_owned(), "token.revoked".to_owned()];
    let mut new = NewEndpoint::new(
        "acme",
        "https://hooks.example.com/a",
        events.clone(),
        secret.clone(),
        at,
    );
    new.description = Some("Slack".to_owned());
    let first = store.create_endpoint(new).await.expect("create");
    assert!(first.id > 0);
    assert_eq!(
        (&*first.tenant, &*first.url, &first.events),
        ("acme", "https://hooks.example.com/a", &events)
    );
    assert_eq!(first.description.as_deref(), Some("Slack"));
    assert_eq!((&first.secret, first.created_at), (&secret, at));
    assert_eq!(
        (first.previous_secret.clone(), first.failing_since),
        (None, None)
    );
    let other = store
        .create_endpoint(NewEndpoint::new(
            "globex",
            "https://hooks.example.org/",
            vec!["token.expiring".to_owned()],
            WebhookSecret::generate().expect("randomness"),
            at,
        ))
        .await
        .expect("create");
    assert!(other.id > first.id);

    assert_eq!(
        store.endpoints("acme").await.expect("list"),
        std::slice::from_ref(&first)
    );
    assert_eq!(store.endpoint("acme", first.id).await.expect("get"), first);
    for wrong in [
        store.endpoint("acme", other.id).await,
        store.endpoint("acme", other.id + 1000).await,
    ] {
        assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    }

    let update = EndpointUpdate {
        url: Some("https://hooks.example.com/b".to_owned()),
        description: Some(None),
        ..EndpointUpdate::default()
    };
    let changed = store
        .update_endpoint("acme", first.id, update)
        .await
        .expect("update");
    assert_eq!(changed.url, "https://hooks.example.com/b");
    assert_eq!((changed.description, &changed.events), (None, &events));
    let update = EndpointUpdate {
        events: Some(vec!["token.leaked".to_owned()]),
        ..EndpointUpdate::default()
    };
    let changed = store
        .update_endpoint("acme", first.id, update)
        .await
        .expect("update");
    assert_eq!(changed.events, ["token.leaked"]);
    assert_eq!(changed.url, "https://hooks.example.com/b", "kept");
    assert!(matches!(
        store
            .update_endpoint("globex", first.id, EndpointUpdate::default())
            .await,
        Err(StoreError::NotFound)
    ));

    let next = WebhookSecret::generate().expect("randomness");
    let until = datetime!(2026-12-05 10:00:00.456 UTC);
    let rotated = store
        .rotate_endpoint_secret("acme", first.id, next.clone(), until)
        .await
        .expect("rotate");
    assert_eq!(rotated.secret, next);
    assert_eq!(rotated.previous_secret, Some((secret, until)));
    assert_eq!(
        store.endpoint("acme", first.id).await.expect("get"),
        rotated
    );

    assert!(matches!(
        store.delete_endpoint("globex", first.id).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete_endpoint("acme", first.id)
        .await
        .expect("delete");
    assert!(matches!(
        store.endpoint("acme", first.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.endpoints("acme").await.expect("list").is_empty());
    let again = store
        .create_endpoint(NewEndpoint::new(
            "acme",
            "https://hooks.example.com/c",
            Vec::new(),
            WebhookSecret::generate().expect("randomness"),
            at,
        ))
        .await
        .expect("create");
    assert!(again.id > other.id, "ids are never reused");
}
