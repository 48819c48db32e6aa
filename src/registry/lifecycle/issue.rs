//! What to issue ([`IssueRequest`]) and what comes back ([`Issued`]).

use std::time::Duration;

use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind, is_valid_tenant};
use crate::policy::Policies;
use crate::principal::Principal;
use crate::scope::{InvalidScope, ScopeSet};
use crate::store::{Metadata, TokenInfo};
use crate::token::{Env, Secret};

/// The longest token name accepted, in characters.
pub const MAX_NAME_LEN: usize = 255;
/// The longest owner id accepted, in bytes.
pub const MAX_OWNER_LEN: usize = 255;
/// The largest metadata object accepted, in bytes of JSON.
pub const MAX_METADATA_LEN: usize = 4096;
/// The tenant of single-tenant applications ([`IssueRequest::named`]).
pub const DEFAULT_TENANT: &str = "default";

/// How long a token lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// The registry's default (180 days unless configured otherwise).
    #[default]
    Default,
    /// This long after issuance.
    In(Duration),
    /// At this instant, which must be in the future.
    At(OffsetDateTime),
    /// Never.
    Never,
}

impl Expiry {
    /// `days` days after issuance.
    pub fn days(days: u32) -> Self {
        Expiry::In(Duration::from_secs(u64::from(days) * 86_400))
    }
}

/// A name or tenant that cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIssueRequest {
    /// The name is empty, blank, longer than 255 characters, or contains control characters.
    #[error("name must be 1 to 255 characters without control characters")]
    Name,
    /// The tenant is not 1–128 ASCII letters, digits, `_`, `-` or `.`.
    #[error("tenant must be 1 to 128 ASCII letters, digits, `_`, `-` or `.`")]
    Tenant,
    /// A scope name is invalid.
    #[error(transparent)]
    Scope(#[from] InvalidScope),
    /// The owner is empty, longer than 255 bytes, or contains control characters.
    #[error("owner must be 1 to 255 bytes without control characters")]
    Owner,
    /// The policies break a rule.
    #[error(transparent)]
    Policies(crate::policy::InvalidPolicy),
    /// The metadata is larger than 4 KiB of JSON.
    #[error("metadata must be at most 4096 bytes of JSON")]
    Metadata,
}

/// Whether `owner` is an acceptable owner id: 1 to 255 bytes, no control characters.
pub(crate) fn is_valid_owner(owner: &str) -> bool {
    !owner.is_empty() && owner.len() <= MAX_OWNER_LEN && !owner.chars().any(char::is_control)
}

/// Whether `metadata` fits in 4 KiB of JSON.
pub(crate) fn is_valid_metadata(metadata: &Metadata) -> bool {
    serde_json::to_vec(metadata).is_ok_and(|json| json.len() <= MAX_METADATA_LEN)
}

/// Whether `name` is an acceptable token name.
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME_LEN
        && !name.chars().any(char::is_control)
}

/// What to issue: a name, a tenant, scopes, an expiry, an environment.
///
/// ```
/// use tower_bearer::registry::{Expiry, IssueRequest};
/// use tower_bearer::token::Env;
///
/// let request = IssueRequest::new("CI deploy", "acme")?
///     .scopes(["read", "write"])?
///     .expires(Expiry::days(30))
///     .env(Env::Test);
/// # let _ = request;
/// # Ok::<(), tower_bearer::registry::InvalidIssueRequest>(())
/// ```
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub(crate) name: String,
    pub(crate) tenant: String,
    pub(crate) scopes: ScopeSet,
    pub(crate) expiry: Expiry,
    pub(crate) env: Env,
    pub(crate) kind: TokenKind,
    pub(crate) created_by: Option<TokenId>,
    pub(crate) created_by_session: Option<TokenId>,
    pub(crate) owner: Option<String>,
    pub(crate) metadata: Option<Metadata>,
    pub(crate) policies: Policies,
}

impl IssueRequest {
    /// A request for a token named `name` in `tenant`, with no scopes, the default
    /// expiry, for the `live` environment.
    pub fn new(name: &str, tenant: &str) -> Result<Self, InvalidIssueRequest> {
        if !is_valid_name(name) {
            return Err(InvalidIssueRequest::Name);
        }
        if !is_valid_tenant(tenant) {
            return Err(InvalidIssueRequest::Tenant);
        }
        Ok(Self {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            scopes: ScopeSet::empty(),
            expiry: Expiry::Default,
            env: Env::Live,
            kind: TokenKind::ApiKey,
            created_by: None,
            created_by_session: None,
            owner: None,
            metadata: None,
            policies: Policies::none(),
        })
    }

    /// A request for a token named `name` in the [default tenant](DEFAULT_TENANT), for
    /// single-tenant applications.
    pub fn named(name: &str) -> Result<Self, InvalidIssueRequest> {
        Self::new(name, DEFAULT_TENANT)
    }

    /// The application user the token belongs to (an opaque id, 1 to 255 bytes), as
    /// Sanctum's `tokenable` or Unkey's `ownerId`: listed, filterable, and on the
    /// [`Principal`](crate::principal::Principal).
    pub fn owner(mut self, owner: &str) -> Result<Self, InvalidIssueRequest> {
        if !is_valid_owner(owner) {
            return Err(InvalidIssueRequest::Owner);
        }
        self.owner = Some(owner.to_owned());
        Ok(self)
    }

    /// The application's notes about the token: a JSON object of at most 4 KiB,
    /// returned by listings and [`Registry::get`](crate::registry::Registry::get).
    pub fn metadata(mut self, metadata: Metadata) -> Result<Self, InvalidIssueRequest> {
        if !is_valid_metadata(&metadata) {
            return Err(InvalidIssueRequest::Metadata);
        }
        self.metadata = Some(metadata);
        Ok(self)
    }

    /// The key's rate limits, credits and allowed networks (checked): see
    /// [`policy`](crate::policy). The credits' balance counts from issuance.
    pub fn policies(mut self, policies: Policies) -> Result<Self, InvalidIssueRequest> {
        policies.validate().map_err(InvalidIssueRequest::Policies)?;
        self.policies = policies;
        Ok(self)
    }

    /// Grants these scopes (validated).
    pub fn scopes<I, S>(mut self, scopes: I) -> Result<Self, InvalidIssueRequest>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.scopes = ScopeSet::parse(scopes)?;
        Ok(self)
    }

    /// Grants this set of scopes.
    #[must_use]
    pub fn scope_set(mut self, scopes: ScopeSet) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Sets the environment (default `live`).
    #[must_use]
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Records the token that issues this one (lineage for
    /// [`Registry::revoke_cascade`](crate::registry::Registry::revoke_cascade)); `None`, the
    /// default, for a token issued server-side.
    #[must_use]
    pub fn created_by(mut self, creator: Option<TokenId>) -> Self {
        self.created_by = creator;
        self
    }

    /// Records `caller` as the token that issues this one ([`created_by`](Self::created_by)),
    /// and, when `caller` is a session's access token, that session too: ending the
    /// session with its cascade (`DELETE /sessions/{id}?cascade=true`,
    /// [`Registry::revoke_session_cascade`](crate::registry::Registry::revoke_session_cascade))
    /// revokes what it issued.
    #[must_use]
    pub fn issued_by(mut self, caller: &crate::principal::Principal) -> Self {
        self.created_by = Some(caller.id());
        self.created_by_session = caller.session_record();
        self
    }

    /// Sets the kind (default [`TokenKind::ApiKey`]).
    #[must_use]
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = kind;
        self
    }
}

/// A freshly issued token: its description and, this one time, its plaintext.
#[derive(Debug)]
#[non_exhaustive]
pub struct Issued {
    /// The stored description.
    pub info: TokenInfo,
    /// The plaintext: show it to its owner once; it cannot be recovered.
    pub secret: Secret,
}

/// The longest grace period a rotation may keep the old token valid for (one day).
pub const MAX_GRACE: Duration = Duration::from_secs(86_400);

/// What to rotate: a token of a tenant, optionally on behalf of a caller, optionally
/// keeping the old token valid for a grace period (Stripe's "roll key").
///
/// A rotation on behalf of a caller follows the rule issuance follows in the management
/// API: the caller must hold every scope of the token it rotates (with implications), so
/// that rotating can never hand out more than the caller could create.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::registry::RotateRequest;
/// use tower_bearer::TokenId;
///
/// let request = RotateRequest::new("acme", TokenId::new(7)).grace(Duration::from_secs(3600));
/// # let _ = request;
/// ```
#[derive(Clone, Debug)]
pub struct RotateRequest {
    pub(crate) tenant: String,
    pub(crate) id: TokenId,
    pub(crate) caller: Option<Principal>,
    pub(crate) grace: Duration,
}

impl RotateRequest {
    /// Rotates token `id` of `tenant` with the server's authority (no scope rule).
    pub fn new(tenant: &str, id: TokenId) -> Self {
        Self {
            tenant: tenant.to_owned(),
            id,
            caller: None,
            grace: Duration::ZERO,
        }
    }

    /// Rotates token `id` of the caller's tenant for `caller`, who must hold every scope
    /// of the token ([`RegistryError::ScopesNotHeld`](crate::registry::RegistryError::ScopesNotHeld)
    /// otherwise). The new token records `caller` as its creator.
    pub fn on_behalf_of(caller: &Principal, id: TokenId) -> Self {
        Self {
            tenant: caller.tenant().to_owned(),
            id,
            caller: Some(caller.clone()),
            grace: Duration::ZERO,
        }
    }

    /// Keeps the old token valid for `grace` more (at most [`MAX_GRACE`]); by default it
    /// stops working when the rotation returns.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
}
