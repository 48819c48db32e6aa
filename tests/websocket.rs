//! Authenticated WebSockets (feature `ws`) over real sockets, driven by a real WebSocket
//! client (tokio-tungstenite): every token source, the first-message timeout, the same
//! `authFailed` and 4001 for every failure, and sockets closed when their token is
//! revoked or expires during the connection.
#![cfg(all(feature = "ws", feature = "exchange"))]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message as ServerMessage, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::{any, get};
use futures_util::{SinkExt as _, StreamExt as _};
use support::http::serve;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::session::{SessionConfig, SessionKeys};
use tower_bearer::ws::SocketAuth;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry, TokenId};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn socket(
    State(auth): State<SocketAuth>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    auth.upgrade(ws, &headers, &uri, |mut socket| async move {
        let hello = format!(
            r#"{{"event":"authenticated","name":"{}"}}"#,
            socket.principal().name()
        );
        if socket.send(ServerMessage::text(hello)).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    })
    .await
}

struct Server {
    addr: SocketAddr,
    registry: Registry,
}

impl Server {
    async fn start(configure: impl FnOnce(SocketAuth) -> SocketAuth) -> Self {
        let registry = Registry::builder(MemoryStore::new())
            .sessions(SessionConfig::new(
                SessionKeys::new("ws", &[5u8; 32]).unwrap(),
            ))
            .build();
        let app: Router = Router::new()
            .route("/socket", any(socket))
            .route("/other", get(|| async { "protected" }))
            .with_state(configure(SocketAuth::new(registry.clone())));
        let service = BearerAuthLayer::new(registry.clone())
            .public(["/socket"])
            .protect(app);
        let addr = serve(Router::new().fallback_service(service)).await;
        Self { addr, registry }
    }

    async fn token(&self, expiry: Expiry) -> (TokenId, String) {
        let issued = self
            .registry
            .issue(
                IssueRequest::new("socket user", "acme")
                    .unwrap()
                    .scopes(["read"])
                    .unwrap()
                    .expires(expiry),
            )
            .await
            .unwrap();
        (issued.info.id, issued.secret.expose_secret().to_owned())
    }

    fn request(&self, query: &str) -> tungstenite::handshake::client::Request {
        format!("ws://{}/socket{query}", self.addr)
            .into_client_request()
            .unwrap()
    }

    async fn connect(
        &self,
        request: tungstenite::handshake::client::Request,
    ) -> (Client, tungstenite::handshake::client::Response) {
        tokio_tungstenite::connect_async(request).await.unwrap()
    }

    async fn with_header(&self, token: &str) -> Client {
        let mut request = self.request("");
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        self.connect(request).await.0
    }
}

/// The next text message, or the close frame's code and reason.
async fn next(client: &mut Client) -> Result<String, (u16, String)> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("an answer within 5 s");
        match message {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Close(Some(frame)))) => {
                return Err((u16::from(frame.code), frame.reason.to_string()));
            }
            Some(Ok(Message::Close(None))) | None => return Err((1005, String::new())),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err((1006, error.to_string())),
        }
    }
}

async fn assert_authenticated(client: &mut Client) {
    let hello = next(client).await.expect("the handler's greeting");
    assert_eq!(hello, r#"{"event":"authenticated","name":"socket user"}"#);
    client.send(Message::text("ping")).await.unwrap();
    assert_eq!(next(client).await.unwrap(), "ping");
}

/// `authFailed`, then close 4001 "authentication failed": for every failure alike.
async fn assert_auth_failed(client: &mut Client) {
    assert_eq!(next(client).await.unwrap(), r#"{"event":"authFailed"}"#);
    assert_eq!(
        next(client).await.unwrap_err(),
        (4001, "authentication failed".to_owned())
    );
}

#[tokio::test]
async fn the_authorization_header_authenticates() {
    let server = Server::start(|auth| auth).await;
    let (_, token) = server.token(Expiry::Default).await;
    let mut client = server.with_header(&token).await;
    assert_authenticated(&mut client).await;
}

#[tokio::test]
async fn the_subprotocol_pair_authenticates_and_only_bearer_is_echoed() {
    let server = Server::start(|auth| auth).await;
    let (_, token) = server.token(Expiry::Default).await;
    let mut request = server.request("");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let (mut client, response) = server.connect(request).await;
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap()),
        Some("bearer")
    );
    assert!(
        !format!("{:?}", response.headers()).contains(&token),
        "the token is never echoed"
    );
    assert_authenticated(&mut client).await;
}

#[tokio::test]
async fn a_first_message_authenticates_within_the_timeout() {
    let server = Server::start(|auth| auth.first_message_timeout(Duration::from_millis(300))).await;
    let (_, token) = server.token(Expiry::Default).await;
    let (mut client, _) = server.connect(server.request("")).await;
    client
        .send(Message::text(format!(
            r#"{{"type":"auth","token":"{token}"}}"#
        )))
        .await
        .unwrap();
    assert_authenticated(&mut client).await;

    // Silence past the timeout, or a first message that is not an auth message.
    let (mut silent, _) = server.connect(server.request("")).await;
    let start = Instant::now();
    assert_auth_failed(&mut silent).await;
    assert!(start.elapsed() >= Duration::from_millis(250));
    let (mut chatty, _) = server.connect(server.request("")).await;
    chatty
        .send(Message::text(r#"{"type":"hello"}"#))
        .await
        .unwrap();
    assert_auth_failed(&mut chatty).await;
}

#[tokio::test]
async fn the_query_parameter_only_when_enabled() {
    let server = Server::start(|auth| auth.first_message_timeout(Duration::from_millis(200))).await;
    let (_, token) = server.token(Expiry::Default).await;
    let (mut client, _) = server
        .connect(server.request(&format!("?access_token={token}")))
        .await;
    assert_auth_failed(&mut client).await;

    let server = Server::start(|auth| auth.query_token()).await;
    let (_, token) = server.token(Expiry::Default).await;
    let (mut client, _) = server
        .connect(server.request(&format!("?access_token={token}")))
        .await;
    assert_authenticated(&mut client).await;
}

/// Missing (after the timeout), malformed, unknown, tampered, expired and revoked tokens,
/// and a token in two places, all get the same event and code.
#[tokio::test]
async fn every_failure_is_the_same_auth_failed() {
    let server = Server::start(|auth| auth.first_message_timeout(Duration::from_millis(100))).await;
    let (_, valid) = server.token(Expiry::Default).await;
    let (revoked_id, revoked) = server.token(Expiry::Default).await;
    server.registry.revoke("acme", revoked_id).await.unwrap();
    let (_, expired) = server.token(Expiry::In(Duration::from_millis(100))).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut tampered = valid.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    for token in [
        "sk_live_unknown".to_owned(),
        "not a token".to_owned(),
        tampered,
        expired,
        revoked,
    ] {
        let mut client = server.with_header(&token).await;
        assert_auth_failed(&mut client).await;
    }
    let (mut missing, _) = server.connect(server.request("")).await;
    assert_auth_failed(&mut missing).await;
    let mut request = server.request("");
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {valid}").parse().unwrap());
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {valid}").parse().unwrap(),
    );
    let (mut twice, _) = server.connect(request).await;
    assert_auth_failed(&mut twice).await;
}

#[tokio::test]
async fn reject_at_handshake_answers_a_plain_401() {
    let server = Server::start(SocketAuth::reject_at_handshake).await;
    let mut request = server.request("");
    request
        .headers_mut()
        .insert("authorization", "Bearer sk_live_unknown".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert!(
                response
                    .headers()
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer"))
            );
            assert_eq!(
                response.body().as_deref(),
                Some(&br#"{"message":"Unauthenticated."}"#[..])
            );
        }
        other => panic!("expected a 401 at the handshake, got {other:?}"),
    }
    let (_, token) = server.token(Expiry::Default).await;
    let mut client = server.with_header(&token).await;
    assert_authenticated(&mut client).await;
}

/// A revocation during the connection closes it with `authFailed` and 4001 at once.
#[tokio::test]
async fn a_revocation_closes_a_live_socket() {
    let server = Server::start(|auth| auth).await;
    let (id, token) = server.token(Expiry::Default).await;
    let (_, other_token) = server.token(Expiry::Default).await;
    let mut client = server.with_header(&token).await;
    let mut other = server.with_header(&other_token).await;
    assert_authenticated(&mut client).await;
    assert_authenticated(&mut other).await;
    let start = Instant::now();
    server.registry.revoke("acme", id).await.unwrap();
    assert_auth_failed(&mut client).await;
    let took = start.elapsed();
    eprintln!("revoke to authFailed: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    other.send(Message::text("still here")).await.unwrap();
    assert_eq!(next(&mut other).await.unwrap(), "still here");
}

/// A token that expires during the connection closes it; so does revoking the session
/// of an access token.
#[tokio::test]
async fn expiry_and_session_revocation_close_live_sockets() {
    let server = Server::start(|auth| auth).await;
    let (_, token) = server.token(Expiry::In(Duration::from_millis(800))).await;
    let mut client = server.with_header(&token).await;
    assert_authenticated(&mut client).await;
    assert_auth_failed(&mut client).await;

    let (_, key) = server.token(Expiry::Default).await;
    let session = server.registry.login(&key, Some("socket")).await.unwrap();
    let mut client = server
        .with_header(session.access_token.expose_secret())
        .await;
    assert_authenticated(&mut client).await;
    server
        .registry
        .revoke_session("acme", session.session.id)
        .await
        .unwrap();
    assert_auth_failed(&mut client).await;
}

/// Issue 26 #2: before a socket has authenticated, its frames and messages are bounded
/// (16 KiB by default): a larger first message ends it without being read, even a valid
/// auth message; the bound is configurable.
#[tokio::test]
async fn a_first_message_over_the_bound_ends_the_socket() {
    let server = Server::start(|auth| auth).await;
    let (_, token) = server.token(Expiry::Default).await;
    let padded = |pad: usize| {
        Message::text(format!(
            r#"{{"type":"auth","token":"{token}","pad":"{}"}}"#,
            "x".repeat(pad)
        ))
    };
    let (mut client, _) = server.connect(server.request("")).await;
    // A valid auth message, 20 KiB long.
    let _ = client.send(padded(20 * 1024)).await;
    let ended = next(&mut client).await;
    assert!(
        matches!(&ended, Ok(event) if event == r#"{"event":"authFailed"}"#)
            || matches!(&ended, Err((1009 | 4001 | 1006, _))),
        "an oversized first message authenticated: {ended:?}"
    );
    // One of 10 KiB is within the bound.
    let (mut client, _) = server.connect(server.request("")).await;
    client.send(padded(10 * 1024)).await.unwrap();
    assert_authenticated(&mut client).await;

    // The bound is the application's to set.
    let server = Server::start(|auth| auth.first_message_limit(64 * 1024)).await;
    let (_, token) = server.token(Expiry::Default).await;
    let (mut client, _) = server.connect(server.request("")).await;
    client
        .send(Message::text(format!(
            r#"{{"type":"auth","token":"{token}","pad":"{}"}}"#,
            "x".repeat(20 * 1024)
        )))
        .await
        .unwrap();
    assert_authenticated(&mut client).await;
}

/// Issue 26 #2: the sockets waiting for their first message are bounded; over the bound
/// the upgrade is refused with 503, and a socket that authenticated frees its place.
#[tokio::test]
async fn sockets_waiting_for_their_first_message_are_bounded() {
    let server = Server::start(|auth| auth.max_pending(2)).await;
    let (_, token) = server.token(Expiry::Default).await;
    let (mut first, _) = server.connect(server.request("")).await;
    let (_second, _) = server.connect(server.request("")).await;
    match tokio_tungstenite::connect_async(server.request("")).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected a 503 at the handshake, got {other:?}"),
    }
    // A token at the handshake waits for nothing: never refused for the bound.
    let mut with_token = server.with_header(&token).await;
    assert_authenticated(&mut with_token).await;
    // The first authenticates: its place is free again.
    first
        .send(Message::text(format!(
            r#"{{"type":"auth","token":"{token}"}}"#
        )))
        .await
        .unwrap();
    assert_authenticated(&mut first).await;
    let (mut third, _) = server.connect(server.request("")).await;
    third
        .send(Message::text(format!(
            r#"{{"type":"auth","token":"{token}"}}"#
        )))
        .await
        .unwrap();
    assert_authenticated(&mut third).await;
}

/// Issue 26 #3: two servers on one SQLite file, no change feed between them. A socket on
/// B whose token A revokes closes when B's cached entry goes stale (the positive TTL,
/// 1 s here) and B re-checks it, within the TTL + 5 s, instead of living on.
#[tokio::test]
async fn a_socket_closes_when_a_revocation_reaches_its_node_only_through_the_store() {
    use tower_bearer::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let registry = Registry::builder(SqliteStore::open(&path).await.unwrap())
            .positive_ttl(Duration::from_secs(1))
            .build();
        let app: Router = Router::new()
            .route("/socket", any(socket))
            .with_state(SocketAuth::new(registry.clone()));
        nodes.push((registry, serve(app).await));
    }
    let (a, (_, b_addr)) = (&nodes[0].0, &nodes[1]);
    let issued = a
        .issue(IssueRequest::new("socket user", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret();
    let mut request = format!("ws://{b_addr}/socket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut client, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_authenticated(&mut client).await;
    let start = Instant::now();
    a.revoke("acme", issued.info.id).await.unwrap();
    // Within the positive TTL (1 s) and the 5 s each answer may take.
    assert_auth_failed(&mut client).await;
    eprintln!(
        "revoked on A, socket on B closed after {:?}",
        start.elapsed()
    );
}

/// Issue 26 #11: narrowing a token's scopes closes its live sockets like a revocation
/// (the socket kept its old rights); the client reconnects with the new ones.
#[tokio::test]
async fn a_scope_change_closes_the_tokens_sockets() {
    use tower_bearer::ScopeSet;
    use tower_bearer::store::TokenUpdate;
    let server = Server::start(|auth| auth).await;
    let (id, token) = server.token(Expiry::Default).await;
    let mut client = server.with_header(&token).await;
    assert_authenticated(&mut client).await;
    server
        .registry
        .update(
            "acme",
            id,
            TokenUpdate::new().scopes(ScopeSet::parse(["write"]).unwrap()),
        )
        .await
        .unwrap();
    assert_auth_failed(&mut client).await;
    let mut again = server.with_header(&token).await;
    assert_authenticated(&mut again).await;
}
