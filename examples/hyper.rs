//! A plain hyper 1 server (no axum) behind `BearerAuthLayer`.
//!
//! ```sh
//! cargo run --example hyper -- 127.0.0.1:3002
//! curl -H "Authorization: Bearer <the printed token>" http://127.0.0.1:3002/
//! ```
//!
//! Tokens live in memory: the one printed at start is the only one.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_bearer::registry::IssueRequest;
use tower_bearer::{BearerAuthLayer, MemoryStore, Principal, Registry};

/// The application: it only ever sees authenticated requests.
async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let principal = request
        .extensions()
        .get::<Principal>()
        .expect("BearerAuthLayer inserts the principal");
    let body = format!(
        "hello, {} (token {} of tenant {})\n",
        principal.name(),
        principal.id(),
        principal.tenant()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_bearer=debug,info".into()),
        )
        .init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:3002")
        .parse()?;

    let registry = Registry::builder(MemoryStore::new()).build();
    let issued = registry
        .issue(IssueRequest::new("hyper example", "default")?.scopes(["read"])?)
        .await?;
    // Shown once, as a token should be.
    println!("token: {}", issued.secret.expose_secret());

    let service = ServiceBuilder::new()
        .layer(BearerAuthLayer::new(registry))
        .service_fn(hello);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let connection = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = connection
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection closed with an error");
            }
        });
    }
}
