//! The secret scanning partner endpoint with real signed reports: a P-256 key pair made
//! here, its key document served on 127.0.0.1, a registry on a real SQLite file.
#![cfg(all(feature = "secret-scanning", feature = "sqlite", feature = "activity"))]

mod support;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use p256::ecdsa::SigningKey;
use serde_json::{Value, json};
use support::http::{Answer, HttpClient};
use support::scanning::{KeyDocument, signed_report, signing_key};
use tower_bearer::activity::ActivityConfig;
use tower_bearer::registry::IssueRequest;
use tower_bearer::scanning::SecretScanning;
use tower_bearer::store::SqliteStore;
use tower_bearer::{BearerAuthLayer, Registry};

/// How soon an unknown key id may fetch a key document again, in these tests.
const REFETCH: std::time::Duration = std::time::Duration::from_millis(500);

struct Partner {
    client: HttpClient,
    registry: Registry,
    github: KeyDocument,
    gitlab: KeyDocument,
    key: SigningKey,
    _dir: tempfile::TempDir,
}

impl Partner {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("scanning.db"))
            .await
            .unwrap();
        let registry = Registry::builder(store.clone())
            .activity(ActivityConfig::new(store))
            .build();
        let key = signing_key();
        let (github, gitlab) = (KeyDocument::default(), KeyDocument::default());
        github.publish("github-1", &key);
        gitlab.publish("gitlab-1", &key);
        let scanning = SecretScanning::new(registry.clone())
            .github_keys_url(&github.serve().await)
            .gitlab_keys_url(&gitlab.serve().await)
            .token_type("sk_live_", "acme_api_key")
            .key_refetch_interval(REFETCH)
            .router();
        let app = Router::new()
            .route("/me", get(|| async { "me" }))
            .merge(scanning);
        let app = BearerAuthLayer::new(registry.clone())
            .public(["/secret-scanning/*"])
            .protect(app);
        Self {
            client: HttpClient::new(support::http::serve_with_peer(app).await),
            registry,
            github,
            gitlab,
            key,
            _dir: dir,
        }
    }

    async fn issue(&self) -> String {
        let issued = self
            .registry
            .issue(IssueRequest::new("leaky", "acme").unwrap())
            .await
            .unwrap();
        issued.secret.expose_secret().to_owned()
    }

    /// Posts `body` to `provider`'s route, signed by `key` under `id` (headers left out
    /// when `signed` is false).
    async fn report(
        &self,
        provider: &str,
        id: &str,
        key: &SigningKey,
        body: &[u8],
        signed: bool,
    ) -> Answer {
        let request = if signed {
            signed_report(provider, id, key, body, body)
        } else {
            Request::post(format!("/secret-scanning/{provider}"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::copy_from_slice(body)))
                .unwrap()
        };
        self.client.request(request).await
    }

    async fn github(&self, body: &Value) -> Answer {
        self.report(
            "github",
            "github-1",
            &self.key,
            body.to_string().as_bytes(),
            true,
        )
        .await
    }
}

fn found(token: &str) -> Value {
    json!([{
        "token": token,
        "type": "acme_api_key",
        "url": "https://github.com/octo/demo/blob/abc/config.yml",
        "source": "content"
    }])
}

fn labels(answer: &Answer) -> Vec<String> {
    let feedback: Value = serde_json::from_slice(&answer.body).unwrap();
    feedback
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["label"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reported_key_is_revoked_and_answered_true_positive_once_and_again() {
    let partner = Partner::start().await;
    let token = partner.issue().await;
    assert_eq!(
        partner.client.get("/me", &token).await.status,
        StatusCode::OK
    );
    let id = partner.registry.verify(&token).await.unwrap().id();

    let answer = partner.github(&found(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let feedback: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        feedback,
        json!([{"token_raw": token, "token_type": "acme_api_key", "label": "true_positive"}])
    );
    assert_eq!(
        partner.client.get("/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The report's row in the activity log, against the key.
    let log = partner.registry.activity().unwrap();
    log.flush().await.unwrap();
    let rows = log
        .query(
            "acme",
            &tower_bearer::store::activity::ActivityQuery::new().token(id),
        )
        .await
        .unwrap();
    let leaked: Vec<_> = rows
        .iter()
        .filter(|row| row.outcome == tower_bearer::store::activity::Outcome::Leaked)
        .collect();
    assert_eq!(leaked.len(), 1, "{rows:?}");
    assert_eq!(leaked[0].route, "/secret-scanning/github");
    assert_eq!(leaked[0].method, "POST");
    // The revocation remembers why and where the key was found.
    let revoked = log.find_revoked_key("acme", id).await.unwrap().unwrap();
    assert_eq!(
        revoked.reason,
        tower_bearer::store::RevocationReason::Leaked
    );
    assert_eq!(
        revoked.leak_url.as_deref(),
        Some("https://github.com/octo/demo/blob/abc/config.yml")
    );
    assert_eq!(revoked.leak_source.as_deref(), Some("content"));
    // The same report again: the same answer, nothing more to revoke, no second row.
    let again = partner.github(&found(&token)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(labels(&again), ["true_positive"]);
    log.flush().await.unwrap();
    let rows = log
        .query(
            "acme",
            &tower_bearer::store::activity::ActivityQuery::new().token(id),
        )
        .await
        .unwrap();
    let leaked = rows
        .iter()
        .filter(|row| row.outcome == tower_bearer::store::activity::Outcome::Leaked)
        .count();
    assert_eq!(leaked, 1);
}

#[tokio::test]
async fn strings_that_are_not_our_keys_are_false_positives() {
    let partner = Partner::start().await;
    let token = partner.issue().await;
    let mut bad_checksum = token.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'A' { 'B' } else { 'A' });
    let never_issued = {
        // Well-formed and checksummed, but not in the store: a key of another registry.
        let other = Registry::builder(tower_bearer::MemoryStore::new()).build();
        let issued = other
            .issue(IssueRequest::new("elsewhere", "acme").unwrap())
            .await
            .unwrap();
        issued.secret.expose_secret().to_owned()
    };
    let body = json!([
        {"token": bad_checksum, "type": "acme_api_key", "url": "https://github.com/a"},
        {"token": never_issued, "type": "acme_api_key", "url": "https://github.com/b"},
        {"token": token, "type": "another_type", "url": "https://github.com/c"}
    ]);
    let answer = partner.github(&body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        labels(&answer),
        ["false_positive", "false_positive", "false_positive"]
    );
    assert_eq!(
        partner.client.get("/me", &token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unsigned_badly_signed_or_unknown_key_reports_are_401_and_change_nothing() {
    let partner = Partner::start().await;
    let token = partner.issue().await;
    let body = found(&token).to_string();
    let unsigned = partner
        .report("github", "github-1", &partner.key, body.as_bytes(), false)
        .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    let other_key = signing_key();
    let forged = partner
        .report("github", "github-1", &other_key, body.as_bytes(), true)
        .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let unknown = partner
        .report("github", "github-9", &partner.key, body.as_bytes(), true)
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    // A body changed after it was signed.
    let tampered = body.replace("config.yml", "config.yaml");
    let request = signed_report(
        "github",
        "github-1",
        &partner.key,
        body.as_bytes(),
        tampered.as_bytes(),
    );
    assert_eq!(
        partner.client.request(request).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        partner.client.get("/me", &token).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn gitlabs_reports_are_verified_with_gitlabs_keys() {
    let partner = Partner::start().await;
    let token = partner.issue().await;
    let body = json!([{"token": token, "type": "acme_api_key", "url": "https://gitlab.com/o/r/-/blob/1/a"}]);
    // Signed under GitHub's key id on GitLab's route: not one of GitLab's keys.
    let wrong = partner
        .report(
            "gitlab",
            "github-1",
            &partner.key,
            body.to_string().as_bytes(),
            true,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let answer = partner
        .report(
            "gitlab",
            "gitlab-1",
            &partner.key,
            body.to_string().as_bytes(),
            true,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(labels(&answer), ["true_positive"]);
    assert_eq!(
        partner.client.get("/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_new_key_id_fetches_the_document_again_at_most_once_an_interval() {
    let partner = Partner::start().await;
    let token = partner.issue().await;
    let body = json!([{"token": "sk_live_nothing", "type": "acme_api_key"}]).to_string();
    assert_eq!(
        partner
            .report("github", "github-1", &partner.key, body.as_bytes(), true)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(partner.github.fetches(), 1);
    // An unknown id within the interval: refused without fetching again.
    for _ in 0..3 {
        let unknown = partner
            .report("github", "github-3", &partner.key, body.as_bytes(), true)
            .await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(partner.github.fetches(), 1);
    // The provider rotates: a report signed by a key published since, after the
    // interval, fetches the document once more.
    let rotated = signing_key();
    partner.github.publish("github-2", &rotated);
    tokio::time::sleep(REFETCH).await;
    let answer = partner
        .report(
            "github",
            "github-2",
            &rotated,
            found(&token).to_string().as_bytes(),
            true,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(partner.github.fetches(), 2);
    // Known now: no fetch.
    let again = partner
        .report("github", "github-2", &rotated, body.as_bytes(), true)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(partner.github.fetches(), 2);
    assert_eq!(partner.gitlab.fetches(), 0);
}

#[tokio::test]
async fn reports_are_bounded_to_1000_matches_and_1_mib() {
    let partner = Partner::start().await;
    let many: Vec<Value> = (0..1_001)
        .map(|_| json!({"token": "sk_live_x", "type": "acme_api_key"}))
        .collect();
    let answer = partner.github(&json!(many)).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let huge = json!([{"token": "x".repeat(1 << 20), "type": "acme_api_key"}]);
    let answer = partner.github(&huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// A reported string whose checksum does not hold never reaches the store.
#[tokio::test]
async fn a_bad_checksum_is_answered_without_a_store_lookup() {
    use tower_bearer::registry::{LeakReport, LeakVerdict};
    let store = support::InstrumentedStore::new();
    let registry = Registry::builder(store.clone()).build();
    let issued = registry
        .issue(IssueRequest::new("k", "acme").unwrap())
        .await
        .unwrap();
    let mut forged = issued.secret.expose_secret().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let before = store.lookups();
    let verdict = registry
        .revoke_leaked(&forged, &LeakReport::new(None, None))
        .await
        .unwrap();
    assert_eq!(verdict, LeakVerdict::Malformed);
    assert_eq!(store.lookups(), before, "no store lookup");
    let verdict = registry
        .revoke_leaked(
            issued.secret.expose_secret(),
            &LeakReport::new(Some("https://x"), None),
        )
        .await
        .unwrap();
    assert!(
        matches!(verdict, LeakVerdict::Revoked { .. }),
        "{verdict:?}"
    );
    assert_eq!(store.lookups(), before + 1);
}

/// End to end through the example server: two of them on one PostgreSQL database, the
/// provider's keys served here; a report to one node revokes the key on both, within the
/// change feed's latency.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_to_one_example_server_revokes_the_key_on_both() {
    use support::example::ExampleProcess;
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let key = signing_key();
    let document = KeyDocument::default();
    document.publish("github-1", &key);
    let keys_url = document.serve().await;
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--db",
        url.as_str(),
        "--github-keys-url",
        keys_url.as_str(),
        "--token-type",
        "acme_api_key",
    ];
    let mut a = ExampleProcess::start("server", "full", &args, 1).await;
    let line = a.stdout_line().await;
    let admin = line.strip_prefix("admin token: ").unwrap().to_owned();
    let b = ExampleProcess::start("server", "full", &args, 1).await;
    let (on_a, on_b) = (HttpClient::new(a.addrs[0]), HttpClient::new(b.addrs[0]));
    let (status, created) = on_a
        .call_json(
            "POST",
            "/tokens",
            &admin,
            r#"{"name":"leaky","scopes":["read"]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(on_b.get("/me", &token).await.status, StatusCode::OK);

    let body = found(&token).to_string();
    let request = signed_report("github", "github-1", &key, body.as_bytes(), body.as_bytes());
    let answer = on_a.request(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(labels(&answer), ["true_positive"]);
    assert_eq!(
        on_a.get("/me", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let start = std::time::Instant::now();
    while on_b.get("/me", &token).await.status != StatusCode::UNAUTHORIZED {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "still accepted on B"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // B's admins read why and where, from the log both nodes share (once A's writer
    // stored it).
    let id = created["id"].as_u64().unwrap();
    let shown = loop {
        let (status, shown) = on_b
            .call_json("GET", &format!("/tokens/{id}"), &admin, "")
            .await;
        if status == StatusCode::OK {
            break shown;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{shown}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(shown["revoked_reason"], "leaked", "{shown}");
    assert_eq!(
        shown["leak"],
        json!({"url": "https://github.com/octo/demo/blob/abc/config.yml", "source": "content"})
    );
    // The pattern the example prints for the scanners finds the token.
    let printed = std::process::Command::new(support::example::example_binary("server", "full"))
        .arg("--print-token-pattern")
        .output()
        .unwrap();
    assert!(printed.status.success());
    let pattern = String::from_utf8(printed.stdout).unwrap();
    let pattern = regex::Regex::new(pattern.trim()).unwrap();
    assert_eq!(
        pattern.find(&format!("KEY={token}\n")).unwrap().as_str(),
        token
    );
    assert_eq!(a.interrupt().await, "");
    assert_eq!(b.interrupt().await, "");
}
