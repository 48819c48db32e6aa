//! The metrics (feature `metrics`) through a real server on 127.0.0.1 and a real HTTP
//! client, read by metrics-util's debugging recorder: a known mix of requests gives
//! exactly its counts.
//!
//! One test in this binary records: the recorder and the per-thread counts are the
//! process's.
#![cfg(all(feature = "metrics", feature = "exchange", feature = "axum"))]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::InstrumentedStore;
use support::http::HttpClient;
use tower_bearer::clock::ManualClock;
use tower_bearer::extract::{ReadScope, Scoped, WriteScope};
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::telemetry;
use tower_bearer::token::{Env, PrefixedFormat};
use tower_bearer::{BearerAuthLayer, Registry};

/// The snapshot's counters and gauges by name and labels (`name{k=v,…}`), and each
/// histogram's number of samples.
fn read(snapshotter: &Snapshotter) -> HashMap<String, f64> {
    let mut values = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let mut labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        #[allow(clippy::cast_precision_loss)]
        let value = match value {
            DebugValue::Counter(count) => count as f64,
            DebugValue::Gauge(gauge) => gauge.into_inner(),
            DebugValue::Histogram(samples) => samples.len() as f64,
        };
        values.insert(name, value);
    }
    values
}

async fn call(client: &HttpClient, method: &str, path: &str, token: Option<&str>) -> StatusCode {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    client.request(request).await.status
}

async fn issue(registry: &Registry, scopes: &[&str], expires: Expiry) -> (u64, String) {
    let issued = registry
        .issue(
            IssueRequest::new("metered", "acme")
                .unwrap()
                .scopes(scopes.iter().copied())
                .unwrap()
                .expires(expires),
        )
        .await
        .unwrap();
    (
        issued.info.id.get(),
        issued.secret.expose_secret().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_mix_of_requests_is_counted_exactly() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();
    telemetry::describe();

    let store = InstrumentedStore::new();
    let clock = ManualClock::starting_now();
    let keys = SessionKeys::new("k1", &[7; 32]).unwrap();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .sessions(SessionConfig::new(keys))
        // Published when the test says, not by the background task.
        .usage_flush_interval(Duration::from_secs(3600))
        .build();
    let app = Router::new()
        .route("/items", get(|_: Scoped<ReadScope>| async { "items" }))
        .route(
            "/items",
            post(|_: Scoped<WriteScope>| async { StatusCode::CREATED }),
        );
    let client = HttpClient::new(
        support::http::serve(app.layer(BearerAuthLayer::new(registry.clone()))).await,
    );

    let (_, reader) = issue(&registry, &["read"], Expiry::Never).await;
    let (revoked_id, revoked) = issue(&registry, &["read"], Expiry::Never).await;
    let in_an_hour = clock.clock().now() + time::Duration::hours(1);
    let (_, expiring) = issue(&registry, &["read"], Expiry::At(in_an_hour)).await;
    // Used once, then revoked here: the cache keeps its tombstone. The clock moves
    // first (the expiring token expires), so that the tombstone is fresh.
    assert_eq!(
        call(&client, "GET", "/items", Some(&revoked)).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(2 * 3600));
    registry
        .revoke("acme", tower_bearer::TokenId::new(revoked_id))
        .await
        .unwrap();
    let mint = || {
        let minted = PrefixedFormat::default().mint(Env::Live).unwrap();
        minted.secret.expose_secret().to_owned()
    };
    let (never_issued, also_never_issued) = (mint(), mint());
    registry.publish_metrics();
    let _ = read(&snapshotter); // what came before the mix

    for _ in 0..3 {
        assert_eq!(
            call(&client, "GET", "/items", Some(&reader)).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        call(&client, "GET", "/items", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&client, "GET", "/items", Some("sk_live_short")).await,
        StatusCode::UNAUTHORIZED
    );
    for _ in 0..2 {
        assert_eq!(
            call(&client, "GET", "/items", Some(&never_issued)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        call(&client, "GET", "/items", Some(&revoked)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&client, "GET", "/items", Some(&expiring)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&client, "POST", "/items", Some(&reader)).await,
        StatusCode::FORBIDDEN
    );
    store.set_down(true);
    assert_eq!(
        call(&client, "GET", "/items", Some(&also_never_issued)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    store.set_down(false);
    registry.login(&reader, None).await.unwrap();
    registry.publish_metrics();

    let values = read(&snapshotter);
    let count = |name: &str| values.get(name).copied().unwrap_or(0.0);
    let requests = |outcome: &str| {
        count(&format!(
            "{}{{outcome={outcome}}}",
            telemetry::REQUESTS_TOTAL
        ))
    };
    let expected = [
        ("ok", 3.0),
        ("missing", 1.0),
        ("malformed", 1.0),
        ("unknown", 2.0),
        ("revoked", 1.0),
        ("expired", 1.0),
        ("insufficient_scope", 1.0),
        ("unavailable", 1.0),
        ("wrong_env", 0.0),
        ("rate_limited", 0.0),
    ];
    for (outcome, n) in expected {
        assert_eq!(requests(outcome), n, "{outcome}: {values:#?}");
    }
    let lookups = |result: &str| {
        count(&format!(
            "{}{{result={result}}}",
            telemetry::CACHE_LOOKUPS_TOTAL
        ))
    };
    // The reader: one miss, then hits (two GETs, the POST, the login's verification).
    // Never issued: a miss, then the remembered negative. Revoked here: its tombstone.
    // Expiring, and the one asked of a store that is down: a miss each.
    assert_eq!(lookups("hit"), 4.0, "{values:#?}");
    assert_eq!(lookups("miss"), 4.0, "{values:#?}");
    assert_eq!(lookups("negative"), 2.0, "{values:#?}");
    assert_eq!(lookups("stale"), 0.0, "{values:#?}");
    assert_eq!(
        count(&format!("{}{{}}", telemetry::SESSIONS_ISSUED_TOTAL)),
        1.0
    );
    #[allow(clippy::cast_precision_loss)]
    let cached = registry.cache_stats().tokens as f64;
    assert_eq!(count(&format!("{}{{}}", telemetry::TOKENS_CACHED)), cached);
    // Store calls timed by operation, backend and result: the failed lookup is an error.
    let store_calls = |labels: &str| {
        count(&format!(
            "{}{{{labels}}}",
            telemetry::STORE_DURATION_SECONDS
        ))
    };
    assert_eq!(
        store_calls("backend=custom,op=find_by_digest,result=error"),
        1.0,
        "{values:#?}"
    );
    assert!(
        store_calls("backend=custom,op=find_by_digest,result=ok") >= 1.0,
        "{values:#?}"
    );
    assert_eq!(
        store_calls("backend=custom,op=find_by_digest,result=not_found"),
        1.0,
        "{values:#?}"
    );
    assert!(
        store_calls("backend=custom,op=insert,result=ok") >= 1.0,
        "{values:#?}"
    );
}

/// The Grafana dashboard and the alert rules in `docs/metrics/` name only metrics the
/// crate emits (a renamed metric would leave them silently empty), and use each kind as
/// it is (histograms through their buckets or counts).
#[test]
fn the_dashboard_and_the_alerts_name_only_emitted_metrics() {
    let emitted = [
        telemetry::REQUESTS_TOTAL,
        telemetry::CACHE_LOOKUPS_TOTAL,
        telemetry::STORE_DURATION_SECONDS,
        telemetry::FEED_LAG_SECONDS,
        telemetry::FEED_UP,
        telemetry::FEED_RECONNECTS_TOTAL,
        telemetry::ACTIVITY_DROPPED_TOTAL,
        telemetry::SESSIONS_ISSUED_TOTAL,
        telemetry::TOKENS_CACHED,
        telemetry::WEBHOOK_DELIVERIES_TOTAL,
    ];
    let histograms = [
        telemetry::STORE_DURATION_SECONDS,
        telemetry::FEED_LAG_SECONDS,
    ];
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics");
    let dashboard = std::fs::read_to_string(docs.join("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    let alerts = std::fs::read_to_string(docs.join("alerts.yml")).unwrap();
    assert_eq!(alerts.matches("- alert: ").count(), 3);
    expressions.push(alerts);
    let name = regex::Regex::new(r"tower_bearer_[a-z_]+").unwrap();
    let mut used = std::collections::BTreeSet::new();
    for expression in &expressions {
        for found in name.find_iter(expression) {
            let found = found.as_str();
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| found.strip_suffix(suffix))
                .filter(|base| histograms.contains(base))
                .unwrap_or(found);
            assert!(
                emitted.contains(&base),
                "{found} is not emitted: {expression}"
            );
            assert!(
                !histograms.contains(&found),
                "a histogram is read through _bucket, _count or _sum: {expression}"
            );
            used.insert(base);
        }
    }
    assert_eq!(
        used.len(),
        emitted.len(),
        "the dashboard shows every metric: {used:?}"
    );
}
