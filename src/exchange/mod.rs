//! Session exchange (feature `exchange`): short-lived access tokens for clients that
//! trade an API key for a session, as `POST /auth/login` APIs document.
//!
//! This module has the access tokens themselves: HS256 JWTs with a `kid`
//! ([`SessionKeys`]), signed by one key and verified by any of several so that keys rotate
//! without logging anyone out, with the claims a session carries ([`SessionClaims`]).
//! Signing is deterministic, so a session row can re-derive its token instead of storing
//! it. The login endpoint, session storage and verification by the layer build on them.

mod jwt;

pub use jwt::{
    InvalidSessionKey, JwtRejected, LEEWAY_SECS, MIN_KEY_LEN, SessionClaims, SessionKeys,
    looks_like_jwt,
};
