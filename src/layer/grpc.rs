//! gRPC awareness of the layer: recognising gRPC requests and the per-method scope map.
//!
//! For gRPC requests (`content-type: application/grpc…`) every rejection is a valid
//! trailers-only gRPC response (see [`Rejection::grpc_code`](crate::reject::Rejection::grpc_code)),
//! and [`GrpcScopes`] says which scope each method needs. Plain HTTP requests through the
//! same layer keep the JSON contract.

use std::collections::HashMap;
use std::fmt;

use http::HeaderMap;
use http::header::CONTENT_TYPE;

use crate::scope::{InvalidScope, Scope};

/// Whether a request with these headers is a gRPC call (`application/grpc`,
/// `application/grpc+proto`, `application/grpc-web…`).
#[inline]
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Which scope each gRPC method requires, by path: `/package.Service/Method`, or
/// `/package.Service/*` for every method of a service. A method's own entry wins over its
/// service's; methods in neither need only a valid token.
///
/// ```
/// use tower_bearer::layer::GrpcScopes;
///
/// let scopes = GrpcScopes::new()
///     .require("/items.v1.Items/*", "read")?
///     .require("/items.v1.Items/Create", "write")?
///     .require("/grpc.health.v1.Health/Check", "read")?;
/// assert_eq!(scopes.required("/items.v1.Items/Create").unwrap().as_str(), "write");
/// assert_eq!(scopes.required("/items.v1.Items/List").unwrap().as_str(), "read");
/// assert!(scopes.required("/other.v1.Other/Call").is_none());
/// # Ok::<(), tower_bearer::layer::InvalidGrpcScope>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GrpcScopes {
    methods: HashMap<Box<str>, Scope>,
    services: HashMap<Box<str>, Scope>,
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

    /// The scope the method at `path` requires, if any.
    pub fn required(&self, path: &str) -> Option<&Scope> {
        if let Some(scope) = self.methods.get(path) {
            return Some(scope);
        }
        let (service, _) = split_path(path)?;
        self.services.get(service)
    }

    /// Whether no method has a requirement.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty() && self.services.is_empty()
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
            .finish()
    }
}
