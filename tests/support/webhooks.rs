//! Webhook receivers on 127.0.0.1 for the tests: the Python one verifies with the
//! `standardwebhooks` package (`webhook_receiver.py`); the Rust one counts what it got.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// `webhook-id`.
    pub id: String,
    /// Whether its signature verified.
    pub verified: bool,
    /// What the receiver answered.
    pub status: u16,
    /// The body, parsed.
    pub body: serde_json::Value,
}

impl Received {
    /// The event type.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap()
    }

    /// The token id in `data`.
    pub fn token_id(&self) -> u64 {
        self.body["data"]["id"].as_u64().unwrap()
    }
}

/// The Python interpreter with `standardwebhooks`: `TOWER_BEARER_PYTHON` (set by
/// `.ci/run`), else `python3` if it has the package. `None` skips a test locally, fails
/// it in CI.
pub fn python() -> Option<String> {
    let candidates = std::env::var("TOWER_BEARER_PYTHON")
        .into_iter()
        .chain(["python3".to_owned()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import standardwebhooks"])
            .output()
            .is_ok_and(|out| out.status.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs a Python with standardwebhooks (.ci/run installs it)"
    );
    eprintln!("skipped: no Python with standardwebhooks (.ci/run installs one)");
    None
}

/// `tests/support/webhook_receiver.py`, running.
pub struct PythonReceiver {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
}

impl PythonReceiver {
    /// A receiver answering `statuses` in turn, then 204.
    pub async fn start(python: &str, statuses: &[u16]) -> Self {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/webhook_receiver.py"
        );
        let mut child = Command::new(python)
            .arg(script)
            .args(statuses.iter().map(u16::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the receiver starts")
            .unwrap()
            .unwrap();
        let port = serde_json::from_str::<serde_json::Value>(&first).unwrap()["port"]
            .as_u64()
            .unwrap();
        Self {
            child,
            stdin,
            lines,
            url: format!("http://127.0.0.1:{port}/hook"),
        }
    }

    /// Verifies with `secret` (`whsec_…`) from now on.
    pub async fn verify_with(&mut self, secret: &str) {
        self.stdin
            .write_all(format!("{secret}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next request, if one comes within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Received> {
        let line = tokio::time::timeout(wait, self.lines.next_line())
            .await
            .ok()?
            .unwrap()?;
        let line: serde_json::Value = serde_json::from_str(&line).unwrap();
        Some(Received {
            id: line["id"].as_str().unwrap().to_owned(),
            verified: line["verified"].as_bool().unwrap(),
            status: u16::try_from(line["status"].as_u64().unwrap()).unwrap(),
            body: serde_json::from_str(line["body"].as_str().unwrap()).unwrap(),
        })
    }

    /// The next `count` requests (each within `wait`), then nothing more for `quiet`.
    pub async fn exactly(
        &mut self,
        count: usize,
        wait: Duration,
        quiet: Duration,
    ) -> Vec<Received> {
        let mut got = Vec::with_capacity(count);
        while got.len() < count {
            match self.next(wait).await {
                Some(received) => got.push(received),
                None => panic!("{} of {count} requests came: {got:#?}", got.len()),
            }
        }
        if let Some(extra) = self.next(quiet).await {
            panic!("one more request than expected: {extra:#?} after {got:#?}");
        }
        got
    }
}

impl Drop for PythonReceiver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A receiver in this process: records every request's `webhook-id` and body, answers
/// `statuses` in turn, then 204.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    statuses: Arc<Mutex<VecDeque<StatusCode>>>,
    delay: Duration,
}

impl Receiver {
    /// A receiver that takes `delay` to answer (so that deliveries are under way when
    /// a node stops).
    pub fn slow(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// Serves it on 127.0.0.1: returns its `/hook` URL.
    pub async fn serve(&self, statuses: &[u16]) -> String {
        self.statuses
            .lock()
            .unwrap()
            .extend(statuses.iter().map(|s| StatusCode::from_u16(*s).unwrap()));
        let receiver = self.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let receiver = receiver.clone();
                async move {
                    let id = headers["webhook-id"].to_str().unwrap().to_owned();
                    let body = serde_json::from_slice(&body).unwrap();
                    tokio::time::sleep(receiver.delay).await;
                    receiver.got.lock().unwrap().push((id, body));
                    let next = receiver.statuses.lock().unwrap().pop_front();
                    next.unwrap_or(StatusCode::NO_CONTENT)
                }
            }),
        );
        let addr = super::http::serve(app).await;
        format!("http://{addr}/hook")
    }

    /// What it got so far.
    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.got.lock().unwrap().clone()
    }
}
