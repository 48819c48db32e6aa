//! A typo in a scope that code requires (`projects:exprot` for the declared
//! `projects:export`) denies every token, admin included: it is said once, naming the
//! scope and the declared ones, or, with `strict_scopes`, it is an error. And a scope name
//! no token could hold fails `cargo check`, not only `cargo build`.

mod support;

use std::path::Path;
use std::process::Command;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use tower_bearer::extract::Scoped;
use tower_bearer::grpc::GrpcScopes;
use tower_bearer::layer::RequireScopeLayer;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

use support::http::{HttpClient, serve};
use support::logs::{Line, Recorder, recording};

tower_bearer::required_scope!(Exprot = "projects:exprot");
tower_bearer::required_scope!(Export = "projects:export");

fn registry(strict: bool) -> Registry {
    let builder = Registry::builder(MemoryStore::new())
        .declare_scopes(["projects:export"])
        .unwrap();
    if strict {
        builder.strict_scopes().build()
    } else {
        builder.build()
    }
}

/// An admin token that holds the declared scope too.
async fn admin(registry: &Registry) -> String {
    let issued = registry
        .issue(
            IssueRequest::new("root", "acme")
                .unwrap()
                .scopes(["admin", "projects:export"])
                .unwrap()
                .expires(Expiry::Never),
        )
        .await
        .unwrap();
    issued.secret.expose_secret().to_owned()
}

async fn client(registry: &Registry) -> HttpClient {
    let router = Router::new()
        .route("/export", get(|_: Scoped<Export>| async { "ok" }))
        .route("/typo", get(|_: Scoped<Exprot>| async { "never" }))
        .route(
            "/typo-layer",
            get(|| async { "never" })
                .route_layer(RequireScopeLayer::from_static("projects:exprot")),
        );
    let app = BearerAuthLayer::new(registry.clone()).protect(router);
    HttpClient::new(serve(Router::new().fallback_service(app)).await)
}

fn about(recorder: &Recorder, scope: &str) -> Vec<Line> {
    recorder
        .lines()
        .into_iter()
        .filter(|line| line.target == "tower_bearer::scope" && line.field("scope") == Some(scope))
        .filter(|line| line.level <= tracing::Level::WARN)
        .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn an_undeclared_scope_in_code_is_warned_about_once() {
    let (recorder, _guard) = recording();
    let registry = registry(false);
    let token = admin(&registry).await;
    let client = client(&registry).await;

    assert_eq!(client.get("/export", &token).await.status, StatusCode::OK);
    for path in ["/typo", "/typo-layer", "/typo"] {
        // Even an admin token: nobody holds an undeclared scope.
        assert_eq!(
            client.get(path, &token).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    let lines = about(&recorder, "projects:exprot");
    assert_eq!(lines.len(), 1, "once per scope: {lines:#?}");
    assert_eq!(lines[0].level, tracing::Level::WARN);
    let message = lines[0].message();
    assert!(message.contains("`projects:exprot`"), "{message}");
    assert!(
        message.contains("projects:export"),
        "names the declared ones: {message}"
    );
    assert!(
        about(&recorder, "projects:export").is_empty(),
        "declared: no word"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn with_strict_scopes_an_undeclared_scope_is_a_500() {
    let (recorder, _guard) = recording();
    let registry = registry(true);
    let token = admin(&registry).await;
    let client = client(&registry).await;

    assert_eq!(client.get("/export", &token).await.status, StatusCode::OK);
    let answer = client.get("/typo", &token).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer.text().contains("projects:exprot"),
        "{}",
        answer.text()
    );
    assert_eq!(
        client.get("/typo-layer", &token).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let lines = about(&recorder, "projects:exprot");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0].level, tracing::Level::ERROR);
}

#[tokio::test(flavor = "current_thread")]
async fn a_grpc_map_with_an_undeclared_scope_is_warned_about_or_refused() {
    let (recorder, _guard) = recording();
    let map = || {
        GrpcScopes::new()
            .require("/projects.v1.Projects/Export", "projects:exprot")
            .unwrap()
            .require("/projects.v1.Projects/*", "projects:export")
            .unwrap()
    };
    let _layer = BearerAuthLayer::new(registry(false)).grpc_scopes(map());
    let lines = about(&recorder, "projects:exprot");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].message().contains("/projects.v1.Projects/Export"),
        "{lines:#?}"
    );

    let strict =
        std::panic::catch_unwind(|| BearerAuthLayer::new(registry(true)).grpc_scopes(map()));
    let panic = strict.expect_err("strict scopes refuse the map");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("projects:exprot"), "{message}");
}

/// `cargo check` of a crate using `required_scope!` with a bad name fails, naming it; the
/// same crate with a good name passes. Offline, in a target directory of its own under
/// this crate's, kept between runs.
#[test]
fn cargo_check_catches_a_bad_scope_name() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"scope-check\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\ntower-bearer = {{ path = {:?} }}\n\n[workspace]\n",
            manifest.display().to_string()
        ),
    )
    .unwrap();
    // The versions this crate was tested with, so that nothing is fetched.
    std::fs::copy(manifest.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let check = |source: &str| {
        std::fs::write(dir.path().join("src/lib.rs"), source).unwrap();
        Command::new(env!("CARGO"))
            .args(["check", "--offline", "--quiet"])
            .current_dir(dir.path())
            .env("CARGO_TARGET_DIR", manifest.join("target/scope-check"))
            .output()
            .unwrap()
    };

    let bad = check("tower_bearer::required_scope!(pub Typo = \"projects-export\");\n");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "cargo check passed a bad scope name");
    assert!(
        stderr.contains("invalid scope name `projects-export`"),
        "{stderr}"
    );

    let good = check("tower_bearer::required_scope!(pub Export = \"projects:export\");\n");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}
