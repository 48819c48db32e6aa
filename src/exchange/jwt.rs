//! Session access tokens: HS256 JWTs with a `kid`, signed by one key and verified by any
//! of several, so that keys rotate without logging anyone out.
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
}

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
    /// Expired, not yet valid, wrong issuer, or a claim missing.
    #[error("claims not valid")]
    Claims,
}

/// The keys session tokens are signed and verified with: one signs, every one verifies.
///
/// ```
/// use tower_bearer::exchange::{SessionClaims, SessionKeys};
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
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.verifying.keys().map(String::as_str).collect();
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
            signing: EncodingKey::from_secret(secret),
            verifying: HashMap::from([(kid.to_owned(), DecodingKey::from_secret(secret))]),
        })
    }

    /// Also accepts tokens signed with `secret` under `kid` (an older key, during a
    /// rotation).
    pub fn verify_with(mut self, kid: &str, secret: &[u8]) -> Result<Self, InvalidSessionKey> {
        check(kid, secret)?;
        self.verifying
            .insert(kid.to_owned(), DecodingKey::from_secret(secret));
        Ok(self)
    }

    /// The id of the signing key.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The token for `claims`: the same claims always give the same token.
    pub fn sign(&self, claims: &SessionClaims) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing)
            .expect("HS256 over serializable claims cannot fail")
    }

    /// Verifies `token`: HS256 only, a known `kid`, the signature, `exp` and `nbf` with
    /// 30 s of leeway, and the issuer.
    pub fn verify(&self, token: &str, issuer: &str) -> Result<SessionClaims, JwtRejected> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtRejected::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(JwtRejected::Algorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(JwtRejected::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<SessionClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JwtRejected::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JwtRejected::Algorithm,
                jsonwebtoken::errors::ErrorKind::ExpiredSignature
                | jsonwebtoken::errors::ErrorKind::ImmatureSignature
                | jsonwebtoken::errors::ErrorKind::InvalidIssuer
                | jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => JwtRejected::Claims,
                _ => JwtRejected::Malformed,
            })
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
