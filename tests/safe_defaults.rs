//! What a first-time user reaches for, through real HTTP: protecting a whole router (with
//! a public allow-list) that `axum::serve` takes as it is, scope names checked when the
//! program compiles, any-of / all-of scope checks, and DRF's `Token` scheme.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use support::http::HttpClient;
use tower_bearer::extract::{AdminScope, ReadScope, RequiredScope, ScopedAll, ScopedAny};
use tower_bearer::layer::{BearerAuth, BearerAuthLayer, RequireScopeLayer};
use tower_bearer::registry::IssueRequest;
use tower_bearer::{MemoryStore, Principal, Registry, Scope};

struct ReportsRead;
impl RequiredScope for ReportsRead {
    const SCOPE: &'static str = "reports:read";
}
struct ReportsExport;
impl RequiredScope for ReportsExport {
    const SCOPE: &'static str = "reports:export";
}

async fn token(registry: &Registry, scopes: &[&str]) -> String {
    let issued = registry
        .issue(
            IssueRequest::new("t", "acme")
                .unwrap()
                .scopes(scopes)
                .unwrap(),
        )
        .await
        .unwrap();
    issued.secret.expose_secret().to_owned()
}

/// Serves `app` exactly as the README tells users to: `axum::serve(listener, app)`.
async fn serve_whole(app: BearerAuth<Router>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Regression: with `Router::layer`, routes added after the call were public and silent.
/// Wrapping the whole router protects every route, whenever it was added; the allow-list
/// names the public ones.
#[tokio::test]
async fn every_route_of_a_wrapped_router_is_protected_except_the_public_ones() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let reader = token(&registry, &["read"]).await;
    let router = Router::new()
        .route("/early", get(|| async { "early" }))
        .route("/health", get(|| async { "ok" }))
        .route("/docs/{page}", get(|| async { "docs" }))
        .route(
            "/scoped",
            get(|| async { "scoped" }).route_layer(RequireScopeLayer::from_static("write")),
        )
        // Added last, extracting nothing: protected all the same.
        .route("/late", get(|| async { "late" }))
        .route(
            "/whoami",
            get(|p: Option<Principal>| async move {
                p.map_or("anonymous".into(), |p| p.name().to_owned())
            }),
        );
    let app = BearerAuthLayer::new(registry)
        .public(["/health", "/docs/*"])
        .protect(router);
    let client = HttpClient::new(serve_whole(app).await);

    for path in [
        "/early", "/late", "/scoped", "/whoami", "/healthz", "/docsx",
    ] {
        let answer = client.send("GET", path, &[]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="api""#)
        );
    }
    for path in ["/health", "/docs/intro"] {
        let answer = client.send("GET", path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    assert_eq!(client.get("/late", &reader).await.status, StatusCode::OK);
    assert_eq!(client.get("/whoami", &reader).await.text(), "t");
    assert_eq!(
        client.get("/scoped", &reader).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_wrapped_router_serves_with_connect_info_too() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let reader = token(&registry, &["read"]).await;
    let router = Router::new().route(
        "/peer",
        get(
            |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| async move {
                peer.ip().to_string()
            },
        ),
    );
    let app = BearerAuthLayer::new(registry).protect(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let client = HttpClient::new(addr);
    assert_eq!(client.get("/peer", &reader).await.text(), "127.0.0.1");
    assert_eq!(
        client.send("GET", "/peer", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn an_invalid_static_scope_panics_at_the_callers_line() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
    let hook_seen = seen.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *hook_seen.lock().unwrap() = info.location().map(|l| l.file().to_owned());
    }));
    let result = std::panic::catch_unwind(|| RequireScopeLayer::from_static("billing-export"));
    std::panic::set_hook(previous);
    assert!(result.is_err());
    assert_eq!(seen.lock().unwrap().as_deref(), Some(file!()));
}

#[tokio::test]
async fn any_of_and_all_of_scope_checks() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let reports = token(&registry, &["reports:read"]).await;
    let admin = token(&registry, &["admin"]).await;
    let reader = token(&registry, &["read"]).await;
    let exporter = token(&registry, &["read", "reports:export"]).await;
    let scope = |name: &str| Scope::new(name).unwrap();
    let router = Router::new()
        .route(
            "/any",
            get(|_: ScopedAny<(ReportsRead, AdminScope)>| async { "any" }),
        )
        .route(
            "/all",
            get(|_: ScopedAll<(ReadScope, ReportsExport)>| async { "all" }),
        )
        .route(
            "/layer-any",
            get(|| async { "any" }).route_layer(RequireScopeLayer::any_of([
                scope("reports:read"),
                scope("admin"),
            ])),
        )
        .route(
            "/layer-all",
            get(|| async { "all" }).route_layer(RequireScopeLayer::all_of([
                scope("read"),
                scope("reports:export"),
            ])),
        );
    let client = HttpClient::new(serve_whole(BearerAuthLayer::new(registry).protect(router)).await);
    for path in ["/any", "/layer-any"] {
        assert_eq!(
            client.get(path, &reports).await.status,
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            client.get(path, &admin).await.status,
            StatusCode::OK,
            "{path}"
        );
        let denied = client.get(path, &reader).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            denied.header("www-authenticate"),
            Some(r#"Bearer realm="api", error="insufficient_scope", scope="reports:read admin""#),
            "{path}"
        );
    }
    for path in ["/all", "/layer-all"] {
        assert_eq!(
            client.get(path, &exporter).await.status,
            StatusCode::OK,
            "{path}"
        );
        let denied = client.get(path, &reader).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            denied.header("www-authenticate"),
            Some(r#"Bearer realm="api", error="insufficient_scope", scope="reports:export""#),
            "{path}: names what is missing"
        );
    }
}

#[tokio::test]
async fn drf_token_scheme_is_an_opt_in_alias() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let reader = token(&registry, &["read"]).await;
    let router = || {
        Router::new().route(
            "/me",
            get(|p: Principal| async move { p.name().to_owned() }),
        )
    };
    let plain = HttpClient::new(
        serve_whole(BearerAuthLayer::new(registry.clone()).protect(router())).await,
    );
    let aliased = HttpClient::new(
        serve_whole(
            BearerAuthLayer::new(registry)
                .accept_scheme("Token")
                .protect(router()),
        )
        .await,
    );
    let token_header = format!("Token {reader}");
    let answer = plain.send("GET", "/me", &[token_header.as_bytes()]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    for header in [
        token_header.clone(),
        format!("token {reader}"),
        format!("Bearer {reader}"),
    ] {
        let answer = aliased.send("GET", "/me", &[header.as_bytes()]).await;
        assert_eq!(answer.status, StatusCode::OK, "{header}");
    }
    let answer = aliased.send("GET", "/me", &[b"Token sk_live_nope"]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="api", error="invalid_token""#),
        "the challenge still names Bearer"
    );
}
