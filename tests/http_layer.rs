//! The layer and the extractors over real HTTP: a server on 127.0.0.1:0, a real client,
//! the exact response contract for every preset, a catalogue of bad inputs, optional
//! mode, credential sources, and revocation under load.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::InstrumentedStore;
use support::http::{Answer, HttpClient, serve};
use tower_bearer::extract::{Scoped, WriteScope};
use tower_bearer::header::TokenSources;
use tower_bearer::layer::{BearerAuthLayer, RequireScopeLayer};
use tower_bearer::registry::IssueRequest;
use tower_bearer::reject::{Preset, Rejection};
use tower_bearer::token::{Env, Formats, PrefixedFormat};
use tower_bearer::{Principal, Registry};

const LARAVEL_401: &str = r#"{"message":"Unauthenticated."}"#;
const LARAVEL_403: &str = r#"{"message":"This action is unauthorized."}"#;
const LARAVEL_503: &str = r#"{"message":"Service Unavailable."}"#;
const DRF_401: &str = r#"{"detail":"Authentication credentials were not provided."}"#;
const DRF_403: &str = r#"{"detail":"You do not have permission to perform this action."}"#;
const ENVELOPE_401: &str = r#"{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}"#;
const ENVELOPE_403: &str = r#"{"type":"response","success":false,"description":"Forbidden","data":{},"error":{"module":"Auth","code":"FORBIDDEN","message":"Insufficient permissions"}}"#;

const CHALLENGE_MISSING: &str = r#"Bearer realm="api""#;
const CHALLENGE_INVALID_REQUEST: &str = r#"Bearer realm="api", error="invalid_request""#;
const CHALLENGE_INVALID_TOKEN: &str = r#"Bearer realm="api", error="invalid_token""#;
const CHALLENGE_SCOPE_WRITE: &str =
    r#"Bearer realm="api", error="insufficient_scope", scope="write""#;

fn app(layer: BearerAuthLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|principal: Principal| async move { axum::Json(principal) }),
        )
        .route(
            "/items",
            get(|| async { "items" })
                .route_layer(RequireScopeLayer::from_static("read"))
                .post(|_: Scoped<WriteScope>| async { (StatusCode::CREATED, "created") }),
        )
        .route(
            "/layered-write",
            axum::routing::post(|| async { "written" })
                .route_layer(RequireScopeLayer::from_static("write")),
        )
        .route(
            "/uri",
            get(|_: Principal, uri: http::Uri| async move { uri.to_string() }),
        )
        .route(
            "/maybe",
            get(|principal: Option<Principal>| async move {
                principal.map_or("anonymous".to_owned(), |p| p.name().to_owned())
            }),
        )
        .layer(layer)
}

struct Fixture {
    client: HttpClient,
    registry: Registry,
    store: InstrumentedStore,
    read_token: String,
    write_token: String,
}

async fn fixture(configure: impl FnOnce(BearerAuthLayer) -> BearerAuthLayer) -> Fixture {
    let store = InstrumentedStore::new();
    let registry = Registry::builder(store.clone())
        .formats(Formats::default().sanctum().account())
        .build();
    let issue = |scopes: &'static [&'static str]| {
        let registry = registry.clone();
        async move {
            let request = IssueRequest::new("reader", "acme")
                .unwrap()
                .scopes(scopes)
                .unwrap();
            let issued = registry.issue(request).await.unwrap();
            issued.secret.expose_secret().to_owned()
        }
    };
    let read_token = issue(&["read"]).await;
    let write_token = issue(&["write"]).await;
    let layer = configure(BearerAuthLayer::new(registry.clone()));
    let addr = serve(app(layer)).await;
    Fixture {
        client: HttpClient::new(addr),
        registry,
        store,
        read_token,
        write_token,
    }
}

#[track_caller]
fn assert_rejection(answer: &Answer, status: StatusCode, body: &str, challenge: Option<&str>) {
    assert_eq!(answer.status, status, "body: {}", answer.text());
    assert_eq!(answer.text(), body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("www-authenticate"), challenge);
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_principal() {
    let f = fixture(|layer| layer).await;
    let answer = f.client.get("/me", &f.read_token).await;
    assert_eq!(answer.status, StatusCode::OK);
    let me: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(me["name"], "reader");
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["scopes"], serde_json::json!(["read"]));
    assert!(me["expires_at"].is_string());
    assert!(!answer.text().contains(&f.read_token[8..]));

    assert_eq!(f.client.get("/items", &f.read_token).await.text(), "items");
    let created = f
        .client
        .send(
            "POST",
            "/items",
            &[format!("Bearer {}", f.write_token).as_bytes()],
        )
        .await;
    assert_eq!(
        (created.status, created.text()),
        (StatusCode::CREATED, "created")
    );
}

async fn every_row(preset: Preset, body_401: &str, body_403: &str, body_503: &str) {
    let f = fixture(|layer| layer.renderer(preset)).await;
    let c = &f.client;

    // No credentials.
    assert_rejection(
        &c.send("GET", "/me", &[]).await,
        StatusCode::UNAUTHORIZED,
        body_401,
        Some(CHALLENGE_MISSING),
    );
    // Credentials that cannot be read.
    assert_rejection(
        &c.send("GET", "/me", &[b"Bearer"]).await,
        StatusCode::UNAUTHORIZED,
        body_401,
        Some(CHALLENGE_INVALID_REQUEST),
    );
    // Malformed, unknown, expired, revoked, wrong env: invalid_token.
    let unknown = PrefixedFormat::default().mint(Env::Live).unwrap();
    let wrong_env = PrefixedFormat::default().mint(Env::Test).unwrap();
    let (expired, revoked) = support::expired_and_revoked(&f.registry).await;
    for token in [
        "sk_live_nope",
        unknown.secret.expose_secret(),
        wrong_env.secret.expose_secret(),
        expired.as_str(),
        revoked.as_str(),
    ] {
        let answer = c.get("/me", token).await;
        assert_rejection(
            &answer,
            StatusCode::UNAUTHORIZED,
            body_401,
            Some(CHALLENGE_INVALID_TOKEN),
        );
    }
    // Scope missing: from RequireScopeLayer and from the Scoped extractor alike.
    let bearer_read = format!("Bearer {}", f.read_token);
    for path in ["/layered-write", "/items"] {
        let answer = c.send("POST", path, &[bearer_read.as_bytes()]).await;
        assert_rejection(
            &answer,
            StatusCode::FORBIDDEN,
            body_403,
            Some(CHALLENGE_SCOPE_WRITE),
        );
    }
    // The store cannot answer a cache miss.
    let fresh = f
        .registry
        .issue(IssueRequest::new("f", "acme").unwrap())
        .await
        .unwrap();
    f.store.set_down(true);
    let answer = c.get("/me", fresh.secret.expose_secret()).await;
    assert_rejection(&answer, StatusCode::SERVICE_UNAVAILABLE, body_503, None);
    assert_eq!(answer.header("retry-after"), Some("5"));
    // Cached tokens keep working while the store is down.
    assert_eq!(c.get("/me", &f.read_token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn laravel_preset_answers_every_row_of_the_contract() {
    every_row(Preset::laravel(), LARAVEL_401, LARAVEL_403, LARAVEL_503).await;
}

#[tokio::test]
async fn drf_preset_answers_every_row_of_the_contract() {
    every_row(
        Preset::drf(),
        DRF_401,
        DRF_403,
        r#"{"detail":"Service temporarily unavailable, try again later."}"#,
    )
    .await;
}

#[tokio::test]
async fn envelope_preset_answers_every_row_of_the_contract() {
    every_row(
        Preset::envelope(),
        ENVELOPE_401,
        ENVELOPE_403,
        r#"{"type":"response","success":false,"description":"Service Unavailable","data":{},"error":{"module":"Auth","code":"SERVICE_UNAVAILABLE","message":"Authentication temporarily unavailable"}}"#,
    )
    .await;
}

#[tokio::test]
async fn a_closure_renderer_and_a_custom_realm() {
    let f = fixture(|layer| {
        layer
            .realm("billing \"v2\"")
            .renderer(|rejection: &Rejection| {
                http::Response::builder()
                    .status(rejection.status())
                    .header("content-type", "application/problem+json")
                    .body(Bytes::from(format!(
                        r#"{{"status":{}}}"#,
                        rejection.status().as_u16()
                    )))
                    .unwrap()
            })
    })
    .await;
    let answer = f.client.send("GET", "/me", &[]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.text(), r#"{"status":401}"#);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="billing \"v2\"""#)
    );
    let forbidden = f
        .client
        .send(
            "POST",
            "/items",
            &[format!("Bearer {}", f.read_token).as_bytes()],
        )
        .await;
    assert_eq!(forbidden.text(), r#"{"status":403}"#);
}

/// What a bad input must be answered with: 401, the Laravel body, and this challenge.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Missing,
    InvalidRequest,
    InvalidToken,
    Ok,
}

#[tokio::test]
async fn a_catalogue_of_bad_inputs_is_answered_exactly_and_never_with_a_500() {
    let f = fixture(|layer| layer).await;
    let valid = f.read_token.clone();
    let sanctum = f
        .registry
        .issue(IssueRequest::new("s", "acme").unwrap())
        .await
        .unwrap();
    let sanctum_id = sanctum.info.id;
    let mut bad_checksum = valid.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'x' { 'y' } else { 'x' });
    let wrong_env = PrefixedFormat::default()
        .mint(Env::Test)
        .unwrap()
        .secret
        .expose_secret()
        .to_owned();
    let huge = format!("Bearer {}", "a".repeat(16 * 1024));
    let account_ok = STANDARD.encode(format!("acme:{valid}"));
    let account_other = STANDARD.encode(format!("globex:{valid}"));
    let account_unpadded = account_ok.trim_end_matches('=').to_owned();

    let b = |s: String| s.into_bytes();
    let cases: Vec<(&str, Vec<Vec<u8>>, Expect)> = vec![
        ("no header", vec![], Expect::Missing),
        (
            "empty header",
            vec![b(String::new())],
            Expect::InvalidRequest,
        ),
        (
            "scheme alone",
            vec![b("Bearer".into())],
            Expect::InvalidRequest,
        ),
        (
            "scheme and a space",
            vec![b("Bearer ".into())],
            Expect::InvalidRequest,
        ),
        (
            "scheme and tabs",
            vec![b("Bearer\t\t".into())],
            Expect::InvalidRequest,
        ),
        (
            "lowercase scheme",
            vec![b(format!("bearer {valid}"))],
            Expect::Ok,
        ),
        (
            "uppercase scheme",
            vec![b(format!("BEARER {valid}"))],
            Expect::Ok,
        ),
        (
            "lowercase scheme, junk",
            vec![b("bearer x".into())],
            Expect::InvalidToken,
        ),
        (
            "uppercase scheme, junk",
            vec![b("BEARER x".into())],
            Expect::InvalidToken,
        ),
        (
            "basic scheme",
            vec![b("Basic dXNlcjpwYXNz".into())],
            Expect::Missing,
        ),
        (
            "token scheme",
            vec![b(format!("Token {valid}"))],
            Expect::Missing,
        ),
        (
            "no space after scheme",
            vec![b(format!("Bearer{valid}"))],
            Expect::Missing,
        ),
        (
            "tab after scheme",
            vec![b(format!("Bearer\t{valid}"))],
            Expect::Ok,
        ),
        (
            "double space after scheme",
            vec![b(format!("Bearer  {valid}"))],
            Expect::Ok,
        ),
        (
            "trailing spaces",
            vec![b(format!("Bearer {valid}   "))],
            Expect::Ok,
        ),
        (
            "two headers",
            vec![b(format!("Bearer {valid}")), b(format!("Bearer {valid}"))],
            Expect::InvalidRequest,
        ),
        (
            "two headers, one junk",
            vec![b(format!("Bearer {valid}")), b("Basic x".into())],
            Expect::InvalidRequest,
        ),
        (
            "non-UTF-8 bytes",
            vec![b"Bearer \xff\xfe\xfd".to_vec()],
            Expect::InvalidRequest,
        ),
        (
            "latin-1 byte in token",
            vec![[b"Bearer ".as_slice(), valid.as_bytes(), b"\xe9"].concat()],
            Expect::InvalidRequest,
        ),
        ("16 KiB header", vec![b(huge)], Expect::InvalidRequest),
        (
            "unicode",
            vec![b("Bearer ключ-доступа".into())],
            Expect::InvalidRequest,
        ),
        (
            "space inside token",
            vec![b(format!("Bearer {} {}", &valid[..10], &valid[10..]))],
            Expect::InvalidRequest,
        ),
        (
            "extra word",
            vec![b(format!("Bearer {valid} extra"))],
            Expect::InvalidRequest,
        ),
        (
            "comma",
            vec![b(format!("Bearer {valid},"))],
            Expect::InvalidRequest,
        ),
        (
            "quoted token",
            vec![b(format!("Bearer \"{valid}\""))],
            Expect::InvalidRequest,
        ),
        (
            "leading padding",
            vec![b("Bearer =abc".into())],
            Expect::InvalidRequest,
        ),
        (
            "only padding",
            vec![b("Bearer ==".into())],
            Expect::InvalidRequest,
        ),
        (
            "trailing padding",
            vec![b(format!("Bearer {valid}=="))],
            Expect::InvalidToken,
        ),
        (
            "base64 of nothing useful",
            vec![b("Bearer Zm9vYmFy".into())],
            Expect::InvalidToken,
        ),
        (
            "bad checksum",
            vec![b(format!("Bearer {bad_checksum}"))],
            Expect::InvalidToken,
        ),
        (
            "truncated",
            vec![b(format!("Bearer {}", &valid[..valid.len() - 1]))],
            Expect::InvalidToken,
        ),
        (
            "wrong prefix",
            vec![b(format!("Bearer pk{}", &valid[2..]))],
            Expect::InvalidToken,
        ),
        (
            "wrong env",
            vec![b(format!("Bearer {wrong_env}"))],
            Expect::InvalidToken,
        ),
        (
            "unknown env",
            vec![b(format!("Bearer sk_prod{}", &valid[7..]))],
            Expect::InvalidToken,
        ),
        (
            "sanctum, non-numeric id",
            vec![b("Bearer abc|secret".into())],
            Expect::InvalidToken,
        ),
        (
            "sanctum, empty id",
            vec![b("Bearer |secret".into())],
            Expect::InvalidToken,
        ),
        (
            "sanctum, unknown secret",
            vec![b(format!("Bearer {sanctum_id}|nosuchsecret"))],
            Expect::InvalidToken,
        ),
        (
            "sanctum, two bars",
            vec![b("Bearer 1|a|b".into())],
            Expect::InvalidToken,
        ),
        (
            "account, broken base64",
            vec![b("Bearer YWJjZ".into())],
            Expect::InvalidToken,
        ),
        (
            "account, no colon",
            vec![b(format!("Bearer {}", STANDARD.encode("acme")))],
            Expect::InvalidToken,
        ),
        (
            "account, other tenant",
            vec![b(format!("Bearer {account_other}"))],
            Expect::InvalidToken,
        ),
        (
            "account, right tenant",
            vec![b(format!("Bearer {account_ok}"))],
            Expect::Ok,
        ),
        (
            "account, no padding",
            vec![b(format!("Bearer {account_unpadded}"))],
            Expect::Ok,
        ),
        (
            "prefixed token with a bar",
            vec![b(format!("Bearer {valid}|"))],
            Expect::InvalidToken,
        ),
        (
            "500 junk characters",
            vec![b(format!("Bearer {}", "z".repeat(500)))],
            Expect::InvalidToken,
        ),
    ];
    assert!(cases.iter().filter(|c| !matches!(c.2, Expect::Ok)).count() >= 30);

    for (name, headers, expect) in cases {
        let headers: Vec<&[u8]> = headers.iter().map(Vec::as_slice).collect();
        let answer = f.client.send("GET", "/me", &headers).await;
        let challenge = match expect {
            Expect::Ok => {
                assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.text());
                continue;
            }
            Expect::Missing => CHALLENGE_MISSING,
            Expect::InvalidRequest => CHALLENGE_INVALID_REQUEST,
            Expect::InvalidToken => CHALLENGE_INVALID_TOKEN,
        };
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(answer.text(), LARAVEL_401, "{name}");
        assert_eq!(answer.header("www-authenticate"), Some(challenge), "{name}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{name}"
        );
    }
    // None of the junk above reached the store.
    assert!(f.store.lookups() <= 3, "lookups: {}", f.store.lookups());
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let f = fixture(BearerAuthLayer::optional).await;
    let anonymous = f.client.send("GET", "/maybe", &[]).await;
    assert_eq!(
        (anonymous.status, anonymous.text()),
        (StatusCode::OK, "anonymous")
    );
    assert_eq!(f.client.get("/maybe", &f.read_token).await.text(), "reader");
    let bad = f.client.get("/maybe", "sk_live_nope").await;
    assert_rejection(
        &bad,
        StatusCode::UNAUTHORIZED,
        LARAVEL_401,
        Some(CHALLENGE_INVALID_TOKEN),
    );
    // Routes that need a principal still answer 401 to anonymous requests.
    for (method, path) in [("GET", "/me"), ("GET", "/items"), ("POST", "/items")] {
        let answer = f.client.send(method, path, &[]).await;
        assert_rejection(
            &answer,
            StatusCode::UNAUTHORIZED,
            LARAVEL_401,
            Some(CHALLENGE_MISSING),
        );
    }
}

#[tokio::test]
async fn a_handler_without_the_layer_gets_a_500_naming_it() {
    let app = Router::new()
        .route(
            "/me",
            get(|p: Principal| async move { p.name().to_owned() }),
        )
        .route(
            "/scoped",
            get(|| async { "x" }).route_layer(RequireScopeLayer::from_static("read")),
        );
    let client = HttpClient::new(serve(app).await);
    for path in ["/me", "/scoped"] {
        let answer = client.send("GET", path, &[]).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            answer.text().contains("BearerAuthLayer"),
            "{}",
            answer.text()
        );
    }
}

#[tokio::test]
async fn query_and_cookie_sources_are_opt_in() {
    let f =
        fixture(|layer| layer.sources(TokenSources::new().query_param().cookie("api_token"))).await;
    let plain = fixture(|layer| layer).await;
    let query = format!("/me?access_token={}", f.read_token);
    let by_query = Request::get(&query).body(Full::default()).unwrap();
    assert_eq!(f.client.request(by_query).await.status, StatusCode::OK);
    let by_cookie = Request::get("/me")
        .header("cookie", format!("theme=dark; api_token={}", f.read_token))
        .body(Full::default())
        .unwrap();
    assert_eq!(f.client.request(by_cookie).await.status, StatusCode::OK);
    let both = Request::get(&query)
        .header("authorization", format!("Bearer {}", f.read_token))
        .body(Full::default())
        .unwrap();
    let answer = f.client.request(both).await;
    assert_rejection(
        &answer,
        StatusCode::UNAUTHORIZED,
        LARAVEL_401,
        Some(CHALLENGE_INVALID_REQUEST),
    );

    let ignored = Request::get(format!("/me?access_token={}", plain.read_token))
        .body(Full::default())
        .unwrap();
    let answer = plain.client.request(ignored).await;
    assert_rejection(
        &answer,
        StatusCode::UNAUTHORIZED,
        LARAVEL_401,
        Some(CHALLENGE_MISSING),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_request_sent_after_revoke_returns_is_authenticated() {
    let f = fixture(|layer| layer).await;
    let issued = f
        .registry
        .issue(IssueRequest::new("hammered", "acme").unwrap())
        .await
        .unwrap();
    let token = Arc::new(issued.secret.expose_secret().to_owned());
    let revoked_at: Arc<std::sync::OnceLock<std::time::Instant>> = Default::default();

    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (client, token, revoked_at) = (f.client.clone(), token.clone(), revoked_at.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let sent = std::time::Instant::now();
                    let status = client.get("/me", &token).await.status;
                    seen.push((sent, status));
                    if revoked_at
                        .get()
                        .is_some_and(|at| sent > *at + Duration::from_millis(200))
                    {
                        return seen;
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(200)).await;
    f.registry.revoke("acme", issued.info.id).await.unwrap();
    let at = std::time::Instant::now();
    revoked_at.set(at).unwrap();

    let (mut before, mut after) = (0, 0);
    for client in clients {
        for (sent, status) in client.await.unwrap() {
            if sent > at {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "a request sent after revoke got {status}"
                );
                after += 1;
            } else if status == StatusCode::OK {
                before += 1;
            }
        }
    }
    assert!(before > 0 && after > 0, "before: {before}, after: {after}");
}

#[tokio::test]
async fn a_query_string_token_is_scrubbed_before_the_handler_and_the_answer_is_private() {
    let f = fixture(|layer| layer.sources(TokenSources::new().query_param())).await;
    // The first request is a cache miss (the store path), the second a cache hit.
    for _path in ["miss", "hit"] {
        let path = format!("/uri?page=2&access_token={}&sort=a%20b", f.read_token);
        let answer = f
            .client
            .request(Request::get(&path).body(Full::default()).unwrap())
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.text(), "/uri?page=2&sort=a%20b");
        assert!(!answer.text().contains(&f.read_token));
        assert_eq!(answer.header("cache-control"), Some("private"));
    }
    // A header token leaves the URI and the caching headers alone.
    let answer = f.client.get("/uri?page=2", &f.read_token).await;
    assert_eq!(answer.text(), "/uri?page=2");
    assert_eq!(answer.header("cache-control"), None);
}
