//! Running an example binary as a user would: a real process, its stdout and stderr,
//! Ctrl-C to stop it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// The example binary next to this test's, built by `cargo test` (or built here).
pub fn example_binary(name: &str, features: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !binary.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", name, "--features", features])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert_fresh(&binary);
    binary
}

/// Fails, naming the command to run, when a file the example was built from changed
/// after it was built: `cargo test --test NAME` builds no example, and a stale binary
/// would test old code (and cargo, which holds the build directory while tests run,
/// cannot be asked to rebuild from here). The files are those of cargo's dep-info file
/// next to the binary.
fn assert_fresh(binary: &Path) {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let (Some(built), Ok(dep_info)) = (
        modified(binary),
        std::fs::read_to_string(binary.with_extension("d")),
    ) else {
        return;
    };
    let Some((_, sources)) = dep_info.lines().next().and_then(|l| l.split_once(": ")) else {
        return;
    };
    // Paths are separated by spaces; a space within a path is escaped as `\ `.
    let sources = sources.replace("\\ ", "\u{0}");
    let changed = sources
        .split(' ')
        .map(|source| PathBuf::from(source.replace('\u{0}', " ")))
        .find(|source| modified(source).is_some_and(|at| at > built));
    if let Some(source) = changed {
        panic!(
            "the example binary {} is older than {}: build the examples first \
             (`cargo build --examples --all-features`, or run the whole `cargo test --all-features`)",
            binary.display(),
            source.display()
        );
    }
}

/// The examples' state directory (their session key) in tests that name none.
pub fn shared_state_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("example-state")
}

pub struct ExampleProcess {
    child: Child,
    /// The addresses of its `… listening on http://ADDR` lines, in order.
    pub addrs: Vec<SocketAddr>,
}

impl ExampleProcess {
    /// Starts `example` with `args` and waits for `listeners` "listening on" lines.
    pub async fn start(example: &str, features: &str, args: &[&str], listeners: usize) -> Self {
        Self::start_with_env(example, features, args, &[], listeners).await
    }

    /// [`start`](Self::start) with environment variables. The examples keep their
    /// session key in `$XDG_STATE_HOME`: one directory under cargo's target directory
    /// for all tests unless `env` names another, never the user's home.
    pub async fn start_with_env(
        example: &str,
        features: &str,
        args: &[&str],
        env: &[(&str, &str)],
        listeners: usize,
    ) -> Self {
        let mut child = Command::new(example_binary(example, features))
            .args(args)
            .env("RUST_LOG", "warn")
            .env("XDG_STATE_HOME", shared_state_dir())
            .env_remove("TOWER_BEARER_SESSION_KEY")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let addrs = tokio::time::timeout(Duration::from_secs(30), async {
            let mut addrs = Vec::new();
            let mut said = Vec::new();
            while addrs.len() < listeners {
                let Some(line) = stderr.next_line().await.unwrap() else {
                    panic!("the example exited before listening: {}", said.join("\n"));
                };
                said.push(line.clone());
                if let Some((_, addr)) = line.split_once("listening on http://") {
                    addrs.push(addr.parse::<SocketAddr>().unwrap());
                }
            }
            addrs
        })
        .await
        .expect("the example did not start listening");
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Self { child, addrs }
    }

    /// The next line the process prints to stdout.
    pub async fn stdout_line(&mut self) -> String {
        let stdout = self.child.stdout.as_mut().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(10), async {
            while stdout.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                line.push(byte[0]);
            }
        })
        .await
        .expect("no line on stdout");
        String::from_utf8(line).unwrap()
    }

    /// Sends the process `signal` (`HUP`, `TERM`…) and goes on.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}").as_str(), &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Ctrl-C, then everything else the process printed to stdout.
    pub async fn interrupt(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the example did not shut down")
            .unwrap();
        assert!(exit.success(), "{exit:?}");
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .await
            .unwrap();
        stdout
    }
}
