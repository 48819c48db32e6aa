//! Loading session keys from a file or an environment variable, as an operator keeps
//! them: hex, one key per line (or per comma in a variable), the first signing and the
//! others verifying only, so that a rotation is an edit and a reload.
//!
//! A key file must be readable by its owner only (mode 0600 or stricter, on Unix): one
//! that others may read is refused, naming the file and `chmod 600`. A file created here
//! is created 0600, in a directory created 0700.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{InvalidSessionKey, MIN_KEY_LEN, SessionKeys};

/// Why session keys could not be loaded. One line each, naming the file or variable and,
/// where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read or created.
    #[error("session key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Group or others may read the file.
    #[error(
        "session key file {path}: readable by group or others (mode {mode:03o}): run `chmod 600 {path}`",
        path = path.display()
    )]
    Readable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The variable is not set.
    #[error("{0} is not set")]
    Unset(String),
    /// A key is not hex of at least 32 bytes, or there is none.
    #[error("{source_name}: expected one or more keys of at least {MIN_KEY_LEN} bytes in hex")]
    Malformed {
        /// The file or variable.
        source_name: String,
    },
    /// The keys cannot be used together (the same key twice).
    #[error("{source_name}: {error}")]
    Invalid {
        /// The file or variable.
        source_name: String,
        /// Why.
        error: InvalidSessionKey,
    },
    /// The system's random number generator failed while creating a key.
    #[error("random number generator: {0}")]
    Random(String),
}

impl SessionKeys {
    /// The keys in `path`: hex, one per line (blank lines and `#` comments skipped), the
    /// first signing, the others verifying only. Each key's id is derived from the key
    /// (12 hex digits of its SHA-256), so that every node given the same file agrees on
    /// it. Refuses a file that group or others may read.
    ///
    /// ```
    /// use tower_bearer::session::SessionKeys;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("session-keys");
    /// let keys = SessionKeys::from_file_or_create(&path)?; // 32 random bytes, mode 0600
    /// let again = SessionKeys::from_file(&path)?;
    /// assert_eq!(keys.signing_kid(), again.signing_kid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        let text = read_private(path)?;
        parse(&path.display().to_string(), text.lines())
    }

    /// [`from_file`](Self::from_file), creating the file with one fresh random key (mode
    /// 0600; its directory 0700 when missing) when it does not exist. Two processes
    /// starting at once end up with the same key.
    pub fn from_file_or_create(path: impl AsRef<Path>) -> Result<Self, KeyFileError> {
        let path = path.as_ref();
        match Self::from_file(path) {
            Err(KeyFileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                create(path)?;
                Self::from_file(path)
            }
            other => other,
        }
    }

    /// The keys in the environment variable `name`: hex, separated by commas, the first
    /// signing.
    pub fn from_env(name: &str) -> Result<Self, KeyFileError> {
        let value = std::env::var(name).map_err(|_| KeyFileError::Unset(name.to_owned()))?;
        parse(name, value.split(','))
    }
}

/// The id a key is known by: 12 hex digits of its SHA-256.
fn kid_of(secret: &[u8]) -> String {
    Sha256::digest(secret)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse<'a>(
    source_name: &str,
    lines: impl Iterator<Item = &'a str>,
) -> Result<SessionKeys, KeyFileError> {
    let malformed = || KeyFileError::Malformed {
        source_name: source_name.to_owned(),
    };
    let invalid = |error| KeyFileError::Invalid {
        source_name: source_name.to_owned(),
        error,
    };
    let mut keys: Option<SessionKeys> = None;
    for line in lines
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let secret = decode_hex(line).ok_or_else(malformed)?;
        let kid = kid_of(&secret);
        keys = Some(match keys {
            None => SessionKeys::new(&kid, &secret).map_err(invalid)?,
            Some(keys) => keys.verify_with(&kid, &secret).map_err(invalid)?,
        });
    }
    keys.ok_or_else(malformed)
}

/// The file's text, refused when group or others may read it.
fn read_private(path: &Path) -> Result<String, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Readable {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(text)
}

/// Writes one random key to a new file (0600). Another process creating it first is no
/// error: its key is read instead.
fn create(path: &Path) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    let mut secret = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut *secret).map_err(|error| KeyFileError::Random(error.to_string()))?;
    let hex = zeroize::Zeroizing::new(
        secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => writeln!(file, "{}", *hex)
            .and_then(|()| file.sync_all())
            .map_err(io),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Give the other process the moment it needs to write it.
            std::thread::sleep(std::time::Duration::from_millis(50));
            Ok(())
        }
        Err(error) => Err(io(error)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_signs_and_the_others_verify() {
        let (old, new) = ("11".repeat(32), "22".repeat(32));
        let keys = parse(
            "test",
            format!("# rotated 2026-12\n{new}\n\n{old}\n").lines(),
        )
        .unwrap();
        assert_eq!(keys.signing_kid(), kid_of(&[0x22; 32]));
        let mut kids: Vec<&str> = keys.kids().collect();
        kids.sort_unstable();
        let mut expected = [kid_of(&[0x11; 32]), kid_of(&[0x22; 32])];
        expected.sort_unstable();
        assert_eq!(kids, expected);
    }

    #[test]
    fn a_variable_separates_its_keys_with_commas() {
        let (new, old) = ("c3".repeat(32), "d4".repeat(32));
        let keys = parse("VAR", format!("{new}, {old}").split(',')).unwrap();
        assert_eq!(keys.signing_kid(), kid_of(&[0xc3; 32]));
        assert_eq!(keys.kids().count(), 2);
        let error = parse("VAR", "not hex".split(',')).unwrap_err();
        assert!(error.to_string().starts_with("VAR: "), "{error}");
    }

    #[test]
    fn short_odd_or_missing_keys_are_refused() {
        for text in [
            "",
            "# nothing\n",
            "abcd\n",
            &"1".repeat(65),
            &"zz".repeat(32),
        ] {
            assert!(
                matches!(
                    parse("t", text.lines()),
                    Err(KeyFileError::Malformed { .. })
                ),
                "{text:?}"
            );
        }
        let twice = format!("{0}\n{0}\n", "33".repeat(32));
        assert!(matches!(
            parse("t", twice.lines()),
            Err(KeyFileError::Invalid { .. })
        ));
    }
}
