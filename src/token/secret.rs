use std::fmt;

use zeroize::Zeroizing;

/// How many characters of a token [`Secret`]'s `Debug` and `Display` show: enough to tell
/// tokens apart in a UI (`sk_live_AbCd…`), far too few to guess the rest.
const SHOWN_CHARS: usize = 12;

/// A plaintext token. It exists once, at issuance, and is handed to the caller to show
/// to the user; it is never stored.
///
/// `Debug` and `Display` print at most a short prefix followed by `…`; the memory is
/// zeroized when the value is dropped. Reading the whole token takes an explicit
/// [`Secret::expose_secret`].
///
/// ```
/// use tower_bearer::token::Secret;
///
/// let secret = Secret::new("sk_live_0123456789abcdefghijklmnopqrstu".to_owned());
/// assert_eq!(format!("{secret:?}"), "Secret(\"sk_live_0123…\")");
/// assert_eq!(secret.to_string(), "sk_live_0123…");
/// assert_eq!(secret.expose_secret(), "sk_live_0123456789abcdefghijklmnopqrstu");
/// ```
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a plaintext token.
    pub fn new(plaintext: String) -> Self {
        Self(Zeroizing::new(plaintext))
    }

    /// The whole plaintext. Call it once, to hand the token to its owner.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn shown(&self) -> &str {
        // Short secrets show at most half of themselves.
        let chars = SHOWN_CHARS.min(self.0.chars().count() / 2);
        let end = self
            .0
            .char_indices()
            .nth(chars)
            .map_or(self.0.len(), |(at, _)| at);
        &self.0[..end]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(\"{}…\")", self.shown())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.shown())
    }
}
