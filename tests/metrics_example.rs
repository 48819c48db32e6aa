//! The example server's `/metrics` (Prometheus's text format, `--metrics-addr`) scraped
//! over HTTP after a known mix of requests, on two nodes sharing a PostgreSQL server of
//! the test's own (stopped once for an outage): every request counter matches the mix,
//! the store's failure is timed as an error, and node B measures the change feed's lag
//! of a revocation made on A.
#![cfg(all(feature = "metrics", feature = "postgres", feature = "sqlite"))]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::example::ExampleProcess;
use support::http::HttpClient;
use tower_bearer::token::{Env, PrefixedFormat};

/// Every sample of a scrape, by its series as printed (`name{labels}`).
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let answer = HttpClient::new(addr).send("GET", "/metrics", &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer
        .text()
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Scrapes `addr` until `done` holds of the samples (the counts are published once a
/// second), for at most 15 s.
async fn scrape_until(
    addr: SocketAddr,
    what: &str,
    done: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let start = Instant::now();
    loop {
        let samples = scrape(addr).await;
        if done(&samples) {
            return samples;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{what}: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn requests(samples: &HashMap<String, f64>, outcome: &str) -> f64 {
    samples
        .get(&format!(
            "tower_bearer_requests_total{{outcome=\"{outcome}\"}}"
        ))
        .copied()
        .unwrap_or(0.0)
}

fn never_issued() -> String {
    let minted = PrefixedFormat::default().mint(Env::Live).unwrap();
    minted.secret.expose_secret().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_serves_metrics_that_match_a_known_mix() {
    let Some(server) = support::postgres::own_server() else {
        return;
    };
    let url = server.database().await;
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        url.as_str(),
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    let mut a = ExampleProcess::start("server", "full", &args, 2).await;
    let admin = a.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let b = ExampleProcess::start("server", "full", &args, 2).await;
    let (on_a, metrics_a, metrics_b) = (HttpClient::new(a.addrs[0]), a.addrs[1], b.addrs[1]);

    let create = async |body: String| {
        let (status, created) = on_a.call_json("POST", "/tokens", &admin, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["id"].as_u64().unwrap(),
            created["token"].as_str().unwrap().to_owned(),
        )
    };
    let (_, reader) = create(r#"{"name":"reader","scopes":["read"]}"#.to_owned()).await;
    let (doomed_id, doomed) = create(r#"{"name":"doomed","scopes":["read"]}"#.to_owned()).await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, expiring) = create(format!(
        r#"{{"name":"expiring","scopes":["read"],"expires_at":"{soon}"}}"#
    ))
    .await;
    for _ in 0..3 {
        assert_eq!(on_a.get("/items", &reader).await.status, StatusCode::OK);
    }
    let (status, _) = on_a
        .call_json("POST", "/items", &reader, r#"{"name":"x"}"#)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        on_a.send("GET", "/items", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = never_issued();
    for _ in 0..2 {
        assert_eq!(
            on_a.get("/me", &unknown).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(on_a.get("/me", &doomed).await.status, StatusCode::OK);
    let (status, _) = on_a
        .call_json("DELETE", &format!("/tokens/{doomed_id}"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        on_a.get("/me", &doomed).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Node B applied the revocation from the feed, and timed how long it took.
    let b_samples = scrape_until(metrics_b, "feed lag on B", |samples| {
        samples
            .get("tower_bearer_feed_lag_seconds_count")
            .is_some_and(|count| *count >= 1.0)
    })
    .await;
    assert_eq!(b_samples["tower_bearer_feed_up"], 1.0);
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(2100)).await;
    assert_eq!(
        on_a.get("/me", &expiring).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The store goes away: a credential the cache has never seen cannot be checked.
    server.stop();
    assert_eq!(
        on_a.get("/me", &never_issued()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    scrape_until(metrics_a, "feed down on A", |samples| {
        samples.get("tower_bearer_feed_up") == Some(&0.0)
    })
    .await;
    server.start();

    let expected = [
        ("ok", 8.0), // 3 creations, 3 reads, the doomed key's call, its revocation
        ("insufficient_scope", 1.0),
        ("missing", 1.0),
        ("unknown", 2.0),
        ("revoked", 1.0),
        ("expired", 1.0),
        ("unavailable", 1.0),
    ];
    let total: f64 = expected.iter().map(|(_, n)| n).sum();
    let samples = scrape_until(metrics_a, "every request counted on A", |samples| {
        samples
            .iter()
            .filter(|(series, _)| series.starts_with("tower_bearer_requests_total{"))
            .map(|(_, n)| n)
            .sum::<f64>()
            >= total
    })
    .await;
    for (outcome, n) in expected {
        assert_eq!(requests(&samples, outcome), n, "{outcome}: {samples:#?}");
    }
    let failed = samples
        .iter()
        .filter(|(series, _)| {
            series.starts_with("tower_bearer_store_duration_seconds_count{")
                && series.contains("op=\"find_by_digest\"")
                && series.contains("backend=\"postgres\"")
                && series.contains("result=\"error\"")
        })
        .map(|(_, n)| *n)
        .sum::<f64>();
    assert_eq!(failed, 1.0, "{samples:#?}");
    // Back: the feed reconnects, and says so.
    let samples = scrape_until(metrics_a, "feed back on A", |samples| {
        samples.get("tower_bearer_feed_up") == Some(&1.0)
    })
    .await;
    assert!(samples["tower_bearer_feed_reconnects_total"] >= 1.0);
    assert!(samples["tower_bearer_tokens_cached"] >= 2.0);
    assert_eq!(a.interrupt().await, "");
    assert_eq!(b.interrupt().await, "");
}
