//! The webhook endpoint routes of the management API on a real server on 127.0.0.1 with
//! a real SQLite file: registered with a secret shown once, listed and read without it,
//! changed, rotated, deleted; tenant-isolated; unsafe URLs refused unless the application
//! allows private targets (the example server's `--allow-private-webhooks`).
#![cfg(all(feature = "webhooks", feature = "admin", feature = "sqlite"))]

mod support;

use http::StatusCode;
use serde_json::{Value, json};
use support::http::HttpClient;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::store::SqliteStore;
use tower_bearer::store::webhooks::WebhookStore;
use tower_bearer::webhooks::{Targets, WebhookSecret};
use tower_bearer::{BearerAuthLayer, Registry, admin};

async fn admin_of(registry: &Registry, tenant: &str) -> String {
    let request = IssueRequest::new("admin", tenant)
        .unwrap()
        .scopes(["admin"])
        .unwrap()
        .expires(Expiry::Never);
    let issued = registry.issue(request).await.unwrap();
    issued.secret.expose_secret().to_owned()
}

struct Api {
    client: HttpClient,
    store: SqliteStore,
    acme: String,
    globex: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start(targets: Targets) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("hooks.db"))
            .await
            .unwrap();
        let registry = Registry::builder(store.clone())
            .webhooks(store.clone(), targets)
            .build();
        let (acme, globex) = (
            admin_of(&registry, "acme").await,
            admin_of(&registry, "globex").await,
        );
        let app = admin::ManagementApi::new(registry.clone())
            .router()
            .layer(BearerAuthLayer::new(registry));
        Self {
            client: HttpClient::new(support::http::serve(app).await),
            store,
            acme,
            globex,
            _dir: dir,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        self.client.call_json(method, path, token, &body).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_registered_changed_rotated_and_deleted() {
    let api = Api::start(Targets::Public).await;
    let (status, created) = api
        .call(
            "POST",
            "/webhooks",
            &api.acme,
            json!({"url": "https://hooks.example.com/tb", "events": ["token.revoked", "token.expiring"], "description": "PagerDuty"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_u64().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created["status"], "active");
    assert_eq!(
        created["events"],
        json!(["token.revoked", "token.expiring"])
    );
    // The stored secret is the one shown, and the only time it is shown.
    let stored = api.store.endpoint("acme", id).await.unwrap();
    assert_eq!(stored.secret, WebhookSecret::parse(&secret).unwrap());
    let (status, listed) = api.call("GET", "/webhooks", &api.acme, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");
    let (status, one) = api
        .call("GET", &format!("/webhooks/{id}"), &api.acme, Value::Null)
        .await;
    assert_eq!(
        (status, &one["description"]),
        (StatusCode::OK, &json!("PagerDuty"))
    );
    assert!(one.get("secret").is_none());

    // Another tenant's admin sees nothing of it.
    let (status, theirs) = api.call("GET", "/webhooks", &api.globex, Value::Null).await;
    assert_eq!(
        (status, theirs["data"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    for (method, path) in [
        ("GET", format!("/webhooks/{id}")),
        ("PATCH", format!("/webhooks/{id}")),
        ("DELETE", format!("/webhooks/{id}")),
        ("POST", format!("/webhooks/{id}/rotate-secret")),
    ] {
        let body = if method == "PATCH" {
            json!({"description": "mine"})
        } else {
            Value::Null
        };
        let (status, _) = api.call(method, &path, &api.globex, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }

    let (status, changed) = api
        .call(
            "PATCH",
            &format!("/webhooks/{id}"),
            &api.acme,
            json!({"events": ["token.created"], "description": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["events"], json!(["token.created"]));
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["url"], "https://hooks.example.com/tb");

    let (status, rotated) = api
        .call(
            "POST",
            &format!("/webhooks/{id}/rotate-secret"),
            &api.acme,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    let stored = api.store.endpoint("acme", id).await.unwrap();
    assert_eq!(stored.secret, WebhookSecret::parse(new_secret).unwrap());
    let (previous, until) = stored.previous_secret.unwrap();
    assert_eq!(previous, WebhookSecret::parse(&secret).unwrap());
    let overlap = until - time::OffsetDateTime::now_utc();
    assert!(overlap > time::Duration::hours(23) && overlap <= time::Duration::hours(24));

    let (status, _) = api
        .call("DELETE", &format!("/webhooks/{id}"), &api.acme, Value::Null)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call("GET", &format!("/webhooks/{id}"), &api.acme, Value::Null)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_urls_and_unknown_events_are_422_naming_the_field() {
    let api = Api::start(Targets::Public).await;
    for (body, field) in [
        (
            json!({"url": "http://hooks.example.com/", "events": ["token.created"]}),
            "url",
        ),
        (
            json!({"url": "https://127.0.0.1/", "events": ["token.created"]}),
            "url",
        ),
        (
            json!({"url": "https://169.254.169.254/latest", "events": ["token.created"]}),
            "url",
        ),
        (
            json!({"url": "https://[::1]/", "events": ["token.created"]}),
            "url",
        ),
        (
            json!({"url": "https://user:pw@hooks.example.com/", "events": ["token.created"]}),
            "url",
        ),
        (json!({"url": 7, "events": ["token.created"]}), "url"),
        (json!({"events": ["token.created"]}), "url"),
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["token.deleted"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["token.created", "token.created"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["token.created"], "description": "x".repeat(257)}),
            "description",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["token.created"], "secret": "mine"}),
            "secret",
        ),
    ] {
        let (status, error) = api.call("POST", "/webhooks", &api.acme, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert!(error["errors"][field].is_array(), "{body}: {error}");
    }
    assert!(
        api.store.endpoints("acme").await.unwrap().is_empty(),
        "nothing stored"
    );
}

/// The example server refuses a private endpoint, unless started with
/// `--allow-private-webhooks` (for tests), which also allows plain http.
#[tokio::test]
async fn the_example_allows_private_endpoints_only_when_told() {
    use support::example::ExampleProcess;
    let dir = tempfile::tempdir().unwrap();
    let body = r#"{"url":"http://127.0.0.1:9/hook","events":["token.revoked"]}"#;
    for (allow, expected) in [
        (false, StatusCode::UNPROCESSABLE_ENTITY),
        (true, StatusCode::CREATED),
    ] {
        let db = dir.path().join(format!("tokens-{allow}.db"));
        let mut args = vec!["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
        if allow {
            args.push("--allow-private-webhooks");
        }
        let mut server = ExampleProcess::start("server", "full", &args, 1).await;
        let admin = server.stdout_line().await;
        let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
        let client = HttpClient::new(server.addrs[0]);
        let (status, answer) = client.call_json("POST", "/webhooks", &admin, body).await;
        assert_eq!(status, expected, "{answer}");
        assert_eq!(server.interrupt().await, "");
    }
}

/// Through the example server on `db`: an endpoint registered with the management API
/// receives `token.created` and `token.revoked`, verified by the `standardwebhooks`
/// package, and its deliveries list shows both attempts.
async fn the_example_delivers_to_a_registered_endpoint(db: &str) {
    use std::time::Duration;
    use support::example::ExampleProcess;
    use support::webhooks::PythonReceiver;
    let Some(python) = support::webhooks::python() else {
        return;
    };
    let mut receiver = PythonReceiver::start(&python, &[]).await;
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        db,
        "--allow-private-webhooks",
    ];
    let mut server = ExampleProcess::start("server", "full", &args, 1).await;
    let admin = server.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let client = HttpClient::new(server.addrs[0]);
    let body = json!({"url": receiver.url, "events": ["token.created", "token.revoked"]});
    let (status, endpoint) = client
        .call_json("POST", "/webhooks", &admin, &body.to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    receiver
        .verify_with(endpoint["secret"].as_str().unwrap())
        .await;
    let (status, issued) = client
        .call_json(
            "POST",
            "/tokens",
            &admin,
            r#"{"name":"watched","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let id = issued["id"].as_u64().unwrap();
    let (status, _) = client
        .call_json("DELETE", &format!("/tokens/{id}"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let got = receiver
        .exactly(2, Duration::from_secs(20), Duration::from_secs(2))
        .await;
    let mut events: Vec<(&str, u64, bool)> = got
        .iter()
        .map(|r| (r.kind(), r.token_id(), r.verified))
        .collect();
    events.sort();
    assert_eq!(
        events,
        [("token.created", id, true), ("token.revoked", id, true)]
    );
    let revoked = got.iter().find(|r| r.kind() == "token.revoked").unwrap();
    assert_eq!(revoked.body["data"]["reason"], "manual");
    assert_eq!(revoked.body["data"]["name"], "watched");

    let path = format!("/webhooks/{}/deliveries?limit=1", endpoint["id"]);
    let (status, page) = client.call_json("GET", &path, &admin, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["has_more"], true);
    let first = &page["data"][0];
    assert_eq!(
        (first["attempt"].as_u64(), first["status"].as_u64()),
        (Some(1), Some(204))
    );
    assert!(first["error"].is_null());
    let path = format!(
        "/webhooks/{}/deliveries?starting_after={}",
        endpoint["id"], first["id"]
    );
    let (_, rest) = client.call_json("GET", &path, &admin, "").await;
    assert_eq!(
        (rest["data"].as_array().unwrap().len(), &rest["has_more"]),
        (1, &json!(false))
    );
    let mut ids = [
        first["event_id"].as_str().unwrap(),
        rest["data"][0]["event_id"].as_str().unwrap(),
    ];
    ids.sort_unstable();
    let mut sent = [got[0].id.as_str(), got[1].id.as_str()];
    sent.sort_unstable();
    assert_eq!(ids, sent, "the deliveries list names the webhook-ids sent");
    assert_eq!(server.interrupt().await, "");
}

#[tokio::test]
async fn the_example_delivers_webhooks_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    the_example_delivers_to_a_registered_endpoint(db.to_str().unwrap()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_example_delivers_webhooks_on_postgres() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    the_example_delivers_to_a_registered_endpoint(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoints_deliveries_are_its_tenants_alone() {
    let api = Api::start(Targets::AllowPrivate).await;
    let body = json!({"url": "http://127.0.0.1:9/hook", "events": ["token.created"]});
    let (status, created) = api.call("POST", "/webhooks", &api.acme, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/webhooks/{}/deliveries", created["id"]);
    let (status, page) = api.call("GET", &path, &api.acme, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page, json!({"data": [], "has_more": false}));
    let (status, _) = api.call("GET", &path, &api.globex, Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in ["?limit=0", "?limit=101", "?starting_after=x"] {
        let (status, answer) = api
            .call("GET", &format!("{path}{bad}"), &api.acme, Value::Null)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }
}

/// Two example servers on one SQLite file, one started with `--no-webhook-delivery`: the
/// events of its changes are delivered by the other, once.
#[tokio::test]
async fn a_server_that_does_not_deliver_leaves_its_events_to_one_that_does() {
    use std::time::Duration;
    use support::example::ExampleProcess;
    use support::webhooks::Receiver;
    let receiver = Receiver::default();
    let hook = receiver.serve(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokens.db");
    let db = db.to_str().unwrap();
    let quiet = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        db,
        "--allow-private-webhooks",
        "--no-webhook-delivery",
    ];
    let mut api = ExampleProcess::start("server", "full", &quiet, 1).await;
    let admin = api.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let client = HttpClient::new(api.addrs[0]);
    let body = json!({"url": hook, "events": ["token.created"]}).to_string();
    let (status, created) = client.call_json("POST", "/webhooks", &admin, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, issued) = client
        .call_json("POST", "/tokens", &admin, r#"{"name":"written here"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        receiver.received().is_empty(),
        "this server delivers nothing"
    );

    let worker_args = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        db,
        "--allow-private-webhooks",
    ];
    let worker = ExampleProcess::start("server", "full", &worker_args, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].1["type"], "token.created");
    assert_eq!(received[0].1["data"]["id"], issued["id"]);
    assert_eq!(worker.interrupt().await, "");
    assert_eq!(api.interrupt().await, "");
}
