//! The example server's session signing key: read from a file, or created there (32
//! random bytes, hex, mode 0600) on first start. Every node given the same file accepts
//! the others' access tokens.

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tower_bearer::session::{MIN_KEY_LEN, SessionKeys};

/// The keys in `path`, creating it with a fresh random key when it does not exist. The
/// key id is derived from the key, so that nodes sharing the file agree on it.
pub(crate) fn load_or_create(path: &Path) -> Result<SessionKeys, String> {
    let secret = match std::fs::read_to_string(path) {
        Ok(text) => decode_hex(text.trim()).ok_or_else(|| {
            format!(
                "session key file {}: expected at least {MIN_KEY_LEN} bytes in hex",
                path.display()
            )
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => create(path)?,
        Err(error) => return Err(format!("session key file {}: {error}", path.display())),
    };
    let kid: String = Sha256::digest(&secret)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    SessionKeys::new(&kid, &secret)
        .map_err(|error| format!("session key file {}: {error}", path.display()))
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
        // Another node created it meanwhile: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("session key file {}: {error}", path.display()))?;
            decode_hex(text.trim())
                .ok_or_else(|| format!("session key file {}: not a hex key", path.display()))
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
