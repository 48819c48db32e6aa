//! The log lines an operator reads: every rejection names the token when it is known,
//! and an outage of the store is one warning when it starts and one when it ends, with a
//! count, however many flushes failed in between.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use tower::ServiceExt as _;
use tower_bearer::extract::{AdminScope, Scoped};
use tower_bearer::registry::IssueRequest;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

use support::InstrumentedStore;
use support::logs::{Line, Recorder, recording};

async fn get_with(app: &BearerAuthLayerApp, path: &str, token: &str) -> StatusCode {
    app.clone()
        .oneshot(
            Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

type BearerAuthLayerApp = tower_bearer::layer::BearerAuth<Router>;

fn app(registry: &Registry) -> BearerAuthLayerApp {
    let router = Router::new()
        .route("/items", get(|| async { "items" }))
        .route("/admin", get(|_: Scoped<AdminScope>| async { "admin" }));
    BearerAuthLayer::new(registry.clone()).protect(router)
}

/// The rejection lines of target `tower_bearer::reject`.
fn rejections(recorder: &Recorder) -> Vec<Line> {
    recorder
        .lines()
        .into_iter()
        .filter(|line| line.target == "tower_bearer::reject")
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn a_revoked_token_is_named_in_its_rejection() {
    let (recorder, _guard) = recording();
    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(IssueRequest::new("ci", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let app = app(&registry);
    assert_eq!(get_with(&app, "/items", &token).await, StatusCode::OK);
    registry.revoke("acme", issued.info.id).await.unwrap();

    assert_eq!(
        get_with(&app, "/items", &token).await,
        StatusCode::UNAUTHORIZED
    );
    let lines = rejections(&recorder);
    let line = lines.last().expect("a rejection line");
    assert_eq!(line.field("cause"), Some("revoked"), "{line:?}");
    assert_eq!(
        line.field("token_id"),
        Some(issued.info.id.get().to_string().as_str()),
        "{line:?}"
    );
    // Never the secret, in any field of any line.
    for line in recorder.lines() {
        for (_, value) in &line.fields {
            assert!(!value.contains(&token[8..]), "{line:?}");
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_403_from_an_extractor_names_the_token() {
    let (recorder, _guard) = recording();
    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(
            IssueRequest::new("reader", "acme")
                .unwrap()
                .scopes(["read"])
                .unwrap(),
        )
        .await
        .unwrap();
    let app = app(&registry);
    let status = get_with(&app, "/admin", issued.secret.expose_secret()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let lines = rejections(&recorder);
    let line = lines
        .iter()
        .find(|line| line.message().contains("403"))
        .expect("a 403 line");
    assert_eq!(line.field("scope"), Some("admin"), "{line:?}");
    assert_eq!(
        line.field("token_id"),
        Some(issued.info.id.get().to_string().as_str()),
        "{line:?}"
    );
    assert_eq!(line.level, tracing::Level::DEBUG);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_failing_usage_flush_warns_when_it_starts_and_when_it_ends() {
    let (recorder, _guard) = recording();
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .usage_flush_interval(Duration::from_secs(1))
        .build();
    let issued = registry
        .issue(IssueRequest::new("ci", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    registry.verify(&token).await.unwrap();

    store.set_down(true);
    for _ in 0..23 {
        // A use to write, then a flush that fails.
        registry.verify(&token).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    store.set_down(false);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let flush_lines: Vec<Line> = recorder
        .lines()
        .into_iter()
        .filter(|line| {
            line.level == tracing::Level::WARN && line.field("job") == Some("usage flush")
        })
        .collect();
    assert_eq!(
        flush_lines.len(),
        2,
        "one when it starts, one when it ends: {flush_lines:#?}"
    );
    assert!(
        flush_lines[0].message().contains("failed"),
        "{flush_lines:#?}"
    );
    assert!(
        flush_lines[1].message().contains("succeeds again"),
        "{flush_lines:#?}"
    );
    let failures: u64 = flush_lines[1].field("failures").unwrap().parse().unwrap();
    assert!((20..=24).contains(&failures), "{flush_lines:#?}");
    assert!(
        store.usage_writes() > 0,
        "the uses were written once the store was back"
    );
}
