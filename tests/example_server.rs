//! `examples/server.rs` as a user runs it: a real process on a real SQLite file,
//! stopped with Ctrl-C and started again.
#![cfg(all(feature = "sqlite", feature = "admin"))]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use support::http::HttpClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The example binary next to this test's, built by `cargo test` (or built here).
fn server_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir
        .join("examples")
        .join(format!("server{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "server", "--features", "sqlite,admin"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    binary
}

struct Server {
    child: Child,
    client: HttpClient,
}

impl Server {
    async fn start(db: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args(["--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    return addr.parse::<SocketAddr>().unwrap();
                }
            }
            panic!("the server exited before listening");
        })
        .await
        .expect("the server did not start listening");
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Self {
            child,
            client: HttpClient::new(addr),
        }
    }

    /// The next line the server prints to stdout.
    async fn stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), async {
            while stdout.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                line.push(byte[0]);
            }
        })
        .await
        .expect("no line on stdout");
        String::from_utf8(line).unwrap()
    }

    /// Ctrl-C, then everything else the server printed to stdout.
    async fn interrupt(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server did not shut down")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        stdout
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let answer = self.client.request(request).await;
        let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        (answer.status, json)
    }
}

#[tokio::test]
async fn the_example_server_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tower-bearer.db");

    // First start: the bootstrap admin token is printed, once.
    let mut server = Server::start(&db, &[]).await;
    let first_line = server.stdout_line().await;
    let admin = first_line
        .strip_prefix("admin token: ")
        .expect("the bootstrap line")
        .to_owned();
    let admin = admin.as_str();
    assert!(admin.starts_with("sk_live_"));

    let health = server.client.send("GET", "/health", &[]).await;
    assert_eq!((health.status, health.text()), (StatusCode::OK, "ok"));
    let (status, me) = server.call("GET", "/me", admin, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["name"], "bootstrap admin");
    assert_eq!(me["tenant"], "default");
    assert_eq!(me["scopes"], serde_json::json!(["admin"]));
    assert_eq!(me["expires_at"], Value::Null);

    let (status, reader) = server
        .call(
            "POST",
            "/tokens",
            admin,
            r#"{"name":"reader","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let reader_token = reader["token"].as_str().unwrap().to_owned();
    let (status, doomed) = server
        .call("POST", "/tokens", admin, r#"{"name":"doomed"}"#)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let doomed_token = doomed["token"].as_str().unwrap().to_owned();

    assert_eq!(
        server.call("GET", "/items", &reader_token, "").await.0,
        StatusCode::OK
    );
    let (status, body) = server
        .call("POST", "/items", &reader_token, r#"{"name":"x"}"#)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        serde_json::json!({"message": "This action is unauthorized."})
    );
    assert_eq!(
        server
            .call("POST", "/items", admin, r#"{"name":"x"}"#)
            .await
            .0,
        StatusCode::CREATED
    );
    let doomed_id = doomed["id"].as_u64().unwrap();
    let (status, _) = server
        .call("DELETE", &format!("/tokens/{doomed_id}"), admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.call("GET", "/me", &doomed_token, "").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.interrupt().await, "", "exactly one line on stdout");

    // Second start: no token printed; issued tokens still work, the revoked one stays
    // revoked, and the usage flushed at shutdown is listed.
    let server = Server::start(&db, &["--style", "drf"]).await;
    assert_eq!(
        server.call("GET", "/items", &reader_token, "").await.0,
        StatusCode::OK
    );
    let (status, body) = server.call("GET", "/me", &doomed_token, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        serde_json::json!({"detail": "Authentication credentials were not provided."})
    );
    let (status, tokens) = server.call("GET", "/tokens", admin, "").await;
    assert_eq!(status, StatusCode::OK);
    let tokens = tokens.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    let reader_listed = tokens.iter().find(|t| t["name"] == "reader").unwrap();
    assert!(reader_listed["last_used_at"].is_string(), "{reader_listed}");
    assert_eq!(server.interrupt().await, "", "later starts print no token");
}

#[tokio::test]
async fn the_example_server_issues_sanctum_tokens_for_the_test_env() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sanctum.db");
    let mut server = Server::start(
        &db,
        &[
            "--format", "sanctum", "--env", "test", "--style", "envelope",
        ],
    )
    .await;
    let line = server.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    assert!(admin.starts_with("1|"), "{admin}");
    let (status, me) = server.call("GET", "/me", &admin, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["env"], "test");
    let (status, body) = server.call("GET", "/me", "1|wrong", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert_eq!(server.interrupt().await, "");
}
