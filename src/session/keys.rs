//! The signing keys and claims of session access tokens: HS256 JWTs with a `kid`, signed
//! by one key and verified by any of several, so that keys rotate without logging anyone
//! out.
//!
//! Signing is deterministic (HS256 over the same header and claims gives the same token),
//! which is what lets a session row re-derive its token instead of storing it.

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The shortest signing secret accepted, in bytes (HS256's output size).
pub const MIN_KEY_LEN: usize = 32;
/// How far `exp` and `nbf` may be off, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// The claims of a session access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SessionClaims {
    /// The issuer: who minted the token.
    pub iss: String,
    /// The API key's token id.
    pub sub: String,
    /// The session's id.
    pub sid: String,
    /// The key's tenant.
    pub tenant: String,
    /// The key's scopes at login, space-separated.
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The token's own id.
    pub jti: String,
    /// Not before (Unix seconds): tokens minted here carry none, but one that does is
    /// refused before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The application's own claims (an end user's room, say), beside the registered
    /// ones.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The claims a token always has, which custom claims may not name.
pub const REGISTERED_CLAIMS: [&str; 11] = [
    "iss", "sub", "sid", "tenant", "scope", "iat", "exp", "jti", "nbf", "aud", "sec",
];

impl SessionClaims {
    /// Claims for a session of key `sub` in `tenant` with `scope`, valid from `iat` to
    /// `exp` (Unix seconds).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        iss: &str,
        sub: &str,
        sid: &str,
        tenant: &str,
        scope: &str,
        iat: i64,
        exp: i64,
        jti: &str,
    ) -> Self {
        Self {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            sid: sid.to_owned(),
            tenant: tenant.to_owned(),
            scope: scope.to_owned(),
            iat,
            exp,
            jti: jti.to_owned(),
            nbf: None,
            extra: serde_json::Map::new(),
        }
    }
}

/// A signing secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSessionKey {
    /// Shorter than [`MIN_KEY_LEN`] bytes.
    #[error("session key `{0}` is shorter than 32 bytes")]
    TooShort(String),
    /// The key id is empty or longer than 64 bytes.
    #[error("session key id must be 1 to 64 bytes")]
    Kid,
    /// Two keys with one id: a token's `kid` must name one key.
    #[error("session key id `{0}` is given twice")]
    Duplicate(String),
}

/// Why a presented JWT does not verify. Every cause is answered the same way (401); the
/// cause is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtRejected {
    /// Not three base64url segments with a JSON header.
    #[error("malformed JWT")]
    Malformed,
    /// An algorithm other than HS256 (`none` included).
    #[error("algorithm not accepted")]
    Algorithm,
    /// No `kid`, or one no key has.
    #[error("unknown key id")]
    UnknownKey,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// `exp` has passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// Not yet valid, wrong issuer, or a claim missing.
    #[error("claims not valid")]
    Claims,
}

/// The keys session tokens are signed and verified with: one signs, every one verifies.
///
/// ```
/// use tower_bearer::session::{SessionClaims, SessionKeys};
///
/// let keys = SessionKeys::new("2026-11", &[7u8; 32])?.verify_with("2026-05", &[9u8; 32])?;
/// let now = time::OffsetDateTime::now_utc().unix_timestamp();
/// let claims = SessionClaims::new("api", "42", "s1", "acme", "read", now, now + 7200, "j1");
/// let token = keys.sign(&claims);
/// assert_eq!(token, keys.sign(&claims)); // deterministic
/// assert_eq!(keys.verify(&token, "api")?, claims);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SessionKeys {
    signing_kid: String,
    /// Every key by id: the signing one, and those that still verify (and re-derive the
    /// tokens they signed).
    keys: HashMap<String, Key>,
}

#[derive(Clone)]
struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("SessionKeys")
            .field("signing_kid", &self.signing_kid)
            .field("verifying_kids", &kids)
            .finish_non_exhaustive()
    }
}

fn check(kid: &str, secret: &[u8]) -> Result<(), InvalidSessionKey> {
    if kid.is_empty() || kid.len() > 64 {
        return Err(InvalidSessionKey::Kid);
    }
    if secret.len() < MIN_KEY_LEN {
        return Err(InvalidSessionKey::TooShort(kid.to_owned()));
    }
    Ok(())
}

impl SessionKeys {
    /// Signs with `secret` (at least 32 bytes), identified by `kid`.
    pub fn new(kid: &str, secret: &[u8]) -> Result<Self, InvalidSessionKey> {
        check(kid, secret)?;
        Ok(Self {
            signing_kid: kid.to_owned(),
            keys: HashMap::from([(kid.to_owned(), Key::new(secret))]),
        })
    }

    /// The ids of every key, the signing one included.
    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Also accepts tokens signed with `secret` under `kid` (an older key, during a
    /// rotation).
    pub fn verify_with(mut self, kid: &str, secret: &[u8]) -> Result<Self, InvalidSessionKey> {
        check(kid, secret)?;
        if self.keys.contains_key(kid) {
            return Err(InvalidSessionKey::Duplicate(kid.to_owned()));
        }
        self.keys.insert(kid.to_owned(), Key::new(secret));
        Ok(self)
    }

    /// The id of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The token for `claims`, signed with the signing key: the same claims always give
    /// the same token.
    pub fn sign(&self, claims: &SessionClaims) -> String {
        self.sign_with(&self.signing_kid, claims)
            .expect("the signing key is one of the keys")
    }

    /// The token for `claims` signed with the key `kid` (the signing key or one that
    /// only verifies), or `None` when no key has that id: how a session re-derives the
    /// token it was given, after the signing key changed.
    pub fn sign_with(&self, kid: &str, claims: &SessionClaims) -> Option<String> {
        let key = self.keys.get(kid)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        Some(
            jsonwebtoken::encode(&header, claims, &key.encoding)
                .expect("HS256 over serializable claims cannot fail"),
        )
    }

    /// Verifies `token` against the system clock: HS256 only, a known `kid`, the
    /// signature, `exp` and `nbf` with 30 s of leeway, and the issuer.
    pub fn verify(&self, token: &str, issuer: &str) -> Result<SessionClaims, JwtRejected> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        self.verify_at(token, issuer, now)
    }

    /// Verifies `token` as [`verify`](Self::verify) does, at `now` (Unix seconds): the
    /// registry passes its own [`Clock`](crate::clock::Clock).
    pub fn verify_at(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Result<SessionClaims, JwtRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejected::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtRejected::Algorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(JwtRejected::UnknownKey)?;
        // Times are checked below against `now`, not by the library's system clock.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtRejected::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JwtRejected::Algorithm,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => JwtRejected::Claims,
                _ => JwtRejected::Malformed,
            })?;
        let leeway = LEEWAY_SECS as i64;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(JwtRejected::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(JwtRejected::Claims);
        }
        Ok(claims)
    }
}

/// Whether `token` has the shape of a JWT (three base64url segments), so that the
/// layer can tell it from an opaque token without decoding it.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        if segment.is_empty() && segments < 3
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}
