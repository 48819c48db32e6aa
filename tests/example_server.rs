//! `examples/server.rs` as a user runs it: a real process on a real SQLite file,
//! stopped with Ctrl-C and started again.
#![cfg(all(feature = "sqlite", feature = "admin"))]

mod support;

use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use support::example::ExampleProcess;
use support::http::HttpClient;

struct Server {
    process: ExampleProcess,
    client: HttpClient,
}

impl Server {
    async fn start(db: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(db, extra, &[]).await
    }

    async fn start_with_env(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let db = db.to_str().unwrap();
        let args = [&["--addr", "127.0.0.1:0", "--db", db], extra].concat();
        let process = ExampleProcess::start_with_env("server", "full", &args, env, 1).await;
        let client = HttpClient::new(process.addrs[0]);
        Self { process, client }
    }

    async fn stdout_line(&mut self) -> String {
        self.process.stdout_line().await
    }

    async fn interrupt(self) -> String {
        self.process.interrupt().await
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: &str) -> (StatusCode, Value) {
        self.client.call_json(method, path, token, body).await
    }

    /// The activity page at `path` once it holds `rows` rows (the writer appends within
    /// a second; a revoked token's page is a 404 until a row of it is written).
    async fn activity(&self, path: &str, admin: &str, rows: usize) -> Value {
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                let (status, page) = self.call("GET", path, admin, "").await;
                assert!(
                    matches!(status, StatusCode::OK | StatusCode::NOT_FOUND),
                    "{page}"
                );
                if status == StatusCode::OK && page["data"].as_array().unwrap().len() == rows {
                    return page;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{rows} rows at {path}"))
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
    let tokens = tokens["data"].as_array().unwrap();
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

#[cfg(unix)]
#[tokio::test]
async fn the_bootstrap_admin_is_minted_once_per_database_even_when_written_to_a_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("once.db");
    let token_file = dir.path().join("admin-token");
    let server = Server::start(
        &db,
        &[
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--max-lifetime-days",
            "30",
        ],
    )
    .await;
    let admin = std::fs::read_to_string(&token_file).unwrap();
    let admin = admin.trim_end();
    assert!(admin.starts_with("sk_live_"), "{admin}");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The lifetime policy applies to the bootstrap token and to the API.
    let (status, me) = server.call("GET", "/me", admin, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["expires_at"].is_string(), "{me}");
    let (status, body) = server
        .call(
            "POST",
            "/tokens",
            admin,
            r#"{"name":"x","never_expires":true}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["errors"]["never_expires"].is_array(), "{body}");

    // The last admin cannot revoke itself by accident…
    let id = me["id"].as_u64().unwrap();
    let (status, body) = server
        .call("DELETE", &format!("/tokens/{id}"), admin, "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // …only on purpose: then the database holds no token at all…
    let (status, _) = server
        .call("DELETE", &format!("/tokens/{id}?force=true"), admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.interrupt().await,
        "",
        "the token went to the file only"
    );

    // …and a restart still mints nothing.
    let second_file = dir.path().join("second-token");
    let server = Server::start(&db, &["--admin-token-file", second_file.to_str().unwrap()]).await;
    assert!(!second_file.exists());
    assert_eq!(server.interrupt().await, "");
}

#[tokio::test]
async fn two_servers_starting_together_on_a_new_database_mint_one_admin() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("race.db");
    let (a, b) = tokio::join!(Server::start(&db, &[]), Server::start(&db, &[]));
    let printed = format!("{}{}", a.interrupt().await, b.interrupt().await);
    assert_eq!(printed.matches("admin token: ").count(), 1, "{printed}");
}

/// The README's recovery path: after the last admin was revoked (on purpose), the example
/// mints a new admin token against the database and exits.
#[tokio::test]
async fn issue_admin_token_brings_a_locked_out_tenant_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let mut server = Server::start(&db, &["--style", "drf", "--accept-scheme", "Token"]).await;
    let line = server.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();

    // DRF clients' scheme works, and the management API answers in DRF's shape.
    let answer = server
        .client
        .send("GET", "/me", &[format!("Token {admin}").as_bytes()])
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (status, body) = server.call("POST", "/tokens", &admin, "{}").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        serde_json::json!({"name": ["The name field is required."]})
    );

    let (_, me) = server.call("GET", "/me", &admin, "").await;
    let id = me["id"].as_u64().unwrap();
    let (status, body) = server
        .call("DELETE", &format!("/tokens/{id}"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains("last"), "{body}");
    let (status, _) = server
        .call("DELETE", &format!("/tokens/{id}?force=true"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(server.interrupt().await, "");

    let output = tokio::process::Command::new(support::example::example_binary("server", "full"))
        .args(["--db", db.to_str().unwrap(), "--issue-admin-token"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let recovered = stdout
        .trim_end()
        .strip_prefix("admin token: ")
        .expect("one line with the token")
        .to_owned();

    let server = Server::start(&db, &[]).await;
    let (status, me) = server.call("GET", "/me", &recovered, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["tenant"], "default");
    assert_eq!(me["scopes"], serde_json::json!(["admin"]));
    assert_eq!(
        server.interrupt().await,
        "",
        "the bootstrap token is not minted again"
    );
}

/// `POST /auth/login` on the example server: the key file is created in the state
/// directory (mode 0600), never beside the database (issue 26 #1), and reused after a
/// restart, so that access tokens outlive it.
#[tokio::test]
async fn the_example_server_exchanges_keys_for_access_tokens_across_a_restart() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tower-bearer.db");
    let state = tempfile::tempdir().unwrap();
    let env = [("XDG_STATE_HOME", state.path().to_str().unwrap())];
    let mut server = Server::start_with_env(&db, &["--session-lifetime", "600"], &env).await;
    let admin = server.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let key_file = state.path().join("tower-bearer/session-key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let beside_the_database: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with("tower-bearer.db"))
        .collect();
    assert!(beside_the_database.is_empty(), "{beside_the_database:?}");
    assert!(!dir.path().join("tower-bearer.db.session-key").exists());

    let body = format!(r#"{{"api_key":"{admin}","session_id":"cli"}}"#);
    let (status, login) = server.call("POST", "/auth/login", "", &body).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["expires_in"], 600);
    let access = login["access_token"].as_str().unwrap().to_owned();
    let (status, me) = server.call("GET", "/me", &access, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["kind"], "session");
    assert_eq!(server.interrupt().await, "");

    let server = Server::start_with_env(&db, &["--session-lifetime", "600"], &env).await;
    assert_eq!(
        server.call("GET", "/me", &access, "").await.0,
        StatusCode::OK,
        "the same key after a restart"
    );
    let (status, again) = server.call("POST", "/auth/login", "", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["access_token"], login["access_token"]);
    let (status, _) = server.call("GET", "/openapi.json", "", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.interrupt().await, "");
}

/// The activity log of the example server: rows for 200, 403 and revoked calls, read
/// through the management API with pagination and filters, isolated per tenant, and still
/// there after a restart.
#[tokio::test]
async fn the_example_server_logs_activity_readable_per_token_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("activity.db");
    let mut server = Server::start(&db, &[]).await;
    let line = server.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();

    let (_, reader) = server
        .call(
            "POST",
            "/tokens",
            &admin,
            r#"{"name":"reader","scopes":["read"]}"#,
        )
        .await;
    let reader_id = reader["id"].as_u64().unwrap();
    let reader_token = reader["token"].as_str().unwrap().to_owned();
    assert_eq!(
        server
            .call("GET", "/items?cursor=abc", &reader_token, "")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        server
            .call("POST", "/items", &reader_token, r#"{"name":"x"}"#)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = server
        .call("DELETE", &format!("/tokens/{reader_id}"), &admin, "")
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.call("GET", "/items", &reader_token, "").await.0,
        StatusCode::UNAUTHORIZED
    );

    // The writer appends within a second.
    let path = format!("/tokens/{reader_id}/activity");
    let page = server.activity(&path, &admin, 3).await;
    let data = page["data"].as_array().unwrap();
    let outcomes: Vec<&str> = data
        .iter()
        .map(|row| row["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["revoked", "scope_denied", "ok"], "newest first");
    let first = &data[2];
    assert_eq!(first["route"], "/items", "never the query string");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["new_ip"], true);
    assert_eq!(first["tenant"], "default");
    assert_eq!(first["token_id"], reader_id);
    assert_eq!(page["has_more"], false);

    // Pagination and filters.
    let (_, one) = server
        .call("GET", &format!("{path}?limit=1"), &admin, "")
        .await;
    assert_eq!(one["has_more"], true);
    let last_id = one["data"][0]["id"].as_u64().unwrap();
    let (_, rest) = server
        .call(
            "GET",
            &format!("{path}?limit=5&starting_after={last_id}"),
            &admin,
            "",
        )
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 2);
    let (_, denied) = server
        .call("GET", &format!("{path}?status=4xx"), &admin, "")
        .await;
    assert_eq!(denied["data"].as_array().unwrap().len(), 2);
    let (_, revoked) = server
        .call("GET", "/activity?outcome=revoked", &admin, "")
        .await;
    assert_eq!(revoked["data"].as_array().unwrap().len(), 1);
    let (status, body) = server
        .call("GET", "/activity?since=yesterday", &admin, "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(server.interrupt().await, "");

    // Another tenant sees none of it; the rows survive the restart.
    let output = tokio::process::Command::new(support::example::example_binary("server", "full"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "--issue-admin-token",
            "globex",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let globex = String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .strip_prefix("admin token: ")
        .unwrap()
        .to_owned();
    let server = Server::start(&db, &[]).await;
    let (status, _) = server.call("GET", &path, &globex, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = server.call("GET", "/activity", &globex, "").await;
    assert!(
        theirs["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["tenant"] == "globex"),
        "{theirs}"
    );
    let (status, page) = server.call("GET", &path, &admin, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        3,
        "kept across the restart"
    );
    server.interrupt().await;
}

/// Issue 26 #4 through the example: behind `--trusted-proxies 127.0.0.1` (a proxy that
/// appends to `X-Forwarded-For`), a client's own `Forwarded` header is not the client.
#[tokio::test]
async fn the_example_server_records_the_address_from_the_proxies_header_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("proxied.db");
    let mut server = Server::start(&db, &["--trusted-proxies", "127.0.0.1"]).await;
    let line = server.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    let (_, reader) = server
        .call(
            "POST",
            "/tokens",
            &admin,
            r#"{"name":"r","scopes":["read"]}"#,
        )
        .await;
    let (id, token) = (reader["id"].as_u64().unwrap(), reader["token"].clone());
    let request = http::Request::get("/items")
        .header(
            "authorization",
            format!("Bearer {}", token.as_str().unwrap()),
        )
        .header("forwarded", "for=6.6.6.6")
        .header("x-forwarded-for", "203.0.113.9")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(server.client.request(request).await.status, StatusCode::OK);
    let path = format!("/tokens/{id}/activity");
    let page = server.activity(&path, &admin, 1).await;
    assert_eq!(page["data"][0]["client_ip"], "203.0.113.9");
    server.interrupt().await;
}

/// Issue 26 #1: a session key file that others may read is refused with one line naming
/// the file and the fix, exit status 2; so is a bad key in `TOWER_BEARER_SESSION_KEY`.
#[test]
fn the_example_server_refuses_a_session_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("session-key");
    std::fs::write(&key_file, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let db = dir.path().join("t.db");
        std::process::Command::new(support::example::example_binary("server", "full"))
            .args(["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()])
            .args(args)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env_remove("TOWER_BEARER_SESSION_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let refused = run(&["--session-key-file", key_file.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(key_file.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(
        refused.stdout.is_empty(),
        "nothing minted before the refusal"
    );

    // Issue 27 #6: a flag the server does not know is named as unknown, even last.
    let unknown = run(&["--sesion-key-file"], &[]);
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8(unknown.stderr).unwrap();
    assert!(
        stderr.contains("unknown flag --sesion-key-file"),
        "{stderr}"
    );
    let missing = run(&["--session-key-file"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8(missing.stderr).unwrap();
    assert!(
        stderr.contains("--session-key-file needs a value"),
        "{stderr}"
    );

    let bad = run(&[], &[("TOWER_BEARER_SESSION_KEY", "not hex")]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(stderr.contains("TOWER_BEARER_SESSION_KEY"), "{stderr}");
}

/// Issue 26 #1: the key may come from `TOWER_BEARER_SESSION_KEY` (hex): no file is
/// written, and a restart with the same variable re-derives the same access token.
#[tokio::test]
async fn the_example_server_takes_its_session_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("env.db");
    let state = tempfile::tempdir().unwrap();
    let key = "5a".repeat(32);
    let env = [
        ("XDG_STATE_HOME", state.path().to_str().unwrap()),
        ("TOWER_BEARER_SESSION_KEY", key.as_str()),
    ];
    let mut server = Server::start_with_env(&db, &[], &env).await;
    let admin = server.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let body = format!(r#"{{"api_key":"{admin}"}}"#);
    let (status, login) = server.call("POST", "/auth/login", "", &body).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    server.interrupt().await;
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "no key file written"
    );
    let server = Server::start_with_env(&db, &[], &env).await;
    let (_, again) = server.call("POST", "/auth/login", "", &body).await;
    assert_eq!(again["access_token"], login["access_token"]);
    server.interrupt().await;
}

/// Issue 27 #5: the key rotation runbook on a running server. A new key first in the
/// file, the old one after it, `SIGHUP`: new sessions are signed with the new key and the
/// old ones still work; the old key removed, `SIGHUP`: what it signed is refused.
#[tokio::test]
async fn the_example_server_rotates_its_session_keys_on_sighup() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rotate.db");
    let key_file = dir.path().join("session-keys");
    let (old, new) = ("a1".repeat(32), "b2".repeat(32));
    let write_keys = |keys: &[&str]| {
        std::fs::write(&key_file, keys.join("\n") + "\n").unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write_keys(&[&old]);
    let key_arg = key_file.to_str().unwrap();
    let mut server = Server::start(&db, &["--session-key-file", key_arg]).await;
    let admin = server.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let login = |session: &str| format!(r#"{{"api_key":"{admin}","session_id":"{session}"}}"#);
    let kid = |token: &str| {
        use base64::Engine as _;
        let header = token.split('.').next().unwrap();
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap();
        serde_json::from_slice::<Value>(&header).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (status, first) = server.call("POST", "/auth/login", "", &login("one")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first = first["access_token"].as_str().unwrap().to_owned();

    write_keys(&[&new, &old]);
    server.process.signal("HUP");
    let mut second = String::new();
    for attempt in 0.. {
        let (_, answer) = server
            .call("POST", "/auth/login", "", &login(&format!("two-{attempt}")))
            .await;
        second = answer["access_token"].as_str().unwrap().to_owned();
        if kid(&second) != kid(&first) || attempt == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(
        kid(&second),
        kid(&first),
        "signed with the new key after the reload"
    );
    let (status, _) = server.call("GET", "/tokens", &first, "").await;
    assert_eq!(status, StatusCode::OK, "the old key still verifies");

    write_keys(&[&new]);
    server.process.signal("HUP");
    let mut refused = false;
    for _ in 0..100 {
        let (status, _) = server.call("GET", "/tokens", &first, "").await;
        if status == StatusCode::UNAUTHORIZED {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "what the dropped key signed is refused");
    let (status, _) = server.call("GET", "/tokens", &second, "").await;
    assert_eq!(status, StatusCode::OK, "the new key's sessions go on");
    server.interrupt().await;
}

/// Issue 27 #2: two processes on one SQLite file. A token and a session that work on B
/// stop working on B once A revokes them, within a poll of the change log (measured:
/// printed, not asserted), not after B's 60 s cache TTL.
#[tokio::test]
async fn two_processes_on_one_sqlite_file_see_each_others_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let mut a = Server::start(&db, &[]).await;
    let admin = a.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let b = Server::start(&db, &[]).await;

    let (status, created) = a
        .call(
            "POST",
            "/tokens",
            &admin,
            r#"{"name":"worker","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_u64().unwrap();
    let login = format!(r#"{{"api_key":"{admin}","session_id":"shared"}}"#);
    let (status, session) = a.call("POST", "/auth/login", "", &login).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let access = session["access_token"].as_str().unwrap().to_owned();
    // Cached on B.
    for credential in [&token, &access] {
        let (status, _) = b.call("GET", "/me", credential, "").await;
        assert_eq!(status, StatusCode::OK);
    }

    let revoked_at = std::time::Instant::now();
    let (status, _) = a.call("DELETE", &format!("/tokens/{id}"), &admin, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = a.call("POST", "/auth/logout", &access, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (what, credential) in [("token", &token), ("session", &access)] {
        let mut refused = None;
        for _ in 0..200 {
            let (status, _) = b.call("GET", "/me", credential, "").await;
            if status == StatusCode::UNAUTHORIZED {
                refused = Some(revoked_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let refused = refused.unwrap_or_else(|| panic!("B still accepts the revoked {what}"));
        eprintln!("B refused the revoked {what} {refused:?} after A revoked it");
    }
    b.interrupt().await;
    a.interrupt().await;
}

/// Issue 28 through the example server: a key's limit of 5 per 10 s, with the IETF and
/// GitHub fields and DRF's throttle body; its credits spent by an export weighing ten;
/// its allow-list refusing the loopback client with 403.
#[tokio::test]
async fn the_example_server_enforces_a_keys_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("limits.db");
    let mut server =
        Server::start(&db, &["--style", "drf", "--rate-limit-headers", "github"]).await;
    let line = server.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    let create = |body: serde_json::Value| {
        let server = &server;
        let admin = admin.clone();
        async move {
            let (status, created) = server
                .call("POST", "/tokens", &admin, &body.to_string())
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["token"].as_str().unwrap().to_owned()
        }
    };
    let limited = create(serde_json::json!({
        "name": "limited", "scopes": ["read"],
        "rate_limits": [{"name": "burst", "limit": 5, "window_seconds": 10}]
    }))
    .await;
    // Start early in a window, so that five requests fit in it.
    let into = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .rem_euclid(10);
    if into > 6 {
        tokio::time::sleep(Duration::from_millis((10 - into as u64) * 1000 + 100)).await;
    }
    for left in (0..5).rev() {
        let answer = server.client.get("/items", &limited).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some(r#""burst";q=5;w=10"#)
        );
        let current = answer.header("ratelimit").unwrap();
        assert!(
            current.starts_with(&format!(r#""burst";r={left};t="#)),
            "{current}"
        );
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        assert_eq!(answer.header("x-ratelimit-limit"), Some("5"));
    }
    let refused = server.client.get("/items", &limited).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    let unit = if retry_after == 1 {
        "second"
    } else {
        "seconds"
    };
    assert_eq!(
        body["detail"],
        format!("Request was throttled. Expected available in {retry_after} {unit}.")
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        server.client.get("/items", &limited).await.status,
        StatusCode::OK
    );

    let metered = create(serde_json::json!({
        "name": "metered", "scopes": ["read"], "credits": {"remaining": 12}
    }))
    .await;
    assert_eq!(
        server.client.get("/items/export", &metered).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.client.get("/items", &metered).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.client.get("/items", &metered).await.status,
        StatusCode::OK
    );
    let out = server.client.get("/items", &metered).await;
    assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(out.text(), r#"{"detail":"Request was throttled."}"#);

    let fenced = create(serde_json::json!({
        "name": "fenced", "scopes": ["read"], "allowed_ips": ["10.0.0.0/8"]
    }))
    .await;
    let refused = server.client.get("/items", &fenced).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.text(),
        r#"{"detail":"You do not have permission to perform this action."}"#
    );
    assert_eq!(server.interrupt().await, "");
}
