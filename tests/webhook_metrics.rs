//! `tower_bearer_webhook_deliveries_total` (features `metrics` and `webhooks`), read by
//! metrics-util's debugging recorder after deliveries to receivers on 127.0.0.1: one
//! delivered after one failure, one given up. Its own binary: the recorder is the
//! process's.
#![cfg(all(feature = "metrics", feature = "webhooks", feature = "sqlite"))]

mod support;

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use time::OffsetDateTime;
use tower_bearer::Registry;
use tower_bearer::registry::IssueRequest;
use tower_bearer::store::SqliteStore;
use tower_bearer::store::webhooks::{NewEndpoint, WebhookStore};
use tower_bearer::telemetry;
use tower_bearer::webhooks::{DeliveryOptions, Targets, WebhookSecret};

async fn node(
    dir: &tempfile::TempDir,
    url: &str,
    options: DeliveryOptions,
) -> (Registry, SqliteStore) {
    let store = SqliteStore::open(dir.path().join("hooks.db"))
        .await
        .unwrap();
    store
        .create_endpoint(NewEndpoint::new(
            "acme",
            url,
            vec!["token.created".to_owned()],
            WebhookSecret::generate().unwrap(),
            OffsetDateTime::now_utc(),
        ))
        .await
        .unwrap();
    let registry = Registry::builder(store.clone())
        .webhooks(store.clone(), Targets::AllowPrivate)
        .webhook_options(options.poll_interval(Duration::from_millis(50)))
        .build();
    (registry, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_attempts_are_counted_by_result() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).unwrap();
    telemetry::describe();

    // Answers 500, then 204: one failed attempt, then one delivered.
    let receiver = support::webhooks::Receiver::default();
    let url = receiver.serve(&[500]).await;
    let answering = tempfile::tempdir().unwrap();
    let (retried, retried_store) = node(
        &answering,
        &url,
        DeliveryOptions::default().first_retry(Duration::from_millis(200)),
    )
    .await;
    // Nobody listens on port 9 and nothing is retried: given up at once.
    let refusing = tempfile::tempdir().unwrap();
    let (abandoned, abandoned_store) = node(
        &refusing,
        "http://127.0.0.1:9/hook",
        DeliveryOptions::default().give_up_after(Duration::ZERO),
    )
    .await;
    for registry in [&retried, &abandoned] {
        registry
            .issue(IssueRequest::new("watched", "acme").unwrap())
            .await
            .unwrap();
    }
    let attempts = |store: SqliteStore, endpoint: u64| async move {
        store
            .delivery_attempts("acme", endpoint, None, 10)
            .await
            .unwrap()
            .len()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while (attempts(retried_store.clone(), 1).await < 2
        || attempts(abandoned_store.clone(), 1).await < 1)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    retried.stop_webhooks().await;
    abandoned.stop_webhooks().await;

    // One snapshot: taking it resets the counters.
    let snapshot = snapshotter.snapshot().into_vec();
    let counted = |result: &str| {
        snapshot
            .iter()
            .find_map(|(key, _, _, value)| {
                let key = key.key();
                let matches = key.name() == telemetry::WEBHOOK_DELIVERIES_TOTAL
                    && key
                        .labels()
                        .any(|l| l.key() == "result" && l.value() == result);
                match (matches, value) {
                    (true, DebugValue::Counter(count)) => Some(*count),
                    _ => None,
                }
            })
            .unwrap_or(0)
    };
    assert_eq!(
        (counted("delivered"), counted("failed"), counted("given_up")),
        (1, 1, 1)
    );
    assert_eq!(receiver.received().len(), 2);
}
