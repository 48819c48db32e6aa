//! Authenticated WebSockets (feature `ws`): the token at the handshake or in a first
//! message, an `authFailed` event instead of a rejected handshake, and sockets closed the
//! moment their token is revoked or expires.
//!
//! Browsers cannot set `Authorization` on a WebSocket, and a refused handshake reaches
//! their JavaScript only as close code 1006. So [`SocketAuth::upgrade`] accepts the
//! upgrade and then speaks: on failure it sends `{"event":"authFailed"}` and closes with
//! code 4001, reason "authentication failed": the same event and code for a missing,
//! invalid, expired or revoked token (no oracle). The token may come from, in this order
//! of preference for each kind of client:
//!
//! - the `Authorization: Bearer …` header (non-browser clients);
//! - the subprotocol pair `Sec-WebSocket-Protocol: bearer, <token>` (browsers:
//!   `new WebSocket(url, ["bearer", token])`); the server selects `bearer` and never echoes
//!   the token;
//! - a first message `{"type":"auth","token":"…"}` within a timeout (default 10 s);
//! - the `access_token` query parameter, only when enabled ([`SocketAuth::query_token`]).
//!
//! A request may carry its token in one place only. Any token the registry accepts
//! works: API keys, session access tokens from `POST /auth/login`.
//!
//! For the life of the connection the token is [watched](crate::registry::Registry::watch): when it
//! is revoked (on this node at once, on others when the change feed delivers, or when
//! this node's cached entry goes stale and the store is asked again) or expires,
//! the handler is stopped, and the client gets `authFailed` and 4001 too.
//!
//! Before a socket has authenticated, little is spent on it: a socket that waits for its
//! first message may send at most 16 KiB in one frame or message
//! ([`SocketAuth::first_message_limit`]; a larger one ends it with `authFailed` and 4001
//! as soon as its header arrives, without being read), and at most 1,000 sockets wait at
//! once ([`SocketAuth::max_pending`]; more are refused at the handshake with 503).
//! Sockets that carry their token in the handshake are verified before the upgrade and
//! read nothing before.
//!
//! A watched socket costs one shared notification per token and one expiry timer: no task
//! or wake-up of its own (measured: no CPU at 10,000 idle sockets). Most of an idle
//! socket's memory is tungstenite's read buffer, 128 KiB by default: for many idle
//! subscribers, pass `ws.read_buffer_size(4096)` (about 8 KB per socket then; see
//! BENCHMARKS.md).
//!
//! Mount the route among the layer's public paths (the browser's handshake carries no
//! `Authorization` header), or outside the layer:
//!
//! ```
//! use axum::extract::ws::{Message, WebSocketUpgrade};
//! use axum::extract::State;
//! use axum::http::{HeaderMap, Uri};
//! use axum::response::Response;
//! use axum::routing::any;
//! use axum::Router;
//! use tower_bearer::ws::SocketAuth;
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
//!
//! async fn socket(
//!     State(auth): State<SocketAuth>,
//!     ws: WebSocketUpgrade,
//!     headers: HeaderMap,
//!     uri: Uri,
//! ) -> Response {
//!     auth.upgrade(ws, &headers, &uri, |mut socket| async move {
//!         let hello = format!("hello, {}", socket.principal().name());
//!         let _ = socket.send(Message::text(hello)).await;
//!         while let Some(Ok(message)) = socket.recv().await {
//!             let _ = socket.send(message).await; // echo
//!         }
//!     })
//!     .await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let app: Router = Router::new()
//!     .route("/socket", any(socket))
//!     .with_state(SocketAuth::new(registry.clone()));
//! let app = BearerAuthLayer::new(registry).public(["/socket"]).protect(app);
//! # let _ = app;
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Uri};
use tokio::sync::{Mutex, Semaphore};

use crate::header::TokenSources;
use crate::layer::tracking;
use crate::registry::RejectCause;
use crate::reject::Rejection;
use crate::{principal::Principal, registry::Registry, registry::VerifyError};

/// The close code of a failed or ended authentication.
pub const AUTH_FAILED_CODE: u16 = 4001;
/// The close reason of a failed or ended authentication.
pub const AUTH_FAILED_REASON: &str = "authentication failed";
/// The event sent before closing with [`AUTH_FAILED_CODE`].
pub const AUTH_FAILED_EVENT: &str = r#"{"event":"authFailed"}"#;
/// The close code when the token store cannot answer ("try again later").
pub const UNAVAILABLE_CODE: u16 = 1013;
/// The subprotocol that carries a token: `Sec-WebSocket-Protocol: bearer, <token>`.
pub const BEARER_PROTOCOL: &str = "bearer";
/// The default bound of a frame or message before authentication: 16 KiB.
pub const DEFAULT_FIRST_MESSAGE_LIMIT: usize = 16 * 1024;
/// The default number of sockets that may wait for their first message at once.
pub const DEFAULT_MAX_PENDING: usize = 1_000;

/// Authenticates WebSocket upgrades with a registry. Cheap to clone.
#[derive(Clone, Debug)]
#[must_use]
pub struct SocketAuth {
    registry: Registry,
    first_message_timeout: Duration,
    first_message_limit: usize,
    /// A place for each socket waiting for its first message; shared by the clones.
    pending: Arc<Semaphore>,
    sources: TokenSources,
    reject_at_handshake: bool,
}

/// Where the handshake's token came from.
enum Handshake {
    Token { token: String },
    None,
    Invalid,
}

impl SocketAuth {
    /// Verifies sockets' tokens with `registry`: header, subprotocol pair or first
    /// message (10 s), no query parameter, `authFailed` on failure.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            first_message_timeout: Duration::from_secs(10),
            first_message_limit: DEFAULT_FIRST_MESSAGE_LIMIT,
            pending: Arc::new(Semaphore::new(DEFAULT_MAX_PENDING)),
            sources: TokenSources::new(),
            reject_at_handshake: false,
        }
    }

    /// The largest frame or message a socket may send before it has authenticated
    /// (default 16 KiB: an auth message is far smaller). A larger one ends the socket
    /// with `authFailed` and 4001 as soon as its header is read, unbuffered.
    ///
    /// axum cannot widen a socket's limits once it is open, so a socket that
    /// authenticates by its first message keeps this bound for its life; one that
    /// authenticates at the handshake (header or subprotocol pair) has the upgrade's own
    /// limits. Raise it if your clients authenticate by message and then send more.
    pub fn first_message_limit(mut self, bytes: usize) -> Self {
        self.first_message_limit = bytes.max(1);
        self
    }

    /// How many sockets may wait for their first message at once (default 1,000); the
    /// upgrade of one more is refused with 503 and `Retry-After`. Each place is held from
    /// the handshake until the first message arrives or times out.
    pub fn max_pending(mut self, sockets: usize) -> Self {
        self.pending = Arc::new(Semaphore::new(sockets.min(Semaphore::MAX_PERMITS)));
        self
    }

    /// How long a socket without a token at the handshake may take to send
    /// `{"type":"auth","token":"…"}` (default 10 s).
    pub fn first_message_timeout(mut self, timeout: Duration) -> Self {
        self.first_message_timeout = timeout;
        self
    }

    /// Also accepts the token in the `access_token` query parameter (URLs end up in
    /// logs: prefer the subprotocol pair).
    pub fn query_token(mut self) -> Self {
        self.sources = self.sources.query_param();
        self
    }

    /// Refuses a handshake without a valid token with a plain 401 (the enclosing layer's
    /// preset and challenge), for non-browser clients, instead of accepting the upgrade
    /// to send `authFailed`. No first-message authentication then.
    pub fn reject_at_handshake(mut self) -> Self {
        self.reject_at_handshake = true;
        self
    }

    /// Authenticates the upgrade request (`headers`, `uri`), then runs `handler` with the
    /// socket and its principal until it returns, or until the token stops being valid
    /// (the handler is dropped, and the client gets `authFailed` and 4001).
    pub async fn upgrade<F, Fut>(
        &self,
        ws: WebSocketUpgrade,
        headers: &HeaderMap,
        uri: &Uri,
        handler: F,
    ) -> Response
    where
        F: FnOnce(AuthenticatedSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let registry = self.registry.clone();
        // Selected whenever the client offered it (and only then), on success and on
        // failure alike: a client that offered subprotocols may refuse a server that
        // selects none, and would never read `authFailed`.
        let ws = ws.protocols([BEARER_PROTOCOL]);
        // The authentication's row in the activity log (when the registry keeps one).
        let witness = tracking::witness_of_head(&registry, uri, headers);
        match self.handshake(headers, uri) {
            Handshake::Token { token } => {
                let verified = registry.verify(&token).await;
                if let Some(witness) = &witness {
                    record(&registry, witness, &token, &verified);
                }
                match verified {
                    Ok(principal) => ws.on_upgrade(move |socket| {
                        serve(socket, registry, token, principal, handler)
                    }),
                    Err(error) if self.reject_at_handshake => {
                        Rejection::from_verify_error(&error).into_response()
                    }
                    Err(error) => ws.on_upgrade(move |mut socket| async move {
                        refuse(&mut socket, &error).await;
                    }),
                }
            }
            Handshake::None if self.reject_at_handshake => unauthenticated(RejectCause::Missing),
            Handshake::Invalid => {
                if let Some(witness) = &witness {
                    // Unreadable: not attributable, only counted.
                    let error = VerifyError::rejected(RejectCause::Unknown, None);
                    tracking::refused(&registry, witness, None, &error);
                }
                if self.reject_at_handshake {
                    return unauthenticated(RejectCause::Unknown);
                }
                ws.on_upgrade(|mut socket| async move {
                    auth_failed(&mut socket).await;
                })
            }
            Handshake::None => {
                let Ok(place) = self.pending.clone().try_acquire_owned() else {
                    // Per refused upgrade, so not a warning: a flood would flood the log.
                    tracing::debug!(
                        target: "tower_bearer::ws",
                        "socket refused: too many sockets waiting for their first message"
                    );
                    return Rejection::Unavailable.into_response();
                };
                let timeout = self.first_message_timeout;
                let limit = self.first_message_limit;
                let ws = ws.max_frame_size(limit).max_message_size(limit);
                ws.on_upgrade(move |mut socket| async move {
                    let token = first_message_token(&mut socket, timeout).await;
                    drop(place);
                    let Some(token) = token else {
                        auth_failed(&mut socket).await;
                        return;
                    };
                    let verified = registry.verify(&token).await;
                    if let Some(witness) = &witness {
                        record(&registry, witness, &token, &verified);
                    }
                    match verified {
                        Ok(principal) => serve(socket, registry, token, principal, handler).await,
                        Err(error) => refuse(&mut socket, &error).await,
                    }
                })
            }
        }
    }

    fn handshake(&self, headers: &HeaderMap, uri: &Uri) -> Handshake {
        let from_request = match self.sources.extract(headers, uri) {
            Ok(found) => found.map(|token| token.into_owned()),
            Err(_) => return Handshake::Invalid,
        };
        let from_protocol = match subprotocol_token(headers) {
            Ok(found) => found,
            Err(()) => return Handshake::Invalid,
        };
        match (from_request, from_protocol) {
            (Some(_), Some(_)) => Handshake::Invalid,
            (Some(token), None) | (None, Some(token)) => Handshake::Token { token },
            (None, None) => Handshake::None,
        }
    }
}

/// Records a socket's authentication in the activity log: 101 against its token, or the
/// 401 (503 when the store could not answer) of its `authFailed`, as the layer records a
/// rejected request.
fn record(
    registry: &Registry,
    witness: &http::Request<()>,
    token: &str,
    verified: &Result<Principal, VerifyError>,
) {
    match verified {
        Ok(principal) => {
            let status = http::StatusCode::SWITCHING_PROTOCOLS;
            tracking::authenticated(registry, witness, principal, status);
        }
        Err(error) => tracking::refused(registry, witness, Some(token), error),
    }
}

/// A socket whose token was verified, with its principal.
#[derive(Debug)]
pub struct AuthenticatedSocket {
    socket: Arc<Mutex<WebSocket>>,
    principal: Principal,
}

impl AuthenticatedSocket {
    /// Who is on the other end.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The next message (`None` once the socket is closed).
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.socket.lock().await.recv().await
    }

    /// Sends a message.
    pub async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        self.socket.lock().await.send(message).await
    }
}

/// Runs `handler` until it returns or the token stops being valid; then the socket is
/// the driver's again, to say `authFailed`.
async fn serve<F, Fut>(
    socket: WebSocket,
    registry: Registry,
    token: String,
    principal: Principal,
    handler: F,
) where
    F: FnOnce(AuthenticatedSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let socket = Arc::new(Mutex::new(socket));
    let ended = {
        let user = handler(AuthenticatedSocket {
            socket: socket.clone(),
            principal,
        });
        let watch = registry.watch(&token);
        tokio::pin!(user, watch);
        tokio::select! {
            () = &mut user => None,
            why = &mut watch => Some(why),
        }
        // The handler is dropped here, and with it any hold on the socket.
    };
    if let Some(why) = ended {
        let mut socket = socket.lock().await;
        refuse(&mut socket, &why).await;
    }
}

/// `Sec-WebSocket-Protocol: bearer, <token>`: the token, `None` without the pair, an
/// error for a `bearer` entry without a token after it.
fn subprotocol_token(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let mut protocols = headers
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or_default().split(','))
        .map(str::trim);
    while let Some(protocol) = protocols.next() {
        if protocol.eq_ignore_ascii_case(BEARER_PROTOCOL) {
            return match protocols.next() {
                Some(token) if !token.is_empty() => Ok(Some(token.to_owned())),
                _ => Err(()),
            };
        }
    }
    Ok(None)
}

/// The token of a first message `{"type":"auth","token":"…"}`, if one comes in time.
async fn first_message_token(socket: &mut WebSocket, timeout: Duration) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Auth {
        r#type: String,
        token: String,
    }
    let message = tokio::time::timeout(timeout, socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = message else {
        return None;
    };
    let auth: Auth = serde_json::from_str(text.as_str()).ok()?;
    (auth.r#type == "auth").then_some(auth.token)
}

/// Ends a socket whose token failed with `error`: `authFailed` and 4001, or 1013 when
/// the store could not answer.
async fn refuse(socket: &mut WebSocket, error: &VerifyError) {
    match error {
        VerifyError::Unavailable(_) => {
            tracing::warn!(target: "tower_bearer::ws", %error, "socket closed: token store unavailable");
            close(socket, UNAVAILABLE_CODE, "try again later").await;
        }
        _ => {
            tracing::debug!(target: "tower_bearer::ws", %error, "socket authentication failed");
            auth_failed(socket).await;
        }
    }
}

async fn auth_failed(socket: &mut WebSocket) {
    let _ = socket.send(Message::text(AUTH_FAILED_EVENT)).await;
    close(socket, AUTH_FAILED_CODE, AUTH_FAILED_REASON).await;
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

fn unauthenticated(cause: RejectCause) -> Response {
    Rejection::Unauthenticated {
        cause,
        token_id: None,
    }
    .into_response()
}
