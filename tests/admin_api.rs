//! The management API over real HTTP, on a real SQLite file.
#![cfg(all(feature = "admin", feature = "sqlite"))]

mod support;

use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use support::http::{Answer, HttpClient, serve};
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::store::SqliteStore;
use tower_bearer::{BearerAuthLayer, Registry, admin};

struct Api {
    client: HttpClient,
    registry: Registry,
    store: SqliteStore,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("admin.db"))
            .await
            .unwrap();
        let registry = Registry::builder(store.clone()).build();
        let admin = Self::issue_for(&registry, "acme", &["admin"]).await;
        let app: Router =
            admin::router(registry.clone()).layer(BearerAuthLayer::new(registry.clone()));
        Self {
            client: HttpClient::new(serve(app).await),
            registry,
            store,
            admin,
            _dir: dir,
        }
    }

    async fn issue_for(registry: &Registry, tenant: &str, scopes: &[&str]) -> String {
        let request = IssueRequest::new("seed", tenant)
            .unwrap()
            .scopes(scopes)
            .unwrap()
            .expires(Expiry::Never);
        let issued = registry.issue(request).await.unwrap();
        issued.secret.expose_secret().to_owned()
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .unwrap();
        self.client.request(request).await
    }

    async fn create(&self, body: Value) -> Answer {
        self.call("POST", "/tokens", &self.admin, Some(&body.to_string()))
            .await
    }

    async fn list(&self, token: &str) -> Vec<Value> {
        let answer = self.call("GET", "/tokens", token, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        serde_json::from_slice(&answer.body).unwrap()
    }
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or_else(|_| panic!("not JSON: {}", answer.text()))
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn create_answers_the_token_once_and_it_works() {
    let api = Api::start().await;
    let answer = api
        .create(json!({"name": "CI", "scopes": ["read", "write"], "expires_in_days": 30}))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let created = json_of(&answer);
    assert_eq!(
        keys(&created),
        [
            "created_at",
            "expires_at",
            "id",
            "name",
            "scopes",
            "tenant",
            "token"
        ]
    );
    assert_eq!(created["name"], "CI");
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["scopes"], json!(["read", "write"]));
    let created_at = time::OffsetDateTime::parse(
        created["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires_at = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires_at - created_at, time::Duration::days(30));

    let token = created["token"].as_str().unwrap();
    let principal = api.registry.verify(token).await.unwrap();
    assert!(principal.has_scope("write") && !principal.has_scope("admin"));

    // The list never shows the token again.
    let listed = api.list(&api.admin).await;
    assert_eq!(listed.len(), 2);
    assert!(!serde_json::to_string(&listed).unwrap().contains(token));
    assert_eq!(
        keys(&listed[1]),
        [
            "created_at",
            "expired",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "prefix",
            "scopes",
            "tenant"
        ]
    );
    assert_eq!(listed[1]["prefix"], token[..12]);
}

#[tokio::test]
async fn expiry_options() {
    let api = Api::start().await;
    let default = json_of(&api.create(json!({"name": "default"})).await);
    let created_at = default["created_at"].as_str().unwrap();
    let expires_at = default["expires_at"].as_str().unwrap();
    let parse = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(
        parse(expires_at) - parse(created_at),
        time::Duration::days(180)
    );
    assert_eq!(default["scopes"], json!([]));

    let never = json_of(
        &api.create(json!({"name": "never", "never_expires": true}))
            .await,
    );
    assert_eq!(never["expires_at"], Value::Null);

    let at = json_of(
        &api.create(json!({"name": "at", "expires_at": "2099-01-01T00:00:00Z"}))
            .await,
    );
    assert_eq!(at["expires_at"], "2099-01-01T00:00:00Z");

    let at_offset = json_of(
        &api.create(json!({"name": "at", "expires_at": "2099-01-01T02:00:00+02:00"}))
            .await,
    );
    assert_eq!(
        parse(at_offset["expires_at"].as_str().unwrap()),
        parse("2099-01-01T00:00:00Z")
    );
}

#[tokio::test]
async fn delete_stops_the_token_at_once() {
    let api = Api::start().await;
    let created = json_of(
        &api.create(json!({"name": "doomed", "scopes": ["read"]}))
            .await,
    );
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(
        api.call("GET", "/tokens", token, None).await.status,
        StatusCode::FORBIDDEN
    );

    let deleted = api
        .call("DELETE", &format!("/tokens/{id}"), &api.admin, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_empty());
    assert_eq!(
        api.call("GET", "/tokens", token, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.list(&api.admin).await.len(), 1);

    let again = api
        .call("DELETE", &format!("/tokens/{id}"), &api.admin, None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&again), json!({"message": "Token not found."}));
}

#[tokio::test]
async fn rotate_replaces_the_token() {
    let api = Api::start().await;
    let created = json_of(
        &api.create(json!({"name": "rotating", "scopes": ["write"], "never_expires": true}))
            .await,
    );
    let old = created["token"].as_str().unwrap();
    let id = created["id"].as_u64().unwrap();
    api.registry.verify(old).await.unwrap();

    let answer = api
        .call("POST", &format!("/tokens/{id}/rotate"), &api.admin, None)
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let rotated = json_of(&answer);
    assert_ne!(rotated["id"], created["id"]);
    assert_eq!(rotated["name"], "rotating");
    assert_eq!(rotated["scopes"], json!(["write"]));
    assert_eq!(rotated["expires_at"], Value::Null);
    assert!(api.registry.verify(old).await.is_err());
    api.registry
        .verify(rotated["token"].as_str().unwrap())
        .await
        .unwrap();

    let unknown = api
        .call("POST", "/tokens/999/rotate", &api.admin, None)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_admin_manages_only_its_own_tenant() {
    let api = Api::start().await;
    let globex_admin = Api::issue_for(&api.registry, "globex", &["admin"]).await;
    let acme_token = json_of(&api.create(json!({"name": "acme's"})).await);
    let acme_id = acme_token["id"].as_u64().unwrap();

    let theirs = api.list(&globex_admin).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["tenant"], "globex");
    for (method, path) in [
        ("DELETE", format!("/tokens/{acme_id}")),
        ("POST", format!("/tokens/{acme_id}/rotate")),
    ] {
        let answer = api.call(method, &path, &globex_admin, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    api.registry
        .verify(acme_token["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(api.list(&api.admin).await.len(), 2);
}

#[tokio::test]
async fn every_route_needs_the_admin_scope() {
    let api = Api::start().await;
    let writer = Api::issue_for(&api.registry, "acme", &["write"]).await;
    for (method, path, body) in [
        ("GET", "/tokens", None),
        ("POST", "/tokens", Some(r#"{"name":"x"}"#)),
        ("DELETE", "/tokens/1", None),
        ("POST", "/tokens/1/rotate", None),
    ] {
        let answer = api.call(method, path, &writer, body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(
            answer.text(),
            r#"{"message":"This action is unauthorized."}"#
        );
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="api", error="insufficient_scope", scope="admin""#)
        );
        let anonymous = api.client.send(method, path, &[]).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(api.store.count().await.unwrap(), 2);
}

#[tokio::test]
async fn bad_input_names_the_field_and_stores_nothing() {
    let api = Api::start().await;
    let long_name = "n".repeat(256);
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("{".into(), StatusCode::BAD_REQUEST, "body"),
        ("".into(), StatusCode::BAD_REQUEST, "body"),
        ("[]".into(), StatusCode::UNPROCESSABLE_ENTITY, "body"),
        (r#""name""#.into(), StatusCode::UNPROCESSABLE_ENTITY, "body"),
        ("{}".into(), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (
            r#"{"name":""}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            r#"{"name":"   "}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            r#"{"name":42}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            format!(r#"{{"name":"{long_name}"}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            r#"{"name":"a\u0007b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            r#"{"name":"x","scopes":"read"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            r#"{"name":"x","scopes":["reed"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            r#"{"name":"x","scopes":[1]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            r#"{"name":"x","scopes":["*"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            r#"{"name":"x","scopes":["billing:read"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "scopes",
        ),
        (
            r#"{"name":"x","expires_in_days":0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":-3}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":1.5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":"30"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_in_days":99999999}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_in_days",
        ),
        (
            r#"{"name":"x","expires_at":"yesterday"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at",
        ),
        (
            r#"{"name":"x","expires_at":"2001-01-01T00:00:00Z"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at",
        ),
        (
            r#"{"name":"x","expires_at":12}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at",
        ),
        (
            r#"{"name":"x","never_expires":"yes"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "never_expires",
        ),
        (
            r#"{"name":"x","never_expires":true,"expires_in_days":3}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "never_expires",
        ),
        (
            r#"{"name":"x","expires_at":"2099-01-01T00:00:00Z","expires_in_days":3}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "expires_at",
        ),
    ];
    for (body, status, field) in &cases {
        let answer = api.call("POST", "/tokens", &api.admin, Some(body)).await;
        assert_eq!(answer.status, *status, "{body}: {}", answer.text());
        let error = json_of(&answer);
        assert!(error["message"].is_string(), "{body}");
        assert!(
            error["errors"][field].is_array(),
            "{body} should name {field}: {error}"
        );
    }
    for path in [
        "/tokens/abc",
        "/tokens/0",
        "/tokens/-1",
        "/tokens/1.5",
        "/tokens/99999999999999999999999",
    ] {
        let answer = api.call("DELETE", path, &api.admin, None).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(json_of(&answer)["errors"]["id"].is_array(), "{path}");
        let rotate = api
            .call("POST", &format!("{path}/rotate"), &api.admin, None)
            .await;
        assert_eq!(rotate.status, StatusCode::BAD_REQUEST, "{path}/rotate");
    }
    assert_eq!(api.store.count().await.unwrap(), 1, "nothing was stored");
}

#[tokio::test]
async fn usage_shows_in_the_list_after_a_flush() {
    let api = Api::start().await;
    let before = api.list(&api.admin).await;
    assert_eq!(before[0]["last_used_at"], Value::Null);
    // The two list calls above and below used the admin token.
    api.registry.flush().await.unwrap();
    let after = api.list(&api.admin).await;
    assert!(after[0]["last_used_at"].is_string(), "{after:?}");
    assert_eq!(after[0]["expired"], false);
}

#[tokio::test]
async fn expired_tokens_stay_listed_until_deleted() {
    let api = Api::start().await;
    let short = api
        .registry
        .issue(
            IssueRequest::new("short", "acme")
                .unwrap()
                .expires(Expiry::In(std::time::Duration::from_millis(5))),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let listed = api.list(&api.admin).await;
    let short_listed = listed
        .iter()
        .find(|t| t["id"] == json!(short.info.id.get()))
        .unwrap();
    assert_eq!(short_listed["expired"], true);
    let answer = api
        .call("GET", "/tokens", short.secret.expose_secret(), None)
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

/// Regression (security review): rotation copied the old token's scopes without the
/// "an admin grants only what it holds" rule that creation applies.
#[tokio::test]
async fn rotation_cannot_grant_scopes_the_caller_lacks() {
    let api = Api::start().await;
    let powerful = api
        .registry
        .issue(
            IssueRequest::new("server-side", "acme")
                .unwrap()
                .scopes(["*", "billing:refund"])
                .unwrap(),
        )
        .await
        .unwrap();
    let id = powerful.info.id;
    let before = api.store.count().await.unwrap();
    let answer = api
        .call("POST", &format!("/tokens/{id}/rotate"), &api.admin, None)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text());
    let error = json_of(&answer);
    assert!(error["message"].is_string(), "{error}");
    assert!(!answer.text().contains("sk_live_"), "no token was issued");
    assert_eq!(api.store.count().await.unwrap(), before, "nothing issued");
    api.registry
        .verify(powerful.secret.expose_secret())
        .await
        .expect("the old token is untouched");
}

#[tokio::test]
async fn rotating_an_expired_token_is_refused() {
    let api = Api::start().await;
    let short = api
        .registry
        .issue(
            IssueRequest::new("short", "acme")
                .unwrap()
                .expires(Expiry::In(std::time::Duration::from_millis(5))),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before = api.store.count().await.unwrap();
    let answer = api
        .call(
            "POST",
            &format!("/tokens/{}/rotate", short.info.id),
            &api.admin,
            None,
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text()
    );
    assert!(
        json_of(&answer)["message"]
            .as_str()
            .unwrap()
            .contains("Create a new token"),
        "{}",
        answer.text()
    );
    assert_eq!(api.store.count().await.unwrap(), before);
}
