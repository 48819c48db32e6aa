use std::fmt;

use super::base62::{self, CHECKSUM_LEN};
use super::{Env, Malformed};

/// The fewest random characters a prefixed token may carry (≈ 178 bits).
pub(crate) const MIN_RANDOM_LEN: usize = 30;
/// The most random characters a prefixed token may carry.
const MAX_RANDOM_LEN: usize = 128;
const DEFAULT_RANDOM_LEN: usize = 32;
const MAX_PREFIX_LEN: usize = 16;

/// The default token format: `<prefix>_<env>_<random><checksum>`, e.g. `sk_live_…`.
///
/// - `prefix` is configurable (default `sk`): 1–16 lowercase ASCII letters or digits,
///   starting with a letter (so that no prefixed token is ever also a Sanctum-style
///   `<id>|<secret>` one a single character away);
/// - `env` is `live` or `test`;
/// - `random` is base62 from the OS CSPRNG (32 characters by default, at least 30);
/// - `checksum` is the CRC32 of everything before it, as 6 base62 characters, so a typo or
///   a made-up token is rejected without touching the cache or the store (and secret
///   scanners can recognise real tokens).
///
/// ```
/// use tower_bearer::token::{Env, PrefixedFormat};
///
/// let format = PrefixedFormat::new("acme")?;
/// let minted = format.mint(Env::Test)?;
/// assert!(minted.secret.expose_secret().starts_with("acme_test_"));
/// assert_eq!(format.decode(minted.secret.expose_secret()), Ok(Env::Test));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PrefixedFormat {
    prefix: Box<str>,
    random_len: usize,
}

/// A [`PrefixedFormat`] configuration that cannot produce parseable tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPrefixedFormat {
    /// The prefix is empty, longer than 16 bytes, not lowercase ASCII letters and digits,
    /// or does not start with a letter.
    #[error(
        "token prefix must be 1 to 16 lowercase ASCII letters or digits, starting with a letter"
    )]
    Prefix,
    /// The random part is shorter than 30 or longer than 128 characters.
    #[error("random part must be between 30 and 128 characters")]
    RandomLen,
}

impl PrefixedFormat {
    /// A format with the given prefix and 32 random characters.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefixedFormat> {
        let valid = prefix
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_lowercase)
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(InvalidPrefixedFormat::Prefix);
        }
        Ok(Self {
            prefix: prefix.into(),
            random_len: DEFAULT_RANDOM_LEN,
        })
    }

    /// Sets how many random characters newly minted tokens carry (30–128). Decoding
    /// accepts any length in that range, so changing this does not invalidate old tokens.
    pub fn random_len(mut self, len: usize) -> Result<Self, InvalidPrefixedFormat> {
        if !(MIN_RANDOM_LEN..=MAX_RANDOM_LEN).contains(&len) {
            return Err(InvalidPrefixedFormat::RandomLen);
        }
        self.random_len = len;
        Ok(self)
    }

    /// The configured prefix, e.g. `sk`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Mints a new token for `env`.
    pub fn mint(&self, env: Env) -> Result<super::Minted, getrandom::Error> {
        let mut token = String::with_capacity(self.max_len());
        token.push_str(&self.prefix);
        token.push('_');
        token.push_str(env.as_str());
        token.push('_');
        let random_at = token.len();
        base62::push_random(&mut token, self.random_len)?;
        let display_prefix = token[..random_at + 4].to_owned();
        let checksum = crc32fast::hash(token.as_bytes());
        base62::push_checksum(&mut token, checksum);
        Ok(super::Minted::new(token, display_prefix))
    }

    fn max_len(&self) -> usize {
        self.prefix.len() + "_live_".len() + self.random_len + CHECKSUM_LEN
    }

    /// The regular expression that finds this format's tokens in text, for the secret
    /// scanners of GitHub and GitLab: the prefix, the environment, then exactly the
    /// random characters and the checksum, between word boundaries. Scanners that
    /// report a match are asked to check the checksum with us.
    ///
    /// ```
    /// use tower_bearer::token::PrefixedFormat;
    ///
    /// let pattern = PrefixedFormat::new("acme")?.scanning_pattern();
    /// assert_eq!(pattern, r"\bacme_(?:live|test)_[0-9A-Za-z]{38}\b");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn scanning_pattern(&self) -> String {
        format!(
            r"\b{}_(?:live|test)_[0-9A-Za-z]{{{}}}\b",
            self.prefix,
            self.random_len + CHECKSUM_LEN
        )
    }

    /// Checks the shape and checksum of `token` and returns its environment.
    pub fn decode(&self, token: &str) -> Result<Env, Malformed> {
        self.check(token, true)
    }

    /// Whether `token` starts like this format's tokens: the prefix and `_`.
    #[inline]
    pub(crate) fn starts(&self, token: &str) -> bool {
        token
            .strip_prefix(&*self.prefix)
            .is_some_and(|rest| rest.starts_with('_'))
    }

    /// Checks the shape of `token`, and its checksum if asked to.
    pub(crate) fn check(&self, token: &str, checksum: bool) -> Result<Env, Malformed> {
        let rest = token
            .strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .ok_or(Malformed::Prefix)?;
        let (env, body) = if let Some(body) = rest.strip_prefix("live_") {
            (Env::Live, body)
        } else if let Some(body) = rest.strip_prefix("test_") {
            (Env::Test, body)
        } else {
            return Err(Malformed::Env);
        };
        let body = body.as_bytes();
        let random_len = body.len().saturating_sub(CHECKSUM_LEN);
        if !(MIN_RANDOM_LEN..=MAX_RANDOM_LEN).contains(&random_len) {
            return Err(Malformed::Length);
        }
        // No early exit: the fold over every byte vectorises (a hit checks this).
        if !body
            .iter()
            .fold(true, |valid, &b| valid & b.is_ascii_alphanumeric())
        {
            return Err(Malformed::Character);
        }
        if !checksum {
            return Ok(env);
        }
        let checked = &token.as_bytes()[..token.len() - CHECKSUM_LEN];
        let expected = base62::parse_checksum(&body[random_len..]);
        if expected != Some(crc32fast::hash(checked)) {
            return Err(Malformed::Checksum);
        }
        Ok(env)
    }
}

impl Default for PrefixedFormat {
    /// `sk_<env>_…` with 32 random characters.
    fn default() -> Self {
        Self {
            prefix: "sk".into(),
            random_len: DEFAULT_RANDOM_LEN,
        }
    }
}

impl fmt::Debug for PrefixedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixedFormat")
            .field("prefix", &self.prefix)
            .field("random_len", &self.random_len)
            .finish()
    }
}
