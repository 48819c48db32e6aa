//! End users' tokens (feature `exchange`): JWTs with the user id as subject and the
//! application's claims, accepted by the layer over real HTTP, revoked by user (here, and
//! on another node through the PostgreSQL change feed).
#![cfg(all(feature = "exchange", feature = "sqlite"))]

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::Value;
use support::http::{HttpClient, serve};
use tower_bearer::registry::{InvalidUserToken, UserTokenRequest};
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::store::SqliteStore;
use tower_bearer::{BearerAuthLayer, Principal, Registry, TokenKind};

const ALICE: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
const BOB: &str = "16fd2706-8baf-433b-82eb-8c7fada847da";

fn config() -> SessionConfig {
    SessionConfig::new(SessionKeys::new("users", &[8u8; 32]).unwrap())
}

async fn user_token(registry: &Registry, user: &str, name: &str) -> String {
    let request = UserTokenRequest::new("acme", user)
        .unwrap()
        .name(name)
        .claim("roomId", "lobby")
        .unwrap();
    let token = registry.issue_user_token(request).await.unwrap();
    assert_eq!(token.expires_in, 90 * 86_400);
    token.access_token.expose_secret().to_owned()
}

#[tokio::test]
async fn user_tokens_authenticate_as_their_user_and_are_revoked_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("users.db"))
        .await
        .unwrap();
    let registry = Registry::builder(store).sessions(config()).build();
    let app: Router = Router::new().route(
        "/me",
        get(|principal: Principal| async move { axum::Json(principal) }),
    );
    let client = HttpClient::new(serve(app.layer(BearerAuthLayer::new(registry.clone()))).await);

    let alice = user_token(&registry, ALICE, "Alice").await;
    let alice_again = user_token(&registry, ALICE, "Alice").await;
    let bob = user_token(&registry, BOB, "Bob").await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(alice.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], ALICE);
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["roomId"], "lobby");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        90 * 86_400
    );

    let me = client.get("/me", &alice).await;
    assert_eq!(me.status, StatusCode::OK);
    let me: Value = serde_json::from_slice(&me.body).unwrap();
    assert_eq!(me["owner"], ALICE);
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["kind"], "session");
    let principal = registry.verify(&bob).await.unwrap();
    assert_eq!(principal.kind(), TokenKind::Session);
    assert_eq!(principal.owner(), Some(BOB));
    assert!(
        registry.list("acme").await.unwrap().is_empty(),
        "not API keys"
    );

    assert_eq!(registry.revoke_user("acme", ALICE).await.unwrap(), 2);
    for token in [&alice, &alice_again] {
        assert_eq!(
            client.get("/me", token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(client.get("/me", &bob).await.status, StatusCode::OK);
    assert_eq!(registry.revoke_user("other", BOB).await.unwrap(), 0);
    assert_eq!(client.get("/me", &bob).await.status, StatusCode::OK);
}

#[tokio::test]
async fn requests_are_checked() {
    assert_eq!(
        UserTokenRequest::new("acme", "not a uuid").unwrap_err(),
        InvalidUserToken::UserId
    );
    assert_eq!(
        UserTokenRequest::new("ac me", ALICE).unwrap_err(),
        InvalidUserToken::Tenant
    );
    let request = UserTokenRequest::new("acme", ALICE).unwrap();
    assert_eq!(
        request.clone().claim("exp", 1).unwrap_err(),
        InvalidUserToken::ReservedClaim("exp".into())
    );
    assert_eq!(
        request.clone().claim("big", "x".repeat(3000)).unwrap_err(),
        InvalidUserToken::ClaimsTooLarge
    );
    assert_eq!(
        request.lifetime(Duration::ZERO).unwrap_err(),
        InvalidUserToken::Lifetime
    );
}

/// A user revoked on node A: its token stops working on node B as soon as the change
/// feed delivers (a watch on B ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_user_reaches_every_node() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let (a, b) = (
        support::postgres::node(&url, "users-a", |builder| builder.sessions(config())).await,
        support::postgres::node(&url, "users-b", |builder| builder.sessions(config())).await,
    );
    let token = user_token(&a, ALICE, "Alice").await;
    b.verify(&token).await.expect("issued on A, valid on B");
    let watching = b.clone();
    let watched = token.clone();
    let watch = tokio::spawn(async move { watching.watch(&watched).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(a.revoke_user("acme", ALICE).await.unwrap(), 1);
    tokio::time::timeout(Duration::from_secs(2), watch)
        .await
        .expect("the watch on B ends")
        .unwrap();
    assert!(b.verify(&token).await.is_err());
}

#[tokio::test]
async fn a_registry_without_sessions_says_so() {
    let registry = Registry::builder(tower_bearer::MemoryStore::new()).build();
    let request = UserTokenRequest::new("acme", ALICE).unwrap();
    assert!(matches!(
        registry.issue_user_token(request).await,
        Err(tower_bearer::registry::RegistryError::SessionsNotConfigured)
    ));
}

/// Issue 26 #1: a copy of the database and the session key together yield no working
/// user token. The row keeps `sid`, `jti`, `kid`, `iss` and the claims; what it does not
/// keep (a random secret claim) is what re-deriving the token would need.
#[tokio::test]
async fn the_database_and_the_key_together_cannot_re_derive_a_user_token() {
    use tower_bearer::TokenStore as _;
    use tower_bearer::session::SessionClaims;
    use tower_bearer::store::ListQuery;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    let registry = Registry::builder(SqliteStore::open(&path).await.unwrap())
        .sessions(config())
        .build();
    let app: Router = Router::new().route("/me", get(|_: Principal| async { "me" }));
    let client = HttpClient::new(serve(app.layer(BearerAuthLayer::new(registry.clone()))).await);
    let genuine = user_token(&registry, ALICE, "Alice").await;
    assert_eq!(client.get("/me", &genuine).await.status, StatusCode::OK);

    // The attacker: the database file (opened on its own) and the key.
    let copy = SqliteStore::open(&path).await.unwrap();
    let rows = copy
        .list_by_tenant(
            "acme",
            ListQuery::all().kind(TokenKind::Session).owner(ALICE),
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let metadata = row.metadata.clone().unwrap();
    let field = |name: &str| metadata[name].as_str().unwrap().to_owned();
    let mut claims = SessionClaims::new(
        &field("iss"),
        ALICE,
        &field("sid"),
        "acme",
        "",
        row.created_at.unix_timestamp(),
        row.expires_at.unwrap().unix_timestamp(),
        &field("jti"),
    );
    claims.extra = metadata["claims"].as_object().unwrap().clone();
    let keys = SessionKeys::new("users", &[8u8; 32]).unwrap();
    let forged = keys.sign_with(&field("kid"), &claims).unwrap();
    // Everything the row says is in the genuine token; it is still not the token.
    assert_ne!(forged, genuine);
    assert_eq!(
        client.get("/me", &forged).await.status,
        StatusCode::UNAUTHORIZED,
        "a token re-derived from the database and the key was accepted"
    );
    // Nor does the genuine token's secret appear anywhere in the file.
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(genuine.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let secret = payload["sec"].as_str().expect("a secret claim");
    assert!(secret.len() >= 43, "256 random bits: {secret}");
    drop((registry, copy));
    let mut bytes = std::fs::read(&path).unwrap();
    for wal in ["-wal", "-shm"] {
        let side = format!("{}{wal}", path.display());
        bytes.extend(std::fs::read(side).unwrap_or_default());
    }
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret claim is stored"
    );
}

/// Issue 26 #8: a verified user token's custom claims are readable (and only the custom
/// ones: never the secret claim); API keys and login sessions have none.
#[tokio::test]
async fn a_user_tokens_claims_are_read_from_its_principal() {
    use tower_bearer::registry::IssueRequest;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("claims.db"))
        .await
        .unwrap();
    let registry = Registry::builder(store).sessions(config()).build();
    let token = user_token(&registry, ALICE, "Alice").await;
    let principal = registry.verify(&token).await.unwrap();
    let claims = principal.claims().expect("a user token's claims");
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims["roomId"], "lobby");
    // A second registry on the same file reads them from the row (a cache miss).
    let other = Registry::builder(
        SqliteStore::open(dir.path().join("claims.db"))
            .await
            .unwrap(),
    )
    .sessions(config())
    .build();
    assert_eq!(
        other.verify(&token).await.unwrap().claims().unwrap()["roomId"],
        "lobby"
    );
    let key = registry
        .issue(IssueRequest::new("key", "acme").unwrap())
        .await
        .unwrap();
    let key = key.secret.expose_secret().to_owned();
    assert!(registry.verify(&key).await.unwrap().claims().is_none());
    let session = registry.login(&key, None).await.unwrap();
    let session = registry
        .verify(session.access_token.expose_secret())
        .await
        .unwrap();
    assert!(session.claims().is_none());
}
