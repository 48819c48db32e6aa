use std::fmt;

use sha2::{Digest as _, Sha256};

/// The SHA-256 digest of a token's secret: the only form in which a token is stored,
/// cached or compared.
///
/// A digest is not secret (it cannot be turned back into the token), but its `Debug`
/// shows only the first bytes anyway, which is enough to correlate log lines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The SHA-256 digest of `secret`.
    ///
    /// ```
    /// use tower_bearer::token::Digest;
    /// assert_eq!(Digest::of(b"abc"), Digest::of(b"abc"));
    /// assert_ne!(Digest::of(b"abc"), Digest::of(b"abd"));
    /// ```
    #[inline]
    pub fn of(secret: &[u8]) -> Self {
        Self(Sha256::digest(secret).into())
    }

    /// Wraps 32 bytes read back from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 digest bytes, as a store writes them.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(")?;
        for byte in &self.0[..6] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…)")
    }
}
