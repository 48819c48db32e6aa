//! Authenticated WebSockets (feature `ws`) at scale: the time from a revocation to the
//! client's `authFailed` close over 200 live sockets (p50/p99), and the memory and CPU of
//! an idle authenticated socket at 10,000 sockets.
//!
//! `cargo bench --bench socket_idle` runs the server here and the clients in a child
//! process (the same binary, `TOWER_BEARER_SOCKET_CLIENT=addr:count`), so that each
//! process holds one end of the 10,000 connections and the server's allocations are
//! counted alone. `TOWER_BEARER_BENCH_SOCKETS` changes the 10,000;
//! `TOWER_BEARER_BENCH_READ_BUFFER=4096` sets the sockets' read buffer (axum's
//! `WebSocketUpgrade::read_buffer_size`; tungstenite's default is 128 KiB).
// A plain main: these are measurements of a whole run, not criterion samples.
#![allow(missing_docs)]

use std::alloc::System;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::any;
use futures_util::StreamExt as _;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tower_bearer::registry::IssueRequest;
use tower_bearer::ws::SocketAuth;
use tower_bearer::{MemoryStore, Registry, TokenId};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

async fn idle(
    State(auth): State<SocketAuth>,
    ws: WebSocketUpgrade,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    // tungstenite's read buffer (128 KiB by default) is most of an idle socket's memory;
    // `TOWER_BEARER_BENCH_READ_BUFFER` measures another size.
    let ws = match std::env::var("TOWER_BEARER_BENCH_READ_BUFFER")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(size) => ws.read_buffer_size(size),
        None => ws,
    };
    auth.upgrade(ws, &headers, &uri, |mut socket| async move {
        // An idle subscriber: waits for messages that never come.
        while let Some(Ok(_)) = socket.recv().await {}
    })
    .await
}

async fn issue(registry: &Registry, count: usize) -> Vec<(TokenId, String)> {
    let mut tokens = Vec::with_capacity(count);
    for n in 0..count {
        let issued = registry
            .issue(IssueRequest::new(&format!("socket {n}"), "acme").unwrap())
            .await
            .unwrap();
        tokens.push((issued.info.id, issued.secret.expose_secret().to_owned()));
    }
    tokens
}

async fn connect(
    addr: SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{addr}/socket").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |at: usize| {
        fields
            .get(at)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The client process: connects `count` sockets with the tokens on stdin, reports, and
/// holds them until stdin closes.
async fn client(addr: SocketAddr) {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut sockets = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.is_empty() {
            break;
        }
        sockets.push(connect(addr, &line).await);
    }
    println!("connected {}", sockets.len());
    while let Ok(Some(_)) = lines.next_line().await {}
    drop(sockets);
}

async fn server() {
    let registry = Registry::builder(MemoryStore::new()).build();
    let app: Router = Router::new()
        .route("/socket", any(idle))
        .with_state(SocketAuth::new(registry.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // Revoke-to-close latency over 200 live sockets, one revocation at a time.
    let tokens = issue(&registry, 200).await;
    let mut sockets = Vec::new();
    for (_, token) in &tokens {
        sockets.push(connect(addr, token).await);
    }
    let mut latencies = Vec::new();
    for ((id, _), socket) in tokens.iter().zip(sockets.iter_mut()) {
        let start = Instant::now();
        registry.revoke("acme", *id).await.unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    assert_eq!(u16::from(frame.code), 4001);
                    break;
                }
                Some(Ok(_)) => continue,
                other => panic!("expected a close, got {other:?}"),
            }
        }
        latencies.push(start.elapsed());
    }
    latencies.sort();
    println!(
        "revoke to authFailed close, 200 sockets: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    drop(sockets);

    // Memory and CPU per idle authenticated socket.
    let count: usize = std::env::var("TOWER_BEARER_BENCH_SOCKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let tokens = issue(&registry, count).await;
    for (_, token) in &tokens {
        registry.verify(token).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let region = Region::new(GLOBAL);
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .env("TOWER_BEARER_SOCKET_CLIENT", addr.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    {
        use tokio::io::AsyncWriteExt as _;
        let mut list = String::new();
        for (_, token) in &tokens {
            list.push_str(token);
            list.push('\n');
        }
        list.push('\n');
        stdin.write_all(list.as_bytes()).await.unwrap();
        stdin.flush().await.unwrap();
    }
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut line)
        .await
        .unwrap();
    assert_eq!(line.trim(), format!("connected {count}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = region.change();
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    println!(
        "idle authenticated sockets: {count}; server memory held: {:.0} B per socket ({} allocations per socket)",
        held / count as f64,
        (stats.allocations - stats.deallocations) / count
    );
    let cpu_before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "CPU of the server over 10 s with {count} idle sockets: {:.3} s ({:.1} µs per socket per second)",
        cpu,
        cpu / 10.0 / count as f64 * 1e6
    );
    drop(stdin);
    let _ = child.wait().await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("TOWER_BEARER_SOCKET_CLIENT") {
        Ok(addr) => runtime.block_on(client(addr.parse().unwrap())),
        Err(_) => {
            // `cargo bench` passes `--bench`; a test run of the bench targets does not.
            if std::env::args().any(|arg| arg == "--bench") {
                runtime.block_on(server());
            }
        }
    }
}
