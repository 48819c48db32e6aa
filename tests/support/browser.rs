//! A real headless browser (Debian's chromium) driven through the DevTools protocol:
//! navigate, evaluate, type, take screenshots.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::http::HttpClient;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The headless browser, or `None` with a visible message (a failure under `CI=true`,
/// where `.ci/run` installs Debian's `chromium`).
pub fn chromium() -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have chromium (.ci/run installs Debian's chromium)"
        );
        eprintln!("SKIPPED: no chromium here (apt-get install chromium)");
    }
    found
}

/// A headless chromium with a fresh profile, and a DevTools connection to its page.
pub struct Browser {
    process: tokio::process::Child,
    page: Socket,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromium` (with the flags that keep it off the network) at `url`.
    pub async fn start(chromium: &str, url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut process = tokio::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = tokio::io::BufReader::new(process.stderr.take().unwrap()).lines();
        let devtools = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = stderr.next_line().await.unwrap() {
                if let Some((_, url)) = line.split_once("DevTools listening on ") {
                    return url.to_owned();
                }
            }
            panic!("chromium exited before its DevTools listened");
        })
        .await
        .expect("chromium's DevTools within 20 s");
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        let port: u16 = devtools
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let client = HttpClient::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let page = loop {
            assert!(tokio::time::Instant::now() < deadline, "no page target");
            let targets = client.send("GET", "/json/list", &[]).await;
            let targets: Value = serde_json::from_slice(&targets.body).unwrap_or(Value::Null);
            let url = targets.as_array().and_then(|targets| {
                targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_owned))
            });
            if let Some(url) = url {
                if let Ok((socket, _)) = tokio_tungstenite::connect_async(url).await {
                    break socket;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            process,
            page,
            next_id: 0,
            _profile: profile,
        }
    }

    /// Sends a DevTools command and returns its result (events in between are skipped).
    pub async fn command(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(message) = self.page.next().await {
                let Ok(Message::Text(text)) = message else {
                    continue;
                };
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["id"] == id {
                    return answer;
                }
            }
            panic!("the page's DevTools connection closed");
        })
        .await
        .unwrap_or_else(|_| panic!("{method}: no answer within 20 s"));
        assert!(answer["error"].is_null(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .command(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `condition` (a JavaScript expression) is true, for at most 10 s. A
    /// condition that throws is not true yet: on a loaded machine the first checks can
    /// run before the page has a `document.body`, or before the element exists.
    pub async fn wait_for(&mut self, condition: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let check = format!(
            "(() => {{ try {{ return Boolean({condition}); }} catch (error) {{ return String(error); }} }})()"
        );
        loop {
            let answer = self.eval(&check).await;
            if answer == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still not true after 10 s: {condition} (last: {answer})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Empties the field with id `id`, focuses it and types `text` into it, as a user
    /// would.
    pub async fn type_into(&mut self, id: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const field = document.getElementById({id:?}); field.value = ''; field.focus(); }})()"
        ))
        .await;
        self.command("Input.insertText", json!({ "text": text }))
            .await;
    }

    /// Clicks the visible button whose text is `label` (within `scope`, a CSS selector).
    pub async fn click(&mut self, scope: &str, label: &str) {
        let clicked = self
            .eval(&format!(
                "(() => {{ const b = [...document.querySelectorAll({scope:?} + ' button')]
                    .find(b => b.textContent.trim() === {label:?} && b.offsetParent !== null);
                    if (!b) return false; b.click(); return true; }})()"
            ))
            .await;
        assert_eq!(
            clicked,
            Value::Bool(true),
            "no visible button {label:?} in {scope}"
        );
    }

    /// Saves a PNG of the page as it is to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let shot = self
            .command("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Stops the browser.
    pub async fn close(mut self) {
        let _ = self.process.kill().await;
    }
}
