//! tonic services behind the layer, called by a real tonic client (and by Python grpcio
//! where it is installed) over loopback.
#![cfg(feature = "grpc")]

mod support;

/// Generated from `proto/items/v1/items.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod items {
    include!("../examples/grpc/items.v1.rs");
}

use std::net::SocketAddr;

use items::items_client::ItemsClient;
use items::items_server::{Items, ItemsServer};
use items::{CreateItemRequest, Item, ListItemsRequest, ListItemsResponse};
use support::InstrumentedStore;
use support::http::HttpClient;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_bearer::grpc::GrpcScopes;
use tower_bearer::grpc::RequestPrincipalExt as _;
use tower_bearer::registry::IssueRequest;
use tower_bearer::token::{Env, PrefixedFormat};
use tower_bearer::{BearerAuthLayer, Registry};

/// Answers with what the handler saw of the principal.
struct EchoItems;

#[tonic::async_trait]
impl Items for EchoItems {
    async fn list(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<ListItemsResponse>, Status> {
        let principal = request.principal()?;
        Ok(Response::new(ListItemsResponse {
            items: vec![],
            caller: format!("{}@{}", principal.name(), principal.tenant()),
        }))
    }

    async fn create(&self, request: Request<CreateItemRequest>) -> Result<Response<Item>, Status> {
        let created_by = request.principal()?.id().get();
        Ok(Response::new(Item {
            id: 1,
            name: request.into_inner().name,
            created_by,
        }))
    }
}

struct Grpc {
    addr: SocketAddr,
    channel: Channel,
    registry: Registry,
    store: InstrumentedStore,
}

impl Grpc {
    async fn start() -> Self {
        Self::start_with(|layer, scopes| layer.grpc_scopes(scopes)).await
    }

    /// Starts the services behind the layer that `configure` makes of a plain layer and
    /// the test's method map.
    async fn start_with(
        configure: impl FnOnce(BearerAuthLayer, GrpcScopes) -> BearerAuthLayer,
    ) -> Self {
        let store = InstrumentedStore::new();
        let keys = tower_bearer::session::SessionKeys::new("grpc", &[3u8; 32]).unwrap();
        let registry = Registry::builder(store.clone())
            .sessions(tower_bearer::session::SessionConfig::new(keys))
            .build();
        let scopes = GrpcScopes::new()
            .require("/grpc.health.v1.Health/Check", "read")
            .unwrap()
            .require("/items.v1.Items/*", "read")
            .unwrap()
            .require("/items.v1.Items/Create", "write")
            .unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(configure(BearerAuthLayer::new(registry.clone()), scopes))
            .add_service(health)
            .add_service(ItemsServer::new(EchoItems))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        tokio::spawn(async move { server.await.unwrap() });
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            addr,
            channel,
            registry,
            store,
        }
    }

    async fn token(&self, name: &str, scopes: &[&str]) -> String {
        let request = IssueRequest::new(name, "acme")
            .unwrap()
            .scopes(scopes)
            .unwrap();
        let issued = self.registry.issue(request).await.unwrap();
        issued.secret.expose_secret().to_owned()
    }

    fn items(&self) -> ItemsClient<Channel> {
        ItemsClient::new(self.channel.clone())
    }
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn list(grpc: &Grpc, token: Option<&str>) -> Result<ListItemsResponse, Status> {
    grpc.items()
        .list(with_token(ListItemsRequest {}, token))
        .await
        .map(Response::into_inner)
}

async fn create(grpc: &Grpc, token: Option<&str>) -> Result<Item, Status> {
    grpc.items()
        .create(with_token(CreateItemRequest::default(), token))
        .await
        .map(Response::into_inner)
}

/// A gRPC-framed `Create` sent over HTTP/2 with a `content-type` that is not gRPC's:
/// tonic dispatches on the path alone, so the layer must too. Answers the HTTP status and
/// the `grpc-status` (header or trailer), if any.
async fn create_with_content_type(
    addr: SocketAddr,
    token: &str,
    content_type: &str,
) -> (http::StatusCode, Option<String>) {
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    let message = CreateItemRequest {
        name: "smuggled".into(),
    }
    .encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{addr}/items.v1.Items/Create"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let header = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let collected = response.into_body().collect().await.unwrap();
    let trailer = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned());
    (status, header.or(trailer))
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("expected a status");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message);
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_principal() {
    let grpc = Grpc::start().await;
    let reader = grpc.token("reader", &["read"]).await;
    let writer = grpc.token("writer", &["write"]).await;
    assert_eq!(
        list(&grpc, Some(&reader)).await.unwrap().caller,
        "reader@acme"
    );
    let writer_id = grpc.registry.verify(&writer).await.unwrap().id().get();
    assert_eq!(
        create(&grpc, Some(&writer)).await.unwrap().created_by,
        writer_id
    );
    // write implies read.
    assert_eq!(
        list(&grpc, Some(&writer)).await.unwrap().caller,
        "writer@acme"
    );
}

#[tokio::test]
async fn every_401_case_is_unauthenticated() {
    let grpc = Grpc::start().await;
    let (expired, revoked) = support::expired_and_revoked(&grpc.registry).await;
    let unknown = PrefixedFormat::default().mint(Env::Live).unwrap();
    for token in [
        None,
        Some("junk"),
        Some("sk_live_malformed"),
        Some(unknown.secret.expose_secret()),
        Some(expired.as_str()),
        Some(revoked.as_str()),
    ] {
        assert_status(
            list(&grpc, token).await,
            Code::Unauthenticated,
            "missing or invalid credentials",
        );
    }
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let grpc = Grpc::start().await;
    let reader = grpc.token("reader", &["read"]).await;
    let nothing = grpc.token("nothing", &[]).await;
    assert_status(
        create(&grpc, Some(&reader)).await,
        Code::PermissionDenied,
        "insufficient scope: requires write",
    );
    assert_status(
        list(&grpc, Some(&nothing)).await,
        Code::PermissionDenied,
        "insufficient scope: requires read",
    );

    let mut health = HealthClient::new(grpc.channel.clone());
    let check = |token: &str| {
        with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            Some(token),
        )
    };
    assert_eq!(
        health.check(check(&nothing)).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    health.check(check(&reader)).await.unwrap();
}

#[tokio::test]
async fn methods_outside_the_map_need_only_a_valid_token() {
    let grpc = Grpc::start().await;
    let nothing = grpc.token("nothing", &[]).await;
    let mut health = HealthClient::new(grpc.channel.clone());
    // Watch is not in the map: a valid token without scopes may call it.
    let mut stream = health
        .watch(with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            Some(&nothing),
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(stream.message().await.unwrap().is_some());
    let anonymous = health
        .watch(with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            None,
        ))
        .await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_unavailable() {
    let grpc = Grpc::start().await;
    let cached = grpc.token("cached", &["read"]).await;
    let fresh = grpc.token("fresh", &["read"]).await;
    list(&grpc, Some(&cached)).await.unwrap();
    grpc.store.set_down(true);
    assert_status(
        list(&grpc, Some(&fresh)).await,
        Code::Unavailable,
        "authentication temporarily unavailable",
    );
    list(&grpc, Some(&cached)).await.unwrap();
    grpc.store.set_down(false);
    list(&grpc, Some(&fresh)).await.unwrap();
}

#[tokio::test]
async fn plain_http_through_the_same_layer_keeps_the_json_contract() {
    let grpc = Grpc::start().await;
    let answer = HttpClient::new(grpc.addr)
        .send("GET", "/items.v1.Items/List", &[])
        .await;
    assert_eq!(answer.status, http::StatusCode::UNAUTHORIZED);
    assert_eq!(answer.text(), r#"{"message":"Unauthenticated."}"#);
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
}

/// The Python interpreter with grpcio: `TOWER_BEARER_PYTHON` (set by `.ci/run`), else
/// `python3` if it can import grpc.
fn python_with_grpcio() -> Option<String> {
    let candidates = std::env::var("TOWER_BEARER_PYTHON")
        .into_iter()
        .chain(["python3".to_owned()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import grpc"])
            .output()
            .is_ok_and(|out| out.status.success());
        if ok {
            return Some(python);
        }
    }
    None
}

#[tokio::test]
async fn a_python_grpcio_client_sees_the_same_statuses() {
    let Some(python) = python_with_grpcio() else {
        assert!(
            std::env::var_os("TOWER_BEARER_PYTHON").is_none(),
            "TOWER_BEARER_PYTHON is set but cannot import grpc"
        );
        eprintln!("skipped: no Python with grpcio (.ci/run installs one)");
        return;
    };
    let grpc = Grpc::start().await;
    let reader = grpc.token("reader", &["read"]).await;
    let fresh = grpc.token("fresh", &["read"]).await;
    let cases = serde_json::json!([
        {"method": "/items.v1.Items/List", "token": null},
        {"method": "/items.v1.Items/List", "token": "sk_live_nope"},
        {"method": "/items.v1.Items/List", "token": reader},
        {"method": "/items.v1.Items/Create", "token": reader},
        {"method": "/grpc.health.v1.Health/Check", "token": reader},
    ]);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/grpc_client_statuses.py"
    );
    let run = |cases: String| {
        let (python, addr) = (python.clone(), grpc.addr.to_string());
        tokio::task::spawn_blocking(move || {
            let output = std::process::Command::new(python)
                .args([script, &addr, &cases])
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        })
    };
    let seen = run(cases.to_string()).await.unwrap();
    let seen: Vec<serde_json::Value> = seen
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let codes: Vec<&str> = seen.iter().map(|s| s["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "UNAUTHENTICATED",
            "UNAUTHENTICATED",
            "OK",
            "PERMISSION_DENIED",
            "OK"
        ]
    );
    assert_eq!(seen[0]["details"], "missing or invalid credentials");
    assert_eq!(seen[3]["details"], "insufficient scope: requires write");

    grpc.store.set_down(true);
    let unavailable = serde_json::json!([{"method": "/items.v1.Items/List", "token": fresh}]);
    let seen = run(unavailable.to_string()).await.unwrap();
    assert!(seen.contains(r#""code": "UNAVAILABLE""#), "{seen}");
}

#[tokio::test]
async fn the_grpc_example_serves_its_services_behind_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grpc.db");
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
    ];
    let mut example =
        support::example::ExampleProcess::start("grpc", "grpc,sqlite,admin", &args, 2).await;
    let line = example.stdout_line().await;
    let admin = line
        .strip_prefix("admin token: ")
        .expect("the bootstrap line")
        .to_owned();

    // A read-only token, from the management API on the second port.
    let http = HttpClient::new(example.addrs[1]);
    let request = http::Request::post("/tokens")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"name":"reader","scopes":["read"]}"#,
        )))
        .unwrap();
    let created = http.request(request).await;
    assert_eq!(
        created.status,
        http::StatusCode::CREATED,
        "{}",
        created.text()
    );
    let created: serde_json::Value = serde_json::from_slice(&created.body).unwrap();
    let reader = created["token"].as_str().unwrap();

    let channel = Channel::from_shared(format!("http://{}", example.addrs[0]))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut items = ItemsClient::new(channel.clone());
    let listed = items
        .list(with_token(ListItemsRequest {}, Some(reader)))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().caller, "reader");
    let denied = items
        .create(with_token(CreateItemRequest::default(), Some(reader)))
        .await;
    assert_eq!(denied.unwrap_err().code(), Code::PermissionDenied);
    let created = items
        .create(with_token(CreateItemRequest::default(), Some(&admin)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.name, "untitled");
    let anonymous = items.list(with_token(ListItemsRequest {}, None)).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);

    // Regression (security review): a read-only token sending a gRPC-framed Create with a
    // content type that is not gRPC's reached the handler (grpc-status 0). The map is
    // enforced by path; the rejection of a request that is not gRPC is HTTP's.
    for content_type in [
        "application/octet-stream",
        "application/grpcfoo",
        "text/plain",
    ] {
        let (status, grpc_status) =
            create_with_content_type(example.addrs[0], reader, content_type).await;
        assert_eq!(status, http::StatusCode::FORBIDDEN, "{content_type}");
        assert_eq!(grpc_status, None, "{content_type}: not answered as gRPC");
    }
    let (status, grpc_status) =
        create_with_content_type(example.addrs[0], reader, "application/grpc+proto").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(grpc_status.as_deref(), Some("7"));

    let mut health = HealthClient::new(channel);
    let check = |token: Option<&str>| {
        with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            token,
        )
    };
    health.check(check(Some(reader))).await.unwrap();
    assert_eq!(
        health.check(check(None)).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    assert_eq!(example.interrupt().await, "", "exactly one line on stdout");
}

#[tokio::test]
async fn the_map_is_enforced_whatever_the_content_type() {
    let grpc = Grpc::start().await;
    let reader = grpc.token("reader", &["read"]).await;
    let writer = grpc.token("writer", &["write"]).await;
    let (status, grpc_status) =
        create_with_content_type(grpc.addr, &reader, "application/octet-stream").await;
    assert_eq!(status, http::StatusCode::FORBIDDEN);
    assert_eq!(grpc_status, None);
    let (status, grpc_status) =
        create_with_content_type(grpc.addr, &reader, "application/grpcfoo").await;
    assert_eq!((status, grpc_status), (http::StatusCode::FORBIDDEN, None));
    // A real gRPC call with the scope goes through; with grpc+proto it is answered as gRPC.
    let (status, grpc_status) =
        create_with_content_type(grpc.addr, &writer, "application/grpc+proto").await;
    assert_eq!(
        (status, grpc_status.as_deref()),
        (http::StatusCode::OK, Some("0"))
    );
    let (status, grpc_status) =
        create_with_content_type(grpc.addr, &reader, "application/grpc").await;
    assert_eq!(
        (status, grpc_status.as_deref()),
        (http::StatusCode::OK, Some("7"))
    );
}

#[tokio::test]
async fn optional_mode_still_requires_a_token_for_mapped_methods() {
    let grpc = Grpc::start_with(|layer, scopes| layer.optional().grpc_scopes(scopes)).await;
    assert_status(
        list(&grpc, None).await,
        Code::Unauthenticated,
        "missing or invalid credentials",
    );
    assert_status(
        create(&grpc, None).await,
        Code::Unauthenticated,
        "missing or invalid credentials",
    );
    // Watch is not in the map: anonymous callers may use it in optional mode.
    let mut health = HealthClient::new(grpc.channel.clone());
    let watch = health
        .watch(with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            None,
        ))
        .await;
    assert!(watch.is_ok(), "{watch:?}");
    let reader = grpc.token("reader", &["read"]).await;
    list(&grpc, Some(&reader)).await.unwrap();
}

#[tokio::test]
async fn deny_unlisted_refuses_methods_outside_the_map() {
    let grpc = Grpc::start_with(|layer, scopes| layer.grpc_scopes(scopes.deny_unlisted())).await;
    let admin = grpc.token("admin", &["admin"]).await;
    let mut health = HealthClient::new(grpc.channel.clone());
    let request = |token: Option<&str>| {
        with_token(
            HealthCheckRequest {
                service: String::new(),
            },
            token,
        )
    };
    // Watch is not listed: even an admin is refused; anonymous callers are unauthenticated.
    let denied = health.watch(request(Some(&admin))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(denied.message(), "method not permitted");
    let anonymous = health.watch(request(None)).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // Listed methods work as before.
    health.check(request(Some(&admin))).await.unwrap();
    create(&grpc, Some(&admin)).await.unwrap();
}

/// A session access token (from `Registry::login`) meets the same method scopes and
/// statuses as the key it was opened with; revoked, it is UNAUTHENTICATED.
#[tokio::test]
async fn session_access_tokens_meet_the_same_method_scopes() {
    let grpc = Grpc::start().await;
    let reader = grpc.token("reader", &["read"]).await;
    let session = grpc.registry.login(&reader, None).await.unwrap();
    let jwt = session.access_token.expose_secret().to_owned();
    let listed = list(&grpc, Some(&jwt)).await.unwrap();
    assert_eq!(listed.caller, "reader@acme");
    assert_status(
        create(&grpc, Some(&jwt)).await,
        Code::PermissionDenied,
        "insufficient scope: requires write",
    );
    let mut tampered = jwt.clone().into_bytes();
    let at = jwt.find('.').unwrap() + 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        list(&grpc, Some(&tampered)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    grpc.registry
        .revoke_session("acme", session.session.id)
        .await
        .unwrap();
    assert_eq!(
        list(&grpc, Some(&jwt)).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn a_call_over_its_keys_limit_is_resource_exhausted() {
    use tower_bearer::policy::{Policies, RateLimit};
    let grpc = Grpc::start().await;
    let limits = Policies::none().rate_limit(RateLimit::new("burst", 2, 60).unwrap());
    let request = IssueRequest::new("limited", "acme")
        .unwrap()
        .scopes(["read"])
        .unwrap()
        .policies(limits)
        .unwrap();
    let issued = grpc.registry.issue(request).await.unwrap();
    let token = issued.secret.expose_secret();
    for _ in 0..2 {
        list(&grpc, Some(token)).await.unwrap();
    }
    assert_status(
        list(&grpc, Some(token)).await,
        Code::ResourceExhausted,
        "rate limit exceeded",
    );
}
