//! The `collab` example over real HTTP and real WebSockets: its account bootstrap, the
//! envelope errors of its REST routes, room broadcast, a user revoked mid-connection;
//! and its page in a real headless browser (Debian's chromium), with a valid token and
//! with a revoked one.
#![cfg(all(feature = "ws", feature = "exchange", feature = "sqlite"))]

mod support;

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
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

    async fn call(
        &self,
        method: &str,
        path: &str,
        credentials: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {credentials}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let answer = self.client.request(request).await;
        (
            answer.status,
            serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        )
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

/// The headless browser, or `None` with a visible message (a failure under `CI=true`,
/// where `.ci/run` installs Debian's `chromium`).
fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs Debian's chromium)"
        );
        eprintln!("SKIPPED: no chromium here (apt-get install chromium)");
    }
    found
}

/// Loads the page in headless chromium with the token in its fragment and reads the
/// page's status through the DevTools protocol until its socket has answered (the
/// status is no longer "connecting"), for at most 20 s.
async fn browser_status(chromium: &str, addr: std::net::SocketAddr, token: &str) -> String {
    use tokio::io::AsyncBufReadExt as _;
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://{addr}/#token={token}"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(browser.stderr.take().unwrap()).lines();
    let devtools = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some((_, url)) = line.split_once("DevTools listening on ") {
                return url.to_owned();
            }
        }
        panic!("chromium exited before its DevTools listened");
    })
    .await
    .expect("chromium's DevTools within 20 s");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let port: u16 = devtools
        .trim_start_matches("ws://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let client = HttpClient::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut status = String::new();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let targets = client.send("GET", "/json/list", &[]).await;
        let targets: Value = serde_json::from_slice(&targets.body).unwrap_or(Value::Null);
        let Some(page) = targets
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
        else {
            continue;
        };
        let Some(url) = page["webSocketDebuggerUrl"].as_str() else {
            continue;
        };
        let Ok((mut devtools, _)) = tokio_tungstenite::connect_async(url).await else {
            continue;
        };
        let evaluate = json!({
            "id": 1,
            "method": "Runtime.evaluate",
            "params": {
                "expression": "document.getElementById('status') && document.getElementById('status').textContent",
                "returnByValue": true,
            },
        });
        devtools
            .send(Message::text(evaluate.to_string()))
            .await
            .unwrap();
        while let Some(Ok(message)) = devtools.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == 1 {
                status = answer["result"]["result"]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                break;
            }
        }
        if !status.is_empty() && status != "connecting" && status != "disconnected" {
            break;
        }
    }
    let _ = browser.kill().await;
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
