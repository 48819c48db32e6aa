//! Per-key policies over real HTTP on a real SQLite file: rate limits with the IETF
//! `RateLimit` fields (parsed as structured fields), each preset's 429 bodies, credits
//! and their refill, IP allow-lists (direct and through a trusted proxy), what a 401
//! costs, and the policies through the management API.
#![cfg(all(feature = "admin", feature = "sqlite"))]

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use support::http::{Answer, HttpClient, serve_with_peer};
use time::macros::datetime;
use tower_bearer::client_ip::TrustedProxies;
use tower_bearer::clock::ManualClock;
use tower_bearer::layer::CostLayer;
use tower_bearer::policy::{Credits, Policies, RateLimit, Refill, RefillPeriod};
use tower_bearer::registry::{IssueRequest, RegistryBuilder};
use tower_bearer::reject::Preset;
use tower_bearer::store::SqliteStore;
use tower_bearer::{BearerAuthLayer, Registry, TokenId, admin};

/// A server over a registry on a SQLite file, with a manual clock standing at the start
/// of a minute, the management API under `/tokens` and `GET /items`.
struct Server {
    client: HttpClient,
    registry: Registry,
    clock: ManualClock,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(|builder| builder, |layer| layer).await
    }

    async fn start_with(
        registry: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
        layer: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("policies.db"))
            .await
            .unwrap();
        let clock = ManualClock::new(datetime!(2030-01-01 12:00 UTC));
        let registry = registry(Registry::builder(store).clock(clock.clone())).build();
        let issued = registry
            .issue(
                IssueRequest::new("admin", "acme")
                    .unwrap()
                    .scopes(["admin"])
                    .unwrap(),
            )
            .await
            .unwrap();
        let app = Router::new()
            .route("/items", get(|| async { "items" }))
            .route(
                "/export",
                get(|| async { "csv" }).route_layer(CostLayer::new(10)),
            )
            .merge(admin::ManagementApi::new(registry.clone()).router());
        let auth = layer(BearerAuthLayer::new(registry.clone()));
        let client = HttpClient::new(serve_with_peer(auth.protect(app)).await);
        Self {
            client,
            registry,
            clock,
            admin: issued.secret.expose_secret().to_owned(),
            _dir: dir,
        }
    }

    async fn issue(&self, policies: Policies) -> (TokenId, String) {
        let request = IssueRequest::new("limited", "acme")
            .unwrap()
            .scopes(["read"])
            .unwrap()
            .policies(policies)
            .unwrap();
        let issued = self.registry.issue(request).await.unwrap();
        (issued.info.id, issued.secret.expose_secret().to_owned())
    }

    async fn get(&self, token: &str) -> Answer {
        self.client.get("/items", token).await
    }

    /// The key's credits as `GET /tokens/{id}` shows them.
    async fn credits(&self, id: TokenId) -> Value {
        let (status, shown) = self
            .json("GET", &format!("/tokens/{id}"), Value::Null)
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        shown["credits"].clone()
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.client
            .call_json(method, path, &self.admin, &body.to_string())
            .await
    }
}

fn rate(name: &str, limit: u64, window: u64) -> RateLimit {
    RateLimit::new(name, limit, window).unwrap()
}

/// The members of a structured-field list of strings with integer parameters, e.g.
/// `"burst";r=4;t=10`: (name, [(parameter, value)]).
fn fields(value: &str) -> Vec<(String, Vec<(String, i64)>)> {
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .expect("a structured field list");
    list.into_iter()
        .map(|member| match member {
            sfv::ListEntry::Item(item) => {
                let name = item
                    .bare_item
                    .as_string()
                    .expect("a string")
                    .as_str()
                    .to_owned();
                let params = item
                    .params
                    .iter()
                    .map(|(key, value)| {
                        let value = i64::from(value.as_integer().expect("an integer"));
                        (key.as_str().to_owned(), value)
                    })
                    .collect();
                (name, params)
            }
            sfv::ListEntry::InnerList(_) => panic!("not an inner list: {value}"),
        })
        .collect()
}

fn param(member: &(String, Vec<(String, i64)>), key: &str) -> i64 {
    member
        .1
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {member:?}"))
        .1
}

#[tokio::test]
async fn a_rate_limit_counts_down_then_refuses_until_its_window_ends() {
    let server = Server::start().await;
    let (_, token) = server
        .issue(Policies::none().rate_limit(rate("burst", 5, 10)))
        .await;
    for left in (0..5).rev() {
        let answer = server.get(&token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let policy = fields(answer.header("ratelimit-policy").unwrap());
        assert_eq!(policy.len(), 1);
        assert_eq!(policy[0].0, "burst");
        assert_eq!((param(&policy[0], "q"), param(&policy[0], "w")), (5, 10));
        let current = fields(answer.header("ratelimit").unwrap());
        assert_eq!(current[0].0, "burst");
        assert_eq!(param(&current[0], "r"), left);
        assert_eq!(param(&current[0], "t"), 10);
    }
    server.clock.advance(Duration::from_secs(3));
    let refused = server.get(&token).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.text(), r#"{"message":"Too Many Attempts."}"#);
    let current = fields(refused.header("ratelimit").unwrap());
    let t = param(&current[0], "t");
    assert_eq!((param(&current[0], "r"), t), (0, 7));
    let retry_after: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after >= t, "Retry-After {retry_after} before t {t}");
    assert!(refused.header("www-authenticate").is_none());

    server.clock.advance(Duration::from_secs(t as u64));
    let again = server.get(&token).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        param(&fields(again.header("ratelimit").unwrap())[0], "r"),
        4
    );
}

#[tokio::test]
async fn the_nearest_limit_is_announced_and_every_limit_is_listed() {
    let server = Server::start_with(|b| b, BearerAuthLayer::github_rate_limit_headers).await;
    let policies = Policies::none()
        .rate_limit(rate("burst", 3, 60))
        .rate_limit(rate("daily", 100, 86_400));
    let (_, token) = server.issue(policies).await;
    let answer = server.get(&token).await;
    let policy = fields(answer.header("ratelimit-policy").unwrap());
    let names: Vec<&str> = policy.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["burst", "daily"]);
    let current = fields(answer.header("ratelimit").unwrap());
    assert_eq!(
        current[0].0, "burst",
        "2 of 3 left is nearer to exhaustion than 99 of 100"
    );
    assert_eq!(param(&current[0], "r"), 2);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(answer.header("x-ratelimit-remaining"), Some("2"));
    let reset = datetime!(2030-01-01 12:01 UTC).unix_timestamp().to_string();
    assert_eq!(answer.header("x-ratelimit-reset"), Some(reset.as_str()));
}

#[tokio::test]
async fn every_preset_throttles_in_its_own_words() {
    let cases = [
        (Preset::laravel(), r#"{"message":"Too Many Attempts."}"#.to_owned()),
        (
            Preset::drf(),
            r#"{"detail":"Request was throttled. Expected available in 60 seconds."}"#.to_owned(),
        ),
        (
            Preset::envelope(),
            r#"{"type":"response","success":false,"description":"Too Many Requests","data":{},"error":{"module":"Auth","code":"RATE_LIMITED","message":"Rate limit exceeded"}}"#.to_owned(),
        ),
    ];
    for (preset, body) in cases {
        let server = Server::start_with(|b| b, |layer| layer.renderer(preset)).await;
        let (_, token) = server
            .issue(Policies::none().rate_limit(rate("burst", 1, 60)))
            .await;
        assert_eq!(server.get(&token).await.status, StatusCode::OK);
        let refused = server.get(&token).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.text(), body);
        assert_eq!(refused.header("retry-after"), Some("60"));
        assert_eq!(refused.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn credits_run_out_and_come_back_with_the_refill() {
    let server = Server::start_with(|b| b, |layer| layer.renderer(Preset::envelope())).await;
    let credits = Credits::new(3).refill(Refill::new(3, RefillPeriod::Day));
    let (id, token) = server.issue(Policies::none().credits(credits)).await;
    for _ in 0..3 {
        assert_eq!(server.get(&token).await.status, StatusCode::OK);
    }
    let refused = server.get(&token).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["error"]["code"], "USAGE_EXCEEDED");
    // Midnight is 12 hours away.
    assert_eq!(refused.header("retry-after"), Some("43200"));
    assert!(
        refused.header("ratelimit").is_none(),
        "no rate limit, no RateLimit field"
    );
    assert_eq!(
        server.credits(id).await,
        json!({"remaining": 0, "refill": {"amount": 3, "every": "day"}})
    );

    server.clock.advance(Duration::from_secs(12 * 3600));
    assert_eq!(server.get(&token).await.status, StatusCode::OK);
    assert_eq!(server.credits(id).await["remaining"], 2);
}

#[tokio::test]
async fn credits_without_a_refill_give_no_retry_time() {
    let server = Server::start_with(|b| b, |layer| layer.renderer(Preset::drf())).await;
    let (_, token) = server
        .issue(Policies::none().credits(Credits::new(1)))
        .await;
    assert_eq!(server.get(&token).await.status, StatusCode::OK);
    let refused = server.get(&token).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.text(), r#"{"detail":"Request was throttled."}"#);
    assert!(refused.header("retry-after").is_none());
}

#[tokio::test]
async fn a_401_flood_charges_nothing() {
    let server = Server::start().await;
    let policies = Policies::none()
        .rate_limit(rate("burst", 3, 60))
        .credits(Credits::new(3));
    let (_, token) = server.issue(policies).await;
    let forged = format!("{}x", &token[..token.len() - 1]);
    for junk in [forged.as_str(), "sk_live_nothing", ""] {
        for _ in 0..20 {
            assert_eq!(server.get(junk).await.status, StatusCode::UNAUTHORIZED);
        }
    }
    for _ in 0..3 {
        assert_eq!(server.get(&token).await.status, StatusCode::OK);
    }
    assert_eq!(
        server.get(&token).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn an_allow_list_refuses_other_addresses_with_403() {
    let server = Server::start().await;
    let (_, outside) = server
        .issue(Policies::none().allowed_ips(["10.0.0.0/8"]).unwrap())
        .await;
    let refused = server.get(&outside).await;
    assert_eq!(
        refused.status,
        StatusCode::FORBIDDEN,
        "the token is valid: never 401"
    );
    assert_eq!(
        refused.text(),
        r#"{"message":"This action is unauthorized."}"#
    );
    assert!(refused.header("www-authenticate").is_none());
    let (_, inside) = server
        .issue(
            Policies::none()
                .allowed_ips(["10.0.0.0/8", "127.0.0.1"])
                .unwrap(),
        )
        .await;
    assert_eq!(server.get(&inside).await.status, StatusCode::OK);
}

async fn forwarded(server: &Server, token: &str, client: &str) -> StatusCode {
    let request = Request::get("/items")
        .header("authorization", format!("Bearer {token}"))
        .header("x-forwarded-for", client)
        .body(Full::new(Bytes::new()))
        .unwrap();
    server.client.request(request).await.status
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_checked() {
    let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
    let server = Server::start_with(|b| b.trusted_proxies(proxies), |l| l).await;
    let (_, token) = server
        .issue(Policies::none().allowed_ips(["10.0.0.0/8"]).unwrap())
        .await;
    assert_eq!(forwarded(&server, &token, "10.1.2.3").await, StatusCode::OK);
    assert_eq!(
        forwarded(&server, &token, "192.0.2.1").await,
        StatusCode::FORBIDDEN
    );

    // An untrusted peer sending the same header is the client itself.
    let untrusted = Server::start().await;
    let (_, token) = untrusted
        .issue(Policies::none().allowed_ips(["10.0.0.0/8"]).unwrap())
        .await;
    assert_eq!(
        forwarded(&untrusted, &token, "10.1.2.3").await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn policies_are_set_shown_changed_and_enforced_through_the_api() {
    let server = Server::start().await;
    let (status, created) = server
        .json(
            "POST",
            "/tokens",
            json!({
                "name": "metered",
                "scopes": ["read"],
                "rate_limits": [{"name": "burst", "limit": 2, "window_seconds": 60}],
                "credits": {"remaining": 1000, "refill": {"amount": 1000, "every": "month"}},
                "allowed_ips": ["127.0.0.1", "2001:db8::/32"]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["rate_limits"],
        json!([{"name": "burst", "limit": 2, "window_seconds": 60}])
    );
    assert_eq!(
        created["credits"],
        json!({"remaining": 1000, "refill": {"amount": 1000, "every": "month"}})
    );
    assert_eq!(
        created["allowed_ips"],
        json!(["127.0.0.1/32", "2001:db8::/32"])
    );
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(server.get(&token).await.status, StatusCode::OK);
    assert_eq!(server.get(&token).await.status, StatusCode::OK);
    assert_eq!(
        server.get(&token).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let credits = server.credits(TokenId::new(id)).await;
    assert!(
        credits["remaining"].as_u64().unwrap() <= 998,
        "two requests were charged: {credits}"
    );

    // A change takes effect at once: no limits, no credits, anywhere.
    let (status, changed) = server
        .json(
            "PATCH",
            &format!("/tokens/{id}"),
            json!({"rate_limits": null, "credits": null, "allowed_ips": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["rate_limits"], json!([]));
    assert_eq!(changed["credits"], Value::Null);
    let answer = server.get(&token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.header("ratelimit").is_none());

    let (status, changed) = server
        .json(
            "PATCH",
            &format!("/tokens/{id}"),
            json!({"allowed_ips": ["10.0.0.0/8"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(server.get(&token).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_policies_are_422_naming_the_field_and_store_nothing() {
    let server = Server::start().await;
    let five: Vec<Value> = (0..5)
        .map(|i| json!({"name": format!("r{i}"), "limit": 1, "window_seconds": 1}))
        .collect();
    let cases = [
        ("rate_limits", json!(five)),
        (
            "rate_limits",
            json!([{"name": "Burst", "limit": 1, "window_seconds": 1}]),
        ),
        (
            "rate_limits",
            json!([{"name": "b", "limit": 0, "window_seconds": 1}]),
        ),
        (
            "rate_limits",
            json!([{"name": "b", "limit": 1, "window_seconds": 2_678_401}]),
        ),
        (
            "rate_limits",
            json!([{"name": "b", "limit": 1, "window_seconds": 1, "x": 1}]),
        ),
        (
            "rate_limits",
            json!([
                {"name": "b", "limit": 1, "window_seconds": 1},
                {"name": "b", "limit": 2, "window_seconds": 2}
            ]),
        ),
        ("rate_limits", json!("burst")),
        ("credits", json!({"remaining": -1})),
        (
            "credits",
            json!({"remaining": 1, "refill": {"amount": 1, "every": "week"}}),
        ),
        ("credits", json!({"remaining": 1, "extra": true})),
        ("credits", json!(5)),
        ("allowed_ips", json!(["10.0.0.0/33"])),
        ("allowed_ips", json!(["example.com"])),
        ("allowed_ips", json!([7])),
        (
            "allowed_ips",
            json!((0..65).map(|i| format!("10.0.0.{i}")).collect::<Vec<_>>()),
        ),
    ];
    for (field, value) in cases {
        let mut body = json!({"name": "bad"});
        body[field] = value.clone();
        let (status, error) = server.json("POST", "/tokens", body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {value} → {error}"
        );
        assert!(
            error["errors"][field].is_array(),
            "{field}: {value} → {error}"
        );
    }
    let (_, page) = server.json("GET", "/tokens", Value::Null).await;
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        1,
        "only the admin token"
    );
}

#[tokio::test]
async fn a_route_can_weigh_more_than_one_request() {
    let server = Server::start().await;
    let policies = Policies::none()
        .rate_limit(rate("hourly", 25, 3600))
        .credits(Credits::new(100));
    let (id, token) = server.issue(policies).await;
    let export = server.client.get("/export", &token).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    let current = fields(export.header("ratelimit").unwrap());
    assert_eq!(param(&current[0], "r"), 15, "the export weighs 10");
    assert_eq!(
        server.client.get("/export", &token).await.status,
        StatusCode::OK
    );
    let over = server.client.get("/export", &token).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.text(), r#"{"message":"Too Many Attempts."}"#);
    assert!(over.header("retry-after").is_some());
    // Four single requests are still within the hour's 25: 10 + 10 + 1 (the refused
    // export's own count) leaves 4.
    for _ in 0..4 {
        assert_eq!(server.get(&token).await.status, StatusCode::OK);
    }
    assert_eq!(
        server.get(&token).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let credits = server.credits(id).await;
    assert!(
        credits["remaining"].as_u64().unwrap() <= 100 - 25,
        "two exports (20), a refused one's first credit and four requests: {credits}"
    );
}

#[cfg(feature = "activity")]
#[tokio::test]
async fn the_activity_log_records_each_refusal_by_its_policy() {
    use tower_bearer::activity::ActivityConfig;
    use tower_bearer::store::activity::{ActivityQuery, Outcome};
    let store = tower_bearer::MemoryStore::new();
    let server = Server::start_with(
        |builder| builder.activity(ActivityConfig::new(store)),
        |layer| layer,
    )
    .await;
    let (limited, limited_token) = server
        .issue(Policies::none().rate_limit(rate("burst", 1, 60)))
        .await;
    let (metered, metered_token) = server
        .issue(Policies::none().credits(Credits::new(0)))
        .await;
    let (fenced, fenced_token) = server
        .issue(Policies::none().allowed_ips(["10.0.0.0/8"]).unwrap())
        .await;
    assert_eq!(server.get(&limited_token).await.status, StatusCode::OK);
    assert_eq!(
        server.get(&limited_token).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        server.get(&metered_token).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        server.get(&fenced_token).await.status,
        StatusCode::FORBIDDEN
    );
    let log = server.registry.activity().unwrap();
    log.flush().await.unwrap();
    for (id, status, outcome) in [
        (limited, 429, Outcome::RateLimited),
        (metered, 429, Outcome::CreditsExhausted),
        (fenced, 403, Outcome::IpDenied),
    ] {
        let rows = log
            .query("acme", &ActivityQuery::new().token(id))
            .await
            .unwrap();
        let refused: Vec<_> = rows.iter().filter(|row| row.status == status).collect();
        assert_eq!(refused.len(), 1, "{id}: {rows:?}");
        assert_eq!(refused[0].outcome, outcome);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_one_node_are_counted_exactly() {
    let server = Server::start().await;
    let (_, token) = server
        .issue(Policies::none().rate_limit(rate("burst", 50, 3600)))
        .await;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (client, token) = (server.client.clone(), token.clone());
            tokio::spawn(async move {
                let mut accepted = 0;
                for _ in 0..20 {
                    match client.get("/items", &token).await.status {
                        StatusCode::OK => accepted += 1,
                        StatusCode::TOO_MANY_REQUESTS => {}
                        other => panic!("unexpected {other}"),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted = 0;
    for worker in workers {
        accepted += worker.await.unwrap();
    }
    assert_eq!(accepted, 50);
}

/// A node that cannot reach the store decides within the slices it holds, then refuses
/// with 503: never unmetered, never 429 for a budget it cannot see.
#[tokio::test]
async fn without_the_store_a_node_spends_its_slice_then_answers_503() {
    let store = support::InstrumentedStore::new();
    store.share_budgets();
    let registry = Registry::builder(store.clone()).build();
    let limits = Policies::none().rate_limit(rate("burst", 100, 3600));
    let request = IssueRequest::new("limited", "acme")
        .unwrap()
        .policies(limits)
        .unwrap();
    let token = registry.issue(request).await.unwrap();
    let token = token.secret.expose_secret().to_owned();
    let app = BearerAuthLayer::new(registry)
        .protect(Router::new().route("/items", get(|| async { "items" })));
    let client = HttpClient::new(serve_with_peer(app).await);
    assert_eq!(client.get("/items", &token).await.status, StatusCode::OK);
    assert_eq!(store.reservations(), 1, "a slice of a tenth");
    store.set_down(true);
    for _ in 0..9 {
        assert_eq!(client.get("/items", &token).await.status, StatusCode::OK);
    }
    let refused = client.get("/items", &token).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.header("retry-after").is_some());
    store.set_down(false);
    assert_eq!(client.get("/items", &token).await.status, StatusCode::OK);
    assert_eq!(store.reservations(), 3);
}

/// A key's session access tokens count against the key's own limits: trading a limited
/// key for a session does not escape them.
#[cfg(feature = "exchange")]
#[tokio::test]
async fn a_keys_sessions_count_against_its_limits() {
    use tower_bearer::session::{SessionConfig, SessionKeys};
    let keys = SessionKeys::new("policies", &[7u8; 32]).unwrap();
    let server = Server::start_with(|b| b.sessions(SessionConfig::new(keys)), |layer| layer).await;
    let policies = Policies::none()
        .rate_limit(rate("burst", 4, 60))
        .credits(Credits::new(10));
    let (id, key) = server.issue(policies).await;
    let session = server.registry.login(&key, Some("tab")).await.unwrap();
    let access = session.access_token.expose_secret().to_owned();
    for token in [&key, &access, &access, &key] {
        assert_eq!(server.get(token).await.status, StatusCode::OK);
    }
    let refused = server.get(&access).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        param(&fields(refused.header("ratelimit").unwrap())[0], "r"),
        0
    );
    assert_eq!(server.get(&key).await.status, StatusCode::TOO_MANY_REQUESTS);
    let credits = server.credits(id).await;
    assert!(credits["remaining"].as_u64().unwrap() <= 6, "{credits}");
}
