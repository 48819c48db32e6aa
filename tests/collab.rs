//! The `collab` example over real HTTP and real WebSockets: its account bootstrap, the
//! envelope errors of its REST routes, room broadcast, a user revoked mid-connection;
//! and its page in a real headless browser (Debian's chromium), with a valid token and
//! with a revoked one.
#![cfg(all(feature = "ws", feature = "exchange", feature = "sqlite"))]

mod support;

use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use serde_json::{Value, json};
use support::browser::{Browser, chromium};
use support::example::ExampleProcess;
use support::http::HttpClient;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const FEATURES: &str = "sqlite,exchange,ws";

struct Collab {
    process: ExampleProcess,
    client: HttpClient,
    account: String,
    credentials: String,
    _dir: tempfile::TempDir,
}

impl Collab {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("collab.db");
        let args = ["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
        let mut process = ExampleProcess::start("collab", FEATURES, &args, 1).await;
        let account = process.stdout_line().await;
        let account = account.strip_prefix("account id: ").unwrap().to_owned();
        let key = process.stdout_line().await;
        let key = key.strip_prefix("api key: ").unwrap().to_owned();
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{account}:{key}"));
        let client = HttpClient::new(process.addrs[0]);
        Self {
            process,
            client,
            account,
            credentials,
            _dir: dir,
        }
    }

    /// Stops the process (Ctrl-C) and starts another on the same database.
    async fn restart(self) -> Self {
        self.process.interrupt().await;
        let db = self._dir.path().join("collab.db");
        let args = ["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
        let process = ExampleProcess::start("collab", FEATURES, &args, 1).await;
        Self {
            client: HttpClient::new(process.addrs[0]),
            process,
            ..self
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        credentials: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        self.client.call_json(method, path, credentials, body).await
    }

    async fn user(&self, name: &str, room: &str) -> (String, String) {
        let (status, created) = self
            .call(
                "POST",
                &format!("/v1/accounts/{}/users", self.account),
                &self.credentials,
                &json!({"name": name, "roomId": room}).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["success"], true);
        assert_eq!(created["data"]["user"]["status"], "offline");
        (
            created["data"]["user"]["id"].as_str().unwrap().to_owned(),
            created["data"]["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn socket(&self, token: &str) -> Socket {
        let mut request = format!("ws://{}/v1/socket", self.process.addrs[0])
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("bearer, {token}").parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap().0
    }
}

async fn next(socket: &mut Socket) -> Result<Value, u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer within 5 s")
        {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(1005, |frame| u16::from(frame.code)));
            }
            Some(Ok(_)) => continue,
            _ => return Err(1006),
        }
    }
}

#[tokio::test]
async fn rooms_users_sockets_and_revocation() {
    let collab = Collab::start().await;
    let (status, rooms) = collab
        .call(
            "GET",
            &format!("/v1/accounts/{}/rooms", collab.account),
            &collab.credentials,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rooms["data"]["rooms"][0]["id"], "lobby");

    // Envelope errors: no credentials, another account, a bad body.
    let (status, body) = collab.call("GET", "/v1/accounts/x/rooms", "", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (&body["type"], &body["success"]),
        (&json!("response"), &json!(false))
    );
    let (status, body) = collab
        .call(
            "GET",
            "/v1/accounts/someone-else/rooms",
            &collab.credentials,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    let (status, body) = collab
        .call(
            "POST",
            &format!("/v1/accounts/{}/users", collab.account),
            &collab.credentials,
            r#"{"name":"Eve"}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["success"], false);

    let (alice_id, alice) = collab.user("Alice", "lobby").await;
    let (_, bob) = collab.user("Bob", "lobby").await;
    let (_, carol) = collab.user("Carol", "general").await;
    // A user's token is not an account key.
    let (status, _) = collab
        .call(
            "GET",
            &format!("/v1/accounts/{}/rooms", collab.account),
            &alice,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut alice_socket = collab.socket(&alice).await;
    let hello = next(&mut alice_socket).await.unwrap();
    assert_eq!(hello["event"], "authenticated");
    assert_eq!(
        hello["user"],
        json!({"id": alice_id, "name": "Alice", "roomId": "lobby"})
    );
    let mut bob_socket = collab.socket(&bob).await;
    assert_eq!(
        next(&mut bob_socket).await.unwrap()["event"],
        "authenticated"
    );
    let mut carol_socket = collab.socket(&carol).await;
    assert_eq!(
        next(&mut carol_socket).await.unwrap()["event"],
        "authenticated"
    );

    alice_socket
        .send(Message::text(r#"{"type":"message","text":"hi lobby"}"#))
        .await
        .unwrap();
    assert_eq!(
        next(&mut bob_socket).await.unwrap(),
        json!({"event": "message", "from": alice_id, "text": "hi lobby"})
    );

    // Revoking Alice closes her socket with authFailed and 4001.
    let (status, revoked) = collab
        .call(
            "DELETE",
            &format!("/v1/accounts/{}/users/{alice_id}", collab.account),
            &collab.credentials,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["data"]["revoked"], 1);
    assert_eq!(
        next(&mut alice_socket).await.unwrap(),
        json!({"event": "authFailed"})
    );
    assert_eq!(next(&mut alice_socket).await.unwrap_err(), 4001);
    // Carol (another room) heard nothing; a tampered token fails alike.
    let mut forged = collab.socket(&format!("{bob}x")).await;
    assert_eq!(
        next(&mut forged).await.unwrap(),
        json!({"event": "authFailed"})
    );
    carol_socket
        .send(Message::text(r#"{"type":"message","text":"anyone?"}"#))
        .await
        .unwrap();
    let page = collab.client.send("GET", "/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text()
            .contains(r#"new WebSocket(url, ["bearer", token])"#)
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bob_socket.next())
            .await
            .is_err(),
        "Bob is in another room than Carol"
    );
}

/// Loads the page in headless chromium with the token in its fragment and reads the
/// page's status until its socket has answered (the status is no longer "connecting"),
/// for at most 20 s.
async fn browser_status(chromium: &str, addr: std::net::SocketAddr, token: &str) -> String {
    let mut browser = Browser::start(chromium, &format!("http://{addr}/#token={token}")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut status = String::new();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = browser
            .eval("document.getElementById('status') && document.getElementById('status').textContent")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !status.is_empty() && status != "connecting" && status != "disconnected" {
            break;
        }
    }
    browser.close().await;
    status
}

/// The page in a real browser: `new WebSocket(url, ["bearer", token])` with a valid
/// token reads "authenticated"; with a revoked one, "authFailed" (not a bare 1006).
#[tokio::test]
async fn the_page_in_a_headless_browser() {
    let Some(chromium) = chromium() else { return };
    let collab = Collab::start().await;
    let addr = collab.process.addrs[0];
    let (_, valid) = collab.user("Alice", "lobby").await;
    let (revoked_id, revoked) = collab.user("Bob", "lobby").await;
    let (status, _) = collab
        .call(
            "DELETE",
            &format!("/v1/accounts/{}/users/{revoked_id}", collab.account),
            &collab.credentials,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        browser_status(chromium, addr, &valid).await,
        "authenticated"
    );
    assert_eq!(browser_status(chromium, addr, &revoked).await, "authFailed");
}

/// Issue 26 #8: a user's room is the one signed into their token (`roomId`, read with
/// `Principal::claims`), after a restart too (the example kept rooms in memory and put
/// everyone in "lobby"). #16: a Ping frame (Python `websockets` keepalives) is answered
/// and the socket goes on (it used to end the socket).
#[tokio::test]
async fn the_signed_room_survives_a_restart_and_pings_are_answered() {
    let collab = Collab::start().await;
    let (_, carol) = collab.user("Carol", "general").await;
    let (_, dave) = collab.user("Dave", "general").await;
    let collab = collab.restart().await;
    let mut socket = collab.socket(&carol).await;
    let hello = next(&mut socket).await.unwrap();
    assert_eq!(hello["user"]["roomId"], "general", "{hello}");

    socket
        .send(Message::Ping(b"keepalive".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(Message::Text(_))) => continue,
                other => panic!("the socket ended instead of answering a ping: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong within 5 s");
    assert_eq!(&pong[..], b"keepalive");
    // Still in the room: a message reaches the other member.
    let mut other = collab.socket(&dave).await;
    assert_eq!(next(&mut other).await.unwrap()["user"]["roomId"], "general");
    socket
        .send(Message::text(
            json!({"type": "message", "text": "hi"}).to_string(),
        ))
        .await
        .unwrap();
    let relayed = next(&mut other).await.unwrap();
    assert_eq!(relayed["text"], "hi", "{relayed}");
    collab.process.interrupt().await;
}

/// Issue 26 #3 through the example: two collab processes on one SQLite file (a web and
/// a worker process, a rolling restart). A user deleted on A loses the socket open on B
/// when B's cached entry goes stale (the 60 s positive TTL) and B asks the store again:
/// within the TTL + 5 s, instead of relaying messages for the token's 90 days.
#[tokio::test]
async fn a_socket_on_a_second_process_closes_after_a_revocation_on_the_first() {
    let a = Collab::start().await;
    let db = a._dir.path().join("collab.db");
    let args = ["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
    let b = ExampleProcess::start("collab", FEATURES, &args, 1).await;
    let (user, token) = a.user("Erin", "lobby").await;
    let mut request = format!("ws://{}/v1/socket", b.addrs[0])
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("bearer, {token}").parse().unwrap(),
    );
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    assert_eq!(next(&mut socket).await.unwrap()["event"], "authenticated");
    let (status, _) = a
        .call(
            "DELETE",
            &format!("/v1/accounts/{}/users/{user}", a.account),
            &a.credentials,
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let start = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(65), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(1005, |frame| u16::from(frame.code));
                }
                Some(Ok(_)) => continue,
                _ => return 1006,
            }
        }
    })
    .await
    .expect("the socket on B closes within the positive TTL + 5 s");
    assert_eq!(closed, 4001);
    eprintln!(
        "deleted on A, socket on B closed after {:?}",
        start.elapsed()
    );
    b.interrupt().await;
    a.process.interrupt().await;
}

/// Issue 26 #2 through the example: a socket that has not authenticated cannot make the
/// server read a large message; it ends as soon as the frame's header arrives.
#[tokio::test]
async fn an_oversized_first_message_ends_the_socket_unread() {
    let collab = Collab::start().await;
    let request = format!("ws://{}/v1/socket", collab.process.addrs[0])
        .into_client_request()
        .unwrap();
    let mut socket = tokio_tungstenite::connect_async(request).await.unwrap().0;
    let _ = socket
        .send(Message::text(format!(
            r#"{{"type":"auth","token":"{}"}}"#,
            "x".repeat(1 << 20)
        )))
        .await;
    let ended = next(&mut socket).await;
    assert!(
        matches!(&ended, Ok(event) if event["event"] == "authFailed")
            || matches!(ended, Err(4001 | 1009 | 1006)),
        "{ended:?}"
    );
    collab.process.interrupt().await;
}

/// Issue 26 #1 through the example: a copy of the collab database plus its session key
/// re-derives no user token (the tokens carry a secret claim no row keeps).
#[tokio::test]
async fn the_database_and_the_key_together_cannot_re_derive_a_users_token() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use sha2::Digest as _;
    use tower_bearer::TokenStore as _;
    use tower_bearer::session::{SessionClaims, SessionKeys};
    use tower_bearer::store::{ListQuery, SqliteStore};

    let collab = Collab::start().await;
    let (user, genuine) = collab.user("Frank", "general").await;
    // The attacker's copy: the database file, and the key from where the example keeps
    // it (the state directory, not beside the database).
    let key_file = support::example::shared_state_dir().join("tower-bearer/session-key");
    let hex = std::fs::read_to_string(&key_file).unwrap();
    let secret: Vec<u8> = (0..hex.trim().len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&hex.trim()[at..at + 2], 16).unwrap())
        .collect();
    let kid: String = sha2::Sha256::digest(&secret)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let keys = SessionKeys::new(&kid, &secret).unwrap();
    let copy = SqliteStore::open(collab._dir.path().join("collab.db"))
        .await
        .unwrap();
    let row = copy
        .list_by_tenant(
            &collab.account,
            ListQuery::all()
                .kind(tower_bearer::TokenKind::Session)
                .owner(&user),
        )
        .await
        .unwrap()
        .remove(0);
    let metadata = row.metadata.clone().unwrap();
    let field = |name: &str| metadata[name].as_str().unwrap().to_owned();
    let mut claims = SessionClaims::new(
        &field("iss"),
        &user,
        &field("sid"),
        &collab.account,
        "",
        row.created_at.unix_timestamp(),
        row.expires_at.unwrap().unix_timestamp(),
        &field("jti"),
    );
    claims.extra = metadata["claims"].as_object().unwrap().clone();
    let forged = keys.sign_with(&field("kid"), &claims).unwrap();
    assert_ne!(forged, genuine);
    let payload = |token: &str| -> Value {
        serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(payload(&forged)["roomId"], payload(&genuine)["roomId"]);

    let mut socket = collab.socket(&forged).await;
    assert_eq!(next(&mut socket).await.unwrap()["event"], "authFailed");
    let mut socket = collab.socket(&genuine).await;
    assert_eq!(next(&mut socket).await.unwrap()["event"], "authenticated");
    collab.process.interrupt().await;
}
