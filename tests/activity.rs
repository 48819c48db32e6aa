//! The activity log in a real server on 127.0.0.1, driven by a real HTTP client: what a
//! row holds for each outcome, the queue's bound, the writer's retries, retention.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::http::HttpClient;
use time::OffsetDateTime;
use tower_bearer::activity::ActivityConfig;
use tower_bearer::client_ip::TrustedProxies;
use tower_bearer::clock::ManualClock;
use tower_bearer::extract::{Scoped, WriteScope};
use tower_bearer::registry::{Expiry, IssueRequest, RegistryBuilder};
use tower_bearer::store::activity::{
    Activity, ActivityQuery, ActivityStore, NewActivity, Outcome, RevokedToken,
};
use tower_bearer::store::{SqliteStore, StoreError};
use tower_bearer::token::Digest;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry, TokenId};

fn routes() -> Router {
    Router::new()
        .route("/items", get(|| async { "items" }))
        .route("/items/{id}", get(|| async { "item" }))
        .route(
            "/write",
            post(|_: Scoped<WriteScope>| async { StatusCode::CREATED }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
}

/// Serves `registry` behind the layer (around the whole router) with the peer's address.
async fn serve(registry: &Registry) -> HttpClient {
    let app = BearerAuthLayer::new(registry.clone()).protect(routes());
    HttpClient::new(support::http::serve_with_peer(app).await)
}

async fn issue(registry: &Registry, tenant: &str, scopes: &[&str]) -> (TokenId, String) {
    let issued = registry
        .issue(
            IssueRequest::new("ci", tenant)
                .unwrap()
                .scopes(scopes.iter().copied())
                .unwrap()
                .expires(Expiry::Never),
        )
        .await
        .unwrap();
    (issued.info.id, issued.secret.expose_secret().to_owned())
}

async fn call(client: &HttpClient, method: &str, path: &str, token: &str) -> StatusCode {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("user-agent", "activity-test/1.0")
        .header("x-request-id", "req-42")
        .body(Full::new(Bytes::new()))
        .unwrap();
    client.request(request).await.status
}

async fn rows(registry: &Registry, tenant: &str, query: ActivityQuery) -> Vec<Activity> {
    let log = registry.activity().unwrap();
    log.flush().await.unwrap();
    log.query(tenant, &query).await.unwrap()
}

fn with_log(builder: RegistryBuilder, store: impl ActivityStore) -> Registry {
    builder.activity(ActivityConfig::new(store)).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_recorded_against_its_token_in_a_real_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let registry = with_log(
        Registry::builder(store.clone()).clock(clock.clone()),
        store.clone(),
    );
    let client = serve(&registry).await;
    let (reader, token) = issue(&registry, "acme", &["read"]).await;

    // The manual clock stands still: each call moves it, so that rows recorded on
    // different threads have distinct times (the writer orders a batch by arrival).
    let call = |method: &'static str, path: &'static str, token: String| {
        let (client, clock) = (client.clone(), clock.clone());
        async move {
            let status = call(&client, method, path, &token).await;
            clock.advance(Duration::from_millis(10));
            status
        }
    };
    let items = "/items?page=2&secret=query-secret";
    assert_eq!(call("GET", items, token.clone()).await, StatusCode::OK);
    assert_eq!(
        call("GET", "/missing", token.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call("POST", "/write", token.clone()).await,
        StatusCode::FORBIDDEN
    );

    // Expired: the token was cached; its expiry passes.
    let expiring = registry
        .issue(
            IssueRequest::new("short", "acme")
                .unwrap()
                .expires(Expiry::At(clock.clock().now() + time::Duration::hours(1))),
        )
        .await
        .unwrap();
    let expiring_token = expiring.secret.expose_secret().to_owned();
    assert_eq!(
        call("GET", "/items", expiring_token.clone()).await,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        call("GET", "/items", expiring_token.clone()).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoked: every call after the revocation is recorded as such.
    registry.revoke("acme", reader).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            call("GET", "/items", token.clone()).await,
            StatusCode::UNAUTHORIZED
        );
    }

    // Unknown and missing credentials are not attributable.
    assert_eq!(
        call("GET", "/items", "sk_live_unknown".to_owned()).await,
        StatusCode::UNAUTHORIZED
    );
    let anonymous = client.send("GET", "/items", &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let reader_rows = rows(&registry, "acme", ActivityQuery::new().token(reader)).await;
    let summary: Vec<(&str, &str, u16, Outcome)> = reader_rows
        .iter()
        .rev()
        .map(|row| {
            (
                row.method.as_str(),
                row.route.as_str(),
                row.status,
                row.outcome,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/items", 200, Outcome::Ok),
            ("GET", "/missing", 404, Outcome::Ok),
            ("POST", "/write", 403, Outcome::ScopeDenied),
            // Rejected before routing: no template, and the path only when asked for.
            ("GET", "", 401, Outcome::Revoked),
            ("GET", "", 401, Outcome::Revoked),
        ]
    );
    let first = reader_rows.last().unwrap();
    assert_eq!(first.tenant, "acme");
    assert_eq!(first.client_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(first.user_agent.as_deref(), Some("activity-test/1.0"));
    assert_eq!(first.request_id.as_deref(), Some("req-42"));
    assert_eq!(first.session_id, None);
    assert!(first.new_ip, "the first call from an address is flagged");
    assert!(
        reader_rows[..reader_rows.len() - 1]
            .iter()
            .all(|row| !row.new_ip)
    );

    let expired_rows = rows(
        &registry,
        "acme",
        ActivityQuery::new().token(expiring.info.id),
    )
    .await;
    let outcomes: Vec<Outcome> = expired_rows.iter().rev().map(|row| row.outcome).collect();
    assert_eq!(outcomes, [Outcome::Ok, Outcome::Expired]);
    assert_eq!(expired_rows[0].status, 401);

    let log = registry.activity().unwrap();
    let stats = log.stats();
    assert_eq!(stats.written, 7);
    assert_eq!(
        stats.unattributed, 1,
        "the unknown token (a missing one is not counted)"
    );
    assert_eq!(stats.dropped, 0);

    // `last_used_at` agrees with the log: the last accepted call of the expiring token.
    registry.flush().await.unwrap();
    let info = registry.get("acme", expiring.info.id).await.unwrap();
    let last_ok = expired_rows[1].at;
    let drift = (info.last_used_at.unwrap() - last_ok).abs();
    assert!(drift <= time::Duration::seconds(1), "{drift}");

    // Nothing secret, and no query string, reached the database.
    store.close().await;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for needle in [
            token.as_bytes(),
            expiring_token.as_bytes(),
            b"query-secret",
            b"page=2",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "{} found in the database",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

/// Issue 26 #13: around the whole router (`protect`), the layer runs before routing, yet
/// the row keeps axum's route template, never the raw path (which can hold an invite code
/// or an e-mail address). Without a template (a request rejected before routing) the
/// path is recorded only when the application opts in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn around_the_router_the_route_template_is_recorded_not_the_path() {
    let store = MemoryStore::new();
    let registry = with_log(Registry::builder(store.clone()), store);
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    assert_eq!(
        call(&client, "GET", "/items/invite-7f3a9c", &token).await,
        StatusCode::OK
    );
    registry.revoke("acme", id).await.unwrap();
    assert_eq!(
        call(&client, "GET", "/items/invite-7f3a9c", &token).await,
        StatusCode::UNAUTHORIZED
    );
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    let routes: Vec<&str> = recorded
        .iter()
        .rev()
        .map(|row| row.route.as_str())
        .collect();
    assert_eq!(routes, ["/items/{id}", ""], "the raw path was recorded");

    // Opted in: the path where there is no template.
    let store = MemoryStore::new();
    let registry = Registry::builder(store.clone())
        .activity(ActivityConfig::new(store).record_raw_paths())
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    call(&client, "GET", "/items/invite-7f3a9c", &token).await;
    registry.revoke("acme", id).await.unwrap();
    call(&client, "GET", "/items/invite-7f3a9c", &token).await;
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    let routes: Vec<&str> = recorded
        .iter()
        .rev()
        .map(|row| row.route.as_str())
        .collect();
    assert_eq!(routes, ["/items/{id}", "/items/invite-7f3a9c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_the_router_the_matched_route_is_recorded() {
    let store = MemoryStore::new();
    let registry = with_log(Registry::builder(store.clone()), store);
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let app = routes().layer(BearerAuthLayer::new(registry.clone()));
    let client = HttpClient::new(support::http::serve_with_peer(app).await);
    assert_eq!(
        call(&client, "GET", "/items/42", &token).await,
        StatusCode::OK
    );
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    assert_eq!(recorded[0].route, "/items/{id}");
}

/// A registry that logs activity and trusts the proxy at 127.0.0.1 (the test client),
/// a token of it, and a client of it served with the peer's address.
async fn behind_a_proxy_at_127_0_0_1() -> (Registry, TokenId, String, HttpClient) {
    let store = MemoryStore::new();
    let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
    let registry = Registry::builder(store.clone())
        .trusted_proxies(proxies)
        .activity(ActivityConfig::new(store))
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    (registry, id, token, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let (registry, id, token, client) = behind_a_proxy_at_127_0_0_1().await;
    for forwarded in ["203.0.113.9", "203.0.113.9", "198.51.100.4"] {
        let request = Request::get("/items")
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-for", format!("6.6.6.6, {forwarded}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(client.request(request).await.status, StatusCode::OK);
    }
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    let seen: Vec<(String, bool)> = recorded
        .iter()
        .rev()
        .map(|row| (row.client_ip.unwrap().to_string(), row.new_ip))
        .collect();
    assert_eq!(
        seen,
        [
            ("203.0.113.9".to_owned(), true),
            ("203.0.113.9".to_owned(), false),
            ("198.51.100.4".to_owned(), true),
        ]
    );
}

/// Issues 26 #4: behind a proxy that appends to `X-Forwarded-For` (nginx's
/// `$proxy_add_x_forwarded_for`), a client-sent `Forwarded` header must not choose the
/// recorded address: only the header the operator names is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_forwarded_header_does_not_choose_the_recorded_address() {
    let (registry, id, token, client) = behind_a_proxy_at_127_0_0_1().await;
    let request = Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        // Sent by the client; the proxy passes it on untouched.
        .header("forwarded", "for=6.6.6.6")
        // What the proxy appended: the address it saw.
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(client.request(request).await.status, StatusCode::OK);
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    assert_eq!(
        recorded[0].client_ip.unwrap().to_string(),
        "203.0.113.9",
        "the client's own Forwarded header was believed"
    );
}

/// An activity store that fails while `down` is set, and whose look-up of revoked
/// tokens takes 200 ms while `slow` is (the writer busy attributing unknown credentials
/// while requests keep coming).
#[derive(Clone)]
struct Flaky {
    inner: MemoryStore,
    down: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
}

impl Flaky {
    fn new(inner: MemoryStore, down: bool, slow: bool) -> Self {
        Self {
            inner,
            down: Arc::new(AtomicBool::new(down)),
            slow: Arc::new(AtomicBool::new(slow)),
        }
    }
}

#[async_trait]
impl ActivityStore for Flaky {
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("activity store down"));
        }
        self.inner.append_activity(rows, since).await
    }

    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        self.inner.activity(tenant, query).await
    }

    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        self.inner.prune_activity(cutoff).await
    }

    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError> {
        self.inner.remember_revoked(tokens).await
    }

    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        if self.slow.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.inner.find_revoked(digests).await
    }

    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        self.inner.find_revoked_key(tenant, token_id).await
    }

    async fn summary(
        &self,
        tenant: &str,
        query: &tower_bearer::store::activity::SummaryQuery,
    ) -> Result<tower_bearer::store::activity::Summary, StoreError> {
        self.inner.summary(tenant, query).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_never_fails_a_request_and_the_writer_retries() {
    let store = MemoryStore::new();
    let flaky = Flaky::new(store.clone(), true, false);
    let registry = Registry::builder(store.clone())
        .activity(ActivityConfig::new(flaky.clone()).flush_interval(Duration::from_millis(20)))
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    for _ in 0..5 {
        assert_eq!(call(&client, "GET", "/items", &token).await, StatusCode::OK);
    }
    let log = registry.activity().unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while log.stats().write_errors < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the writer keeps trying");
    assert_eq!(log.stats().waiting, 5);
    flaky.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), async {
        while log.stats().written < 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the writer catches up once the store is back");
    let recorded = store
        .activity("acme", &ActivityQuery::new().token(id))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 5);
    assert_eq!(log.stats().waiting, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_retention_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .activity(ActivityConfig::new(store.clone()).retention(Duration::from_secs(30 * 86_400)))
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    assert_eq!(call(&client, "GET", "/items", &token).await, StatusCode::OK);
    clock.advance(Duration::from_secs(29 * 86_400));
    assert_eq!(call(&client, "GET", "/items", &token).await, StatusCode::OK);
    assert_eq!(
        rows(&registry, "acme", ActivityQuery::new().token(id))
            .await
            .len(),
        2
    );

    clock.advance(Duration::from_secs(2 * 86_400));
    let log = registry.activity().unwrap();
    assert_eq!(
        log.prune().await.unwrap(),
        1,
        "only the row older than 30 days"
    );
    let left = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    assert_eq!(left.len(), 1);
    // The address was last seen 2 days ago, within the window: not new.
    assert_eq!(call(&client, "GET", "/items", &token).await, StatusCode::OK);
    let newest = rows(&registry, "acme", ActivityQuery::new().token(id).limit(1)).await;
    assert!(!newest[0].new_ip);
    assert_eq!(log.stats().pruned, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_pruner_runs_by_itself() {
    let store = MemoryStore::new();
    let clock = ManualClock::starting_now();
    let registry = Registry::builder(store.clone())
        .clock(clock.clone())
        .activity(
            ActivityConfig::new(store.clone())
                .retention(Duration::from_secs(60))
                .prune_interval(Duration::from_millis(20)),
        )
        .build();
    let old = NewActivity::new(
        clock.clock().now() - time::Duration::hours(1),
        TokenId::new(1),
        "acme",
        "/",
        200,
        Outcome::Ok,
    );
    store
        .append_activity(&[old], OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    let log = registry.activity().unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while log.stats().pruned < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the pruner ran");
    assert!(
        store
            .activity("acme", &ActivityQuery::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_and_every_request_is_answered() {
    let store = MemoryStore::new();
    // The store is down: rows pile up to the bound, then are dropped.
    let flaky = Flaky::new(store.clone(), true, false);
    let registry = Registry::builder(store.clone())
        .activity(ActivityConfig::new(flaky.clone()).queue_capacity(10))
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    let client = serve(&registry).await;
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let client = client.clone();
            let token = token.clone();
            tokio::spawn(async move { call(&client, "GET", "/items", &token).await })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    let log = registry.activity().unwrap();
    let stats = log.stats();
    // At most the capacity in the writer's hands and what the shards hold meanwhile.
    assert!(stats.waiting >= 1 && stats.waiting <= 10 * 3, "{stats:?}");
    assert_eq!(stats.waiting as u64 + stats.dropped, 200, "{stats:?}");
    assert_eq!(stats.written, 0);

    flaky.down.store(false, Ordering::SeqCst);
    log.flush().await.unwrap();
    let stats = log.stats();
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.written + stats.dropped, 200, "{stats:?}");
    let recorded = log
        .query("acme", &ActivityQuery::new().token(id).limit(100))
        .await
        .unwrap();
    assert_eq!(recorded.len() as u64, stats.written);
}

/// Issue 26 #14: rows of well-formed unknown credentials (which the writer must look up
/// among revoked tokens) are queued apart: a flood of them, beside real requests, never
/// makes a real row drop, even while the writer is slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_tokens_drops_no_real_row() {
    let store = MemoryStore::new();
    let registry = Registry::builder(store.clone())
        .activity(ActivityConfig::new(Flaky::new(store, false, true)).queue_capacity(64))
        .build();
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    // Well-formed, checksummed, unknown here: minted by another registry.
    let elsewhere = Registry::builder(MemoryStore::new()).build();
    let mut junk = Vec::new();
    for _ in 0..20 {
        junk.push(issue(&elsewhere, "acme", &["read"]).await.1);
    }
    let client = serve(&registry).await;
    for round in 0..40 {
        for unknown in &junk {
            assert_eq!(
                call(&client, "GET", "/items", unknown).await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            call(&client, "GET", "/items", &token).await,
            StatusCode::OK,
            "round {round}"
        );
    }
    let log = registry.activity().unwrap();
    log.flush().await.unwrap();
    let recorded = log
        .query("acme", &ActivityQuery::new().token(id).limit(100))
        .await
        .unwrap();
    let stats = log.stats();
    assert_eq!(recorded.len(), 40, "real rows dropped: {stats:?}");
    assert_eq!(stats.dropped, 0, "{stats:?}");
    // Every junk request is accounted for: counted unattributable, written or not.
    assert_eq!(stats.unattributed, 800, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_is_recorded_against_its_key_with_the_session() {
    use tower_bearer::session::{SessionConfig, SessionKeys};
    let store = MemoryStore::new();
    let registry = Registry::builder(store.clone())
        .sessions(SessionConfig::new(
            SessionKeys::new("k1", &[7; 32]).unwrap(),
        ))
        .activity(ActivityConfig::new(store))
        .build();
    let (key, token) = issue(&registry, "acme", &["read"]).await;
    let session = registry.login(&token, Some("tab-1")).await.unwrap();
    let client = serve(&registry).await;
    let jwt = session.access_token.expose_secret().to_owned();
    assert_eq!(call(&client, "GET", "/items", &jwt).await, StatusCode::OK);
    assert_eq!(call(&client, "GET", "/items", &token).await, StatusCode::OK);
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(key)).await;
    let sessions: Vec<Option<String>> = recorded
        .iter()
        .rev()
        .map(|row| row.session_id.clone())
        .collect();
    assert_eq!(sessions, [Some(session.session.id.to_string()), None]);
    // Revoking the session: its calls are recorded as revoked, with the session.
    registry
        .revoke_session("acme", session.session.id)
        .await
        .unwrap();
    assert_eq!(
        call(&client, "GET", "/items", &jwt).await,
        StatusCode::UNAUTHORIZED
    );
    let newest = rows(&registry, "acme", ActivityQuery::new().token(key).limit(1)).await;
    assert_eq!(newest[0].outcome, Outcome::Revoked);
    assert_eq!(newest[0].session_id, Some(session.session.id.to_string()));
}

/// A revoked token used long after every cache forgot it (and after a restart) is still
/// recorded against it: the store remembers revoked tokens by digest for the retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_long_ago_is_still_recorded_as_revoked_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let clock = ManualClock::starting_now();
    let registry = with_log(Registry::builder(store.clone()).clock(clock.clone()), store);
    let (id, token) = issue(&registry, "acme", &["read"]).await;
    registry.revoke("acme", id).await.unwrap();
    registry.flush().await.unwrap();
    drop(registry);

    // A new process on the same file: its cache never saw the token.
    let store = SqliteStore::open(&path).await.unwrap();
    let registry = with_log(Registry::builder(store.clone()).clock(clock.clone()), store);
    clock.advance(Duration::from_secs(7 * 86_400));
    let client = serve(&registry).await;
    assert_eq!(
        call(&client, "GET", "/items", &token).await,
        StatusCode::UNAUTHORIZED
    );
    // A well-formed token this store never had (minted elsewhere) stays unattributed.
    let elsewhere = Registry::builder(MemoryStore::new()).build();
    let (_, never) = issue(&elsewhere, "acme", &["read"]).await;
    assert_eq!(
        call(&client, "GET", "/items", &never).await,
        StatusCode::UNAUTHORIZED
    );
    let recorded = rows(&registry, "acme", ActivityQuery::new().token(id)).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        (recorded[0].outcome, recorded[0].status),
        (Outcome::Revoked, 401)
    );
    assert_eq!(recorded[0].tenant, "acme");
    // Rejected before routing, around the router: no template, and no raw path.
    assert_eq!(recorded[0].route, "");
    assert_eq!(registry.activity().unwrap().stats().unattributed, 1);
}

/// Issue 26 #12: WebSocket authentications (success and failure) and `/auth/login`
/// attempts are recorded, attributed to the key when it is known, never the key itself.
#[cfg(all(feature = "ws", feature = "exchange"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_authentications_and_logins_are_recorded() {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::http::{HeaderMap, Uri};
    use axum::routing::any;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tower_bearer::session::{SessionConfig, SessionKeys};
    use tower_bearer::ws::SocketAuth;

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("a.db")).await.unwrap();
    let registry = Registry::builder(store.clone())
        .sessions(SessionConfig::new(
            SessionKeys::new("k1", &[3; 32]).unwrap(),
        ))
        .activity(ActivityConfig::new(store))
        .build();
    let (key_id, key) = issue(&registry, "acme", &["read"]).await;
    let (revoked_id, revoked) = issue(&registry, "acme", &["read"]).await;
    registry.revoke("acme", revoked_id).await.unwrap();

    let auth = SocketAuth::new(registry.clone());
    let app: Router = Router::new()
        .route(
            "/socket",
            any(
                |ws: WebSocketUpgrade, headers: HeaderMap, uri: Uri| async move {
                    auth.upgrade(ws, &headers, &uri, |_socket| async {}).await
                },
            ),
        )
        .merge(tower_bearer::exchange::router(registry.clone()));
    let app = BearerAuthLayer::new(registry.clone())
        .public(["/socket", "/auth/login"])
        .protect(app);
    let addr = support::http::serve_with_peer(app).await;
    for token in [key.as_str(), revoked.as_str(), "sk_live_not_a_real_token"] {
        let mut request = format!("ws://{addr}/socket").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let _ = tokio_tungstenite::connect_async(request).await.unwrap();
    }
    let client = HttpClient::new(addr);
    for api_key in [key.as_str(), revoked.as_str()] {
        let request = Request::post("/auth/login")
            .header("content-type", "application/json")
            .header("user-agent", "login-test")
            .body(Full::new(Bytes::from(format!(
                r#"{{"api_key":"{api_key}"}}"#
            ))))
            .unwrap();
        client.request(request).await;
    }

    let key_rows = rows(&registry, "acme", ActivityQuery::new().token(key_id)).await;
    let seen: Vec<(u16, Outcome, &str, bool)> = key_rows
        .iter()
        .rev()
        .map(|row| {
            (
                row.status,
                row.outcome,
                row.route.as_str(),
                row.session_id.is_some(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (101, Outcome::Ok, "", false),
            (200, Outcome::Ok, "/auth/login", true),
        ],
        "{key_rows:?}"
    );
    let login = key_rows.first().unwrap();
    assert_eq!(login.user_agent.as_deref(), Some("login-test"));
    assert_eq!(login.client_ip.unwrap().to_string(), "127.0.0.1");
    let revoked_rows = rows(&registry, "acme", ActivityQuery::new().token(revoked_id)).await;
    let seen: Vec<(u16, Outcome)> = revoked_rows
        .iter()
        .rev()
        .map(|row| (row.status, row.outcome))
        .collect();
    assert_eq!(seen, [(401, Outcome::Revoked), (401, Outcome::Revoked)]);
    assert_eq!(registry.activity().unwrap().stats().unattributed, 1);
    // Never the key itself.
    let all = rows(&registry, "acme", ActivityQuery::new()).await;
    assert!(!format!("{all:?}").contains(&key));
}

/// `GET /tokens/{id}` of a key revoked within the retention says when and why, through
/// the management API on a real server: by name, with a cascade, by rotation; a key that
/// never existed and another tenant's revoked key stay 404s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_reason_is_shown_by_the_management_api() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("reasons.db"))
        .await
        .unwrap();
    let registry = with_log(Registry::builder(store.clone()), store);
    let (_, admin) = issue(&registry, "acme", &["admin"]).await;
    let (_, other_admin) = issue(&registry, "globex", &["admin"]).await;
    let app = tower_bearer::admin::ManagementApi::new(registry.clone())
        .router()
        .layer(BearerAuthLayer::new(registry.clone()));
    let client = HttpClient::new(support::http::serve(app).await);
    let create = async |name: &str, token: &str| {
        let body = format!(r#"{{"name":"{name}","scopes":["admin"]}}"#);
        let (status, created) = client.call_json("POST", "/tokens", token, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["id"].as_u64().unwrap(),
            created["token"].as_str().unwrap().to_owned(),
        )
    };
    let (manual, _) = create("manual", &admin).await;
    let (parent, parent_token) = create("parent", &admin).await;
    let (child, _) = create("child", &parent_token).await;
    let (rotated, _) = create("rotated", &admin).await;
    let (live, _) = create("live", &admin).await;

    let (status, _) = client
        .call_json("DELETE", &format!("/tokens/{manual}"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = client
        .call_json(
            "DELETE",
            &format!("/tokens/{parent}?cascade=true"),
            &admin,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = client
        .call_json("POST", &format!("/tokens/{rotated}/rotate"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::CREATED);

    for (id, reason) in [
        (manual, "manual"),
        (parent, "manual"),
        (child, "cascade"),
        (rotated, "rotated"),
    ] {
        let (status, shown) = client
            .call_json("GET", &format!("/tokens/{id}"), &admin, "")
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        assert_eq!(shown["id"], id);
        assert_eq!(shown["tenant"], "acme");
        assert_eq!(shown["revoked_reason"], reason, "{shown}");
        assert_eq!(shown["leak"], serde_json::Value::Null);
        assert!(shown["revoked_at"].is_string());
        assert!(
            shown.get("name").is_none(),
            "not a live token's shape: {shown}"
        );
    }
    // The same after the writer stored them (not only while pending on this node).
    registry.activity().unwrap().flush().await.unwrap();
    let (status, shown) = client
        .call_json("GET", &format!("/tokens/{child}"), &admin, "")
        .await;
    assert_eq!(
        (status, &shown["revoked_reason"]),
        (StatusCode::OK, &"cascade".into())
    );
    // A live key keeps its shape; another tenant's revoked key and an unknown id are 404s.
    let (status, shown) = client
        .call_json("GET", &format!("/tokens/{live}"), &admin, "")
        .await;
    assert_eq!((status, &shown["name"]), (StatusCode::OK, &"live".into()));
    assert!(shown.get("revoked_reason").is_none());
    let (status, _) = client
        .call_json("GET", &format!("/tokens/{manual}"), &other_admin, "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = client.call_json("GET", "/tokens/999999", &admin, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
