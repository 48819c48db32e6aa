//! Session exchange over real HTTP (feature `exchange`): `POST /auth/login` on a real
//! SQLite file behind the layer, the access token through the same layer, revocation,
//! tampering and algorithm confusion, and two nodes on one PostgreSQL database.
#![cfg(all(feature = "exchange", feature = "sqlite"))]

mod support;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::http::{Answer, HttpClient, serve};
use tower_bearer::admin::ErrorStyle;
use tower_bearer::clock::ManualClock;
use tower_bearer::extract::{ReadScope, Scoped, WriteScope};
use tower_bearer::registry::{Expiry, IssueRequest, RegistryBuilder};
use tower_bearer::reject::Preset;
use tower_bearer::session::{SessionClaims, SessionConfig, SessionKeys};
use tower_bearer::store::{ListQuery, SqliteStore, TokenStore};
use tower_bearer::{BearerAuthLayer, Principal, Registry, TokenKind, admin, exchange};

const SECRET: [u8; 32] = [42; 32];
const KID: &str = "k-2026";

fn config() -> SessionConfig {
    SessionConfig::new(SessionKeys::new(KID, &SECRET).unwrap())
}

struct Server {
    client: HttpClient,
    registry: Registry,
    store: SqliteStore,
    admin: String,
    _dir: tempfile::TempDir,
}

fn app(registry: &Registry, layer: BearerAuthLayer, style: ErrorStyle) -> Router {
    let routes = Router::new()
        .route(
            "/me",
            get(|principal: Principal| async move { axum::Json(principal) }),
        )
        .route("/read", get(|_: Scoped<ReadScope>| async { "read" }))
        .route("/write", get(|_: Scoped<WriteScope>| async { "write" }))
        .merge(
            exchange::LoginApi::new(registry.clone())
                .error_style(style)
                .router(),
        )
        .merge(admin::router(registry.clone()));
    let service = layer.public(["/auth/login"]).protect(routes);
    Router::new().fallback_service(service)
}

impl Server {
    async fn start() -> Self {
        Self::start_with(|builder| builder, ErrorStyle::Laravel).await
    }

    async fn start_with(
        configure: impl FnOnce(RegistryBuilder) -> RegistryBuilder,
        style: ErrorStyle,
    ) -> Self {
        let preset = match style {
            ErrorStyle::Drf => Preset::drf(),
            _ => Preset::laravel(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sessions.db"))
            .await
            .unwrap();
        let registry = configure(Registry::builder(store.clone()).sessions(config())).build();
        let admin = issue(&registry, &["admin"], Expiry::Never).await;
        let layer = BearerAuthLayer::new(registry.clone()).renderer(preset);
        Self {
            client: HttpClient::new(serve(app(&registry, layer, style)).await),
            registry,
            store,
            admin,
            _dir: dir,
        }
    }

    async fn login(&self, body: Value) -> Answer {
        self.post_raw(body.to_string()).await
    }

    async fn post_raw(&self, body: String) -> Answer {
        let request = Request::post("/auth/login")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.client.request(request).await
    }

    /// Logs in and returns the access token and `expires_in`.
    async fn access_token(&self, key: &str, session_id: Option<&str>) -> (String, u64) {
        let mut body = json!({ "api_key": key });
        if let Some(id) = session_id {
            body["session_id"] = json!(id);
        }
        let answer = self.login(body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let value = json_of(&answer);
        (
            value["access_token"].as_str().unwrap().to_owned(),
            value["expires_in"].as_u64().unwrap(),
        )
    }

    async fn call(&self, method: &str, path: &str, token: &str) -> Answer {
        self.client
            .send(method, path, &[format!("Bearer {token}").as_bytes()])
            .await
    }

    async fn session_rows(&self) -> usize {
        self.store
            .list_by_tenant("acme", ListQuery::all().kind(TokenKind::Session))
            .await
            .unwrap()
            .len()
    }
}

async fn issue(registry: &Registry, scopes: &[&str], expiry: Expiry) -> String {
    let request = IssueRequest::new("sdk key", "acme")
        .unwrap()
        .scopes(scopes.iter().copied())
        .unwrap()
        .expires(expiry);
    let issued = registry.issue(request).await.unwrap();
    issued.secret.expose_secret().to_owned()
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
}

fn segment(token: &str, at: usize) -> Value {
    let part = token.split('.').nth(at).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

async fn key_id(registry: &Registry, key: &str) -> tower_bearer::TokenId {
    registry.verify(key).await.unwrap().id()
}

#[tokio::test]
async fn login_answers_a_jwt_that_the_layer_accepts_as_the_key() {
    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let answer = server
        .login(json!({"api_key": key, "session_id": "browser-1"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = json_of(&answer);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(body.as_object().unwrap().len(), 3);
    let token = body["access_token"].as_str().unwrap();

    let header = segment(token, 0);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], KID);
    let claims = segment(token, 1);
    let id = key_id(&server.registry, &key).await;
    assert_eq!(claims["iss"], "tower-bearer");
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["scope"], "read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        7200
    );
    assert!(claims["sid"].as_str().is_some_and(|sid| !sid.is_empty()));
    assert!(claims["jti"].as_str().is_some_and(|jti| !jti.is_empty()));

    let me = server.call("GET", "/me", token).await;
    assert_eq!(me.status, StatusCode::OK);
    let me = json_of(&me);
    assert_eq!(me["kind"], "session");
    assert_eq!(me["id"], id.get());
    assert_eq!(me["tenant"], "acme");
    assert!(me["session_id"].is_string());
    // Scopes are the key's: read, not write.
    assert_eq!(
        server.call("GET", "/read", token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.call("GET", "/write", token).await.status,
        StatusCode::FORBIDDEN
    );
    // A session cannot open sessions.
    let nested = server.login(json!({"api_key": token})).await;
    assert_eq!(nested.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_same_token_comes_back_while_more_than_a_tenth_of_its_life_remains() {
    let manual = ManualClock::new(time::OffsetDateTime::now_utc());
    let clock = manual.clock();
    let server = Server::start_with(|builder| builder.clock(clock), ErrorStyle::Laravel).await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;

    let (first, expires_in) = server.access_token(&key, Some("tab-1")).await;
    assert_eq!(expires_in, 7200);
    manual.advance(Duration::from_secs(100));
    let (again, expires_in) = server.access_token(&key, Some("tab-1")).await;
    assert_eq!(again, first, "byte-identical while valid");
    assert_eq!(expires_in, 7100, "expires_in counts down");

    let (other, _) = server.access_token(&key, Some("tab-2")).await;
    assert_ne!(other, first, "a new session id, a new token");
    let (default, _) = server.access_token(&key, None).await;
    let (default_again, _) = server.access_token(&key, None).await;
    assert_eq!(
        default, default_again,
        "no session id: the key's default session"
    );
    assert_ne!(default, first);

    // 7200 - 6450 = 750 s left, more than 720: the same token.
    manual.advance(Duration::from_secs(6350));
    let (late, expires_in) = server.access_token(&key, Some("tab-1")).await;
    assert_eq!((late.as_str(), expires_in), (first.as_str(), 750));
    // 720 s left: no more than a tenth, a fresh token.
    manual.advance(Duration::from_secs(30));
    let (fresh, expires_in) = server.access_token(&key, Some("tab-1")).await;
    assert_ne!(fresh, first);
    assert_eq!(expires_in, 7200);
    // Both work until they expire.
    assert_eq!(
        server.call("GET", "/me", &first).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.call("GET", "/me", &fresh).await.status,
        StatusCode::OK
    );
    manual.advance(Duration::from_secs(720));
    assert_eq!(
        server.call("GET", "/me", &first).await.status,
        StatusCode::UNAUTHORIZED,
        "expired exactly at exp"
    );
    assert_eq!(
        server.call("GET", "/me", &fresh).await.status,
        StatusCode::OK
    );
}

/// Fifty logins at once, over a store whose listings are slow (so that every login has
/// read "no session yet" before the first one stores its own, unless they are
/// serialised), all receive one and the same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_logins_receive_one_token() {
    let store = support::InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).sessions(config()).build();
    let layer = BearerAuthLayer::new(registry.clone());
    let client = HttpClient::new(serve(app(&registry, layer, ErrorStyle::Laravel)).await);
    let key = issue(&registry, &["read"], Expiry::Default).await;
    registry.verify(&key).await.unwrap();
    store.set_list_delay(Duration::from_millis(50));
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let logins: Vec<_> = (0..50)
        .map(|_| {
            let (client, key, barrier) = (client.clone(), key.clone(), barrier.clone());
            tokio::spawn(async move {
                let request = Request::post("/auth/login")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        json!({"api_key": key, "session_id": "burst"}).to_string(),
                    )))
                    .unwrap();
                barrier.wait().await;
                let answer = client.request(request).await;
                assert_eq!(answer.status, StatusCode::OK);
                json_of(&answer)["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for login in logins {
        tokens.push(login.await.unwrap());
    }
    tokens.dedup();
    assert_eq!(tokens.len(), 1, "one and the same token");
    store.set_list_delay(Duration::ZERO);
    let id = registry.verify(&key).await.unwrap().id();
    assert_eq!(
        registry.sessions("acme", id).await.unwrap().len(),
        1,
        "one session stored"
    );
}

#[tokio::test]
async fn a_session_never_outlives_its_key_and_expires_with_a_short_lifetime() {
    let manual = ManualClock::new(time::OffsetDateTime::now_utc());
    let clock = manual.clock();
    let server = Server::start_with(
        |builder| {
            builder
                .clock(clock)
                .sessions(config().lifetime(Duration::from_secs(60)).unwrap())
        },
        ErrorStyle::Laravel,
    )
    .await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let (token, expires_in) = server.access_token(&key, None).await;
    assert_eq!(expires_in, 60);
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );
    manual.advance(Duration::from_secs(60));
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let (renewed, _) = server.access_token(&key, None).await;
    assert_ne!(renewed, token);

    let short_key = issue(
        &server.registry,
        &["read"],
        Expiry::In(Duration::from_secs(20)),
    )
    .await;
    let (_, expires_in) = server.access_token(&short_key, None).await;
    assert_eq!(expires_in, 20, "capped at the key's expiry");
}

/// Every way a key can be refused answers the bytes of every other 401 of the app (the
/// configured preset: DRF here); request errors name their field; nothing is stored.
#[tokio::test]
async fn refused_keys_answer_the_apps_401_and_bad_requests_name_the_field() {
    let manual = ManualClock::new(time::OffsetDateTime::now_utc());
    let clock = manual.clock();
    let server = Server::start_with(|builder| builder.clock(clock), ErrorStyle::Drf).await;
    let expired = issue(
        &server.registry,
        &["read"],
        Expiry::In(Duration::from_secs(5)),
    )
    .await;
    manual.advance(Duration::from_secs(10));
    let revoked = issue(&server.registry, &["read"], Expiry::Default).await;
    let id = key_id(&server.registry, &revoked).await;
    server.registry.revoke("acme", id).await.unwrap();

    let invalid = server.call("GET", "/me", "sk_live_nope").await;
    let missing = server.client.send("GET", "/me", &[]).await;
    assert_eq!(invalid.status, StatusCode::UNAUTHORIZED);
    for key in [
        "sk_live_nope".to_owned(),
        "sk_live_0000000000000000000000000000000000000".to_owned(),
        expired,
        revoked,
        "not a token at all".to_owned(),
        "a.b.c".to_owned(),
    ] {
        let answer = server.login(json!({ "api_key": key })).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key}");
        assert_eq!(answer.body, invalid.body, "{key}");
        assert_eq!(
            answer.header("www-authenticate"),
            invalid.header("www-authenticate")
        );
    }
    for body in [json!({}), json!({"api_key": ""}), json!({"api_key": null})] {
        let answer = server.login(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(answer.body, missing.body);
        assert_eq!(
            answer.header("www-authenticate"),
            missing.header("www-authenticate")
        );
    }

    let not_json = server.post_raw("{\"api_key\":".to_owned()).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(json_of(&not_json)["body"].is_array(), "{}", not_json.text());
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    for (body, field) in [
        (json!({"api_key": 7}), "api_key"),
        (json!({"api_key": key, "session_id": ""}), "session_id"),
        (
            json!({"api_key": key, "session_id": "has space"}),
            "session_id",
        ),
        (
            json!({"api_key": key, "session_id": "x".repeat(129)}),
            "session_id",
        ),
        (json!({"api_key": key, "session_id": 5}), "session_id"),
        (json!({"api_key": key, "password": "x"}), "password"),
    ] {
        let answer = server.login(body.clone()).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            json_of(&answer)[field].is_array(),
            "{body}: {}",
            answer.text()
        );
    }
    // The longest session id, every allowed character.
    let longest = format!("{}{}", "aZ09._:-", "x".repeat(120));
    server.access_token(&key, Some(&longest)).await;
    let text_plain = server
        .client
        .request(
            Request::post("/auth/login")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(json!({"api_key": key}).to_string())))
                .unwrap(),
        )
        .await;
    assert_eq!(text_plain.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        server.session_rows().await,
        1,
        "only the one valid login stored"
    );
}

#[tokio::test]
async fn revoking_a_session_or_its_key_ends_it_at_once() {
    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let id = key_id(&server.registry, &key).await;
    let (token, _) = server.access_token(&key, Some("phone")).await;
    let (other, _) = server.access_token(&key, Some("laptop")).await;
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );

    let listed = server
        .call("GET", &format!("/tokens/{id}/sessions"), &server.admin)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.text().contains(&token) && !listed.text().contains("eyJ"));
    let sessions = json_of(&listed)["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions[0]["session_id"], "phone");
    assert_eq!(sessions[0]["api_key_id"], id.get());
    for field in ["id", "issued_at", "expires_at", "kid"] {
        assert!(!sessions[0][field].is_null(), "{field}");
    }
    // Sessions are not API tokens.
    let tokens = json_of(&server.call("GET", "/tokens", &server.admin).await);
    assert!(
        tokens["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != sessions[0]["id"])
    );
    let session_id = sessions[0]["id"].as_u64().unwrap();
    for method in ["GET", "DELETE"] {
        let as_token = server
            .call(method, &format!("/tokens/{session_id}"), &server.admin)
            .await;
        assert_eq!(as_token.status, StatusCode::NOT_FOUND, "{method}");
    }
    let cascade = server
        .call(
            "DELETE",
            &format!("/tokens/{session_id}?cascade=true"),
            &server.admin,
        )
        .await;
    assert_eq!(cascade.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );

    // With a JSON `null` body, which the document allows as "no body".
    let (revoked, _) = server
        .client
        .call_json(
            "DELETE",
            &format!("/sessions/{session_id}"),
            &server.admin,
            "null",
        )
        .await;
    assert_eq!(revoked, StatusCode::NO_CONTENT);
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.call("GET", "/me", &other).await.status,
        StatusCode::OK
    );
    let again = server
        .call("DELETE", &format!("/sessions/{session_id}"), &server.admin)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // The revoked session's id logs in to a new session and token.
    let (renewed, _) = server.access_token(&key, Some("phone")).await;
    assert_ne!(renewed, token);
    assert_eq!(
        server.call("GET", "/me", &renewed).await.status,
        StatusCode::OK
    );

    // Revoking the key ends every session of it.
    let deleted = server
        .call("DELETE", &format!("/tokens/{id}"), &server.admin)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    for token in [&renewed, &other] {
        assert_eq!(
            server.call("GET", "/me", token).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(server.session_rows().await, 0);
}

#[tokio::test]
async fn rotating_or_narrowing_a_key_ends_its_sessions() {
    let server = Server::start().await;
    let key = issue(&server.registry, &["read", "write"], Expiry::Default).await;
    let id = key_id(&server.registry, &key).await;
    let (token, _) = server.access_token(&key, None).await;
    let patched = server
        .client
        .request(
            Request::patch(format!("/tokens/{id}"))
                .header("authorization", format!("Bearer {}", server.admin))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(r#"{"scopes":["read"]}"#)))
                .unwrap(),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::UNAUTHORIZED,
        "a session never keeps scopes its key lost"
    );

    let (token, _) = server.access_token(&key, None).await;
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );
    let rotated = server
        .call("POST", &format!("/tokens/{id}/rotate"), &server.admin)
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED);
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let new_key = json_of(&rotated)["token"].as_str().unwrap().to_owned();
    let new_id = key_id(&server.registry, &new_key).await;
    let sessions = server
        .call("GET", &format!("/tokens/{new_id}/sessions"), &server.admin)
        .await;
    assert_eq!(json_of(&sessions)["data"], json!([]), "none handed over");
    let (fresh, _) = server.access_token(&new_key, None).await;
    assert_eq!(
        server.call("GET", "/me", &fresh).await.status,
        StatusCode::OK
    );
}

/// Changing any byte of the payload or the signature is a 401, including the last
/// character of a segment (whose spare bits decode to the same bytes).
#[tokio::test]
async fn every_tampered_byte_is_refused() {
    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let (token, _) = server.access_token(&key, None).await;
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );
    let payload_start = token.find('.').unwrap() + 1;
    for at in payload_start..token.len() {
        let original = token.as_bytes()[at];
        if original == b'.' {
            continue;
        }
        let replacement = if original == b'A' { b'B' } else { b'A' };
        let mut bytes = token.clone().into_bytes();
        bytes[at] = replacement;
        let tampered = String::from_utf8(bytes).unwrap();
        let answer = server.call("GET", "/me", &tampered).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "byte {at}");
    }
    assert_eq!(
        server.call("GET", "/me", &token).await.status,
        StatusCode::OK
    );
}

/// Tokens built with the server's own secret but not by it: `none`, HS384, an RS256
/// header, unknown and missing `kid`, another issuer, a session that was never opened.
#[tokio::test]
async fn algorithm_confusion_and_foreign_tokens_are_refused() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let (token, _) = server.access_token(&key, None).await;
    let claims: SessionClaims = serde_json::from_value(segment(&token, 1)).unwrap();
    let secret = EncodingKey::from_secret(&SECRET);
    let signed = |alg: Algorithm, kid: Option<&str>, claims: &SessionClaims| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &secret).unwrap()
    };
    let payload = token.split('.').nth(1).unwrap();
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{KID}"}}"#))
    );
    let rs256_header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{KID}"}}"#));
    let signature = token.split('.').nth(2).unwrap();
    let rs256 = format!("{rs256_header}.{payload}.{signature}");
    let mut other_issuer = claims.clone();
    other_issuer.iss = "someone-else".to_owned();
    let mut never_opened = claims.clone();
    never_opened.jti = "forged".to_owned();
    let mut wider = claims.clone();
    wider.scope = "read write admin".to_owned();
    for forged in [
        none,
        rs256,
        signed(Algorithm::HS384, Some(KID), &claims),
        signed(Algorithm::HS512, Some(KID), &claims),
        signed(Algorithm::HS256, Some("other-kid"), &claims),
        signed(Algorithm::HS256, None, &claims),
        signed(Algorithm::HS256, Some(KID), &other_issuer),
        signed(Algorithm::HS256, Some(KID), &never_opened),
        signed(Algorithm::HS256, Some(KID), &wider),
    ] {
        let answer = server.call("GET", "/me", &forged).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{forged}");
    }
    assert_eq!(
        signed(Algorithm::HS256, Some(KID), &claims),
        token,
        "the real token, re-derived"
    );
}

/// Login attempts are logged by key id and cause, never with the key or the token.
#[tokio::test]
async fn logins_never_log_the_key_or_the_token() {
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Default).await;
    let (token, _) = server.access_token(&key, Some("logged")).await;
    server.call("GET", "/me", &token).await;
    let wrong = format!("{}x", &key[..key.len() - 1]);
    server.login(json!({"api_key": wrong})).await;
    let id = key_id(&server.registry, &key).await;
    server.registry.revoke("acme", id).await.unwrap();
    server.login(json!({"api_key": key})).await;
    server.call("GET", "/me", &token).await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("session opened"), "{logs}");
    for secret in [&key, &wrong, &token] {
        assert!(!logs.contains(secret.as_str()), "a secret in the logs");
    }
    let _ = std::io::stderr().flush();
}

fn three_segments() -> impl Strategy<Value = String> {
    let segment = "[A-Za-z0-9_-]{0,60}";
    (segment, segment, segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No three-segment string panics the registry or authenticates, whether it is
    /// random, or a real token's header and payload with a random signature.
    #[test]
    fn arbitrary_three_segment_strings_never_authenticate(
        random in three_segments(),
        signature in "[A-Za-z0-9_-]{0,86}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let registry = Registry::builder(tower_bearer::MemoryStore::new())
                .sessions(config())
                .build();
            let key = issue(&registry, &["read"], Expiry::Default).await;
            let real = registry.login(&key, None).await.unwrap();
            let real = real.access_token.expose_secret();
            let head = &real[..real.rfind('.').unwrap()];
            let resigned = format!("{head}.{signature}");
            prop_assert!(registry.verify(&random).await.is_err());
            if resigned != real {
                prop_assert!(registry.verify(&resigned).await.is_err());
            }
            Ok(())
        })?;
    }
}

/// Two nodes on one PostgreSQL database: one opens the session, the other accepts its
/// token, and sees its revocation (and the key's) within moments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_node_is_accepted_and_revoked_on_another() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let (a, b) = (
        support::postgres::node(&url, "node-a", |builder| builder.sessions(config())).await,
        support::postgres::node(&url, "node-b", |builder| builder.sessions(config())).await,
    );
    let key = issue(&a, &["read"], Expiry::Default).await;
    let id = key_id(&a, &key).await;

    let first = a.login(&key, Some("s1")).await.unwrap();
    let token = first.access_token.expose_secret().to_owned();
    let principal = b.verify(&token).await.expect("opened on A, valid on B");
    assert_eq!(principal.kind(), TokenKind::Session);
    assert_eq!(principal.id(), id);
    let again = b.login(&key, Some("s1")).await.unwrap();
    assert_eq!(
        again.access_token.expose_secret(),
        token,
        "B hands out A's token"
    );

    a.revoke_session("acme", first.session.id).await.unwrap();
    assert!(
        rejected_within(&b, &token, Duration::from_secs(2)).await,
        "session revocation reaches B"
    );

    let second = b.login(&key, Some("s2")).await.unwrap();
    let token = second.access_token.expose_secret().to_owned();
    a.verify(&token).await.expect("opened on B, valid on A");
    b.verify(&token).await.unwrap();
    a.revoke("acme", id).await.unwrap();
    assert!(
        rejected_within(&b, &token, Duration::from_secs(2)).await,
        "key revocation reaches B's session"
    );
}

async fn rejected_within(registry: &Registry, token: &str, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if registry.verify(token).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

/// The login routes' OpenAPI document: OpenAPI 3.1, login without a security
/// requirement and logout with the access token, every status it answers, every reference resolved; and the router
/// answers what the document names.
#[tokio::test]
async fn the_openapi_document_describes_the_login_route() {
    let document = serde_json::to_value(exchange::openapi()).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        ["/auth/login", "/auth/logout"]
    );
    let logout = &paths["/auth/logout"]["post"];
    assert_eq!(logout["security"], json!([{"access_token": []}]));
    assert_eq!(
        document["components"]["securitySchemes"]["access_token"]["scheme"],
        "bearer"
    );
    for status in ["204", "400", "401", "503"] {
        assert!(logout["responses"][status].is_object(), "{status}");
    }
    let login = &paths["/auth/login"];
    assert_eq!(login.as_object().unwrap().len(), 1, "POST only");
    let operation = &login["post"];
    assert_eq!(operation["security"], json!([{}]), "no token needed");
    for status in ["200", "400", "401", "413", "415", "422", "503"] {
        assert!(operation["responses"][status].is_object(), "{status}");
    }
    support::assert_references_resolve(&document);
    let server = Server::start().await;
    let answer = server.login(json!({"api_key": "sk_live_nope"})).await;
    assert!(operation["responses"][answer.status.as_str()].is_object());

    // The examples: the request's, with a real key in place of its placeholder, is
    // accepted; the answer's is shaped like the real one.
    let schemas = &document["components"]["schemas"];
    let mut request = schemas["LoginRequest"]["examples"][0].clone();
    request["api_key"] = json!(issue(&server.registry, &["read"], Expiry::Default).await);
    let answer = server.login(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let real: Value = serde_json::from_slice(&answer.body).unwrap();
    support::assert_shaped_like(&schemas["AccessToken"]["examples"][0], &real);
}

/// Issue 26 #10: re-login hands out the same token, so signing out must end the session:
/// `POST /auth/logout` with the access token ends that session (204), the token is 401 at
/// once, the key and its other sessions go on, and the next login is a new token.
#[tokio::test]
async fn logout_ends_the_session_of_the_access_token() {
    let server = Server::start().await;
    let key = issue(&server.registry, &["read"], Expiry::Never).await;
    let (access, _) = server.access_token(&key, Some("browser")).await;
    let (other, _) = server.access_token(&key, Some("phone")).await;
    assert_eq!(
        server.call("GET", "/me", &access).await.status,
        StatusCode::OK
    );

    let answer = server.call("POST", "/auth/logout", &access).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert_eq!(
        server.call("GET", "/me", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.call("GET", "/me", &other).await.status,
        StatusCode::OK
    );
    assert_eq!(server.call("GET", "/me", &key).await.status, StatusCode::OK);
    let (again, _) = server.access_token(&key, Some("browser")).await;
    assert_ne!(again, access, "a new session after the logout");

    // Twice: the token is no longer valid, the uniform 401.
    let answer = server.call("POST", "/auth/logout", &access).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // Without a token, the layer's 401; with an API key, there is no session to end.
    let answer = server.client.send("POST", "/auth/logout", &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = server.call("POST", "/auth/logout", &key).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(answer.text().contains("access token"), "{}", answer.text());
    assert_eq!(server.call("GET", "/me", &key).await.status, StatusCode::OK);
}

/// Issue 26 #6: sessions do not accumulate. A key keeps at most `max_sessions_per_key`
/// live sessions (the oldest ends when one more opens), expired sessions are pruned, and
/// the sessions list is paginated like `GET /tokens`.
#[tokio::test]
async fn a_keys_sessions_are_capped_pruned_and_paginated() {
    let server = Server::start_with(
        |builder| builder.sessions(config().max_sessions_per_key(3)),
        ErrorStyle::Laravel,
    )
    .await;
    let key = issue(&server.registry, &["read"], Expiry::Never).await;
    let key_id = server.registry.verify(&key).await.unwrap().id();
    let mut tokens = Vec::new();
    for n in 0..5 {
        tokens.push(
            server
                .access_token(&key, Some(&format!("device-{n}")))
                .await
                .0,
        );
    }
    for (n, token) in tokens.iter().enumerate() {
        let expected = if n < 2 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(
            server.call("GET", "/me", token).await.status,
            expected,
            "device-{n}"
        );
    }
    assert_eq!(
        server.session_rows().await,
        3,
        "the oldest were ended, not kept"
    );

    // Paginated like GET /tokens.
    let path = format!("/tokens/{key_id}/sessions");
    let first = json_of(
        &server
            .call("GET", &format!("{path}?limit=2"), &server.admin)
            .await,
    );
    let ids: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["device-2", "device-3"], "{first}");
    assert_eq!(first["has_more"], true);
    let last = first["data"][1]["id"].as_u64().unwrap();
    let rest = json_of(
        &server
            .call(
                "GET",
                &format!("{path}?limit=2&starting_after={last}"),
                &server.admin,
            )
            .await,
    );
    assert_eq!(rest["data"][0]["session_id"], "device-4", "{rest}");
    assert_eq!(rest["has_more"], false);
    let bad = server
        .call("GET", &format!("{path}?limit=0"), &server.admin)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Issue 26 #6: expired sessions are pruned (the registry does so hourly); live ones and
/// expired API keys are kept.
#[tokio::test]
async fn expired_sessions_are_pruned() {
    let clock = tower_bearer::clock::ManualClock::new(time::OffsetDateTime::now_utc());
    let server = Server::start_with(
        |builder| {
            builder
                .clock(clock.clone())
                .sessions(config().lifetime(Duration::from_secs(60)).unwrap())
        },
        ErrorStyle::Laravel,
    )
    .await;
    let key = issue(&server.registry, &["read"], Expiry::Never).await;
    server.access_token(&key, Some("old")).await;
    clock.advance(Duration::from_secs(120));
    server.access_token(&key, Some("new")).await;
    assert_eq!(server.session_rows().await, 2);
    assert_eq!(server.registry.prune_expired_sessions().await.unwrap(), 1);
    assert_eq!(server.session_rows().await, 1);
    assert_eq!(server.call("GET", "/me", &key).await.status, StatusCode::OK);
}

/// Issue 26 #9: what a session leaves behind. A two-hour session of an admin key mints a
/// never-expiring admin key; the lineage records the session, and ending the session
/// with `?cascade=true` revokes that key too (without, the key outlives the session).
#[tokio::test]
async fn a_session_cascade_revokes_what_the_session_issued() {
    let server = Server::start().await;
    let (access, _) = server.access_token(&server.admin, Some("laptop")).await;
    let session_id: u64 = server
        .registry
        .verify(&access)
        .await
        .unwrap()
        .session_id()
        .unwrap()
        .parse()
        .unwrap();
    let create = |name: &'static str| {
        let access = access.clone();
        let client = server.client.clone();
        async move {
            let request = Request::post("/tokens")
                .header("authorization", format!("Bearer {access}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(
                    json!({"name": name, "scopes": ["admin"], "never_expires": true}).to_string(),
                )))
                .unwrap();
            json_of(&client.request(request).await)
        }
    };
    let minted = create("left behind").await;
    assert_eq!(minted["created_by_session"], session_id, "{minted}");
    let minted_token = minted["token"].as_str().unwrap().to_owned();
    let listed = json_of(
        &server
            .call("GET", &format!("/tokens/{}", minted["id"]), &server.admin)
            .await,
    );
    assert_eq!(listed["created_by_session"], session_id);
    // A token the key minted itself (no session) is not the session's.
    let own = json_of(
        &server
            .client
            .request(
                Request::post("/tokens")
                    .header("authorization", format!("Bearer {}", server.admin))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        r#"{"name":"own","scopes":["read"]}"#,
                    )))
                    .unwrap(),
            )
            .await,
    );
    assert!(own["created_by_session"].is_null());

    let answer = server
        .call(
            "DELETE",
            &format!("/sessions/{session_id}?cascade=true"),
            &server.admin,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let revoked = json_of(&answer)["revoked"].clone();
    assert_eq!(revoked, json!([session_id, minted["id"]]));
    for gone in [&access, &minted_token] {
        assert_eq!(
            server.call("GET", "/me", gone).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let own_token = own["token"].as_str().unwrap();
    assert_eq!(
        server.call("GET", "/me", own_token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.call("GET", "/me", &server.admin).await.status,
        StatusCode::OK
    );
}
