//! Unauthenticated WebSockets cannot make the server hold memory (issue 26 #2): 100
//! sockets each announce and start sending a 60 MiB first message; the server's resident
//! memory is compared with what it was idle.
//!
//! `cargo bench --bench socket_flood` runs the server and the clients in this process;
//! the clients stream their frames from one shared 64 KiB buffer, so that the memory
//! that grows is the server's. `TOWER_BEARER_BENCH_SOCKETS` changes the 100.
// A plain main: a measurement of a whole run, not criterion samples.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::any;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tower_bearer::ws::SocketAuth;
use tower_bearer::{MemoryStore, Registry};

/// The size each client announces and tries to send.
const MESSAGE: u64 = 60 << 20;
const CHUNK: usize = 64 << 10;

async fn socket(
    State(auth): State<SocketAuth>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    auth.upgrade(ws, &headers, &uri, |mut socket| async move {
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await
}

/// The resident set of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// One client: the handshake by hand, then one masked text frame announcing
/// [`MESSAGE`] bytes, streamed until the server stops reading or closes. Returns the
/// bytes it could send.
async fn flood(addr: SocketAddr, chunk: &'static [u8]) -> u64 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET /socket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "no upgrade");
    // FIN + text, masked, 64-bit length, a zero mask (the payload is sent as it is).
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&MESSAGE.to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]);
    stream.write_all(&header).await.unwrap();
    let mut sent = 0;
    while sent < MESSAGE {
        let write = tokio::time::timeout(Duration::from_secs(2), stream.write_all(chunk));
        match write.await {
            Ok(Ok(())) => sent += CHUNK as u64,
            // Closed, or the server stopped reading: nothing more goes in.
            Ok(Err(_)) | Err(_) => break,
        }
    }
    sent
}

#[tokio::main]
async fn main() {
    let sockets: usize = std::env::var("TOWER_BEARER_BENCH_SOCKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let registry = Registry::builder(MemoryStore::new()).build();
    let app: Router = Router::new()
        .route("/socket", any(socket))
        .with_state(SocketAuth::new(registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let chunk: &'static [u8] = Box::leak(vec![b'x'; CHUNK].into_boxed_slice());
    // Warm up: one socket, so that the runtime's and the server's one-time allocations
    // are in the idle figure.
    flood(addr, chunk).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss();

    let start = Instant::now();
    let clients: Vec<_> = (0..sockets)
        .map(|_| tokio::spawn(flood(addr, chunk)))
        .collect();
    let mut peak = idle;
    let sampler = async {
        loop {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let mut sent = 0;
    tokio::select! {
        () = sampler => {}
        results = futures_util::future::join_all(clients) => {
            sent = results.into_iter().map(Result::unwrap).sum::<u64>();
        }
    }
    peak = peak.max(rss());
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "socket_flood: {sockets} sockets x {} MiB announced, {:.1} MiB sent in all, {:.2} s",
        MESSAGE >> 20,
        mib(sent),
        start.elapsed().as_secs_f64()
    );
    println!(
        "socket_flood: RSS idle {:.1} MiB, peak {:.1} MiB, growth {:.1} MiB (target <= 50 MB)",
        mib(idle),
        mib(peak),
        mib(peak - idle)
    );
}
