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
        Self::start_with(|builder| builder).await
    }

    async fn start_with(
        configure: impl FnOnce(
            tower_bearer::registry::RegistryBuilder,
        ) -> tower_bearer::registry::RegistryBuilder,
    ) -> Self {
        Self::start_styled(configure, admin::ErrorStyle::Laravel).await
    }

    async fn start_styled(
        configure: impl FnOnce(
            tower_bearer::registry::RegistryBuilder,
        ) -> tower_bearer::registry::RegistryBuilder,
        style: admin::ErrorStyle,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("admin.db"))
            .await
            .unwrap();
        let registry = configure(Registry::builder(store.clone())).build();
        let admin = Self::issue_for(&registry, "acme", &["admin"]).await;
        let app: Router = admin::ManagementApi::new(registry.clone())
            .error_style(style)
            .router()
            .layer(BearerAuthLayer::new(registry.clone()));
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
            .expires(registry.max_lifetime().map_or(Expiry::Never, Expiry::In));
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
        let mut page: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(page["has_more"], false);
        serde_json::from_value(page["data"].take()).unwrap()
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
            "allowed_ips",
            "created_at",
            "created_by",
            "created_by_session",
            "credits",
            "expires_at",
            "id",
            "metadata",
            "name",
            "owner",
            "rate_limits",
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
            "allowed_ips",
            "created_at",
            "created_by",
            "created_by_session",
            "credits",
            "expired",
            "expires_at",
            "id",
            "last_used_at",
            "metadata",
            "name",
            "owner",
            "prefix",
            "rate_limits",
            "rotated_to",
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

async fn raw(
    api: &Api,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", api.admin));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    api.client
        .request(request.body(Full::new(body.into())).unwrap())
        .await
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_with_a_json_body() {
    let api = Api::start().await;
    let huge = format!(r#"{{"name":"{}"}}"#, "n".repeat(70 * 1024));
    let json = [("content-type", "application/json")];
    for path in ["/tokens", "/tokens/1/rotate"] {
        let answer = raw(&api, "POST", path, &json, huge.clone()).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert!(json_of(&answer)["message"].is_string());
    }
    assert_eq!(api.store.count().await.unwrap(), 1);
}

/// A cross-site form post (or any body that is not JSON) can never create or rotate.
#[tokio::test]
async fn write_routes_with_a_body_require_json() {
    let api = Api::start().await;
    let target = json_of(&api.create(json!({"name": "target"})).await);
    let id = target["id"].as_u64().unwrap();
    let rotate = format!("/tokens/{id}/rotate");
    let revoke = format!("/tokens/{id}");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let text = [("content-type", "text/plain")];
    for (method, path, headers, body) in [
        ("POST", "/tokens", &form[..], "name=x"),
        ("POST", "/tokens", &text[..], r#"{"name":"x"}"#),
        ("POST", "/tokens", &[][..], r#"{"name":"x"}"#),
        ("POST", rotate.as_str(), &form[..], ""),
        ("POST", rotate.as_str(), &text[..], "{}"),
        ("POST", rotate.as_str(), &[][..], "{}"),
        ("DELETE", revoke.as_str(), &form[..], ""),
        ("DELETE", revoke.as_str(), &[][..], "{}"),
    ] {
        let answer = raw(&api, method, path, headers, body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path} {headers:?}"
        );
        assert!(json_of(&answer)["message"].is_string());
    }
    assert_eq!(
        api.store.count().await.unwrap(),
        2,
        "nothing created or rotated"
    );
    // JSON with a charset parameter is JSON; a bodiless request needs no content type.
    let utf8 = [("content-type", "application/json; charset=utf-8")];
    let answer = raw(&api, "POST", "/tokens", &utf8, r#"{"name":"y"}"#).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let answer = raw(&api, "POST", &rotate, &[], "").await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
}

/// Where the document makes a body optional (rotate, revoke), a JSON `null` is no body,
/// as clients that serialize "nothing" send it; where a body is required (create,
/// change), `null` is not an object.
#[tokio::test]
async fn an_optional_body_may_be_null_and_a_required_one_may_not() {
    let api = Api::start().await;
    let id = json_of(&api.create(json!({"name": "target"})).await)["id"]
        .as_u64()
        .unwrap();

    let rotated = api
        .call(
            "POST",
            &format!("/tokens/{id}/rotate"),
            &api.admin,
            Some("null"),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.text());
    let new_id = json_of(&rotated)["id"].as_u64().unwrap();
    let revoked = api
        .call(
            "DELETE",
            &format!("/tokens/{new_id}"),
            &api.admin,
            Some("null"),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text());

    for (method, path) in [
        ("POST", "/tokens".to_owned()),
        ("PATCH", format!("/tokens/{id}")),
    ] {
        let answer = api.call(method, &path, &api.admin, Some("null")).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path}"
        );
        assert_eq!(
            json_of(&answer)["errors"]["body"][0],
            "The request body must be a JSON object."
        );
    }
    // Nor is any other value that is not an object.
    let answer = api
        .call("DELETE", &format!("/tokens/{id}"), &api.admin, Some("[]"))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn scopes_and_messages_are_bounded() {
    let api = Api::start().await;
    let many: Vec<String> = (0..65).map(|n| format!("res{n}:read")).collect();
    let answer = api.create(json!({"name": "x", "scopes": many})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = &json_of(&answer)["errors"]["scopes"];
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
    assert!(errors[0].as_str().unwrap().contains("64"), "{errors}");

    let bad: Vec<String> = (0..30).map(|n| format!("Bad{n}")).collect();
    let answer = api.create(json!({"name": "x", "scopes": bad})).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let messages = json_of(&answer)["errors"]["scopes"].clone();
    let messages = messages.as_array().unwrap();
    assert_eq!(messages.len(), 11, "ten messages and a count");
    assert_eq!(messages[10], "(and 20 more errors)");
    assert_eq!(api.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn unknown_fields_are_422_naming_the_field() {
    let api = Api::start().await;
    for body in [
        json!({"name": "x", "scopes": ["read"], "expires_days": 1}),
        json!({"name": "x", "tenant": "other"}),
    ] {
        let answer = api.create(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let field = body
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "name" && *k != "scopes")
            .unwrap()
            .clone();
        assert!(
            json_of(&answer)["errors"][&field].is_array(),
            "{}",
            answer.text()
        );
    }
    let answer = api
        .call(
            "POST",
            "/tokens/1/rotate",
            &api.admin,
            Some(r#"{"grace":5}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json_of(&answer)["errors"]["grace"].is_array());
    assert_eq!(api.store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn lists_are_paginated_like_stripe() {
    let api = Api::start().await;
    for n in 0..5 {
        api.create(json!({"name": format!("t{n}")})).await;
    }
    let page = |query: &'static str| {
        let api = &api;
        async move {
            let answer = api
                .call("GET", &format!("/tokens{query}"), &api.admin, None)
                .await;
            (answer.status, json_of(&answer))
        }
    };
    let (status, first) = page("?limit=4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["data"].as_array().unwrap().len(), 4);
    assert_eq!(first["has_more"], true);
    let last = first["data"][3]["id"].as_u64().unwrap();
    let answer = api
        .call(
            "GET",
            &format!("/tokens?limit=4&starting_after={last}"),
            &api.admin,
            None,
        )
        .await;
    let second = json_of(&answer);
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert_eq!(second["has_more"], false);
    assert!(second["data"][0]["id"].as_u64().unwrap() > last);
    let (_, default) = page("").await;
    assert_eq!(default["data"].as_array().unwrap().len(), 6);
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=x", "limit"),
        ("?starting_after=-1", "starting_after"),
    ] {
        let (status, error) = page(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(error["errors"][field].is_array(), "{query}: {error}");
    }
}

#[tokio::test]
async fn lineage_is_listed_and_cascade_revokes_what_a_token_minted() {
    let api = Api::start().await;
    // A stolen admin token mints a second admin, which mints a reader.
    let stolen = json_of(
        &api.create(json!({"name": "stolen", "scopes": ["admin"]}))
            .await,
    );
    let stolen_token = stolen["token"].as_str().unwrap().to_owned();
    let admin_id = api.registry.verify(&api.admin).await.unwrap().id().get();
    assert_eq!(stolen["created_by"], admin_id);
    let minted = api
        .call(
            "POST",
            "/tokens",
            &stolen_token,
            Some(r#"{"name":"minted","scopes":["admin"]}"#),
        )
        .await;
    let minted = json_of(&minted);
    let minted_token = minted["token"].as_str().unwrap().to_owned();
    let grand = api
        .call(
            "POST",
            "/tokens",
            &minted_token,
            Some(r#"{"name":"grand","scopes":["read"]}"#),
        )
        .await;
    let grand = json_of(&grand);
    let bystander = json_of(&api.create(json!({"name": "bystander"})).await);
    let listed = api.list(&api.admin).await;
    let find = |name: &str| listed.iter().find(|t| t["name"] == name).unwrap().clone();
    assert_eq!(find("minted")["created_by"], stolen["id"]);
    assert_eq!(find("grand")["created_by"], minted["id"]);
    assert_eq!(
        find("seed")["created_by"],
        Value::Null,
        "issued server-side"
    );

    let stolen_id = stolen["id"].as_u64().unwrap();
    let answer = api
        .call(
            "DELETE",
            &format!("/tokens/{stolen_id}?cascade=true"),
            &api.admin,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let mut revoked: Vec<u64> = json_of(&answer)["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    revoked.sort();
    assert_eq!(
        revoked,
        [
            stolen_id,
            minted["id"].as_u64().unwrap(),
            grand["id"].as_u64().unwrap()
        ]
    );
    for token in [
        &stolen_token,
        &minted_token,
        grand["token"].as_str().unwrap(),
    ] {
        assert_eq!(
            api.call("GET", "/tokens", token, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    api.registry
        .verify(bystander["token"].as_str().unwrap())
        .await
        .unwrap();
    let answer = api
        .call("DELETE", "/tokens/1?cascade=maybe", &api.admin, None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn rotation_with_grace_keeps_the_old_token_for_a_while() {
    let api = Api::start().await;
    let created = json_of(
        &api.create(json!({"name": "rolling", "scopes": ["read"]}))
            .await,
    );
    let old = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_u64().unwrap();
    api.registry.verify(&old).await.unwrap();
    let answer = api
        .call(
            "POST",
            &format!("/tokens/{id}/rotate"),
            &api.admin,
            Some(r#"{"grace_seconds":3600}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let rotated = json_of(&answer);
    api.registry
        .verify(&old)
        .await
        .expect("valid during the grace period");
    let listed = api.list(&api.admin).await;
    let old_listed = listed.iter().find(|t| t["id"] == id).unwrap();
    assert_eq!(old_listed["rotated_to"], rotated["id"]);
    let again = api
        .call("POST", &format!("/tokens/{id}/rotate"), &api.admin, None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    for grace in ["86401", "-1", "\"60\"", "1.5"] {
        let rotated_id = rotated["id"].as_u64().unwrap();
        let answer = api
            .call(
                "POST",
                &format!("/tokens/{rotated_id}/rotate"),
                &api.admin,
                Some(&format!(r#"{{"grace_seconds":{grace}}}"#)),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{grace}");
        assert!(json_of(&answer)["errors"]["grace_seconds"].is_array());
    }
}

#[tokio::test]
async fn the_lifetime_policy_is_a_422_naming_the_field() {
    let api = Api::start_with(|builder| {
        builder.max_lifetime(std::time::Duration::from_secs(90 * 86_400))
    })
    .await;
    let in_a_year = (time::OffsetDateTime::now_utc() + time::Duration::days(365))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (body, field) in [
        (
            json!({"name": "x", "expires_in_days": 91}),
            "expires_in_days",
        ),
        (json!({"name": "x", "never_expires": true}), "never_expires"),
        (json!({"name": "x", "expires_at": in_a_year}), "expires_at"),
        (
            json!({"name": "x", "expires_at": "9999-12-31T23:59:59Z"}),
            "expires_at",
        ),
    ] {
        let answer = api.create(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            json_of(&answer)["errors"][field].is_array(),
            "{body}: {}",
            answer.text()
        );
    }
    let ok = api
        .create(json!({"name": "x", "expires_in_days": 90}))
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    let default = json_of(&api.create(json!({"name": "default"})).await);
    let parse = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        parse(&default["expires_at"]) - parse(&default["created_at"]),
        time::Duration::days(90),
        "the default lifetime is shortened to the policy"
    );
}

#[tokio::test]
async fn far_future_expiry_without_a_policy_is_a_422() {
    let api = Api::start().await;
    let answer = api
        .create(json!({"name": "x", "expires_at": "9999-12-31T23:59:59Z"}))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text()
    );
    assert!(json_of(&answer)["errors"]["expires_at"].is_array());
}

/// Regression: the tenant's last admin could revoke itself, and nothing brought one back.
#[tokio::test]
async fn the_last_admin_cannot_be_revoked_or_demoted_by_accident() {
    let api = Api::start().await;
    let admin_id = api.registry.verify(&api.admin).await.unwrap().id().get();
    let answer = api
        .call("DELETE", &format!("/tokens/{admin_id}"), &api.admin, None)
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert!(
        json_of(&answer)["message"]
            .as_str()
            .unwrap()
            .contains("force=true")
    );
    let answer = api
        .call(
            "PATCH",
            &format!("/tokens/{admin_id}"),
            &api.admin,
            Some(r#"{"scopes":["read"]}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    api.registry.verify(&api.admin).await.unwrap();

    // With a second admin, the first may go; a cascade that would take every admin is a
    // 409 too.
    let second = json_of(
        &api.create(json!({"name": "second", "scopes": ["admin"]}))
            .await,
    );
    let second_token = second["token"].as_str().unwrap().to_owned();
    let answer = api
        .call(
            "DELETE",
            &format!("/tokens/{admin_id}?cascade=true"),
            &second_token,
            None,
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::CONFLICT,
        "the second admin descends from the first"
    );
    let answer = api
        .call(
            "DELETE",
            &format!("/tokens/{admin_id}"),
            &second_token,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    let second_id = second["id"].as_u64().unwrap();
    let answer = api
        .call(
            "DELETE",
            &format!("/tokens/{second_id}?force=true"),
            &second_token,
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // Locked out: the recovery call mints a way back in.
    let recovery = api.registry.issue_recovery_admin("acme").await.unwrap();
    let listed = api.list(recovery.secret.expose_secret()).await;
    assert_eq!(listed.len(), 1);
}

/// Issue 26 #7: bringing the last admin's expiry forward locks the tenant out when it
/// passes: a 409 unless `?force=true`, like revoking or demoting it.
#[tokio::test]
async fn the_last_admins_expiry_cannot_be_brought_forward_by_accident() {
    let api = Api::start().await;
    let admin_id = api.registry.verify(&api.admin).await.unwrap().id().get();
    let soon = (time::OffsetDateTime::now_utc() + std::time::Duration::from_secs(5))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for body in [
        json!({ "expires_at": soon }),
        json!({ "expires_in_days": 1 }),
        json!({ "name": "renamed", "expires_at": soon }),
    ] {
        let answer = api
            .call(
                "PATCH",
                &format!("/tokens/{admin_id}"),
                &api.admin,
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{body}: {}",
            answer.text()
        );
        assert!(
            json_of(&answer)["message"]
                .as_str()
                .unwrap()
                .contains("force=true")
        );
    }
    let shown = json_of(
        &api.call("GET", &format!("/tokens/{admin_id}"), &api.admin, None)
            .await,
    );
    assert_eq!(shown["name"], "seed", "nothing changed: {shown}");
    assert!(shown["expires_at"].is_null(), "{shown}");
    // A rename alone is harmless.
    let answer = api
        .call(
            "PATCH",
            &format!("/tokens/{admin_id}"),
            &api.admin,
            Some(r#"{"name":"renamed"}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // With force, as asked.
    let answer = api
        .call(
            "PATCH",
            &format!("/tokens/{admin_id}?force=true"),
            &api.admin,
            Some(&json!({ "expires_at": soon }).to_string()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // Another admin's expiry may move while this one stays.
    let second = json_of(
        &api.create(json!({"name": "second", "scopes": ["admin"]}))
            .await,
    );
    let answer = api
        .call(
            "PATCH",
            &format!("/tokens/{}", second["id"]),
            &api.admin,
            Some(r#"{"expires_in_days":1}"#),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn one_token_can_be_read_and_changed() {
    let api = Api::start().await;
    let created = json_of(
        &api.create(json!({"name": "ci", "scopes": ["write"], "expires_in_days": 30}))
            .await,
    );
    let id = created["id"].as_u64().unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let principal = api.registry.verify(&token).await.unwrap();
    assert!(principal.has_scope("write"));

    let one = api
        .call("GET", &format!("/tokens/{id}"), &api.admin, None)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    let one = json_of(&one);
    assert_eq!(one["name"], "ci");
    assert!(!one.to_string().contains(&token), "never the secret");

    // Narrow the scopes: effective at once, without waiting for the cache.
    let patched = api
        .call(
            "PATCH",
            &format!("/tokens/{id}"),
            &api.admin,
            Some(r#"{"name":"ci-ro","scopes":["read"]}"#),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(json_of(&patched)["scopes"], json!(["read"]));
    let principal = api.registry.verify(&token).await.unwrap();
    assert!(!principal.has_scope("write"));
    assert_eq!(principal.name(), "ci-ro");

    // Shorten the expiry; lengthening, escalating, and unknown fields are refused.
    let ok = api
        .call(
            "PATCH",
            &format!("/tokens/{id}"),
            &api.admin,
            Some(r#"{"expires_in_days":7}"#),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    for (body, field) in [
        (r#"{"expires_in_days":60}"#, "expires_at"),
        (r#"{"scopes":["billing:refund"]}"#, "scopes"),
        (r#"{"owner":"someone"}"#, "owner"),
        (r#"{"name":""}"#, "name"),
        ("{}", "body"),
    ] {
        let answer = api
            .call("PATCH", &format!("/tokens/{id}"), &api.admin, Some(body))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.text()
        );
        assert!(
            json_of(&answer)["errors"][field].is_array(),
            "{body}: {}",
            answer.text()
        );
    }
    let missing = api.call("GET", "/tokens/999", &api.admin, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_can_belong_to_an_owner_and_carry_metadata() {
    let api = Api::start().await;
    let alice = json_of(
        &api.create(json!({"name": "a", "owner": "user-42", "metadata": {"team": "ops", "n": 1}}))
            .await,
    );
    assert_eq!(alice["owner"], "user-42");
    assert_eq!(alice["metadata"], json!({"team": "ops", "n": 1}));
    api.create(json!({"name": "b", "owner": "user-7"})).await;
    api.create(json!({"name": "c"})).await;
    let page = api
        .call("GET", "/tokens?owner=user-42", &api.admin, None)
        .await;
    let page = json_of(&page);
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(page["data"][0]["metadata"]["team"], "ops");
    let principal = api
        .registry
        .verify(alice["token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(principal.owner(), Some("user-42"));

    let big = "x".repeat(5000);
    for (body, field) in [
        (json!({"name": "x", "owner": ""}), "owner"),
        (json!({"name": "x", "owner": "o".repeat(256)}), "owner"),
        (json!({"name": "x", "owner": 5}), "owner"),
        (json!({"name": "x", "metadata": [1]}), "metadata"),
        (json!({"name": "x", "metadata": {"big": big}}), "metadata"),
    ] {
        let answer = api.create(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(json_of(&answer)["errors"][field].is_array(), "{body}");
    }
}

#[tokio::test]
async fn undeclared_scopes_cannot_be_granted() {
    let api = Api::start_with(|builder| {
        builder
            .declare_scopes(["billing:export"])
            .unwrap()
            .implications(
                tower_bearer::scope::Implications::default()
                    .imply("admin", "billing:export")
                    .unwrap(),
            )
    })
    .await;
    let ok = api
        .create(json!({"name": "x", "scopes": ["billing:export"]}))
        .await;
    assert_eq!(
        ok.status,
        StatusCode::CREATED,
        "admin implies it, and it is declared"
    );
    let typo = api
        .create(json!({"name": "x", "scopes": ["billing:exprot"]}))
        .await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        json_of(&typo)["errors"]["scopes"][0]
            .as_str()
            .unwrap()
            .contains("not declared"),
        "{}",
        typo.text()
    );
}

#[tokio::test]
async fn errors_follow_the_configured_style() {
    let cases = [
        (
            admin::ErrorStyle::Drf,
            json!({"name": ["The name field is required."]}),
            json!({"detail": "Token not found."}),
        ),
        (
            admin::ErrorStyle::Envelope,
            json!({"type": "response", "success": false, "description": "Unprocessable Entity", "data": {},
                   "error": {"module": "Tokens", "code": "VALIDATION_ERROR", "message": "The name field is required.",
                             "fields": {"name": ["The name field is required."]}}}),
            json!({"type": "response", "success": false, "description": "Not Found", "data": {},
                   "error": {"module": "Tokens", "code": "NOT_FOUND", "message": "Token not found."}}),
        ),
        (
            admin::ErrorStyle::Laravel,
            json!({"message": "The name field is required.", "errors": {"name": ["The name field is required."]}}),
            json!({"message": "Token not found."}),
        ),
    ];
    for (style, validation, not_found) in cases {
        let api = Api::start_styled(|builder| builder, style).await;
        let answer = api.create(json!({})).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(json_of(&answer), validation, "{style:?}");
        let answer = api.call("DELETE", "/tokens/999", &api.admin, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND);
        assert_eq!(json_of(&answer), not_found, "{style:?}");
    }
}

/// The routers nest before `.with_state(…)` of an application with its own state.
#[tokio::test]
async fn the_router_nests_in_an_app_with_state() {
    #[derive(Clone)]
    struct AppState {
        greeting: &'static str,
    }
    let registry = Registry::builder(tower_bearer::MemoryStore::new()).build();
    let admin_token = registry
        .issue(
            IssueRequest::named("root")
                .unwrap()
                .scopes(["admin"])
                .unwrap(),
        )
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/hello",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    state.greeting
                },
            ),
        )
        .nest("/admin", admin::router(registry.clone()))
        .with_state(AppState { greeting: "hi" });
    let app = BearerAuthLayer::new(registry).protect(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = HttpClient::new(addr);
    let token = admin_token.secret.expose_secret();
    assert_eq!(client.get("/hello", token).await.text(), "hi");
    let listed = client.get("/admin/tokens", token).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(json_of(&listed)["data"][0]["tenant"], "default");
}

/// The document's examples are real: every request-body example is accepted by the
/// router (2xx), and every response example has the fields, with the JSON types, of a
/// real answer.
#[tokio::test]
async fn the_openapi_examples_are_accepted_and_shaped_like_real_answers() {
    let api = Api::start().await;
    let document = serde_json::to_value(admin::openapi()).unwrap();
    let schemas = &document["components"]["schemas"];
    let mut sent = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            // `{"$ref"}`, or `{"oneOf": [{"$ref"}, {"type": "null"}]}` for an optional body.
            let body = &operation["requestBody"]["content"]["application/json"]["schema"];
            let choices = body["oneOf"]
                .as_array()
                .map_or(vec![body], |c| c.iter().collect());
            let Some(reference) = choices.iter().find_map(|choice| choice["$ref"].as_str()) else {
                continue;
            };
            let schema = &schemas[reference.rsplit('/').next().unwrap()];
            for example in schema["examples"].as_array().into_iter().flatten() {
                // A token of its own for each example that names one.
                let target = json_of(
                    &api.create(json!({"name": "target", "scopes": ["read", "write"]}))
                        .await,
                );
                let concrete = path.replace("{id}", &target["id"].to_string());
                let method = method.to_uppercase();
                let answer = api
                    .call(&method, &concrete, &api.admin, Some(&example.to_string()))
                    .await;
                assert!(
                    answer.status.is_success(),
                    "{method} {path} {example}: {} {}",
                    answer.status,
                    answer.text()
                );
                sent.push(format!("{method} {path}"));
            }
        }
    }
    sent.sort();
    assert_eq!(
        sent,
        [
            "PATCH /tokens/{id}",
            "PATCH /tokens/{id}",
            "POST /tokens",
            "POST /tokens",
            "POST /tokens/{id}/rotate",
        ]
    );

    let issued = api
        .create(json!({"name": "shape", "scopes": ["read"]}))
        .await;
    let issued = json_of(&issued);
    support::assert_shaped_like(&schemas["IssuedToken"]["examples"][0], &issued);
    let got = api
        .call(
            "GET",
            &format!("/tokens/{}", issued["id"]),
            &api.admin,
            None,
        )
        .await;
    support::assert_shaped_like(&schemas["Token"]["examples"][0], &json_of(&got));
    let refused = api.call("GET", "/tokens", "sk_live_nope", None).await;
    assert_eq!(schemas["Error"]["examples"][0], json_of(&refused));
    let invalid = api.create(json!({})).await;
    assert_eq!(schemas["Error"]["examples"][1], json_of(&invalid));
}

/// The OpenAPI document names exactly the routes the router serves, each answered by it,
/// in OpenAPI 3.1, with every reference resolved and the Bearer scheme on every operation.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let api = Api::start().await;
    let document = serde_json::to_value(admin::openapi()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            assert_eq!(
                operation["security"],
                json!([{"bearer": []}]),
                "{method} {path}"
            );
            for status in ["401", "403", "503"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} {status}"
                );
            }
            // The router answers it (with the admin token: never 404 for the route, 405).
            let concrete = path.replace("{id}", "999");
            let answer = api
                .call(&method.to_uppercase(), &concrete, &api.admin, None)
                .await;
            let unrouted = answer.status == StatusCode::METHOD_NOT_ALLOWED
                || (answer.status == StatusCode::NOT_FOUND && answer.body.is_empty());
            assert!(!unrouted, "{method} {path}: {}", answer.status);
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /sessions/{id}",
            "DELETE /tokens/{id}",
            "DELETE /webhooks/{id}",
            "GET /activity",
            "GET /activity/summary",
            "GET /tokens",
            "GET /tokens/{id}",
            "GET /tokens/{id}/activity",
            "GET /tokens/{id}/sessions",
            "GET /webhooks",
            "GET /webhooks/{id}",
            "GET /webhooks/{id}/deliveries",
            "PATCH /tokens/{id}",
            "PATCH /webhooks/{id}",
            "POST /tokens",
            "POST /tokens/{id}/rotate",
            "POST /webhooks",
            "POST /webhooks/{id}/rotate-secret",
        ]
    );
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    support::assert_references_resolve(&document);

    // Links lead from an answer to operations of this document that take the `id` they
    // fill in, from where the answer has it.
    let by_id: std::collections::HashMap<&str, &Value> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|operation| (operation["operationId"].as_str().unwrap(), operation))
        .collect();
    let mut links = Vec::new();
    for (from, operation) in &by_id {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let Some(found) = response["links"].as_object() else {
                continue;
            };
            for link in found.values() {
                let target = link["operationId"].as_str().unwrap();
                let takes_id = by_id[target]["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|parameter| parameter["name"] == "id" && parameter["in"] == "path");
                assert!(takes_id, "{from} {status} -> {target}");
                let source = link["parameters"]["id"].as_str().unwrap();
                assert!(source.starts_with("$response.body#/"), "{source}");
                links.push(format!("{from} {status} -> {target}"));
            }
        }
    }
    links.sort();
    assert!(
        links.contains(&"issueToken 201 -> getToken".to_owned()),
        "{links:?}"
    );
    assert!(
        links.contains(&"listTokenSessions 200 -> revokeSession".to_owned()),
        "{links:?}"
    );
}
