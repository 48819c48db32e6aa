//! Laravel Sanctum-style tokens: `<id>|<secret>`, e.g. `1|abc123def456…`.
//!
//! Only the secret part is hashed; the id names the record the secret must belong to.

use super::{Malformed, base62, is_token_byte};
use crate::identity::TokenId;

/// Sanctum mints 40 random characters; so do we.
pub(crate) const SECRET_LEN: usize = 40;
/// Record ids are decimal `u64`s: at most 20 digits.
const MAX_ID_DIGITS: usize = 20;

/// Splits `token` into the record id and the secret part.
pub(crate) fn decode(token: &str) -> Result<(TokenId, &str), Malformed> {
    let (id, secret) = token.split_once('|').ok_or(Malformed::Shape)?;
    if id.is_empty() || id.len() > MAX_ID_DIGITS || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed::Id);
    }
    let id: u64 = id.parse().map_err(|_| Malformed::Id)?;
    if id == 0 {
        return Err(Malformed::Id);
    }
    if secret.is_empty() {
        return Err(Malformed::Length);
    }
    if !secret.bytes().all(|b| is_token_byte(b) && b != b'|') {
        return Err(Malformed::Character);
    }
    Ok((TokenId::new(id), secret))
}

/// A fresh secret part (the id is known only once the store has assigned it).
pub(crate) fn mint_secret() -> Result<String, getrandom::Error> {
    let mut secret = String::with_capacity(SECRET_LEN);
    base62::push_random(&mut secret, SECRET_LEN)?;
    Ok(secret)
}
