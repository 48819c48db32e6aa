//! The management API's JSON bodies through its validation, over the real router: no
//! input panics or answers 5xx, nothing is stored unless the answer is 201, and a 201 only
//! for a body that meets the rules.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry, admin};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: MemoryStore,
    app: tower_bearer::layer::BearerAuth<axum::Router>,
    admin: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = MemoryStore::new();
        let (app, admin) = runtime.block_on(async {
            let registry = Registry::builder(store.clone()).build();
            let admin = registry
                .issue(
                    IssueRequest::new("root", "acme")
                        .unwrap()
                        .scopes(["read", "write", "admin"])
                        .unwrap()
                        .expires(Expiry::Never),
                )
                .await
                .unwrap();
            let app = BearerAuthLayer::new(registry.clone()).protect(admin::router(registry));
            (app, admin.secret.expose_secret().to_owned())
        });
        Fixture {
            runtime,
            store,
            app,
            admin,
        }
    })
}

/// The rules a created token's body meets.
fn acceptable(body: &[u8]) -> bool {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return false;
    };
    let known = [
        "name",
        "scopes",
        "expires_in_days",
        "expires_at",
        "never_expires",
        "owner",
        "metadata",
    ];
    let name_ok = fields
        .get("name")
        .and_then(|n| n.as_str())
        .is_some_and(|name| {
            !name.trim().is_empty()
                && name.chars().count() <= 255
                && !name.chars().any(char::is_control)
        });
    let scopes_ok = match fields.get("scopes") {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Array(items)) => {
            items.len() <= 64
                && items.iter().all(|s| {
                    s.as_str()
                        .is_some_and(|s| ["read", "write", "admin"].contains(&s))
                })
        }
        _ => false,
    };
    name_ok && scopes_ok && fields.keys().all(|k| known.contains(&k.as_str()))
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let before = fixture.store.len();
    let request = http::Request::post("/tokens")
        .header("authorization", format!("Bearer {}", fixture.admin))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(data.to_vec()))
        .unwrap();
    let response = fixture
        .runtime
        .block_on(fixture.app.clone().oneshot(request))
        .unwrap();
    let status = response.status();
    assert!(
        !status.is_server_error(),
        "{status} for {:?}",
        String::from_utf8_lossy(data)
    );
    let stored = fixture.store.len() - before;
    if status == http::StatusCode::CREATED {
        assert_eq!(stored, 1);
        assert!(
            acceptable(data),
            "accepted {:?}",
            String::from_utf8_lossy(data)
        );
    } else {
        assert_eq!(stored, 0, "{status} but something was stored");
    }
});
