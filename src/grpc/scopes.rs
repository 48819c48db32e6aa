//! gRPC awareness of the layer: recognising gRPC requests and the per-method scope map.
//!
//! For gRPC requests (`content-type: application/grpc` or `application/grpc+<subtype>`)
//! every rejection is a valid trailers-only gRPC response (see
//! [`Rejection::grpc_code`](crate::reject::Rejection::grpc_code)); requests with any other
//! content type get the HTTP (JSON) contract.
//!
//! [`GrpcScopes`] says which scope each method needs. It is enforced by **path**, whatever
//! the content type: tonic dispatches on the path alone, so a gRPC-framed request sent with
//! `content-type: application/octet-stream` reaches the method as surely as a real gRPC
//! call, and must meet the same requirement.

use std::collections::HashMap;
use std::fmt;

use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::scope::{InvalidScope, Scope};

/// Whether a request with these headers is a gRPC call: `content-type` is exactly
/// `application/grpc` or `application/grpc+<subtype>` (case-insensitive), as the gRPC
/// over HTTP/2 specification defines it. `application/grpcfoo` and gRPC-Web are not.
#[inline]
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| is_grpc_content_type(value.as_bytes()))
}

fn is_grpc_content_type(value: &[u8]) -> bool {
    const GRPC: &[u8] = b"application/grpc";
    let Some((head, rest)) = value.split_at_checked(GRPC.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(GRPC) {
        return false;
    }
    match rest {
        [] => true,
        [b'+', subtype @ ..] => {
            !subtype.is_empty()
                && subtype
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        }
        _ => false,
    }
}

/// What a method needs, according to a [`GrpcScopes`] map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MethodRequirement<'a> {
    /// A valid token with this scope.
    Scope(&'a Scope),
    /// Nobody may call it: the method is not in a [deny-unlisted](GrpcScopes::deny_unlisted) map.
    Denied,
    /// Only a valid token (or, in optional mode, nothing).
    Token,
}

/// Which scope each gRPC method requires, by path: `/package.Service/Method`, or
/// `/package.Service/*` for every method of a service. A method's own entry wins over its
/// service's; methods in neither need only a valid token, or, with
/// [`deny_unlisted`](GrpcScopes::deny_unlisted) (the safer setting), are refused with
/// `PERMISSION_DENIED`.
///
/// The map is enforced by request path whatever the `content-type`, so the layer that
/// carries it belongs in front of gRPC services only (a plain HTTP API beside them gets a
/// layer of its own).
///
/// ```
/// use tower_bearer::grpc::GrpcScopes;
///
/// let scopes = GrpcScopes::new()
///     .require("/items.v1.Items/*", "read")?
///     .require("/items.v1.Items/Create", "write")?
///     .require("/grpc.health.v1.Health/Check", "read")?;
/// assert_eq!(scopes.required("/items.v1.Items/Create").unwrap().as_str(), "write");
/// assert_eq!(scopes.required("/items.v1.Items/List").unwrap().as_str(), "read");
/// assert!(scopes.required("/other.v1.Other/Call").is_none());
/// # Ok::<(), tower_bearer::grpc::InvalidGrpcScope>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GrpcScopes {
    methods: HashMap<Box<str>, Scope>,
    services: HashMap<Box<str>, Scope>,
    deny_unlisted: bool,
}

/// A [`GrpcScopes`] entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidGrpcScope {
    /// The path is not `/package.Service/Method` or `/package.Service/*`.
    #[error("gRPC path `{0}` is not /package.Service/Method or /package.Service/*")]
    Path(String),
    /// The scope name is invalid.
    #[error(transparent)]
    Scope(#[from] InvalidScope),
}

impl GrpcScopes {
    /// Every requirement: the method or service path (`/pkg.Svc/*`) and its scope.
    pub(crate) fn requirements(&self) -> impl Iterator<Item = (String, &str)> {
        let methods = self
            .methods
            .iter()
            .map(|(path, scope)| (path.to_string(), scope.as_str()));
        let services = self
            .services
            .iter()
            .map(|(service, scope)| (format!("{service}/*"), scope.as_str()));
        methods.chain(services)
    }

    /// No requirements.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `scope` for the method (or, with `/*`, the service) at `path`.
    pub fn require(mut self, path: &str, scope: &str) -> Result<Self, InvalidGrpcScope> {
        let scope = Scope::new(scope)?;
        let (service, method) =
            split_path(path).ok_or_else(|| InvalidGrpcScope::Path(path.to_owned()))?;
        if method == "*" {
            self.services.insert(service.into(), scope);
        } else {
            self.methods.insert(path.into(), scope);
        }
        Ok(self)
    }

    /// Refuses every method that has no entry (`PERMISSION_DENIED` for a valid token,
    /// `UNAUTHENTICATED` without one), so that a method added to a service later is closed
    /// until someone decides which scope it needs. Recommended.
    ///
    /// ```
    /// use tower_bearer::grpc::{GrpcScopes, MethodRequirement};
    ///
    /// let scopes = GrpcScopes::new().require("/items.v1.Items/List", "read")?.deny_unlisted();
    /// assert_eq!(scopes.requirement("/items.v1.Items/Delete"), MethodRequirement::Denied);
    /// # Ok::<(), tower_bearer::grpc::InvalidGrpcScope>(())
    /// ```
    #[must_use]
    pub fn deny_unlisted(mut self) -> Self {
        self.deny_unlisted = true;
        self
    }

    /// What the method at `path` needs.
    pub fn requirement(&self, path: &str) -> MethodRequirement<'_> {
        match self.required(path) {
            Some(scope) => MethodRequirement::Scope(scope),
            None if self.deny_unlisted => MethodRequirement::Denied,
            None => MethodRequirement::Token,
        }
    }

    /// The scope the method at `path` requires, if any.
    pub fn required(&self, path: &str) -> Option<&Scope> {
        if let Some(scope) = self.methods.get(path) {
            return Some(scope);
        }
        let (service, _) = split_path(path)?;
        self.services.get(service)
    }

    /// Whether no method has a requirement (and unlisted methods are not denied).
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.services.is_empty() && !self.deny_unlisted
    }
}

/// `/package.Service/Method` → (`/package.Service`, `Method`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (service, method) = rest.split_once('/')?;
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_'))
    };
    (valid(service) && (method == "*" || valid(method)))
        .then(|| (&path[..service.len() + 1], method))
}

impl fmt::Debug for GrpcScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcScopes")
            .field("methods", &self.methods)
            .field("services", &self.services)
            .field("deny_unlisted", &self.deny_unlisted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_and_grpc_plus_subtype_are_grpc() {
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc+json",
            "Application/GRPC+proto",
        ] {
            assert!(is_grpc_content_type(grpc.as_bytes()), "{grpc}");
        }
        for not_grpc in [
            "application/grpcfoo",
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc+",
            "application/grpc+pro to",
            "application/grp",
            "application/octet-stream",
            "",
        ] {
            assert!(!is_grpc_content_type(not_grpc.as_bytes()), "{not_grpc}");
        }
    }
}
