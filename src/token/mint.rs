use super::{Digest, Secret};

/// A freshly minted token: the plaintext (to show once), its digest (to store) and a
/// short display prefix (to list).
#[derive(Debug)]
pub struct Minted {
    /// The plaintext token.
    pub secret: Secret,
    /// SHA-256 of the part of the token that is hashed.
    pub digest: Digest,
    /// A few leading characters, kept so that users can tell their tokens apart.
    pub display_prefix: String,
}

impl Minted {
    pub(crate) fn new(token: String, display_prefix: String) -> Self {
        Self {
            digest: Digest::of(token.as_bytes()),
            secret: Secret::new(token),
            display_prefix,
        }
    }
}
