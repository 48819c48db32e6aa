//! What the example servers share: logging, the bootstrap admin token, and shutdown.

use std::io::Write as _;
use std::path::Path;

use tower_bearer::Registry;
use tower_bearer::registry::{Expiry, IssueRequest};

/// Logs to stderr (stdout is kept for the one `admin token:` line), filtered by `RUST_LOG`.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_bearer=debug".into()),
        )
        .init();
}

/// Issues the bootstrap admin token (scope `admin`, tenant `default`, never expires, or
/// the longest lifetime allowed) once per database, and shows it: printed to stdout, or
/// written to a new file readable by its owner only (`token_file`), for deployments
/// whose stdout is collected. The marker is stored with the token in one transaction, so
/// it is never minted again (not even after every token was revoked), and two processes
/// starting together mint one.
pub(crate) async fn bootstrap_admin(
    registry: &Registry,
    token_file: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    let expiry = match registry.max_lifetime() {
        Some(max) => Expiry::In(max),
        None => Expiry::Never,
    };
    let request = IssueRequest::new("bootstrap admin", "default")?
        .scopes(["admin"])?
        .expires(expiry)
        .env(registry.default_env());
    let Some(issued) = registry.issue_once("bootstrap-admin", request).await? else {
        return Ok(());
    };
    let token = issued.secret.expose_secret();
    match token_file {
        Some(path) => {
            write_secret_file(path, token)?;
            eprintln!("admin token written to {}", path.display());
        }
        None => println!("admin token: {token}"),
    }
    Ok(())
}

/// Creates `path` (it must not exist) with mode 0600 and writes `secret` to it.
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{secret}")?;
    file.sync_all()
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled: call it before announcing that the server listens,
/// so that a signal sent right after the announcement shuts down gracefully.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
                match signal {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

/// Reads `--flag value` pairs, calling `apply` for each; `Err("")` asks for the usage text.
/// The flags in `optional_value` may stand alone (their value is then empty).
pub(crate) fn parse_flags(
    args: impl Iterator<Item = String>,
    optional_value: &[&str],
    mut apply: impl FnMut(&str, String) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = args.peekable();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let standalone = optional_value.contains(&flag.as_str())
            && args.peek().is_none_or(|next| next.starts_with("--"));
        let value = if standalone {
            String::new()
        } else if let Some(value) = args.next() {
            value
        } else {
            // No value follows: an unknown flag is named as such (the parse stops here
            // either way, so whatever `apply` did with the empty value is dropped).
            return Err(match apply(&flag, String::new()) {
                Err(unknown) if unknown.starts_with("unknown flag") => unknown,
                _ => format!("{flag} needs a value"),
            });
        };
        apply(&flag, value)?;
    }
    Ok(())
}

/// Runs `main`'s body: prints the usage on bad flags (exit 2) and errors (exit 1).
pub(crate) async fn run_main<A, F>(
    usage: &str,
    args: Result<A, String>,
    run: impl FnOnce(A) -> F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let args = match args {
        Ok(args) => args,
        Err(problem) => {
            if !problem.is_empty() {
                eprintln!("{problem}");
            }
            eprintln!("{usage}");
            return if problem.is_empty() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            };
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
