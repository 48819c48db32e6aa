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
/// Sanctum-style tokens. Comparisons only, without branches, so that a check over a
/// whole token compiles to SIMD: the header check runs on every request, over up to
/// 4 KiB.
#[inline(always)]
pub(crate) fn is_token_byte(byte: u8) -> bool {
    let folded = byte | 0x20; // ASCII letters to lower case
    (byte.wrapping_sub(b'0') < 10)
        | (folded.wrapping_sub(b'a') < 26)
        | (byte == b'-')
        | (byte == b'.')
        | (byte == b'_')
        | (byte == b'~')
        | (byte == b'+')
        | (byte == b'/')
        | (byte == b'=')
        | (byte == b'|')
}
