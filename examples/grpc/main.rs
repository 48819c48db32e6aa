//! The gRPC example: tonic services behind `BearerAuthLayer`, on SQLite.
//!
//! ```sh
//! cargo run --example grpc --features grpc,sqlite,admin
//! ```
//!
//! Serves `grpc.health.v1.Health` (`Check` and `Watch` need scope `read`) and
//! `items.v1.Items` (`List` needs `read`, `Create` needs `write`) on `--addr`
//! (default `127.0.0.1:50051`), and the HTTP management API (`/tokens`) over the same
//! database on `--http-addr` (default `127.0.0.1:3001`), to issue read-only tokens for
//! trying things out. On first start with an empty database (`--db`, default
//! `tower-bearer-grpc.db`) it prints `admin token: <token>`, once.
//!
//! With grpcurl (which needs the proto, as the server has no reflection):
//!
//! ```sh
//! grpcurl -plaintext -import-path proto -proto items/v1/items.proto \
//!   -H "authorization: Bearer $ADMIN" 127.0.0.1:50051 items.v1.Items/List
//! ```

#[path = "../common/bootstrap.rs"]
mod bootstrap;

/// Generated from `proto/items/v1/items.proto` (see `tests/grpc_codegen.rs`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
mod items {
    include!("items.v1.rs");
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use items::items_server::{Items, ItemsServer};
use items::{CreateItemRequest, Item, ListItemsRequest, ListItemsResponse};
use tonic::{Request, Response, Status};
use tower_bearer::grpc::GrpcScopes;
use tower_bearer::grpc::RequestPrincipalExt as _;
use tower_bearer::store::SqliteStore;
use tower_bearer::{BearerAuthLayer, Registry, admin};

const USAGE: &str = "\
usage: grpc [--addr HOST:PORT] [--http-addr HOST:PORT] [--db PATH]

  --addr       where gRPC listens (default 127.0.0.1:50051)
  --http-addr  where the HTTP management API listens (default 127.0.0.1:3001)
  --db         the SQLite file (default tower-bearer-grpc.db, created if missing)";

struct Args {
    addr: SocketAddr,
    http_addr: SocketAddr,
    db: PathBuf,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
        db: PathBuf::from("tower-bearer-grpc.db"),
    };
    bootstrap::parse_flags(args, &[], |flag, value| {
        match flag {
            "--addr" => parsed.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--http-addr" => {
                parsed.http_addr = value
                    .parse()
                    .map_err(|e| format!("--http-addr {value}: {e}"))?
            }
            "--db" => parsed.db = PathBuf::from(value),
            other => return Err(format!("unknown flag {other}")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

/// `items.v1.Items`: items kept in memory per tenant.
#[derive(Default)]
struct ItemsService {
    items: Mutex<BTreeMap<String, Vec<Item>>>,
}

#[tonic::async_trait]
impl Items for ItemsService {
    async fn list(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<ListItemsResponse>, Status> {
        let principal = request.principal()?;
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Response::new(ListItemsResponse {
            items: items.get(principal.tenant()).cloned().unwrap_or_default(),
            caller: principal.name().to_owned(),
        }))
    }

    async fn create(&self, request: Request<CreateItemRequest>) -> Result<Response<Item>, Status> {
        let principal = request.principal()?.clone();
        let name = request.into_inner().name;
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let tenant_items = items.entry(principal.tenant().to_owned()).or_default();
        let item = Item {
            id: tenant_items.len() as u64 + 1,
            name: if name.is_empty() {
                "untitled".to_owned()
            } else {
                name
            },
            created_by: principal.id().get(),
        };
        tenant_items.push(item.clone());
        Ok(Response::new(item))
    }
}

/// The scope each method needs; methods not listed are refused, so that a method added
/// later stays closed until someone decides who may call it.
fn method_scopes() -> Result<GrpcScopes, tower_bearer::grpc::InvalidGrpcScope> {
    Ok(GrpcScopes::new()
        .require("/grpc.health.v1.Health/*", "read")?
        .require("/items.v1.Items/List", "read")?
        .require("/items.v1.Items/Create", "write")?
        .deny_unlisted())
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(&args.db).await?;
    let registry = Registry::builder(store).build();
    bootstrap::bootstrap_admin(&registry, None).await?;
    // The method map is enforced by path: it goes on the gRPC server's layer only; the
    // HTTP management API gets a layer of its own.
    let grpc_auth = BearerAuthLayer::new(registry.clone()).grpc_scopes(method_scopes()?);
    let http_auth = BearerAuthLayer::new(registry.clone());

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<ItemsServer<ItemsService>>()
        .await;

    let grpc_listener = tokio::net::TcpListener::bind(args.addr).await?;
    let http_listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    let (grpc_shutdown, http_shutdown) =
        (bootstrap::shutdown_signal(), bootstrap::shutdown_signal());
    eprintln!("gRPC listening on http://{}", grpc_listener.local_addr()?);
    eprintln!(
        "management API listening on http://{}",
        http_listener.local_addr()?
    );

    let grpc = tonic::transport::Server::builder()
        .layer(grpc_auth)
        .add_service(health)
        .add_service(ItemsServer::new(ItemsService::default()))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(grpc_listener),
            grpc_shutdown,
        );
    let http = axum::serve(
        http_listener,
        admin::router(registry.clone()).layer(http_auth),
    )
    .with_graceful_shutdown(http_shutdown);
    let (grpc, http) = tokio::join!(grpc, http);
    grpc?;
    http?;
    let flushed = registry.flush().await?;
    tracing::info!(tokens = flushed, "usage flushed");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::init_tracing();
    bootstrap::run_main(USAGE, parse_args(std::env::args().skip(1)), run).await
}
