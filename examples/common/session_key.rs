//! The example servers' session signing key. It never lives beside the database: a
//! backup of the database's directory must not carry the key that re-derives its live
//! login sessions.
//!
//! In order of preference: `--session-key-file PATH`, the `TOWER_BEARER_SESSION_KEY`
//! environment variable (hex), or a key of the server's own in the user's state directory
//! (`$XDG_STATE_HOME/tower-bearer/session-key`, by default
//! `~/.local/state/tower-bearer/session-key`), created with 32 random bytes on first
//! start. A key file must be readable by its owner only (mode 0600 or stricter). Every
//! node given the same key accepts the others' access tokens.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tower_bearer::session::{MIN_KEY_LEN, SessionKeys};

/// The environment variable that carries the key in hex.
pub(crate) const KEY_VARIABLE: &str = "TOWER_BEARER_SESSION_KEY";

/// The keys: from `file` when given, else from [`KEY_VARIABLE`], else from the default
/// file (created when missing). The key id is derived from the key, so that nodes
/// sharing it agree on it. Errors are one line, naming the file or variable and the fix.
pub(crate) fn load(file: Option<&Path>) -> Result<SessionKeys, String> {
    let secret = match (file, std::env::var(KEY_VARIABLE)) {
        (Some(path), _) => load_or_create(path)?,
        (None, Ok(hex)) => decode_hex(hex.trim()).ok_or_else(|| {
            format!("{KEY_VARIABLE}: expected at least {MIN_KEY_LEN} bytes in hex")
        })?,
        (None, Err(_)) => load_or_create(&default_path()?)?,
    };
    let kid: String = Sha256::digest(&secret)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    SessionKeys::new(&kid, &secret).map_err(|error| format!("session key: {error}"))
}

/// [`load`], or the process ends with its error on one line and status 2, like a bad
/// flag: a key that others may read is a configuration error.
pub(crate) fn load_or_exit(file: Option<&Path>) -> SessionKeys {
    load(file).unwrap_or_else(|message| {
        eprintln!("error: {message}");
        std::process::exit(2);
    })
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
    let dir = state.join("tower-bearer");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .map_err(|error| format!("session key directory {}: {error}", dir.display()))?;
    Ok(dir.join("session-key"))
}

/// The key in `path`, creating it with a fresh random key when it does not exist.
fn load_or_create(path: &Path) -> Result<Vec<u8>, String> {
    match read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(error) => Err(format!("session key file {}: {error}", path.display())),
        Ok(text) => decode(path, &text),
    }
}

/// Reads a key file, refusing one that others may read.
fn read(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(std::io::Error::other(format!(
                "readable by group or others (mode {:03o}): run `chmod 600 {}`",
                mode & 0o777,
                path.display()
            )));
        }
    }
    Ok(text)
}

fn decode(path: &Path, text: &str) -> Result<Vec<u8>, String> {
    decode_hex(text.trim()).ok_or_else(|| {
        format!(
            "session key file {}: expected at least {MIN_KEY_LEN} bytes in hex",
            path.display()
        )
    })
}

fn create(path: &Path) -> Result<Vec<u8>, String> {
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| format!("random generator: {error}"))?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            writeln!(file, "{hex}")
                .and_then(|()| file.sync_all())
                .map_err(|error| format!("session key file {}: {error}", path.display()))?;
            eprintln!("session key created in {}", path.display());
            Ok(secret)
        }
        // Another process created it meanwhile: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let text = read(path)
                .map_err(|error| format!("session key file {}: {error}", path.display()))?;
            decode(path, &text)
        }
        Err(error) => Err(format!("session key file {}: {error}", path.display())),
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() < 2 * MIN_KEY_LEN {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}
