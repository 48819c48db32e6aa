//! What the example servers share: logging, the bootstrap admin token, and shutdown.

use tower_bearer::Registry;
use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::store::SqliteStore;

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

/// Issues the bootstrap admin token (scope `admin`, tenant `default`, never expires) if
/// the database holds no token at all, and prints it: the one time it is shown.
pub(crate) async fn bootstrap_admin(
    store: &SqliteStore,
    registry: &Registry,
) -> Result<(), Box<dyn std::error::Error>> {
    if store.count().await? > 0 {
        return Ok(());
    }
    let request = IssueRequest::new("bootstrap admin", "default")?
        .scopes(["admin"])?
        .expires(Expiry::Never)
        .env(registry.default_env());
    let issued = registry.issue(request).await?;
    println!("admin token: {}", issued.secret.expose_secret());
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Reads `--flag value` pairs, calling `apply` for each; `Err("")` asks for the usage text.
pub(crate) fn parse_flags(
    args: impl Iterator<Item = String>,
    mut apply: impl FnMut(&str, String) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = args;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
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
