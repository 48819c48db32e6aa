//! The API Tokens page: served with a strict policy, and used in a real headless browser
//! against the example server as a user would (sign in, create, copy, use, revoke,
//! rotate, read activity), with screenshots.
#![cfg(all(feature = "sqlite", feature = "admin", feature = "dashboard"))]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use http::StatusCode;
use serde_json::{Value, json};
use support::browser::{Browser, chromium};
use support::example::ExampleProcess;
use support::http::HttpClient;
use tower_bearer::admin::ManagementApi;
use tower_bearer::dashboard::Dashboard;
use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};

async fn call(
    client: &HttpClient,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    client.call_json(method, path, token, &body).await
}

/// `GET /tokens/{id}` through the API, which must answer it.
async fn token_info(client: &HttpClient, admin: &str, id: u64) -> Value {
    let (status, info) = call(client, "GET", &format!("/tokens/{id}"), admin, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    info
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let registry = Registry::builder(MemoryStore::new())
        .declare_scopes(["read", "write", "admin", "billing:refund"])
        .unwrap()
        .build();
    let app = Router::new()
        .merge(ManagementApi::new(registry.clone()).router())
        .merge(
            Dashboard::new(registry.clone())
                .path("/settings/api-tokens")
                .router(),
        );
    let app = BearerAuthLayer::new(registry)
        .public(["/settings/api-tokens", "/settings/api-tokens/*"])
        .protect(app);
    let client = HttpClient::new(support::http::serve_with_peer(app).await);

    for (path, content_type) in [
        ("/settings/api-tokens", "text/html; charset=utf-8"),
        ("/settings/api-tokens/", "text/html; charset=utf-8"),
        (
            "/settings/api-tokens/app.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/settings/api-tokens/api.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/settings/api-tokens/limits.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/settings/api-tokens/usage.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/settings/api-tokens/webhooks.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/settings/api-tokens/leaked.js",
            "text/javascript; charset=utf-8",
        ),
        ("/settings/api-tokens/app.css", "text/css; charset=utf-8"),
        ("/settings/api-tokens/config.json", "application/json"),
    ] {
        let answer = client.send("GET", path, &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        let header = |name: &str| answer.headers[name].to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), content_type, "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("cache-control"), "no-store");
        assert_eq!(header("x-content-type-options"), "nosniff");
    }
    let page = client.send("GET", "/settings/api-tokens", &[]).await;
    let page = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(page.contains(r#"<script type="module" src="/settings/api-tokens/app.js">"#));
    let config = client
        .send("GET", "/settings/api-tokens/config.json", &[])
        .await;
    let config: Value = serde_json::from_slice(&config.body).unwrap();
    assert_eq!(
        config,
        json!({ "api": "", "login": null, "logout": null, "scopes": ["read", "write", "admin", "billing:refund"], "activity": false, "sessions": false, "webhooks": false })
    );
    // The management API itself still needs a token.
    assert_eq!(
        client.send("GET", "/tokens", &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Where the screenshots go: the test's own directory under `target/`, and
/// `TOWER_BEARER_SCREENSHOTS` (e.g. `docs`) when set, for the README.
fn screenshot_paths(name: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)];
    if let Some(dir) = std::env::var_os("TOWER_BEARER_SCREENSHOTS") {
        paths.push(PathBuf::from(dir).join(name));
    }
    paths
}

async fn screenshot(browser: &mut Browser, name: &str) {
    for path in screenshot_paths(name) {
        browser.screenshot(&path).await;
    }
}

/// The id of the listed row named `name`, once the page shows it (the list reloads after
/// a change).
async fn listed(browser: &mut Browser, name: &str) -> u64 {
    browser
        .wait_for(&format!(
            "[...document.querySelectorAll('#token-rows .name')].some(n => n.textContent === {name:?})"
        ))
        .await;
    row_id(browser, name).await.unwrap()
}

/// The id of the listed row named `name`, if the page shows one.
async fn row_id(browser: &mut Browser, name: &str) -> Option<u64> {
    browser
        .eval(&format!(
            "(() => {{ const row = [...document.querySelectorAll('#token-rows tr')]
                .find(r => r.querySelector('.name').textContent === {name:?});
                return row ? Number(row.dataset.id) : null; }})()"
        ))
        .await
        .as_u64()
}

/// Clicks `button` on the row of token `id` and waits for the dialog it opens.
async fn open_from_row(browser: &mut Browser, id: u64, button: &str, dialog: &str) {
    browser
        .click(&format!("#token-rows tr[data-id='{id}']"), button)
        .await;
    browser
        .wait_for(&format!("document.getElementById({dialog:?}).open"))
        .await;
}

async fn sign_in(browser: &mut Browser, key: &str) {
    browser.type_into("api-key", key).await;
    browser.click("#sign-in", "Sign in").await;
}

/// Signs in with a key that holds `admin`, and waits for the token list.
async fn signed_in(browser: &mut Browser, key: &str) {
    sign_in(browser, key).await;
    browser
        .wait_for("!document.getElementById('tokens').hidden")
        .await;
}

/// The example's page in a new browser, signed in with `admin`.
async fn page_signed_in(chromium: &str, server: &ExampleProcess, admin: &str) -> Browser {
    let page = format!("http://{}/dashboard", server.addrs[0]);
    let mut browser = Browser::start(chromium, &page).await;
    browser
        .wait_for("document.body.dataset.ready === 'true'")
        .await;
    signed_in(&mut browser, admin).await;
    browser
}

/// Creates a token through the form and returns it, read from the once-only display.
async fn create_through_the_form(browser: &mut Browser, name: &str, scopes: &[&str]) -> String {
    create_expiring_on(browser, name, scopes, None).await
}

/// [`create_through_the_form`], choosing an expiry date (`YYYY-MM-DD`) when given.
async fn create_expiring_on(
    browser: &mut Browser,
    name: &str,
    scopes: &[&str],
    day: Option<&str>,
) -> String {
    browser.click("#tokens", "New API Token").await;
    browser
        .wait_for("document.getElementById('create-dialog').open")
        .await;
    browser.type_into("token-name", name).await;
    for scope in scopes {
        browser
            .eval(&format!(
                "document.querySelector('#scope-choices input[value={scope:?}]').click()"
            ))
            .await;
    }
    if let Some(day) = day {
        // A date field takes no typed text in headless chromium: set it as its picker does.
        browser
            .eval(&format!(
                "(() => {{ const field = document.getElementById('expiry-date'); field.value = {day:?};
                    field.dispatchEvent(new Event('input', {{ bubbles: true }})); }})()"
            ))
            .await;
    }
    browser.click("#create-dialog", "Create").await;
    browser
        .wait_for("!document.getElementById('secret').hidden && document.getElementById('secret-value').value")
        .await;
    browser
        .eval("document.getElementById('secret-value').value")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// The example server on a new SQLite file in `dir`, and its bootstrap admin token.
async fn example_server(dir: &tempfile::TempDir) -> (ExampleProcess, String) {
    example_server_with(dir, &[]).await
}

/// [`example_server`] with more flags.
async fn example_server_with(dir: &tempfile::TempDir, flags: &[&str]) -> (ExampleProcess, String) {
    let db = dir.path().join("tokens.db");
    let mut args = vec!["--addr", "127.0.0.1:0", "--db", db.to_str().unwrap()];
    args.extend_from_slice(flags);
    let mut server = ExampleProcess::start("server", "full", &args, 1).await;
    let admin = server.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    (server, admin)
}

#[tokio::test]
async fn a_user_manages_tokens_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = example_server(&dir).await;
    let addr = server.addrs[0];
    let client = HttpClient::new(addr);

    // Made through the API before the page is opened: a name that is markup, and a token
    // that expires while we wait.
    let markup = "<img src=x onerror=alert(1)>";
    let (status, _) = call(
        &client,
        "POST",
        "/tokens",
        &admin,
        json!({ "name": markup, "scopes": ["read"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let (status, short) = call(
        &client,
        "POST",
        "/tokens",
        &admin,
        json!({ "name": "short lived", "scopes": ["read"], "expires_at": soon.format(&time::format_description::well_known::Rfc3339).unwrap() }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{short}");
    let short_token = short["token"].as_str().unwrap().to_owned();

    let mut browser = Browser::start(chromium, &format!("http://{addr}/dashboard")).await;
    browser
        .wait_for("document.body.dataset.ready === 'true'")
        .await;

    // A wrong key: an error in words, and no table.
    sign_in(
        &mut browser,
        "sk_live_not_a_key_at_all_00000000000000000000",
    )
    .await;
    browser
        .wait_for("!document.getElementById('error').hidden")
        .await;
    let error = browser
        .eval("document.getElementById('error').textContent")
        .await;
    assert!(
        !error.as_str().unwrap().is_empty() && !error.as_str().unwrap().contains('{'),
        "{error}"
    );
    assert_eq!(
        browser
            .eval("document.getElementById('tokens').hidden")
            .await,
        json!(true)
    );

    // Signed in with the bootstrap admin token: the tenant's tokens.
    tokio::time::sleep(Duration::from_millis(2100)).await; // "short lived" has expired
    signed_in(&mut browser, &admin).await;
    assert_eq!(
        browser
            .eval("document.getElementById('error').hidden")
            .await,
        json!(true)
    );

    // The markup is shown as the characters it is.
    listed(&mut browser, markup).await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#token-rows img').length")
            .await,
        json!(0)
    );
    // The expired token stays listed, with its badge.
    let badge = browser
        .eval("[...document.querySelectorAll('#token-rows tr')].find(r => r.querySelector('.name').textContent === 'short lived').querySelector('.badge.expired').textContent")
        .await;
    assert_eq!(badge, json!("Expired"));

    // A new token through the form, shown once, works at once.
    let token = create_through_the_form(&mut browser, "deploy bot", &["read"]).await;
    screenshot(&mut browser, "dashboard-new-token.png").await;
    assert_eq!(
        call(&client, "GET", "/items", &token, Value::Null).await.0,
        StatusCode::OK
    );
    browser.click("#secret", "Done").await;
    let shown = browser
        .eval("document.body.innerText + document.getElementById('secret-value').value")
        .await;
    assert!(
        !shown.as_str().unwrap().contains(&token),
        "the token is gone from the page"
    );

    // Revoked through the page (confirmed): its row goes, and it stops working.
    let id = listed(&mut browser, "deploy bot").await;
    open_from_row(&mut browser, id, "Revoke", "confirm-dialog").await;
    browser.click("#confirm-dialog", "Revoke").await;
    browser
        .wait_for(&format!(
            "!document.querySelector(\"#token-rows tr[data-id='{id}']\")"
        ))
        .await;
    assert_eq!(
        call(&client, "GET", "/ping", &token, Value::Null).await.0,
        StatusCode::UNAUTHORIZED
    );

    // An expiry date chosen in the form is the token's expiry.
    create_expiring_on(&mut browser, "dated", &["read"], Some("2031-01-02")).await;
    browser.click("#secret", "Done").await;
    let id = listed(&mut browser, "dated").await;
    let dated = token_info(&client, &admin, id).await;
    assert_eq!(dated["expires_at"], json!("2031-01-02T00:00:00Z"));

    // Rotated through the page: the new token is shown once; the old one is refused.
    let old = create_through_the_form(&mut browser, "rotate me", &["read"]).await;
    browser.click("#secret", "Done").await;
    let id = listed(&mut browser, "rotate me").await;
    browser
        .click(&format!("#token-rows tr[data-id='{id}']"), "Rotate")
        .await;
    browser
        .wait_for(&format!("!document.getElementById('secret').hidden && document.getElementById('secret-value').value && document.getElementById('secret-value').value !== {old:?}"))
        .await;
    let new = browser
        .eval("document.getElementById('secret-value').value")
        .await;
    let new = new.as_str().unwrap().to_owned();
    browser.click("#secret", "Done").await;
    assert_eq!(
        call(&client, "GET", "/ping", &new, Value::Null).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&client, "GET", "/ping", &old, Value::Null).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Edited through the page: a new name and other scopes hold at once, for the same
    // token (writing was refused before, and is allowed after).
    let kept = create_through_the_form(&mut browser, "edit me", &["read"]).await;
    browser.click("#secret", "Done").await;
    let item = json!({ "name": "widget" });
    assert_eq!(
        call(&client, "POST", "/items", &kept, item.clone()).await.0,
        StatusCode::FORBIDDEN
    );
    let id = listed(&mut browser, "edit me").await;
    open_from_row(&mut browser, id, "Edit", "edit-dialog").await;
    let checked = "[...document.querySelectorAll('#edit-scopes input:checked')].map(i => i.value)";
    assert_eq!(
        browser
            .eval("document.getElementById('edit-name').value")
            .await,
        json!("edit me")
    );
    assert_eq!(browser.eval(checked).await, json!(["read"]));
    browser.type_into("edit-name", "edited").await;
    for scope in ["read", "write"] {
        browser
            .eval(&format!(
                "document.querySelector('#edit-scopes input[value={scope:?}]').click()"
            ))
            .await;
    }
    browser.click("#edit-dialog", "Save").await;
    assert_eq!(listed(&mut browser, "edited").await, id);
    let scopes = browser
        .eval(&format!(
            "[...document.querySelectorAll(\"#token-rows tr[data-id='{id}'] .badge.scope\")].map(b => b.textContent)"
        ))
        .await;
    assert_eq!(scopes, json!(["write"]));
    let edited = token_info(&client, &admin, id).await;
    assert_eq!(
        (&edited["name"], &edited["scopes"]),
        (&json!("edited"), &json!(["write"]))
    );
    assert_eq!(
        call(&client, "POST", "/items", &kept, item).await.0,
        StatusCode::CREATED
    );

    // Taking admin from the tenant's last admin token is refused in words, and changes
    // nothing.
    let bootstrap = listed(&mut browser, "bootstrap admin").await;
    open_from_row(&mut browser, bootstrap, "Edit", "edit-dialog").await;
    browser
        .eval("document.querySelector('#edit-scopes input[value=\"admin\"]').click()")
        .await;
    browser.click("#edit-dialog", "Save").await;
    browser
        .wait_for("!document.getElementById('edit-error').hidden")
        .await;
    let refusal = browser
        .eval("document.getElementById('edit-error').textContent")
        .await;
    assert!(
        refusal.as_str().unwrap().contains("last token"),
        "{refusal}"
    );
    browser.click("#edit-dialog", "Cancel").await;
    let still = token_info(&client, &admin, bootstrap).await;
    assert_eq!(still["scopes"], json!(["admin"]));

    // A key's sessions, listed on its row: ending one stops its access token at once,
    // and the key's other session goes on.
    let holder = create_through_the_form(&mut browser, "session holder", &["read"]).await;
    browser.click("#secret", "Done").await;
    let mut access = Vec::new();
    for session in ["laptop", "phone"] {
        let body = json!({ "api_key": holder, "session_id": session });
        let (status, login) = call(&client, "POST", "/auth/login", "", body).await;
        assert_eq!(status, StatusCode::OK, "{login}");
        access.push(login["access_token"].as_str().unwrap().to_owned());
    }
    let id = listed(&mut browser, "session holder").await;
    browser
        .click(&format!("#token-rows tr[data-id='{id}']"), "Sessions")
        .await;
    let sessions =
        "[...document.querySelectorAll('#sessions-rows tr')].map(r => r.cells[0].textContent)";
    browser
        .wait_for(&format!("{sessions}.join() === 'laptop,phone'"))
        .await;
    let laptop = browser
        .eval("[...document.querySelectorAll('#sessions-rows tr')][0].dataset.id")
        .await;
    browser
        .click(
            &format!("#sessions-rows tr[data-id={laptop}]"),
            "End session",
        )
        .await;
    browser
        .wait_for(&format!("{sessions}.join() === 'phone'"))
        .await;
    assert_eq!(
        call(&client, "GET", "/ping", &access[0], Value::Null)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&client, "GET", "/ping", &access[1], Value::Null)
            .await
            .0,
        StatusCode::OK
    );
    browser.click("#sessions", "Close").await;

    // A call with the expired token shows in its activity, highlighted.
    assert_eq!(
        call(&client, "GET", "/ping", &short_token, Value::Null)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let short_id = listed(&mut browser, "short lived").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        browser
            .click(&format!("#token-rows tr[data-id='{short_id}']"), "Activity")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let alarm = browser
            .eval("[...document.querySelectorAll('#activity-rows tr.alarm .badge.outcome')].map(b => b.textContent)")
            .await;
        if alarm == json!(["expired"]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no highlighted call: {alarm}"
        );
    }
    browser.click("#activity", "Close").await;
    browser.eval("window.scrollTo(0, 0)").await;
    screenshot(&mut browser, "dashboard-tokens.png").await;

    // Readable at 320 px: nothing wider than the screen but the tables' own scroll.
    browser
        .command(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 320, "height": 640, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
    browser
        .wait_for("document.documentElement.scrollWidth <= 320")
        .await;

    // Signing out forgets the credential.
    browser
        .command(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    let sessions_path = format!("/tokens/{bootstrap}/sessions");
    let (_, before) = call(&client, "GET", &sessions_path, &admin, Value::Null).await;
    assert_eq!(before["data"].as_array().unwrap().len(), 1, "{before}");
    browser.click("header", "Sign out").await;
    browser.wait_for("!document.getElementById('sign-in').hidden && document.getElementById('tokens').hidden").await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#token-rows tr').length")
            .await,
        json!(0)
    );
    // ... and ends its session on the server (issue 26 #10): login hands the same token
    // out again while it is valid, so forgetting it in the page alone would not end it.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let (_, after) = call(&client, "GET", &sessions_path, &admin, Value::Null).await;
            if after["data"].as_array().is_some_and(Vec::is_empty) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ended.is_ok(), "Sign out left the session live");

    // More tokens than a page holds: "Next page" and back.
    for n in 0..20 {
        let body = json!({ "name": format!("batch {n:02}"), "scopes": ["read"] });
        assert_eq!(
            call(&client, "POST", "/tokens", &admin, body).await.0,
            StatusCode::CREATED
        );
    }
    signed_in(&mut browser, &admin).await;
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#token-rows tr').length")
            .await,
        json!(20)
    );
    let first_page = browser
        .eval("document.querySelector('#token-rows tr').dataset.id")
        .await;
    browser.click(".pages", "Next page").await;
    browser
        .wait_for(&format!(
            "document.querySelector('#token-rows tr').dataset.id !== {first_page}"
        ))
        .await;
    browser.click(".pages", "Previous page").await;
    browser
        .wait_for(&format!(
            "document.querySelector('#token-rows tr').dataset.id === {first_page}"
        ))
        .await;

    // A credential revoked behind the page's back: its next call signs it out, saying why.
    let (status, second) = call(
        &client,
        "POST",
        "/tokens",
        &admin,
        json!({ "name": "second admin", "scopes": ["admin"] }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    browser.click("header", "Sign out").await;
    signed_in(&mut browser, second["token"].as_str().unwrap()).await;
    let path = format!("/tokens/{}", second["id"]);
    assert_eq!(
        call(&client, "DELETE", &path, &admin, Value::Null).await.0,
        StatusCode::NO_CONTENT
    );
    browser.click(".pages", "Next page").await;
    browser
        .wait_for("!document.getElementById('sign-in').hidden && document.getElementById('error').textContent.startsWith('Signed out')")
        .await;
    browser.close().await;
}

/// Issue 28: a key's rate limits, credits and allowed addresses, set when it is created
/// and changed later through the page, shown in its row, and enforced at once.
#[tokio::test]
async fn limits_are_set_shown_and_changed_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = example_server(&dir).await;
    let client = HttpClient::new(server.addrs[0]);
    let mut browser = page_signed_in(chromium, &server, &admin).await;

    browser.click("#tokens", "New API Token").await;
    browser
        .wait_for("document.getElementById('create-dialog').open")
        .await;
    browser.type_into("token-name", "metered").await;
    browser
        .eval("document.querySelector('#scope-choices input[value=\"read\"]').click()")
        .await;
    browser.type_into("create-rate-limits", "burst 2/60").await;
    browser.type_into("create-credits", "100").await;
    browser.type_into("create-refill-amount", "100").await;
    browser
        .eval("document.getElementById('create-refill-every').value = 'day'")
        .await;
    browser.type_into("create-allowed-ips", "127.0.0.1").await;
    browser.click("#create-dialog", "Create").await;
    browser
        .wait_for("!document.getElementById('secret').hidden && document.getElementById('secret-value').value")
        .await;
    let token = browser
        .eval("document.getElementById('secret-value').value")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    browser.click("#secret", "Done").await;
    let id = listed(&mut browser, "metered").await;
    let info = token_info(&client, &admin, id).await;
    assert_eq!(
        info["rate_limits"],
        json!([{"name": "burst", "limit": 2, "window_seconds": 60}])
    );
    assert_eq!(
        info["credits"],
        json!({"remaining": 100, "refill": {"amount": 100, "every": "day"}})
    );
    assert_eq!(info["allowed_ips"], json!(["127.0.0.1/32"]));
    let shown = |id: u64| {
        format!("document.querySelector(\"#token-rows tr[data-id='{id}'] td.limits\").innerText")
    };
    let limits = browser.eval(&shown(id)).await;
    let limits = limits.as_str().unwrap();
    for part in [
        "burst: 2 per 60 s",
        "100 credits left (100 a day)",
        "from 127.0.0.1/32",
    ] {
        assert!(limits.contains(part), "{part} in {limits}");
    }

    for _ in 0..2 {
        assert_eq!(
            call(&client, "GET", "/ping", &token, Value::Null).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        call(&client, "GET", "/ping", &token, Value::Null).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A higher limit through the edit dialog holds at once; the balance, untouched in
    // the form, is left alone (not set again from the listed value).
    open_from_row(&mut browser, id, "Edit", "edit-dialog").await;
    assert_eq!(
        browser
            .eval("document.getElementById('edit-rate-limits').value")
            .await,
        json!("burst 2/60")
    );
    browser.type_into("edit-rate-limits", "burst 50/60").await;
    screenshot(&mut browser, "dashboard-limits.png").await;
    browser.click("#edit-dialog", "Save").await;
    browser
        .wait_for(&format!("{}.includes('50 per 60 s')", shown(id)))
        .await;
    let info = token_info(&client, &admin, id).await;
    assert_eq!(info["rate_limits"][0]["limit"], 50);
    let remaining = info["credits"]["remaining"].as_u64().unwrap();
    assert!(remaining < 100, "the balance was not set again: {info}");
    assert_eq!(
        call(&client, "GET", "/ping", &token, Value::Null).await.0,
        StatusCode::OK
    );
    browser.close().await;
    assert_eq!(server.interrupt().await, "");
}

/// A key a secret scanner reported shows in the page's "Leaked" section, with where it
/// was found (a signed GitHub report to the example server, a real browser).
#[tokio::test]
async fn leaked_keys_are_shown_with_where_they_were_found() {
    use support::scanning::{KeyDocument, signed_report, signing_key};
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key();
    let document = KeyDocument::default();
    document.publish("github-1", &key);
    let keys_url = document.serve().await;
    let (server, admin) = example_server_with(&dir, &["--github-keys-url", &keys_url]).await;
    let client = HttpClient::new(server.addrs[0]);
    let (status, created) = call(
        &client,
        "POST",
        "/tokens",
        &admin,
        json!({"name": "pushed by mistake", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let found_at = "https://github.com/octo/app/blob/9f2c1e/.env";
    let report = json!([{
        "token": created["token"],
        "type": "tower_bearer_api_key",
        "url": found_at,
        "source": "commit"
    }])
    .to_string();
    let request = signed_report(
        "github",
        "github-1",
        &key,
        report.as_bytes(),
        report.as_bytes(),
    );
    let answer = client.request(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    // The page reads the log the writer fills a moment later: once the API shows the
    // report's row, so must the page.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, rows) = call(
            &client,
            "GET",
            "/activity?outcome=leaked",
            &admin,
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rows}");
        if !rows["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no leaked row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut browser = page_signed_in(chromium, &server, &admin).await;
    let id = created["id"].as_u64().unwrap();
    browser
        .wait_for(&format!(
            "document.querySelector(\"#leaked-rows tr[data-id='{id}']\") !== null"
        ))
        .await;
    let row = browser
        .eval(&format!(
            "document.querySelector(\"#leaked-rows tr[data-id='{id}']\").innerText"
        ))
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains(&format!("Key {id}")), "{row}");
    assert!(row.contains(found_at), "{row}");
    assert!(row.contains("commit"), "{row}");
    let link = browser
        .eval("document.querySelector('#leaked-rows a').getAttribute('href')")
        .await;
    assert_eq!(link, json!(found_at));
    // The revoked key is no longer among the live ones.
    assert_eq!(row_id(&mut browser, "pushed by mistake").await, None);
    screenshot(&mut browser, "dashboard-leaked.png").await;
    browser.close().await;
    assert_eq!(server.interrupt().await, "");
}

/// A key's usage charts in a real browser: a known history (five reads, two writes its
/// scope refuses) shows as those numbers in the last bucket of both charts, in the bars'
/// titles and in the tables; the tenant's charts add a revoked key's refused call, and
/// its busiest keys list the key. Screenshots: light, and dark at 320 px.
#[tokio::test]
async fn usage_charts_show_a_keys_history_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = example_server(&dir).await;
    let client = HttpClient::new(server.addrs[0]);
    let create = async |name: &str| {
        let (status, created) = call(
            &client,
            "POST",
            "/tokens",
            &admin,
            json!({"name": name, "scopes": ["read"]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["id"].as_u64().unwrap(),
            created["token"].as_str().unwrap().to_owned(),
        )
    };
    let (charted, token) = create("charted").await;
    for _ in 0..5 {
        assert_eq!(client.get("/items", &token).await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        let (status, _) = call(&client, "POST", "/items", &token, json!({"name": "x"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (gone, gone_token) = create("gone").await;
    assert_eq!(client.get("/me", &gone_token).await.status, StatusCode::OK);
    let (status, _) = call(
        &client,
        "DELETE",
        &format!("/tokens/{gone}"),
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        client.get("/me", &gone_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The page reads what the log's writer stored: wait for the API to count it all.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, summary) = call(
            &client,
            "GET",
            &format!("/activity/summary?token_id={charted}"),
            &admin,
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        let (_, tenant) = call(&client, "GET", "/activity/summary", &admin, Value::Null).await;
        if summary["total"] == 7 && tenant["totals"]["revoked"] == 1 {
            assert_eq!(summary["totals"], json!({"ok": 5, "scope_denied": 2}));
            assert_eq!(summary["buckets"].as_array().unwrap().len(), 24);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{summary}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut browser = page_signed_in(chromium, &server, &admin).await;
    // The tenant's charts: the revoked key's refused call in its class, the key listed.
    browser
        .wait_for("document.querySelector('#tenant-usage-body figure[data-bucket=day] tr[data-start]') !== null")
        .await;
    let gone_column = browser
        .eval(
            "[...document.querySelectorAll('#tenant-usage-body figure[data-bucket=day] tr[data-start]')]
                .reduce((sum, row) => sum + Number(row.cells[3].textContent), 0)",
        )
        .await;
    assert_eq!(gone_column, json!(1));
    let busiest = browser
        .eval(&format!(
            "document.querySelector(\"#busiest li[data-id='{charted}']\").textContent"
        ))
        .await;
    assert_eq!(busiest, json!("charted — 7 requests"));
    listed(&mut browser, "charted").await;
    browser
        .click(&format!("#token-rows tr[data-id='{charted}']"), "Usage")
        .await;
    browser
        .wait_for(
            "document.querySelector('#usage-body figure[data-bucket=day] tr[data-start]') !== null",
        )
        .await;
    for bucket in ["hour", "day"] {
        let figure = format!("#usage-body figure[data-bucket={bucket}]");
        // The table is folded away (in a <details>): read its cells, not what shows.
        let last_row = browser
            .eval(&format!(
                "[...[...document.querySelectorAll('{figure} tr[data-start]')].at(-1).cells]
                    .slice(1).map(cell => cell.textContent)"
            ))
            .await;
        let cells: Vec<String> = serde_json::from_value(last_row.clone()).unwrap();
        assert_eq!(cells, ["5", "2", "0", "7"], "{bucket}: {last_row}");
        let title = browser
            .eval(&format!(
                "[...document.querySelectorAll('{figure} svg g.bucket title')].at(-1).textContent"
            ))
            .await;
        assert!(
            title
                .as_str()
                .unwrap()
                .ends_with("OK 5, Refused 2, Revoked or expired 0"),
            "{title}"
        );
        let bars = browser
            .eval(&format!(
                "document.querySelectorAll('{figure} svg rect.bar').length"
            ))
            .await;
        assert_eq!(bars, json!(2), "one bucket, two classes");
    }
    let totals = browser
        .eval("document.querySelector('#usage-body .totals').textContent")
        .await;
    assert_eq!(
        totals,
        json!("7 requests in the last 24 hours · 7 in the last 30 days")
    );
    let last_used = browser
        .eval("document.querySelector('#usage-body .last-used').textContent")
        .await;
    assert!(
        last_used.as_str().unwrap().contains("from 127.0.0.1"),
        "{last_used}"
    );
    screenshot(&mut browser, "dashboard-usage.png").await;
    // Dark, and 320 px wide: the charts shrink with the page and keep their colours.
    browser
        .command(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
        )
        .await;
    browser
        .command(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 320, "height": 900, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await;
    let width = browser
        .eval("document.querySelector('#usage-body figure[data-bucket=hour] svg').getBoundingClientRect().width")
        .await;
    assert!(width.as_f64().unwrap() <= 320.0, "{width}");
    let ok_colour = browser
        .eval("getComputedStyle(document.querySelector('#usage-body svg rect.bar.ok')).fill")
        .await;
    assert_eq!(
        ok_colour,
        json!("rgb(104, 211, 145)"),
        "the dark scheme's green"
    );
    browser
        .eval("document.getElementById('usage').scrollIntoView()")
        .await;
    screenshot(&mut browser, "dashboard-usage-dark-320.png").await;
    browser.close().await;
}

/// The tenant's webhook endpoints are listed on the page (never their secrets), and
/// another tenant's are not; the latest attempts at delivering to them are listed too.
#[cfg(feature = "webhooks")]
#[tokio::test]
async fn webhook_endpoints_are_listed_in_a_real_browser() {
    let Some(chromium) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = example_server_with(&dir, &["--allow-private-webhooks"]).await;
    let client = HttpClient::new(server.addrs[0]);
    let (status, created) = call(
        &client,
        "POST",
        "/webhooks",
        &admin,
        json!({"url": "http://127.0.0.1:9/pagerduty", "events": ["token.revoked", "token.expiring"], "description": "On call <b>"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    // A second endpoint that answers: a revoked key reaches both, one attempt each.
    let receiver = support::webhooks::Receiver::default();
    let hook = receiver.serve(&[]).await;
    let (status, answering) = call(
        &client,
        "POST",
        "/webhooks",
        &admin,
        json!({"url": hook, "events": ["token.revoked"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answering}");
    let (status, issued) = call(
        &client,
        "POST",
        "/tokens",
        &admin,
        json!({"name": "short-lived", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let path = format!("/tokens/{}", issued["id"]);
    let (status, _) = call(&client, "DELETE", &path, &admin, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for endpoint in [&created, &answering] {
        let path = format!("/webhooks/{}/deliveries", endpoint["id"]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while call(&client, "GET", &path, &admin, Value::Null).await.1["data"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            assert!(std::time::Instant::now() < deadline, "no attempt at {path}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let mut browser = page_signed_in(chromium, &server, &admin).await;
    let id = created["id"].as_u64().unwrap();
    browser
        .wait_for(&format!(
            "document.querySelector(\"#webhook-rows tr[data-id='{id}']\") !== null"
        ))
        .await;
    let row = browser
        .eval(&format!(
            "document.querySelector(\"#webhook-rows tr[data-id='{id}']\").innerText"
        ))
        .await;
    let row = row.as_str().unwrap();
    for part in [
        "http://127.0.0.1:9/pagerduty",
        "token.revoked",
        "token.expiring",
        "On call <b>",
        "active",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    browser
        .wait_for("document.querySelectorAll('#delivery-rows tr').length === 2")
        .await;
    let deliveries = browser
        .eval("[...document.querySelectorAll('#delivery-rows tr')].map((row) => row.innerText)")
        .await;
    let deliveries: Vec<&str> = deliveries
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_str().unwrap())
        .collect();
    let delivered = deliveries.iter().find(|row| row.contains(&hook)).unwrap();
    assert!(
        delivered.contains("token.revoked") && delivered.contains("204"),
        "{delivered}"
    );
    let failed = deliveries
        .iter()
        .find(|row| row.contains("pagerduty"))
        .unwrap();
    assert!(
        failed.contains("no answer") && failed.contains("could not connect"),
        "{failed}"
    );
    let page = browser.eval("document.documentElement.outerHTML").await;
    assert!(
        !page.as_str().unwrap().contains(&secret),
        "the secret is never on the page"
    );
    browser
        .eval("document.getElementById('webhooks').scrollIntoView()")
        .await;
    screenshot(&mut browser, "dashboard-webhooks.png").await;
    browser.close().await;
    assert_eq!(server.interrupt().await, "");
}
