//! The layer in a plain hyper 1 server, without axum, as in `examples/hyper.rs`.

mod support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use support::http::HttpClient;
use tower::ServiceBuilder;
use tower_bearer::registry::IssueRequest;
use tower_bearer::reject::Preset;
use tower_bearer::{BearerAuthLayer, MemoryStore, Principal, Registry};

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let principal = request.extensions().get::<Principal>().unwrap();
    Ok(Response::new(Full::new(Bytes::from(format!(
        "hello, {}",
        principal.name()
    )))))
}

#[tokio::test]
async fn a_plain_hyper_server_authenticates_with_the_layer() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(IssueRequest::new("hyper client", "default").unwrap())
        .await
        .unwrap();
    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(registry).renderer(Preset::drf()))
        .service_fn(hello);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    let client = HttpClient::new(addr);
    let ok = client.get("/", issued.secret.expose_secret()).await;
    assert_eq!(
        (ok.status, ok.text()),
        (StatusCode::OK, "hello, hyper client")
    );
    let missing = client.send("GET", "/", &[]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.text(),
        r#"{"detail":"Authentication credentials were not provided."}"#
    );
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
}
