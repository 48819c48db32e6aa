//! Scopes: validated permission names and the implications between them.
//!
//! A scope is one of
//! - the built-ins `read`, `write` and `admin`;
//! - `*`, which grants everything;
//! - a custom `resource:action` name such as `billing:read` or `reports:export`
//!   (segments of lowercase ASCII letters, digits, `_`, `-` and `.`, separated by `:`).
//!
//! [`Implications`] say which scopes a scope includes; the default is
//! `admin ⊇ write ⊇ read`. A [`Principal`](crate::principal::Principal) answers
//! [`has_scope`](crate::principal::Principal::has_scope) with implications applied.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MAX_SCOPE_LEN: usize = 64;

/// A validated scope name.
///
/// ```
/// use tower_bearer::Scope;
///
/// assert!(Scope::new("read").is_ok());
/// assert!(Scope::new("billing:read").is_ok());
/// assert!(Scope::new("*").is_ok());
/// assert!(Scope::new("Read").is_err());
/// assert!(Scope::new("billing").is_err()); // custom scopes are resource:action
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(Arc<str>);

/// A string that is not a valid scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scope `{0}`: expected read, write, admin, * or resource:action")]
pub struct InvalidScope(pub String);

impl Scope {
    /// The built-in `read` scope.
    pub const READ: &'static str = "read";
    /// The built-in `write` scope.
    pub const WRITE: &'static str = "write";
    /// The built-in `admin` scope.
    pub const ADMIN: &'static str = "admin";
    /// The scope that grants everything.
    pub const ALL: &'static str = "*";

    /// Validates a scope name.
    pub fn new(name: &str) -> Result<Self, InvalidScope> {
        if is_valid_scope(name) {
            Ok(Self(name.into()))
        } else {
            Err(InvalidScope(name.chars().take(MAX_SCOPE_LEN).collect()))
        }
    }

    /// The scope's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` is a valid scope name: `read`, `write`, `admin`, `*`, or
/// `resource:action` (segments of lowercase ASCII letters, digits, `_`, `-` and `.`,
/// separated by `:`, at most 64 bytes).
///
/// A `const fn`, so that scope names written in code are checked when it compiles (see
/// [`RequiredScope`](crate::extract::RequiredScope)).
///
/// ```
/// use tower_bearer::scope::is_valid_scope;
///
/// const _: () = assert!(is_valid_scope("billing:export"));
/// assert!(!is_valid_scope("billing-export")); // no `:`
/// assert!(!is_valid_scope("Billing:Export")); // uppercase
/// ```
pub const fn is_valid_scope(name: &str) -> bool {
    let bytes = name.as_bytes();
    if eq(bytes, b"read") || eq(bytes, b"write") || eq(bytes, b"admin") || eq(bytes, b"*") {
        return true;
    }
    if bytes.is_empty() || bytes.len() > MAX_SCOPE_LEN {
        return false;
    }
    let mut colons = 0;
    let mut segment_len = 0;
    let mut at = 0;
    while at < bytes.len() {
        let b = bytes[at];
        if b == b':' {
            if segment_len == 0 {
                return false;
            }
            colons += 1;
            segment_len = 0;
        } else if b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b == b'_'
            || b == b'-'
            || b == b'.'
        {
            segment_len += 1;
        } else {
            return false;
        }
        at += 1;
    }
    colons > 0 && segment_len > 0
}

const fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut at = 0;
    while at < a.len() {
        if a[at] != b[at] {
            return false;
        }
        at += 1;
    }
    true
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Scope {
    type Err = InvalidScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl AsRef<str> for Scope {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Scope::new(&name).map_err(serde::de::Error::custom)
    }
}

/// A sorted set of scopes, cheap to clone.
///
/// ```
/// use tower_bearer::ScopeSet;
///
/// let scopes = ScopeSet::parse(["write", "billing:read", "write"])?;
/// assert_eq!(scopes.len(), 2);
/// assert!(scopes.contains("write"));
/// assert!(!scopes.contains("read")); // membership only; see Principal::has_scope
/// # Ok::<(), tower_bearer::scope::InvalidScope>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(Arc<[Scope]>);

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates and collects scope names.
    pub fn parse<I, S>(names: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names
            .into_iter()
            .map(|name| Scope::new(name.as_ref()))
            .collect()
    }

    /// Whether `name` is in the set (literally; no implications, no `*`).
    pub fn contains(&self, name: &str) -> bool {
        self.0
            .binary_search_by(|scope| scope.as_str().cmp(name))
            .is_ok()
    }

    /// The scopes, sorted by name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Scope> + '_ {
        self.0.iter()
    }

    /// How many scopes the set holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let set: BTreeSet<Scope> = iter.into_iter().collect();
        Self(set.into_iter().collect())
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Scope>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

/// Which scopes each scope includes. Applied transitively.
///
/// ```
/// use tower_bearer::scope::{Implications, Scope, ScopeSet};
///
/// let rules = Implications::default().imply("admin", "billing:read")?;
/// let effective = rules.expand(&ScopeSet::parse(["admin"])?);
/// assert!(effective.contains("read"));          // admin ⊇ write ⊇ read
/// assert!(effective.contains("billing:read"));  // added above
/// # Ok::<(), tower_bearer::scope::InvalidScope>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Implications {
    includes: BTreeMap<Scope, BTreeSet<Scope>>,
}

impl Default for Implications {
    /// `admin ⊇ write ⊇ read`.
    fn default() -> Self {
        Self::none()
            .imply(Scope::ADMIN, Scope::WRITE)
            .and_then(|rules| rules.imply(Scope::WRITE, Scope::READ))
            .expect("built-in scopes are valid")
    }
}

impl Implications {
    /// No implications at all: every scope stands for itself only.
    pub fn none() -> Self {
        Self {
            includes: BTreeMap::new(),
        }
    }

    /// Declares that holding `scope` also grants `included`.
    pub fn imply(mut self, scope: &str, included: &str) -> Result<Self, InvalidScope> {
        let scope = Scope::new(scope)?;
        let included = Scope::new(included)?;
        self.includes.entry(scope).or_default().insert(included);
        Ok(self)
    }

    /// Every scope the rules name, on either side.
    pub fn named(&self) -> impl Iterator<Item = Scope> + '_ {
        self.includes
            .iter()
            .flat_map(|(scope, included)| std::iter::once(scope).chain(included))
            .cloned()
    }

    /// Whether `granted` includes `scope`, directly, through `*`, or by implication.
    pub fn grants(&self, granted: &ScopeSet, scope: &str) -> bool {
        let effective = self.expand(granted);
        effective.contains(Scope::ALL) || effective.contains(scope)
    }

    /// The granted scopes plus everything they include, transitively.
    pub fn expand(&self, granted: &ScopeSet) -> ScopeSet {
        let mut effective: BTreeSet<Scope> = BTreeSet::new();
        let mut pending: Vec<Scope> = granted.iter().cloned().collect();
        while let Some(scope) = pending.pop() {
            if let Some(included) = self.includes.get(&scope) {
                pending.extend(included.iter().filter(|s| !effective.contains(*s)).cloned());
            }
            effective.insert(scope);
        }
        effective.into_iter().collect()
    }
}
