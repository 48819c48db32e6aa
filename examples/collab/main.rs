//! collab: a small real-time service in the shape of the chat/presence APIs whose browser
//! SDKs authenticate a WebSocket with an end user's JWT. SQLite storage.
//!
//! ```sh
//! cargo run --example collab --features sqlite,exchange,ws
//! cargo run --example collab --features sqlite,exchange,ws -- --addr 127.0.0.1:3002 --db collab.db
//! ```
//!
//! The first start on an empty database prints `account id: <id>` and `api key: <key>`
//! (the key is shown once and stored hashed). REST calls authenticate with
//! `Authorization: Bearer base64(accountId:apiKey)`:
//!
//! - `GET /v1/accounts/{accountId}/rooms`: the account's rooms;
//! - `POST /v1/accounts/{accountId}/users` `{"name","roomId"}`: a user with a new UUID and
//!   its token (a JWT, 90 days): `{"success":true,"data":{"user":{"id","name","status"},"token"}}`;
//! - `DELETE /v1/accounts/{accountId}/users/{userId}`: revokes the user's tokens (its
//!   sockets get `authFailed` at once).
//!
//! `GET /v1/socket` upgrades to a WebSocket authenticated with the user's token (the
//! subprotocol pair `bearer, <token>`, the `Authorization` header, or a first message
//! `{"type":"auth","token":"…"}`); the server answers `{"event":"authenticated","user":…}`,
//! and relays `{"type":"message","text":"…"}` to the other sockets of the user's room as
//! `{"event":"message","from":"<userId>","text":"…"}`. `GET /` is a one-page browser
//! client. Errors use the response envelope. Users (names, rooms, presence) live in
//! memory; their tokens live in the database.

// Shared with the other examples: collab mints its own account instead of an admin.
#[allow(dead_code)]
#[path = "../common/bootstrap.rs"]
mod bootstrap;
#[path = "../common/session_key.rs"]
mod session_key;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tower_bearer::registry::{IssueRequest, UserTokenRequest};
use tower_bearer::reject::Preset;
use tower_bearer::session::{DEFAULT_USER_TOKEN_LIFETIME, SessionConfig};
use tower_bearer::store::SqliteStore;
use tower_bearer::token::Formats;
use tower_bearer::ws::SocketAuth;
use tower_bearer::{BearerAuthLayer, Principal, Registry, TokenKind};

const USAGE: &str = "\
usage: collab [--addr HOST:PORT] [--db PATH] [--user-token-lifetime SECONDS]
              [--session-key-file PATH]

  --addr                 where to listen (default 127.0.0.1:3002)
  --db                   the SQLite file (default collab.db, created if missing)
  --user-token-lifetime  seconds a user's token is valid (default 7776000: 90 days)
  --session-key-file     the key user tokens are signed with, in hex, mode 0600 (default:
                         $TOWER_BEARER_SESSION_KEY (hex), else
                         $XDG_STATE_HOME/tower-bearer/session-key (~/.local/state/…),
                         created when missing; never beside the database)";

/// The rooms every account has.
const ROOMS: [(&str, &str); 2] = [("lobby", "Lobby"), ("general", "General")];

struct Args {
    addr: SocketAddr,
    db: String,
    user_token_lifetime: Duration,
    session_key_file: Option<PathBuf>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3002)),
        db: "collab.db".to_owned(),
        user_token_lifetime: DEFAULT_USER_TOKEN_LIFETIME,
        session_key_file: None,
    };
    bootstrap::parse_flags(args, &[], |flag, value| {
        match flag {
            "--addr" => parsed.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--db" => parsed.db = value,
            "--user-token-lifetime" => {
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|seconds| (1..=365 * 86_400).contains(seconds))
                    .ok_or_else(|| {
                        format!("--user-token-lifetime {value}: expected 1 to 31536000")
                    })?;
                parsed.user_token_lifetime = Duration::from_secs(seconds);
            }
            "--session-key-file" => parsed.session_key_file = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

#[derive(Clone)]
struct User {
    id: String,
    name: String,
    room_id: String,
    sockets: usize,
}

/// A message relayed to a room, with the socket that sent it (not echoed to it).
#[derive(Clone)]
struct Relayed {
    from: String,
    text: String,
    socket: u64,
}

struct App {
    registry: Registry,
    lifetime: Duration,
    users: Mutex<HashMap<(String, String), User>>,
    rooms: Mutex<HashMap<(String, String), broadcast::Sender<Relayed>>>,
    next_socket: std::sync::atomic::AtomicU64,
}

type Shared = Arc<App>;

/// An error in the response envelope.
fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "type": "response",
        "success": false,
        "description": status.canonical_reason().unwrap_or("Error"),
        "data": {},
        "error": {"module": "Collab", "code": code, "message": message},
    });
    (status, Json(body)).into_response()
}

fn success(status: StatusCode, data: Value) -> Response {
    (status, Json(json!({"success": true, "data": data}))).into_response()
}

/// The caller must be the account's API key (not a user's token) for that account:
/// `Some(403)` otherwise.
fn check_account(principal: &Principal, account: &str) -> Option<Response> {
    (principal.kind() != TokenKind::ApiKey || principal.tenant() != account).then(|| {
        envelope(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "This account is not yours.",
        )
    })
}

async fn rooms(
    State(app): State<Shared>,
    principal: Principal,
    Path(account): Path<String>,
) -> Response {
    if let Some(refused) = check_account(&principal, &account) {
        return refused;
    }
    let users = app.users.lock().unwrap_or_else(|e| e.into_inner());
    let rooms: Vec<Value> = ROOMS
        .iter()
        .map(|(id, name)| {
            let online = users
                .values()
                .filter(|user| user.room_id == *id && user.sockets > 0)
                .count();
            json!({"id": id, "name": name, "online": online})
        })
        .collect();
    drop(users);
    success(StatusCode::OK, json!({ "rooms": rooms }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUser {
    name: String,
    room_id: String,
}

async fn create_user(
    State(app): State<Shared>,
    principal: Principal,
    Path(account): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = check_account(&principal, &account) {
        return refused;
    }
    let Ok(new) = serde_json::from_slice::<NewUser>(&body) else {
        return envelope(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "The body must be {\"name\": string, \"roomId\": string}.",
        );
    };
    let name = new.name.trim();
    if name.is_empty() || name.len() > 100 || !ROOMS.iter().any(|(id, _)| *id == new.room_id) {
        return envelope(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_ERROR",
            "The name must be 1 to 100 characters and roomId one of the account's rooms.",
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    let request = UserTokenRequest::new(&account, &id)
        .and_then(|request| request.name(name).claim("roomId", new.room_id.as_str()))
        .and_then(|request| request.lifetime(app.lifetime));
    let issued = match request {
        Ok(request) => app.registry.issue_user_token(request).await,
        Err(problem) => {
            return envelope(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_ERROR",
                &problem.to_string(),
            );
        }
    };
    let token = match issued {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(%error, "could not issue a user token");
            return envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Try again later.",
            );
        }
    };
    let user = User {
        id: id.clone(),
        name: name.to_owned(),
        room_id: new.room_id,
        sockets: 0,
    };
    app.users
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((account, id.clone()), user);
    let mut response = success(
        StatusCode::CREATED,
        json!({
            "user": {"id": id, "name": name, "status": "offline"},
            "token": token.access_token.expose_secret(),
        }),
    );
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn delete_user(
    State(app): State<Shared>,
    principal: Principal,
    Path((account, user_id)): Path<(String, String)>,
) -> Response {
    if let Some(refused) = check_account(&principal, &account) {
        return refused;
    }
    match app.registry.revoke_user(&account, &user_id).await {
        Ok(revoked) => {
            app.users
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(account, user_id));
            success(StatusCode::OK, json!({ "revoked": revoked }))
        }
        Err(error) => {
            tracing::warn!(%error, "could not revoke a user");
            envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                "Try again later.",
            )
        }
    }
}

async fn socket(
    State(app): State<Shared>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let auth = SocketAuth::new(app.registry.clone());
    // Many idle subscribers: a small read buffer (tungstenite's default is 128 KiB).
    let ws = ws.read_buffer_size(4096);
    auth.upgrade(ws, &headers, &uri, move |mut socket| async move {
        let principal = socket.principal().clone();
        let (Some(user_id), account) = (principal.owner(), principal.tenant()) else {
            return; // an API key, not a user: nothing to chat about
        };
        let key = (account.to_owned(), user_id.to_owned());
        let user = {
            let mut users = app.users.lock().unwrap_or_else(|e| e.into_inner());
            // The room signed into the token: it holds after a restart, when this map
            // starts empty.
            let room_id = principal
                .claims()
                .and_then(|claims| claims.get("roomId")?.as_str())
                .filter(|room| ROOMS.iter().any(|(id, _)| id == room))
                .unwrap_or(ROOMS[0].0);
            let user = users.entry(key.clone()).or_insert_with(|| User {
                id: user_id.to_owned(),
                name: principal.name().to_owned(),
                room_id: room_id.to_owned(),
                sockets: 0,
            });
            user.sockets += 1;
            user.clone()
        };
        let me = app
            .next_socket
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let room = app
            .rooms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((account.to_owned(), user.room_id.clone()))
            .or_insert_with(|| broadcast::channel(256).0)
            .clone();
        let mut relayed = room.subscribe();
        let hello = json!({
            "event": "authenticated",
            "user": {"id": user.id, "name": user.name, "roomId": user.room_id},
        });
        if socket.send(Message::text(hello.to_string())).await.is_ok() {
            loop {
                tokio::select! {
                    received = socket.recv() => {
                        let text = match received {
                            Some(Ok(Message::Text(text))) => text,
                            // Keepalives (tungstenite answers pings itself), and frames
                            // this protocol does not use: the socket goes on.
                            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Binary(_))) => continue,
                            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                        };
                        let message: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                        if message["type"] == "message" {
                            if let Some(text) = message["text"].as_str() {
                                let _ = room.send(Relayed { from: user.id.clone(), text: text.to_owned(), socket: me });
                            }
                        }
                    }
                    incoming = relayed.recv() => {
                        let Ok(incoming) = incoming else { continue };
                        if incoming.socket == me {
                            continue;
                        }
                        let event = json!({"event": "message", "from": incoming.from, "text": incoming.text});
                        if socket.send(Message::text(event.to_string())).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        if let Some(user) = app
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&key)
        {
            user.sockets = user.sockets.saturating_sub(1);
        }
    })
    .await
}

fn app(shared: Shared) -> Router {
    let registry = shared.registry.clone();
    let router = Router::new()
        .route("/", get(|| async { Html(include_str!("page.html")) }))
        .route("/v1/socket", get(socket))
        .route("/v1/accounts/{account}/rooms", get(rooms))
        .route(
            "/v1/accounts/{account}/users",
            axum::routing::post(create_user),
        )
        .route("/v1/accounts/{account}/users/{user}", delete(delete_user))
        .with_state(shared);
    let service = BearerAuthLayer::new(registry)
        .renderer(Preset::envelope())
        .public(["/", "/v1/socket"])
        .protect(router);
    Router::new().fallback_service(service)
}

/// The account and its API key, minted once per database.
async fn bootstrap_account(registry: &Registry) -> Result<(), Box<dyn std::error::Error>> {
    let account = uuid::Uuid::new_v4().to_string();
    let request = IssueRequest::new("account key", &account)?
        .scopes(["admin"])?
        .expires(tower_bearer::registry::Expiry::Never);
    if let Some(issued) = registry.issue_once("collab-account", request).await? {
        println!("account id: {account}");
        println!("api key: {}", issued.secret.expose_secret());
    }
    Ok(())
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let store = SqliteStore::open(&args.db).await?;
    let keys = session_key::load_or_exit(args.session_key_file.as_deref());
    let registry = Registry::builder(store)
        .formats(Formats::default().account())
        .sessions(SessionConfig::new(keys))
        .build();
    bootstrap_account(&registry).await?;
    session_key::reload_on_hangup(registry.clone(), args.session_key_file.clone());
    let shared = Arc::new(App {
        registry: registry.clone(),
        lifetime: args.user_token_lifetime,
        users: Mutex::default(),
        rooms: Mutex::default(),
        next_socket: std::sync::atomic::AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let shutdown = bootstrap::shutdown_signal();
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app(shared))
        .with_graceful_shutdown(shutdown)
        .await?;
    registry.flush().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::init_tracing();
    bootstrap::run_main(USAGE, parse_args(std::env::args().skip(1)), run).await
}
