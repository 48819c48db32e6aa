use zeroize::Zeroizing;

use super::{Digest, Env, MAX_TOKEN_LEN, PrefixedFormat, Secret, account, sanctum};
use crate::identity::TokenId;

/// Why a credential was rejected before any lookup. Only ever shown in server-side
/// tracing: every one of them answers the client exactly like an unknown token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The credential is empty.
    #[error("empty token")]
    Empty,
    /// The credential is longer than [`MAX_TOKEN_LEN`](super::MAX_TOKEN_LEN).
    #[error("token too long")]
    TooLong,
    /// The credential has the shape of no accepted format.
    #[error("token matches no accepted format")]
    Shape,
    /// A prefixed token with another prefix.
    #[error("wrong token prefix")]
    Prefix,
    /// A prefixed token whose environment is neither `live` nor `test`.
    #[error("unknown token environment")]
    Env,
    /// The random part is too short or too long.
    #[error("token has the wrong length")]
    Length,
    /// A character outside the format's alphabet.
    #[error("invalid character in token")]
    Character,
    /// The checksum does not match: a typo, a truncation or a made-up token.
    #[error("token checksum mismatch")]
    Checksum,
    /// A JWT whose signature, algorithm, key id or claims are not accepted.
    #[error("JWT not accepted")]
    Jwt,
    /// A Sanctum-style token whose id is not a positive decimal number.
    #[error("invalid token id")]
    Id,
    /// An account credential that is not valid base64.
    #[error("invalid base64 in account credential")]
    Base64,
    /// An account credential without `account_id:` or with an invalid account id.
    #[error("invalid account credential")]
    Account,
}

/// The format newly issued tokens are minted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum IssueFormat {
    /// `<prefix>_<env>_<random><checksum>` (see [`PrefixedFormat`]).
    #[default]
    Prefixed,
    /// Sanctum-style `<id>|<secret>` with a 40-character secret.
    Sanctum,
}

/// The set of wire formats a verifier accepts.
///
/// The default accepts only [`PrefixedFormat::default`] (`sk_live_…` / `sk_test_…`).
///
/// ```
/// use tower_bearer::token::{Formats, Malformed, PrefixedFormat};
///
/// let formats = Formats::none()
///     .prefixed(PrefixedFormat::new("acme")?)
///     .sanctum()
///     .account();
/// assert!(formats.decode("7|abc123def456").is_ok());
/// assert_eq!(formats.decode("acme_live_tooshort").unwrap_err(), Malformed::Length);
/// assert_eq!(formats.decode("").unwrap_err(), Malformed::Empty);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats {
    prefixed: Option<PrefixedFormat>,
    sanctum: bool,
    account: bool,
}

impl Default for Formats {
    fn default() -> Self {
        Self::none().prefixed(PrefixedFormat::default())
    }
}

/// A credential that passed its format's shape and checksum checks: what the registry
/// looks up, and what the record found must agree with. (The registry's own decoding
/// checks the checksum only when the cache misses: a hit proves the credential.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    digest: Digest,
    id: Option<TokenId>,
    env: Option<Env>,
    account: Option<Box<str>>,
    jwt: bool,
    /// For a JWT, the keyed hash of its header and payload.
    jwt_check: u64,
    /// The checksum was not checked yet (see [`Formats::decode_deferring_checksum`]).
    checksum_deferred: bool,
}

/// The digest a session access token (a JWT) is stored and cached under: SHA-256 of its
/// signature. The signature is an HMAC over the header and payload, so it stands for the
/// whole token (the cache also checks a keyed hash of the rest, see
/// [`Presented::jwt`]); hashing 43 bytes instead of the whole token keeps a cached JWT
/// as cheap as an opaque token.
pub(crate) fn jwt_digest(token: &str) -> Digest {
    let signature = token
        .rsplit_once('.')
        .map_or(token, |(_, signature)| signature);
    Digest::of(signature.as_bytes())
}

impl Presented {
    /// A JWT-shaped credential (a session access token): looked up by the digest of its
    /// signature, with `check` (a keyed hash of its header and payload, by a
    /// per-registry random key) to compare with the cached token's, so that a token with
    /// a genuine signature and any other header or payload never matches. It is verified
    /// by signature before any store lookup.
    #[cfg_attr(not(feature = "exchange"), allow(dead_code))]
    pub(crate) fn jwt(token: &str, check: &impl std::hash::BuildHasher) -> Self {
        let head = token.rsplit_once('.').map_or("", |(head, _)| head);
        Self {
            digest: jwt_digest(token),
            id: None,
            env: None,
            account: None,
            jwt: true,
            jwt_check: check.hash_one(head.as_bytes()),
            checksum_deferred: false,
        }
    }

    /// Whether the credential is a JWT (a session access token).
    pub fn is_jwt(&self) -> bool {
        self.jwt
    }

    /// Whether the checksum still has to be checked before the store is asked.
    pub(crate) fn checksum_deferred(&self) -> bool {
        self.checksum_deferred
    }

    /// For a JWT, the keyed hash of its header and payload (0 otherwise).
    pub(crate) fn jwt_check(&self) -> u64 {
        self.jwt_check
    }

    /// The digest to look up.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// For Sanctum-style tokens, the id the record must have.
    pub fn expected_id(&self) -> Option<TokenId> {
        self.id
    }

    /// For prefixed tokens, the environment written in the token.
    pub fn env(&self) -> Option<Env> {
        self.env
    }

    /// For account-style credentials, the account the record's tenant must equal.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }
}

impl Formats {
    /// Accepts nothing; add formats with the builder methods.
    pub fn none() -> Self {
        Self {
            prefixed: None,
            sanctum: false,
            account: false,
        }
    }

    /// Accepts prefixed tokens with this configuration (replacing any earlier one).
    #[must_use]
    pub fn prefixed(mut self, format: PrefixedFormat) -> Self {
        self.prefixed = Some(format);
        self
    }

    /// Accepts Sanctum-style `<id>|<secret>` tokens.
    #[must_use]
    pub fn sanctum(mut self) -> Self {
        self.sanctum = true;
        self
    }

    /// Accepts account-style `base64(account_id:api_key)` credentials, whose api key is in
    /// one of the other accepted formats.
    #[must_use]
    pub fn account(mut self) -> Self {
        self.account = true;
        self
    }

    /// The accepted prefixed format, if any.
    pub fn prefixed_format(&self) -> Option<&PrefixedFormat> {
        self.prefixed.as_ref()
    }

    /// The regular expression to register with secret scanners (GitHub, GitLab) for
    /// these formats' tokens: the prefixed format's
    /// ([`PrefixedFormat::scanning_pattern`]). `None` without one: Sanctum's `id|secret`
    /// and account credentials have no prefix a scanner could recognise.
    pub fn scanning_pattern(&self) -> Option<String> {
        self.prefixed.as_ref().map(PrefixedFormat::scanning_pattern)
    }

    /// Whether tokens minted in `format` would be accepted.
    pub fn accepts(&self, format: IssueFormat) -> bool {
        match format {
            IssueFormat::Prefixed => self.prefixed.is_some(),
            IssueFormat::Sanctum => self.sanctum,
        }
    }

    /// Makes sure tokens minted in `format` are accepted.
    pub(crate) fn accepting(mut self, format: IssueFormat) -> Self {
        match format {
            IssueFormat::Prefixed if self.prefixed.is_none() => {
                self.prefixed = Some(PrefixedFormat::default())
            }
            IssueFormat::Sanctum => self.sanctum = true,
            _ => {}
        }
        self
    }

    /// Checks the shape (and checksum, where the format has one) of a credential and
    /// computes the digest to look up. Nothing here touches a cache or a store.
    pub fn decode(&self, token: &str) -> Result<Presented, Malformed> {
        self.decode_checking(token, true)
    }

    /// [`decode`](Self::decode) without the checksum, which the caller checks (with
    /// `decode`) before it asks a store: a cache hit already proves the credential, whose
    /// digest only a genuine token has. The verification of a cache hit skips it.
    pub(crate) fn decode_deferring_checksum(&self, token: &str) -> Result<Presented, Malformed> {
        self.decode_checking(token, false)
    }

    fn decode_checking(&self, token: &str, checksum: bool) -> Result<Presented, Malformed> {
        if token.is_empty() {
            return Err(Malformed::Empty);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(Malformed::TooLong);
        }
        // Prefixed tokens contain `_` and Sanctum tokens `|`, neither of which is in the
        // standard base64 alphabet: the shapes cannot be confused.
        if self.account && account::looks_like(token) {
            let decoded = account::decode(token)?;
            let mut presented = self.decode_key(decoded.api_key(), checksum)?;
            presented.account = Some(decoded.account_id().into());
            return Ok(presented);
        }
        self.decode_key(token, checksum)
    }

    /// Decodes an API key in the prefixed or the Sanctum format (a Sanctum token has no
    /// checksum).
    fn decode_key(&self, token: &str, checksum: bool) -> Result<Presented, Malformed> {
        // The common case first, without a scan of the token: `<prefix>_` starts no other
        // format's tokens (a Sanctum token starts with its numeric id and `|`).
        if let Some(format) = &self.prefixed {
            if format.starts(token) {
                return self.decode_prefixed(format, token, checksum);
            }
        }
        if token.contains('|') {
            if !self.sanctum {
                return Err(Malformed::Shape);
            }
            let (id, secret) = sanctum::decode(token)?;
            return Ok(Presented {
                digest: Digest::of(secret.as_bytes()),
                id: Some(id),
                env: None,
                account: None,
                jwt: false,
                jwt_check: 0,
                checksum_deferred: false,
            });
        }
        match &self.prefixed {
            Some(format) if token.contains('_') => self.decode_prefixed(format, token, checksum),
            _ => Err(Malformed::Shape),
        }
    }

    fn decode_prefixed(
        &self,
        format: &PrefixedFormat,
        token: &str,
        checksum: bool,
    ) -> Result<Presented, Malformed> {
        let env = format.check(token, checksum)?;
        Ok(Presented {
            digest: Digest::of(token.as_bytes()),
            id: None,
            env: Some(env),
            account: None,
            jwt: false,
            jwt_check: 0,
            checksum_deferred: !checksum,
        })
    }

    /// Mints a token in `format`. Sanctum-style tokens are finished once the store has
    /// assigned the record id.
    pub(crate) fn mint(
        &self,
        format: IssueFormat,
        env: Env,
    ) -> Result<PendingToken, getrandom::Error> {
        match format {
            IssueFormat::Prefixed => {
                let minted = self.prefixed.clone().unwrap_or_default().mint(env)?;
                Ok(PendingToken {
                    digest: minted.digest,
                    display_prefix: minted.display_prefix,
                    plaintext: Pending::Complete(minted.secret),
                })
            }
            IssueFormat::Sanctum => {
                let secret = Zeroizing::new(sanctum::mint_secret()?);
                Ok(PendingToken {
                    digest: Digest::of(secret.as_bytes()),
                    display_prefix: secret[..4].to_owned(),
                    plaintext: Pending::SanctumSecret(secret),
                })
            }
        }
    }
}

/// A minted token whose plaintext may still need the record id.
pub(crate) struct PendingToken {
    pub(crate) digest: Digest,
    pub(crate) display_prefix: String,
    plaintext: Pending,
}

enum Pending {
    Complete(Secret),
    SanctumSecret(Zeroizing<String>),
}

impl PendingToken {
    /// The plaintext token for the record with `id`.
    pub(crate) fn finish(self, id: TokenId) -> Secret {
        match self.plaintext {
            Pending::Complete(secret) => secret,
            Pending::SanctumSecret(secret) => Secret::new(format!("{id}|{}", secret.as_str())),
        }
    }
}
