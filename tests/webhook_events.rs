//! Webhook events end to end: changes made through a registry on a real SQLite file (and
//! two on one PostgreSQL server) reach a receiver on 127.0.0.1 that verifies them with
//! the `standardwebhooks` package — each event once, retried with its `webhook-id` kept,
//! expiry warnings once per threshold, private targets refused at delivery.
#![cfg(all(feature = "webhooks", feature = "sqlite"))]

mod support;

use std::time::Duration;

use time::OffsetDateTime;
use tower_bearer::Registry;
use tower_bearer::registry::{Expiry, IssueRequest, RotateRequest};
use tower_bearer::store::webhooks::{NewEndpoint, WebhookStore};
use tower_bearer::store::{SqliteStore, TokenUpdate};
use tower_bearer::webhooks::{DeliveryOptions, EVENT_TYPES, Targets, WebhookSecret};

use support::webhooks::{PythonReceiver, Receiver};

/// Options for tests: everything within a second.
fn fast() -> DeliveryOptions {
    DeliveryOptions::default()
        .poll_interval(Duration::from_millis(50))
        .first_retry(Duration::from_millis(300))
        .timeout(Duration::from_secs(5))
}

/// A registry over `store` that sends its webhooks to `targets` as `options` say.
fn node<S>(store: &S, targets: Targets, options: DeliveryOptions) -> Registry
where
    S: tower_bearer::store::TokenStore + WebhookStore + Clone,
{
    Registry::builder(store.clone())
        .webhooks(store.clone(), targets)
        .webhook_options(options)
        .build()
}

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(1500);

async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("hooks.db"))
        .await
        .unwrap()
}

/// An endpoint of `tenant` at `url` for every event; its secret.
async fn subscribe(store: &impl WebhookStore, tenant: &str, url: &str) -> (u64, WebhookSecret) {
    let secret = WebhookSecret::generate().unwrap();
    let events = EVENT_TYPES
        .iter()
        .map(|event| (*event).to_owned())
        .collect();
    let endpoint = store
        .create_endpoint(NewEndpoint::new(
            tenant,
            url,
            events,
            secret.clone(),
            OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap();
    (endpoint.id, secret)
}

fn key(name: &str) -> IssueRequest {
    IssueRequest::new(name, "acme")
        .unwrap()
        .scopes(["read", "admin"])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_reach_a_standard_webhooks_receiver_once_each() {
    let Some(python) = support::webhooks::python() else {
        return;
    };
    let mut receiver = PythonReceiver::start(&python, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let (_, secret) = subscribe(&store, "acme", &receiver.url).await;
    receiver.verify_with(&secret.expose()).await;
    let registry = node(&store, Targets::AllowPrivate, fast());

    let admin = registry.issue(key("admin")).await.unwrap();
    let child = registry
        .issue(key("child").created_by(Some(admin.info.id)))
        .await
        .unwrap();
    registry
        .update("acme", child.info.id, TokenUpdate::new().name("renamed"))
        .await
        .unwrap();
    let rotated = registry
        .rotate(RotateRequest::new("acme", child.info.id))
        .await
        .unwrap();
    registry
        .revoke_cascade("acme", admin.info.id)
        .await
        .unwrap();

    let got = receiver.exactly(7, WAIT, QUIET).await;
    assert!(
        got.iter().all(|r| r.verified && r.status == 204),
        "{got:#?}"
    );
    // Delivered concurrently: in no particular order (each body has its timestamp).
    let mut events: Vec<(&str, u64, Option<&str>)> = got
        .iter()
        .map(|r| (r.kind(), r.token_id(), r.body["data"]["reason"].as_str()))
        .collect();
    events.sort();
    let (admin, child, new) = (
        admin.info.id.get(),
        child.info.id.get(),
        rotated.info.id.get(),
    );
    let mut expected = vec![
        ("token.created", admin, None),
        ("token.created", child, None),
        ("token.updated", child, None),
        ("token.rotated", new, None),
        ("token.revoked", child, Some("rotated")),
        ("token.revoked", admin, Some("manual")),
        ("token.revoked", new, Some("cascade")),
    ];
    expected.sort();
    assert_eq!(events, expected);
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 7, "one webhook-id per event");
    let of = |kind: &str| got.iter().find(|r| r.kind() == kind).unwrap();
    assert_eq!(of("token.updated").body["data"]["name"], "renamed");
    assert_eq!(of("token.rotated").body["data"]["rotated_from"], child);
    registry.stop_webhooks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_answering_500_then_200_gets_the_same_webhook_id_again() {
    let Some(python) = support::webhooks::python() else {
        return;
    };
    let mut receiver = PythonReceiver::start(&python, &[500, 200]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let (endpoint, secret) = subscribe(&store, "acme", &receiver.url).await;
    receiver.verify_with(&secret.expose()).await;
    let registry = node(&store, Targets::AllowPrivate, fast());
    let issued = registry.issue(key("retried")).await.unwrap();

    let got = receiver.exactly(2, WAIT, QUIET).await;
    assert_eq!((got[0].status, got[1].status), (500, 200));
    assert_eq!(got[0].id, got[1].id, "the same webhook-id");
    assert_eq!(got[0].body, got[1].body, "the same body");
    assert_eq!(got[1].token_id(), issued.info.id.get());
    let attempts = store
        .delivery_attempts("acme", endpoint, None, 10)
        .await
        .unwrap();
    let listed: Vec<(u32, Option<u16>)> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(listed, [(2, Some(200)), (1, Some(500))]);
    assert_eq!(attempts[0].event_id, got[0].id);
    assert!(
        store
            .endpoint("acme", endpoint)
            .await
            .unwrap()
            .failing_since
            .is_none()
    );
    registry.stop_webhooks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_about_to_expire_is_announced_once_per_threshold_then_expired() {
    let receiver = Receiver::default();
    let url = receiver.serve(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    subscribe(&store, "acme", &url).await;
    let watching = fast()
        .expiry_thresholds([Duration::from_secs(3)])
        .expiry_check_interval(Duration::from_millis(100));
    let registry = node(&store, Targets::AllowPrivate, watching.clone());
    // A second node over the same file sees the same time pass.
    let other = node(&store, Targets::AllowPrivate, watching);
    let issued = registry
        .issue(key("short-lived").expires(Expiry::In(Duration::from_secs(5))))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let events: Vec<(String, u64)> = receiver
        .received()
        .iter()
        .map(|(_, body)| {
            (
                body["type"].as_str().unwrap().to_owned(),
                body["data"]["id"].as_u64().unwrap(),
            )
        })
        .collect();
    let id = issued.info.id.get();
    assert_eq!(
        events,
        [
            ("token.created".to_owned(), id),
            ("token.expiring".to_owned(), id),
            ("token.expired".to_owned(), id),
        ]
    );
    let expiring = &receiver.received()[1].1;
    assert_eq!(expiring["data"]["threshold_seconds"], 3);
    registry.stop_webhooks().await;
    other.stop_webhooks().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_target_is_refused_at_delivery_without_the_switch() {
    let receiver = Receiver::default();
    let url = receiver.serve(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    // Written straight to the store: the management API refuses it at creation.
    let (endpoint, _) = subscribe(&store, "acme", &url).await;
    let registry = node(&store, Targets::Public, fast());
    registry.issue(key("watched")).await.unwrap();
    let attempts = loop {
        let attempts = store
            .delivery_attempts("acme", endpoint, None, 10)
            .await
            .unwrap();
        if !attempts.is_empty() {
            break attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(attempts[0].status, None);
    let error = attempts[0].error.as_deref().unwrap();
    assert!(
        error.contains("http") || error.contains("private") || error.contains("loopback"),
        "{error}"
    );
    tokio::time::sleep(QUIET).await;
    assert!(
        receiver.received().is_empty(),
        "nothing reached the private address"
    );
    registry.stop_webhooks().await;
}

/// Two nodes on one PostgreSQL server deliver while keys are issued on both, and one of
/// them restarts in the middle (stopping as a server does at shutdown): every event
/// reaches the receiver exactly once.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_and_a_restart_deliver_each_event_exactly_once() {
    use tower_bearer::store::PostgresStore;
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let receiver = Receiver::slow(Duration::from_millis(30));
    let hook = receiver.serve(&[]).await;
    let start_node = || async {
        let store = PostgresStore::connect(&url).await.unwrap();
        node(&store, Targets::AllowPrivate, fast().concurrency(3))
    };
    let setup = PostgresStore::connect(&url).await.unwrap();
    subscribe(&setup, "acme", &hook).await;
    let (mut a, b) = (start_node().await, start_node().await);
    let mut issued = Vec::new();
    for n in 0..40 {
        if n == 20 {
            // A restart: deliveries under way finish, the rest wait for the nodes.
            a.stop_webhooks().await;
            drop(a);
            a = start_node().await;
        }
        let on = if n % 2 == 0 { &a } else { &b };
        issued.push(
            on.issue(key(&format!("key {n}")))
                .await
                .unwrap()
                .info
                .id
                .get(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.received().len() < issued.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(QUIET).await;
    let received = receiver.received();
    let mut ids: Vec<&str> = received.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        received.len(),
        "no webhook-id twice: {received:#?}"
    );
    let mut tokens: Vec<u64> = received
        .iter()
        .map(|(_, body)| body["data"]["id"].as_u64().unwrap())
        .collect();
    tokens.sort_unstable();
    assert_eq!(tokens, issued, "every event once");
    a.stop_webhooks().await;
    b.stop_webhooks().await;
}

/// A key spending its credits through a real server: `token.credits_low` once, when 80 %
/// are used (counted from the slices the layer reserves ahead, at most a tenth early).
#[tokio::test(flavor = "multi_thread")]
async fn a_key_spending_its_credits_is_announced_once_when_80_percent_are_used() {
    use tower_bearer::BearerAuthLayer;
    use tower_bearer::policy::{Credits, Policies};
    let receiver = Receiver::default();
    let url = receiver.serve(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    subscribe(&store, "acme", &url).await;
    let registry = node(&store, Targets::AllowPrivate, fast());
    let issued = registry
        .issue(
            key("metered")
                .policies(Policies::none().credits(Credits::new(20)))
                .unwrap(),
        )
        .await
        .unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(registry.clone()));
    let client = support::http::HttpClient::new(support::http::serve(app).await);
    let token = issued.secret.expose_secret();
    for _ in 0..18 {
        assert_eq!(client.get("/", token).await.status, 200);
    }
    tokio::time::sleep(QUIET).await;
    let events: Vec<(String, u64)> = receiver
        .received()
        .iter()
        .map(|(_, body)| {
            (
                body["type"].as_str().unwrap().to_owned(),
                body["data"]["id"].as_u64().unwrap(),
            )
        })
        .collect();
    let id = issued.info.id.get();
    assert_eq!(
        events,
        [
            ("token.created".to_owned(), id),
            ("token.credits_low".to_owned(), id),
        ]
    );
    let low = &receiver.received()[1].1;
    let left = low["data"]["policies"]["credits"]["remaining"]
        .as_u64()
        .unwrap();
    assert!(left <= 4, "at most 20 % left: {low}");
    registry.stop_webhooks().await;
}
