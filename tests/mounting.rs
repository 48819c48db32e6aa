//! The management API and the login route under a base path (`/v1`): served there,
//! documented there, found there by the dashboard; and a login route that the layer
//! protects by mistake is explained in the log.

mod support;

use axum::Router;
use http::StatusCode;
use tower_bearer::admin::ManagementApi;
use tower_bearer::dashboard::Dashboard;
use tower_bearer::exchange::LoginApi;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

use support::http::{HttpClient, serve};
use support::logs::recording;

fn registry() -> Registry {
    let keys = SessionKeys::new("k1", &[9u8; 32]).unwrap();
    Registry::builder(MemoryStore::new())
        .sessions(SessionConfig::new(keys))
        .build()
}

async fn admin_token(registry: &Registry) -> String {
    let issued = registry
        .issue(
            IssueRequest::new("root", "acme")
                .unwrap()
                .scopes(["admin"])
                .unwrap()
                .expires(Expiry::Never),
        )
        .await
        .unwrap();
    issued.secret.expose_secret().to_owned()
}

/// `POST <route>` with the key in the body, as a client logs in: no `Authorization`.
fn login_request(route: &str, key: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post(route)
        .header("content-type", "application/json")
        .body(format!(r#"{{"api_key":"{key}"}}"#).into())
        .unwrap()
}

#[tokio::test]
async fn the_apis_serve_document_and_lead_the_dashboard_under_their_base_path() {
    let registry = registry();
    let root = admin_token(&registry).await;
    // The page first: it reads where the APIs are when it is asked, not when it is built.
    let page = Dashboard::new(registry.clone()).router();
    let (admin, admin_doc) = ManagementApi::new(registry.clone())
        .base_path("/v1")
        .split();
    let (login, login_doc) = LoginApi::new(registry.clone()).base_path("/v1").split();
    let app = Router::new().merge(admin).merge(login).merge(page);
    let app = BearerAuthLayer::new(registry.clone())
        .public(["/v1/auth/login", "/dashboard", "/dashboard/*"])
        .protect(app);
    let client = HttpClient::new(serve(Router::new().fallback_service(app)).await);

    let (status, created) = client
        .call_json(
            "POST",
            "/v1/tokens",
            &root,
            r#"{"name":"ci","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, _) = client
        .call_json("POST", "/tokens", &root, r#"{"name":"ci"}"#)
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing at the root any more"
    );

    let key = created["token"].as_str().unwrap();
    let answer = client.request(login_request("/v1/auth/login", key)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let login: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(login["access_token"].as_str().is_some());

    let paths: Vec<&String> = admin_doc.paths.paths.keys().collect();
    assert!(
        paths.iter().all(|path| path.starts_with("/v1/")),
        "{paths:?}"
    );
    assert!(admin_doc.paths.paths.contains_key("/v1/tokens/{id}/rotate"));
    assert!(login_doc.paths.paths.contains_key("/v1/auth/login"));
    assert!(login_doc.paths.paths.contains_key("/v1/auth/logout"));

    let config = client
        .request(
            http::Request::get("/dashboard/config.json")
                .body(Default::default())
                .unwrap(),
        )
        .await;
    assert_eq!(config.status, StatusCode::OK);
    let config: serde_json::Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(config["api"], "/v1");
    assert_eq!(config["login"], "/v1/auth/login");
    assert_eq!(config["logout"], "/v1/auth/logout");
}

#[tokio::test]
async fn a_login_route_behind_the_layer_is_explained_once() {
    let (recorder, _guard) = recording();
    let registry = registry();
    let key = admin_token(&registry).await;
    // The mistake: the login route is not public.
    let app = BearerAuthLayer::new(registry.clone()).protect(LoginApi::new(registry).router());
    let client = HttpClient::new(serve(Router::new().fallback_service(app)).await);

    for _ in 0..3 {
        let answer = client.request(login_request("/auth/login", &key)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    let warnings: Vec<_> = recorder
        .lines()
        .into_iter()
        .filter(|line| line.level == tracing::Level::WARN && line.message().contains("login route"))
        .collect();
    assert_eq!(warnings.len(), 1, "once: {warnings:#?}");
    assert!(
        warnings[0].message().contains("must be public"),
        "{warnings:#?}"
    );
    assert!(
        warnings[0]
            .message()
            .contains(r#"BearerAuthLayer::public(["/auth/login"])"#),
        "{warnings:#?}"
    );
}
