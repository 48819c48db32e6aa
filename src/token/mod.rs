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

/// Whether every byte of `bytes` may appear in a token before its `=` padding. In
/// 16-byte chunks by comparisons (which compile to SIMD), the rest through the table:
/// 10 ns for a 52-byte API key and 62 ns for a 371-byte session token, where the table
/// alone took 13 and 87 ns and comparisons alone 33 and 68 ns. No early exit.
#[inline]
pub(crate) fn all_token_body_bytes(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    let mut valid = true;
    for chunk in &mut chunks {
        valid &= chunk
            .iter()
            .fold(true, |valid, &b| valid & is_body_by_comparison(b));
    }
    chunks
        .remainder()
        .iter()
        .fold(valid, |valid, &b| valid & is_token_body_byte(b))
}

/// The body characters, by comparisons only: what the table holds, in a form that
/// vectorises over a chunk.
#[inline(always)]
const fn is_body_by_comparison(b: u8) -> bool {
    let folded = b | 0x20; // ASCII letters to lower case
    (b.wrapping_sub(b'0') < 10)
        | (folded.wrapping_sub(b'a') < 26)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
        | (b == b'|')
}

/// The classes of [`TOKEN_BYTES`].
const TOKEN: u8 = 1;
const BODY: u8 = 2;

/// Every byte's classes, for single bytes and the ends of chunked checks.
static TOKEN_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = if is_body_by_comparison(b) {
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
            // At every position of a chunk and of the remainder.
            for len in [1, 15, 16, 17, 40] {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    assert_eq!(
                        all_token_body_bytes(&bytes),
                        body,
                        "{byte} at {at} of {len}"
                    );
                }
            }
        }
    }
}
