//! Many nodes on one PostgreSQL database: revocations reach every node within moments,
//! a killed listener catches up by itself, the nodes ride out a database restart, and a
//! revocation storm under load never lets a revoked token through. Real servers: a
//! throwaway PostgreSQL cluster (or `DATABASE_URL`), and example-server processes.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::postgres::{Server, own_server, server};
use tower_bearer::registry::IssueRequest;
use tower_bearer::store::{PostgresOptions, PostgresStore};
use tower_bearer::{Registry, VerifyError};

async fn node(url: &str, name: &str) -> Registry {
    let options = PostgresOptions::default().application_name(name);
    let store = PostgresStore::connect_with(url, options).await.unwrap();
    Registry::builder(store)
        .store_timeout(Duration::from_secs(1))
        .build()
}

async fn issue(registry: &Registry) -> (tower_bearer::TokenId, String) {
    let issued = registry
        .issue(
            IssueRequest::new("t", "acme")
                .unwrap()
                .scopes(["read"])
                .unwrap(),
        )
        .await
        .unwrap();
    (issued.info.id, issued.secret.expose_secret().to_owned())
}

/// Polls `node` until it rejects `token`; how long that took, or `None` past `bound`.
async fn rejected_within(node: &Registry, token: &str, bound: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < bound {
        match node.verify(token).await {
            Err(VerifyError::Rejected { .. }) => return Some(start.elapsed()),
            _ => tokio::time::sleep(Duration::from_micros(200)).await,
        }
    }
    None
}

/// Terminates node `name`'s LISTEN connection, waiting for it to exist (it connects in
/// the background: under a loaded test run it may not be there yet).
async fn kill_listener(admin: &tokio_postgres::Client, name: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let killed = loop {
        let killed = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1 AND datname = current_database()",
                &[&format!("{name} listener")],
            )
            .await
            .unwrap();
        if !killed.is_empty() || std::time::Instant::now() > deadline {
            break killed;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(killed.len(), 1, "node {name} has one listener");
}

/// A connection in a transaction that holds the change log locked (readers and writers
/// of it wait), once the listeners' start-up prune has passed. Ends with
/// `batch_execute("COMMIT")` or `("ROLLBACK")`.
async fn holding_the_change_log(url: &str) -> tokio_postgres::Client {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let client = Server::client(url).await;
    client
        .batch_execute("BEGIN; LOCK TABLE tower_bearer_changes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    client
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_holds_on_the_other_within_moments() {
    let Some(server) = server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let mut latencies = Vec::new();
    for _ in 0..100 {
        let (id, token) = issue(&a).await;
        b.verify(&token).await.expect("issued on A, valid on B");
        a.revoke("acme", id).await.unwrap();
        let took = rejected_within(&b, &token, Duration::from_secs(2))
            .await
            .expect("B rejects a token revoked on A");
        latencies.push(took);
    }
    latencies.sort();
    eprintln!(
        "cross-node revocation, in-process: p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

/// Issue 26 #15: a prune between a catch-up's reading of `pruned_through` and of the log
/// must not let the node skip a change without dropping its cache. Interleaved for real:
/// a transaction holds the change log locked while it revokes a token without telling
/// anyone (its NOTIFY lost), logs that and one more change, prunes the first and records
/// it; node B's heartbeat catch-up waits on the lock meanwhile, and reads once it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_during_a_catch_up_never_skips_a_change() {
    let Some(server) = server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let (id, token) = issue(&a).await;
    b.verify(&token).await.unwrap();
    let digest = tower_bearer::token::Digest::of(token.as_bytes());
    let transaction = holding_the_change_log(&url).await;
    // The revocation, and its change, that no NOTIFY announces.
    transaction
        .execute(
            "DELETE FROM tower_bearer_tokens WHERE id = $1",
            &[&i64::try_from(id.get()).unwrap()],
        )
        .await
        .unwrap();
    let revoked: i64 = transaction
        .query_one(
            "INSERT INTO tower_bearer_changes (kind, token_id, digest, at) \
             VALUES ('invalidated', $1, $2, 0) RETURNING seq",
            &[
                &i64::try_from(id.get()).unwrap(),
                &digest.as_bytes().as_slice(),
            ],
        )
        .await
        .unwrap()
        .get(0);
    // A later change, which the node will read past the pruned one.
    transaction
        .execute(
            "INSERT INTO tower_bearer_changes (kind, token_id, digest, at) \
             VALUES ('updated', 999999, $1, 0)",
            &[&[7u8; 32].as_slice()],
        )
        .await
        .unwrap();
    // The prune: the revocation's change is gone, and recorded as pruned.
    transaction
        .execute(
            "DELETE FROM tower_bearer_changes WHERE seq <= $1",
            &[&revoked],
        )
        .await
        .unwrap();
    transaction
        .execute(
            "UPDATE tower_bearer_feed SET pruned_through = GREATEST(pruned_through, $1)",
            &[&revoked],
        )
        .await
        .unwrap();
    // B's heartbeat catch-up (every second) comes and waits on the lock.
    let other = Server::client(&url).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting = other
            .query(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'node-b listener' \
                 AND wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        if !waiting.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "B's catch-up never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    transaction.batch_execute("COMMIT").await.unwrap();
    rejected_within(&b, &token, Duration::from_secs(5))
        .await
        .expect("B drops what it cannot know is current, and the token is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_catches_up_without_a_restart() {
    let Some(server) = server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let (id, token) = issue(&a).await;
    b.verify(&token).await.unwrap();
    let admin = Server::client(&url).await;
    kill_listener(&admin, "node-b").await;
    a.revoke("acme", id).await.unwrap();
    rejected_within(&b, &token, Duration::from_secs(2))
        .await
        .expect("B rejects the token within 2 s without a restart");
    // The listener is back: the next revocation arrives through it.
    let (id, token) = issue(&a).await;
    b.verify(&token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.revoke("acme", id).await.unwrap();
    rejected_within(&b, &token, Duration::from_secs(2))
        .await
        .expect("the feed works again");
    let listeners = admin
        .query(
            "SELECT 1 FROM pg_stat_activity \
             WHERE application_name = 'node-b listener' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(listeners.len(), 1, "node B reconnected its listener");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_ride_out_a_database_restart() {
    let Some(server) = own_server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let (cached_id, cached) = issue(&a).await;
    let (_, uncached) = issue(&a).await;
    b.verify(&cached).await.unwrap();

    server.stop();
    // Cached tokens keep working (fresh, then stale-if-error); misses are "unavailable",
    // never "unknown".
    b.verify(&cached)
        .await
        .expect("a cached token during the outage");
    let miss = b.verify(&uncached).await.unwrap_err();
    assert!(miss.is_unavailable(), "{miss:?}");
    assert!(
        a.issue(IssueRequest::new("x", "acme").unwrap())
            .await
            .is_err()
    );

    server.start();
    let start = Instant::now();
    loop {
        match b.verify(&uncached).await {
            Ok(_) => break,
            Err(error) => {
                assert!(
                    error.is_unavailable(),
                    "never 401 for a valid token: {error:?}"
                );
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "no recovery: {:?}",
                    std::error::Error::source(&error)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // The listeners are back too: a revocation on A reaches B.
    let revoked = loop {
        match a.revoke("acme", cached_id).await {
            Ok(()) => break true,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("A never recovered: {error}"),
        }
    };
    assert!(revoked);
    rejected_within(&b, &cached, Duration::from_secs(3))
        .await
        .expect("B rejects the token revoked after the restart");
}

/// Two nodes: one serves a steady load of verifications while the other revokes the
/// tokens one by one. No answer but "ok" and "rejected", and no token accepted by a
/// verification that started after its revocation was seen on that node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_storm_under_load_lets_no_revoked_token_through() {
    let Some(server) = server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let mut tokens = Vec::new();
    for _ in 0..40 {
        tokens.push(issue(&a).await);
    }
    // When each revocation was applied on B (first rejection seen), for the checks.
    let applied: Arc<Vec<std::sync::Mutex<Option<Instant>>>> =
        Arc::new(tokens.iter().map(|_| std::sync::Mutex::new(None)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (b, tokens, applied, stop) = (b.clone(), tokens.clone(), applied.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut accepted_late = Vec::new();
            let mut n = worker;
            while !stop.load(Ordering::SeqCst) {
                let at = n % tokens.len();
                n += 1;
                let started = Instant::now();
                let seen_revoked = *applied[at].lock().unwrap();
                match b.verify(&tokens[at].1).await {
                    Ok(_) if seen_revoked.is_some_and(|t| t < started) => accepted_late.push(at),
                    Ok(_) => {}
                    Err(VerifyError::Rejected { .. }) => {
                        let mut slot = applied[at].lock().unwrap();
                        slot.get_or_insert(Instant::now());
                    }
                    Err(other) => panic!("unexpected answer under load: {other:?}"),
                }
                tokio::task::yield_now().await;
            }
            accepted_late
        }));
    }
    for (id, _) in &tokens {
        a.revoke("acme", *id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (at, (_, token)) in tokens.iter().enumerate() {
        rejected_within(&b, token, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("token {at} still accepted on B"));
    }
    stop.store(true, Ordering::SeqCst);
    for worker in load {
        let late = worker.await.unwrap();
        assert!(
            late.is_empty(),
            "accepted after the revocation was seen: {late:?}"
        );
    }
}

/// Three example-server processes on one database, as behind a load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_example_servers_share_tokens_and_revocations() {
    use support::example::ExampleProcess;
    use support::http::HttpClient;
    let Some(server) = server() else { return };
    let url = server.database().await;
    // One session key file for every node: each accepts the others' access tokens.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("session-key");
    let key_file = key_file.to_str().unwrap();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        url.as_str(),
        "--session-key-file",
        key_file,
    ];
    let mut a = ExampleProcess::start("server", "full", &args, 1).await;
    let line = a.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    let b = ExampleProcess::start("server", "full", &args, 1).await;
    let c = ExampleProcess::start("server", "full", &args, 1).await;
    let (on_a, on_b, on_c) = (
        HttpClient::new(a.addrs[0]),
        HttpClient::new(b.addrs[0]),
        HttpClient::new(c.addrs[0]),
    );
    for round in 0..100 {
        let request = http::Request::post("/tokens")
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                r#"{"name":"roaming","scopes":["read"]}"#,
            )))
            .unwrap();
        let created = on_a.request(request).await;
        assert_eq!(
            created.status,
            http::StatusCode::CREATED,
            "{}",
            created.text()
        );
        let created: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
        let token = created["token"].as_str().unwrap();
        for node in [&on_b, &on_c] {
            assert_eq!(
                node.get("/me", token).await.status,
                http::StatusCode::OK,
                "round {round}"
            );
        }
        let id = created["id"].as_u64().unwrap();
        let deleted = on_a
            .send(
                "DELETE",
                &format!("/tokens/{id}"),
                &[format!("Bearer {admin}").as_bytes()],
            )
            .await;
        assert_eq!(deleted.status, http::StatusCode::NO_CONTENT);
        for node in [&on_b, &on_c] {
            refused_within_2s(node, token, &format!("round {round}")).await;
        }
    }
    // A session opened on A works on B and C; revoked on A, it stops there too.
    let login = http::Request::post("/auth/login")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(format!(
            r#"{{"api_key":"{admin}","session_id":"roaming"}}"#
        ))))
        .unwrap();
    let login = on_a.request(login).await;
    assert_eq!(login.status, http::StatusCode::OK, "{}", login.text());
    let login: serde_json::Value = serde_json::from_slice(&login.body).unwrap();
    let access = login["access_token"].as_str().unwrap();
    for node in [&on_b, &on_c] {
        assert_eq!(node.get("/me", access).await.status, http::StatusCode::OK);
    }
    let me: serde_json::Value =
        serde_json::from_slice(&on_b.get("/me", access).await.body).unwrap();
    let session = me["session_id"].as_str().unwrap();
    let revoked = on_a
        .send(
            "DELETE",
            &format!("/sessions/{session}"),
            &[format!("Bearer {admin}").as_bytes()],
        )
        .await;
    assert_eq!(revoked.status, http::StatusCode::NO_CONTENT);
    for node in [&on_b, &on_c] {
        refused_within_2s(node, access, "a revoked session").await;
    }
    for node in [a, b, c] {
        assert_eq!(node.interrupt().await, "");
    }
}

/// Waits until `node` answers 401 to `token`; fails after 2 s.
async fn refused_within_2s(node: &support::http::HttpClient, token: &str, what: &str) {
    let start = Instant::now();
    while node.get("/me", token).await.status != http::StatusCode::UNAUTHORIZED {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{what}: still accepted"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Issue 26 #3 on PostgreSQL: a node whose listener is cut off (its connection killed,
/// and its catch-up held by a lock, so the feed stays down) misses a revocation whose
/// NOTIFY never reached it. A watch of that token (what keeps a WebSocket open) ends
/// within the feed-down TTL and one re-check against the store, not at the token's
/// expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_within_the_feed_down_ttl_when_the_listener_is_cut_off() {
    let Some(server) = server() else { return };
    let url = server.database().await;
    let (a, b) = (node(&url, "node-a").await, node(&url, "node-b").await);
    let (id, token) = issue(&a).await;
    b.verify(&token).await.unwrap();
    let watching = {
        let (b, token) = (b.clone(), token.clone());
        tokio::spawn(async move { b.watch(&token).await })
    };
    let lock = holding_the_change_log(&url).await;
    // The revocation, committed, whose notification never reaches B.
    let admin = Server::client(&url).await;
    admin
        .execute(
            "DELETE FROM tower_bearer_tokens WHERE id = $1",
            &[&i64::try_from(id.get()).unwrap()],
        )
        .await
        .unwrap();
    kill_listener(&admin, "node-b").await;
    let start = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(5), watching)
        .await
        .expect("the watch ends within the feed-down TTL (1 s) and a re-check")
        .unwrap();
    assert!(matches!(ended, VerifyError::Rejected { .. }), "{ended:?}");
    eprintln!("listener cut off, watch ended after {:?}", start.elapsed());
    lock.batch_execute("ROLLBACK").await.unwrap();
}

/// Issue 28: two example-server processes on one database share a key's rate limit of
/// 100 per minute under concurrent load: each takes slices of the minute's budget from
/// the database and decides locally, so that together they accept at most the limit
/// (the documented bound is 110), and at most one slice per node fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_example_servers_share_a_keys_rate_limit() {
    use support::example::ExampleProcess;
    use support::http::HttpClient;
    let Some(server) = server() else { return };
    let url = server.database().await;
    let args = ["--addr", "127.0.0.1:0", "--db", url.as_str()];
    let mut a = ExampleProcess::start("server", "full", &args, 1).await;
    let line = a.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    let b = ExampleProcess::start("server", "full", &args, 1).await;
    let nodes = [HttpClient::new(a.addrs[0]), HttpClient::new(b.addrs[0])];
    let request = http::Request::post("/tokens")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"name":"metered","scopes":["read"],
                "rate_limits":[{"name":"minute","limit":100,"window_seconds":60}]}"#,
        )))
        .unwrap();
    let created = nodes[0].request(request).await;
    assert_eq!(
        created.status,
        http::StatusCode::CREATED,
        "{}",
        created.text()
    );
    let created: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    // The load must fall within one window: start early in a minute.
    let into_minute = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .rem_euclid(60);
    if into_minute > 40 {
        tokio::time::sleep(Duration::from_millis(
            (60 - into_minute as u64) * 1000 + 200,
        ))
        .await;
    }
    let started = time::OffsetDateTime::now_utc().unix_timestamp();
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let (node, token) = (nodes[worker % 2].clone(), token.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..40 {
                    let answer = node.get("/me", &token).await;
                    if answer.status == http::StatusCode::TOO_MANY_REQUESTS {
                        assert!(answer.header("ratelimit").is_some());
                    }
                    statuses.push(answer.status);
                }
                statuses
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for worker in workers {
        statuses.extend(worker.await.unwrap());
    }
    let ended = time::OffsetDateTime::now_utc().unix_timestamp();
    assert_eq!(
        started.div_euclid(60),
        ended.div_euclid(60),
        "the load spanned two windows"
    );
    let accepted = statuses
        .iter()
        .filter(|s| **s == http::StatusCode::OK)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == http::StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(accepted + refused, 320, "{statuses:?}");
    eprintln!("two nodes, 100 per minute: {accepted} of 320 accepted");
    assert!(accepted <= 110, "accepted {accepted} of a limit of 100");
    assert!(
        accepted >= 80,
        "accepted only {accepted}: more than a slice per node lost"
    );
    for node in [a, b] {
        assert_eq!(node.interrupt().await, "");
    }
}
