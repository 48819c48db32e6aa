//! Sessions and user tokens (feature `exchange`): the keys and their reload, logging in
//! with an API key, the session rows, and the end users' own tokens.

#[cfg(feature = "exchange")]
pub(in crate::registry) mod keys;
#[cfg(feature = "exchange")]
pub(in crate::registry) mod login;
pub(in crate::registry) mod rows;
#[cfg(feature = "exchange")]
pub(in crate::registry) mod user_tokens;
