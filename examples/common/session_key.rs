//! The example servers' session signing keys. They never live beside the database: a
//! backup of the database's directory must not carry the key that re-derives its live
//! login sessions.
//!
//! In order of preference: `--session-key-file PATH`, the `TOWER_BEARER_SESSION_KEY`
//! environment variable (hex keys, comma-separated), or a key file of the server's own in
//! the user's state directory (`$XDG_STATE_HOME/tower-bearer/session-key`, by default
//! `~/.local/state/tower-bearer/session-key`), created with 32 random bytes on first
//! start. A key file holds one hex key per line, the first signing, and must be readable
//! by its owner only (mode 0600 or stricter): see `SessionKeys::from_file`. Every node
//! given the same keys accepts the others' access tokens. On `SIGHUP` the keys are read
//! again and the registry signs with them from then on (`Registry::reload_session_keys`).

use std::path::{Path, PathBuf};

use tower_bearer::registry::Registry;
use tower_bearer::session::SessionKeys;

/// The environment variable that carries the keys in hex.
pub(crate) const KEY_VARIABLE: &str = "TOWER_BEARER_SESSION_KEY";

/// The keys: from `file` when given, else from [`KEY_VARIABLE`], else from the default
/// file (created when missing). Errors are one line, naming the file or variable and
/// the fix.
pub(crate) fn load(file: Option<&Path>) -> Result<SessionKeys, String> {
    let loaded = match (file, std::env::var_os(KEY_VARIABLE)) {
        (Some(path), _) => SessionKeys::from_file_or_create(path),
        (None, Some(_)) => SessionKeys::from_env(KEY_VARIABLE),
        (None, None) => SessionKeys::from_file_or_create(default_path()?),
    };
    loaded.map_err(|error| error.to_string())
}

/// [`load`], or the process ends with its error on one line and status 2, like a bad
/// flag: a key that others may read is a configuration error.
pub(crate) fn load_or_exit(file: Option<&Path>) -> SessionKeys {
    load(file).unwrap_or_else(|message| {
        eprintln!("error: {message}");
        std::process::exit(2);
    })
}

/// Reads the keys again on every `SIGHUP` and hands them to `registry`; a file that
/// cannot be used is reported and the keys in use are kept.
pub(crate) fn reload_on_hangup(registry: Registry, file: Option<PathBuf>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match load(file.as_deref()).map(|keys| registry.reload_session_keys(keys)) {
                Ok(Ok(())) => eprintln!("session keys reloaded"),
                Ok(Err(error)) => eprintln!("session keys not reloaded: {error}"),
                Err(message) => eprintln!("session keys not reloaded: {message}"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (registry, file);
}

/// `$XDG_STATE_HOME/tower-bearer/session-key`, or under `$HOME/.local/state`.
fn default_path() -> Result<PathBuf, String> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
        .ok_or_else(|| {
            format!(
                "no place for a session key: pass --session-key-file PATH or set {KEY_VARIABLE}"
            )
        })?;
    Ok(state.join("tower-bearer").join("session-key"))
}
