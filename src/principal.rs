//! Who the caller is: the [`Principal`] a verified credential stands for.
//!
//! A principal is an identity, constructible from parts ([`Principal::builder`]): the
//! registry makes one for every verified API token, a session exchange for every session
//! JWT, and an application's own authenticator (or a test) can make one too.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

use crate::identity::{TokenId, TokenKind};
use crate::scope::{Implications, Scope, ScopeSet};
use crate::token::Env;

/// The authenticated caller: inserted into request extensions by the layer, read by
/// handlers. Cloning is one reference-count increment.
///
/// It carries no secret; its `Debug` and its JSON form are safe to log and return.
///
/// ```
/// use tower_bearer::{Principal, ScopeSet, TokenId, TokenKind};
///
/// let principal = Principal::builder(TokenId::new(7), "sdk session", "acme")
///     .scopes(ScopeSet::parse(["write"])?)
///     .kind(TokenKind::Session)
///     .session_id("browser-1")
///     .build();
/// assert!(principal.has_scope("read")); // write implies read (default implications)
/// assert_eq!(principal.session_id(), Some("browser-1"));
/// # Ok::<(), tower_bearer::scope::InvalidScope>(())
/// ```
#[derive(Clone)]
pub struct Principal(Arc<Inner<dyn Any + Send + Sync>>);

/// A principal's allocation: the identity, then whatever its maker keeps beside it (the
/// registry's cache keeps its bookkeeping there, so that a cached token is one
/// allocation; a principal built from parts keeps nothing).
pub(crate) struct Inner<X: ?Sized> {
    pub(crate) identity: Identity,
    pub(crate) extra: X,
}

/// Who the caller is.
#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) id: TokenId,
    pub(crate) name: Box<str>,
    /// Shared between principals of one tenant; `Arc<Box<str>>` is one word where
    /// `Arc<str>` would be two.
    pub(crate) tenant: Arc<Box<str>>,
    pub(crate) grants: Arc<Grants>,
    /// Unix milliseconds.
    pub(crate) created_at: i64,
    /// Unix nanoseconds; `i64::MAX` for never.
    pub(crate) expires_at: i64,
    pub(crate) env: Env,
    pub(crate) kind: TokenKind,
    /// The rarely set parts, boxed so that principals without them pay one word.
    pub(crate) rare: Option<Box<Rare>>,
}

/// What only some principals have.
#[derive(Clone, Default)]
pub(crate) struct Rare {
    pub(crate) owner: Option<Box<str>>,
    pub(crate) session_id: Option<Box<str>>,
    /// For a cached session token, the registry's keyed hash of its header and payload
    /// (the cache finds it by its signature). Here rather than beside every cached API
    /// key, which has no use for it.
    pub(crate) token_check: u64,
    /// An end user's token's custom claims, as signed.
    pub(crate) claims: Option<Arc<Claims>>,
    /// What the registry attaches to a key with policies (its meter), opaque here.
    pub(crate) meter: Option<Arc<dyn Any + Send + Sync>>,
}

/// The custom claims of an end user's token: JSON names and values.
pub type Claims = serde_json::Map<String, serde_json::Value>;

impl Rare {
    /// `None` when there is nothing to keep.
    pub(crate) fn boxed(owner: Option<&str>, session_id: Option<&str>) -> Option<Box<Self>> {
        (owner.is_some() || session_id.is_some()).then(|| {
            Box::new(Self {
                owner: owner.map(Into::into),
                session_id: session_id.map(Into::into),
                token_check: 0,
                claims: None,
                meter: None,
            })
        })
    }
}

/// Granted scopes and their expansion by the implications; shared by every principal
/// with the same grant.
#[derive(Debug)]
pub(crate) struct Grants {
    pub(crate) granted: ScopeSet,
    pub(crate) effective: ScopeSet,
}

impl Grants {
    pub(crate) fn new(granted: ScopeSet, implications: &Implications) -> Self {
        Self {
            effective: implications.expand(&granted),
            granted,
        }
    }
}

impl<X: ?Sized> Inner<X> {
    /// `expires_at` in Unix nanoseconds; `i64::MAX` for never.
    #[inline]
    pub(crate) fn expires_at_nanos(&self) -> i64 {
        self.identity.expires_at
    }
}

impl Principal {
    /// Starts a principal from its parts: the credential's id, a name, a tenant. By
    /// default it has no scopes, is an API key of the `live` environment, was created
    /// now and never expires.
    pub fn builder(id: TokenId, name: &str, tenant: &str) -> PrincipalBuilder {
        PrincipalBuilder {
            id,
            name: name.into(),
            tenant: tenant.into(),
            scopes: ScopeSet::empty(),
            implications: None,
            kind: TokenKind::ApiKey,
            env: Env::Live,
            created_at: None,
            expires_at: None,
            session_id: None,
            owner: None,
            claims: None,
        }
    }

    /// A principal of an allocation made by the registry (or anyone who keeps something
    /// beside the identity).
    #[inline]
    pub(crate) fn from_inner<X: Any + Send + Sync>(inner: Arc<Inner<X>>) -> Self {
        Self(inner)
    }

    fn identity(&self) -> &Identity {
        &self.0.identity
    }

    /// The credential's id: the token's record id, or a session's.
    pub fn id(&self) -> TokenId {
        self.identity().id
    }

    /// The name the token was issued with, e.g. `"deploy bot"`.
    pub fn name(&self) -> &str {
        &self.identity().name
    }

    /// The tenant (workspace, company, account) the token belongs to.
    pub fn tenant(&self) -> &str {
        &self.identity().tenant
    }

    /// The scopes the token was granted (without implications).
    pub fn scopes(&self) -> &ScopeSet {
        &self.identity().grants.granted
    }

    /// The granted scopes plus everything they imply.
    pub fn effective_scopes(&self) -> &ScopeSet {
        &self.identity().grants.effective
    }

    /// Whether the token grants `scope`, directly, through `*`, or by implication
    /// (with the default rules, `admin` grants `write` and `read`).
    pub fn has_scope(&self, scope: &str) -> bool {
        let effective = &self.identity().grants.effective;
        effective.contains(Scope::ALL) || effective.contains(scope)
    }

    /// The environment the token was issued for.
    pub fn env(&self) -> Env {
        self.identity().env
    }

    /// API key or session token.
    pub fn kind(&self) -> TokenKind {
        self.identity().kind
    }

    /// What the registry attached to the key (its policies' meter), if anything.
    #[inline]
    pub(crate) fn attachment(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.identity().rare.as_ref()?.meter.as_ref()
    }

    /// The application user the token belongs to, if it was issued with one.
    pub fn owner(&self) -> Option<&str> {
        self.identity().rare.as_ref()?.owner.as_deref()
    }

    /// The session this credential belongs to, for session tokens.
    pub fn session_id(&self) -> Option<&str> {
        self.identity().rare.as_ref()?.session_id.as_deref()
    }

    /// The custom claims of an end user's token
    /// ([`Registry::issue_user_token`](crate::registry::Registry::issue_user_token)): what the
    /// application signed into it (a room, a plan), verified with the token. `None` for
    /// API keys and login sessions, which carry none.
    ///
    /// ```
    /// use serde_json::json;
    /// use tower_bearer::{Principal, TokenId, TokenKind};
    ///
    /// let mut claims = tower_bearer::principal::Claims::new();
    /// claims.insert("roomId".to_owned(), json!("general"));
    /// let user = Principal::builder(TokenId::new(9), "Alice", "acme")
    ///     .kind(TokenKind::Session)
    ///     .claims(claims)
    ///     .build();
    /// assert_eq!(user.claims().unwrap()["roomId"], "general");
    /// let key = Principal::builder(TokenId::new(1), "ci", "acme").build();
    /// assert!(key.claims().is_none());
    /// ```
    pub fn claims(&self) -> Option<&Claims> {
        self.identity().rare.as_ref()?.claims.as_deref()
    }

    /// The id of the session record this credential is, for a session's access token or
    /// an end user's token (what `revoke_session` takes).
    pub(crate) fn session_record(&self) -> Option<TokenId> {
        if self.kind() != TokenKind::Session {
            return None;
        }
        self.session_id()?.parse().ok()
    }

    /// When the token was issued (millisecond precision, as stored).
    pub fn created_at(&self) -> OffsetDateTime {
        crate::clock::from_nanos(self.identity().created_at.saturating_mul(1_000_000))
    }

    /// When the token stops working; `None` for tokens that never expire.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        let at = self.identity().expires_at;
        (at != i64::MAX).then(|| crate::clock::from_nanos(at))
    }
}

/// Builds a [`Principal`] from parts; see [`Principal::builder`].
#[derive(Debug)]
#[must_use]
pub struct PrincipalBuilder {
    id: TokenId,
    name: Box<str>,
    tenant: Box<str>,
    scopes: ScopeSet,
    implications: Option<Implications>,
    kind: TokenKind,
    env: Env,
    created_at: Option<OffsetDateTime>,
    expires_at: Option<OffsetDateTime>,
    session_id: Option<Box<str>>,
    owner: Option<Box<str>>,
    claims: Option<Claims>,
}

impl PrincipalBuilder {
    /// The granted scopes.
    pub fn scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = scopes;
        self
    }

    /// Which scopes imply which (default `admin ⊇ write ⊇ read`); use the registry's
    /// when they differ.
    pub fn implications(mut self, implications: &Implications) -> Self {
        self.implications = Some(implications.clone());
        self
    }

    /// API key (the default) or session.
    pub fn kind(mut self, kind: TokenKind) -> Self {
        self.kind = kind;
        self
    }

    /// The environment (default `live`).
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// When the credential was issued (default: now).
    pub fn created_at(mut self, at: OffsetDateTime) -> Self {
        self.created_at = Some(at);
        self
    }

    /// When the credential stops working (default: never).
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// The session the credential belongs to.
    pub fn session_id(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// The application user the credential belongs to.
    pub fn owner(mut self, owner: &str) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// The credential's custom claims ([`Principal::claims`]).
    pub fn claims(mut self, claims: Claims) -> Self {
        self.claims = Some(claims);
        self
    }

    /// The principal.
    pub fn build(self) -> Principal {
        let implications = self.implications.unwrap_or_default();
        let created_at = self.created_at.unwrap_or_else(OffsetDateTime::now_utc);
        let identity = Identity {
            id: self.id,
            name: self.name,
            tenant: Arc::new(self.tenant),
            grants: Arc::new(Grants::new(self.scopes, &implications)),
            created_at: crate::clock::to_millis(created_at),
            expires_at: self.expires_at.map_or(i64::MAX, crate::clock::to_nanos),
            env: self.env,
            kind: self.kind,
            rare: match self.claims {
                Some(claims) => Some(Box::new(Rare {
                    owner: self.owner,
                    session_id: self.session_id,
                    token_check: 0,
                    claims: Some(Arc::new(claims)),
                    meter: None,
                })),
                None => Rare::boxed(self.owner.as_deref(), self.session_id.as_deref()),
            },
        };
        Principal::from_inner(Arc::new(Inner {
            identity,
            extra: (),
        }))
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = self.identity();
        f.debug_struct("Principal")
            .field("id", &identity.id)
            .field("name", &identity.name)
            .field("tenant", &identity.tenant)
            .field("scopes", self.scopes())
            .field("env", &identity.env)
            .field("kind", &identity.kind)
            .field("owner", &self.owner())
            .field("session_id", &self.session_id())
            .field("claims", &self.claims())
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// Serializes as `{"id","name","tenant","scopes","env","kind","created_at","expires_at"}`
/// (plus `owner`, `session_id` and `claims` when set) with RFC 3339 times (`expires_at` is `null`
/// for tokens that never expire).
impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            id: TokenId,
            name: &'a str,
            tenant: &'a str,
            scopes: &'a ScopeSet,
            env: Env,
            kind: TokenKind,
            #[serde(skip_serializing_if = "Option::is_none")]
            owner: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            session_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            claims: Option<&'a Claims>,
            #[serde(with = "time::serde::rfc3339")]
            created_at: OffsetDateTime,
            #[serde(with = "time::serde::rfc3339::option")]
            expires_at: Option<OffsetDateTime>,
        }
        let identity = self.identity();
        Json {
            id: identity.id,
            name: &identity.name,
            tenant: &identity.tenant,
            scopes: self.scopes(),
            env: identity.env,
            kind: identity.kind,
            owner: self.owner(),
            session_id: self.session_id(),
            claims: self.claims(),
            created_at: self.created_at(),
            expires_at: self.expires_at(),
        }
        .serialize(serializer)
    }
}
