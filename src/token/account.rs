//! Account-style credentials: `base64(account_id:api_key)` (standard alphabet; the
//! padding may be missing).

use base64::Engine as _;
use base64::alphabet::STANDARD;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use super::Malformed;

/// The standard alphabet, accepting input with or without `=` padding.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Whether `token` could be standard base64 (and so cannot be one of the other formats,
/// whose tokens contain `_` or `|`).
pub(crate) fn looks_like(token: &str) -> bool {
    token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// The decoded credential: `account_id:api_key`, zeroized on drop because it holds the key.
pub(crate) struct Decoded(Zeroizing<Vec<u8>>, usize);

impl Decoded {
    pub(crate) fn account_id(&self) -> &str {
        // Checked to be UTF-8 in `decode`.
        std::str::from_utf8(&self.0[..self.1]).unwrap_or_default()
    }

    pub(crate) fn api_key(&self) -> &str {
        std::str::from_utf8(&self.0[self.1 + 1..]).unwrap_or_default()
    }
}

pub(crate) fn decode(token: &str) -> Result<Decoded, Malformed> {
    let bytes = Zeroizing::new(LENIENT.decode(token).map_err(|_| Malformed::Base64)?);
    let colon = bytes
        .iter()
        .position(|&b| b == b':')
        .ok_or(Malformed::Account)?;
    let account = std::str::from_utf8(&bytes[..colon]).map_err(|_| Malformed::Account)?;
    if !crate::identity::is_valid_tenant(account) {
        return Err(Malformed::Account);
    }
    if std::str::from_utf8(&bytes[colon + 1..]).is_err() {
        return Err(Malformed::Character);
    }
    Ok(Decoded(bytes, colon))
}
