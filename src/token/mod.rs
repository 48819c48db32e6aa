//! Tokens: minting, wire formats, the plaintext [`Secret`] and the stored [`Digest`].
//!
//! Three wire formats are understood; a verifier accepts the set configured in [`Formats`]:
//!
//! | format | example | digest of |
//! |---|---|---|
//! | [`PrefixedFormat`] (default) | `sk_live_5hGq…Xb3k9Q` | the whole token |
//! | Sanctum-style (`<id>\|<secret>`) | `1\|abc123def456…` | the part after `\|`; the record must have that id |
//! | account-style | `base64(account_id:api_key)` | the api key (in one of the formats above); the record's tenant must be `account_id` |
//!
//! Shape and checksum are checked before anything else, so junk never reaches a cache or a
//! store. The plaintext exists only inside a [`Secret`]; everything stored or compared is a
//! SHA-256 [`Digest`].

mod account;
mod base62;
mod digest;
mod env;
pub(crate) mod formats;
mod mint;
mod prefixed;
mod sanctum;
mod secret;

pub use digest::Digest;
pub use env::{Env, ParseEnvError};
pub(crate) use formats::PendingToken;
pub use formats::{Formats, IssueFormat, Malformed, Presented};
pub use mint::Minted;
pub use prefixed::{InvalidPrefixedFormat, PrefixedFormat};
pub use secret::Secret;

/// The longest credential, in bytes, that any format accepts (session access tokens,
/// which carry their scopes, are the longest). Longer input is rejected before it is
/// hashed, so a 16 KiB header costs no more than a short one.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Whether `byte` may appear in a token on the wire: RFC 6750 `b64token` characters
/// (`ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, trailing `=`) plus `|` for
/// Sanctum-style tokens.
#[inline(always)]
pub(crate) fn is_token_byte(byte: u8) -> bool {
    TOKEN_BYTES[usize::from(byte)] & TOKEN != 0
}

/// Whether `byte` may appear in a token before its trailing `=` padding.
#[inline(always)]
pub(crate) fn is_token_body_byte(byte: u8) -> bool {
    TOKEN_BYTES[usize::from(byte)] & BODY != 0
}

/// The classes of [`TOKEN_BYTES`].
const TOKEN: u8 = 1;
const BODY: u8 = 2;

/// Every byte's classes. A table rather than comparisons: a check over a whole token
/// (the header check runs on every request) folds one load per byte, 12 ns for a
/// 51-byte token where ten comparisons per byte took 29.
static TOKEN_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let folded = b | 0x20; // ASCII letters to lower case
        let body = b.is_ascii_digit()
            || (folded >= b'a' && folded <= b'z')
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'|');
        table[byte] = if body {
            TOKEN | BODY
        } else if b == b'=' {
            TOKEN
        } else {
            0
        };
        byte += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The table says what RFC 6750's `b64token` (plus `|`) says, for every byte.
    #[test]
    fn the_token_byte_table_is_the_b64token_alphabet() {
        for byte in 0..=u8::MAX {
            let body = byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'|');
            assert_eq!(is_token_body_byte(byte), body, "{byte}");
            assert_eq!(is_token_byte(byte), body || byte == b'=', "{byte}");
        }
    }
}
