//! axum extractors: [`Principal`], `Option<Principal>` and [`Scoped`].
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower_bearer::extract::{Scoped, Write};
//! use tower_bearer::Principal;
//!
//! async fn me(principal: Principal) -> String {
//!     format!("{} ({})", principal.name(), principal.tenant())
//! }
//!
//! async fn create(principal: Scoped<Write>) -> &'static str {
//!     // `principal` derefs to `Principal`; it has scope `write` (or `admin`, or `*`).
//!     let _ = principal.tenant();
//!     "created"
//! }
//!
//! async fn maybe(principal: Option<Principal>) -> &'static str {
//!     if principal.is_some() { "hello, you" } else { "hello, stranger" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/items", post(create))
//!     .route("/greeting", get(maybe));
//! // …then `BearerAuthLayer::new(registry).protect(app)`.
//! # let _ = app;
//! ```
//!
//! Rejections are rendered by the enclosing [`BearerAuthLayer`](crate::BearerAuthLayer)'s
//! renderer, so a 403 from `Scoped<Write>` looks exactly like one from the layer. A
//! handler that extracts a principal on a route without the layer answers 500 and logs
//! the missing layer: that is a programming error, not a client's.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::Principal;
use crate::layer::Anonymous;
use crate::layer::missing_layer_response;
use crate::registry::RejectCause;
use crate::reject::{Rejection, render_later};

/// Why a [`Principal`] or [`Scoped`] extractor failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrincipalRejection {
    /// No `BearerAuthLayer` ran for this request: 500, logged at ERROR.
    MissingLayer,
    /// The layer runs in optional mode and the request had no credentials: 401.
    Unauthenticated,
    /// The principal lacks the required scope: 403 `insufficient_scope`.
    InsufficientScope {
        /// The scope that was required (space-separated when several were).
        scope: Cow<'static, str>,
    },
}

impl fmt::Display for PrincipalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalRejection::MissingLayer => {
                f.write_str("no BearerAuthLayer in front of the handler")
            }
            PrincipalRejection::Unauthenticated => f.write_str("request is not authenticated"),
            PrincipalRejection::InsufficientScope { scope } => {
                write!(f, "scope `{scope}` required")
            }
        }
    }
}

impl std::error::Error for PrincipalRejection {}

impl IntoResponse for PrincipalRejection {
    fn into_response(self) -> Response {
        // Extractors serve axum routes: plain HTTP.
        let grpc = false;
        let response = match self {
            PrincipalRejection::MissingLayer => {
                tracing::error!(
                    target: "tower_bearer::extract",
                    "a handler extracts a Principal, but no BearerAuthLayer ran for this request"
                );
                missing_layer_response("the Principal extractor")
            }
            PrincipalRejection::Unauthenticated => render_later(
                Rejection::Unauthenticated {
                    cause: RejectCause::Missing,
                    token_id: None,
                },
                grpc,
            ),
            PrincipalRejection::InsufficientScope { scope } => render_later(
                Rejection::InsufficientScope {
                    scope,
                    token_id: None,
                },
                grpc,
            ),
        };
        response.map(Body::from)
    }
}

fn principal_of(parts: &Parts) -> Result<Option<Principal>, PrincipalRejection> {
    if let Some(principal) = parts.extensions.get::<Principal>() {
        return Ok(Some(principal.clone()));
    }
    if parts.extensions.get::<Anonymous>().is_some() {
        return Ok(None);
    }
    Err(PrincipalRejection::MissingLayer)
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        principal_of(parts)?.ok_or(PrincipalRejection::Unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        principal_of(parts)
    }
}

/// A scope a [`Scoped`] extractor requires. Implement it on your own marker types for
/// custom scopes:
///
/// ```
/// use tower_bearer::extract::{RequiredScope, Scoped};
///
/// pub struct ExportReports;
/// impl RequiredScope for ExportReports {
///     const SCOPE: &'static str = "reports:export";
/// }
///
/// async fn export(_: Scoped<ExportReports>) -> &'static str { "…" }
/// ```
///
/// The name is checked when the program compiles: a scope that no token could ever hold
/// (`"billing-export"`, `"Billing:Export"`) is a compile error where `Scoped<X>` is used,
/// not a 403 for everyone at run time.
///
/// ```compile_fail
/// use tower_bearer::extract::{RequiredScope, Scoped};
///
/// pub struct Typo;
/// impl RequiredScope for Typo {
///     const SCOPE: &'static str = "billing-export"; // not resource:action
/// }
///
/// async fn export(_: Scoped<Typo>) -> &'static str { "…" }
/// let _ = axum::routing::get::<_, _, ()>(export); // error: invalid scope name
/// ```
///
/// Which scopes `admin` (or any scope) implies is the registry's business
/// ([`RegistryBuilder::implications`](crate::registry::RegistryBuilder::implications)):
/// with `Implications::default().imply("admin", "reports:export")?`, admin tokens pass
/// `Scoped<ExportReports>` too, and the management API lets an admin grant it.
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope's name.
    const SCOPE: &'static str;
}

/// Fails compilation (when evaluated) if `R::SCOPE` is not a valid scope name.
struct Checked<R>(PhantomData<R>);

impl<R: RequiredScope> Checked<R> {
    const VALID: () = assert!(
        crate::scope::is_valid_scope(R::SCOPE),
        "invalid scope name in a RequiredScope impl: expected read, write, admin, * or resource:action"
    );
}

/// Several [`RequiredScope`]s: tuples of up to four, for [`ScopedAny`] and [`ScopedAll`].
pub trait ScopeList: Send + Sync + 'static {
    /// The scopes' names.
    const SCOPES: &'static [&'static str];
    /// Evaluating this fails compilation if a name is invalid.
    #[doc(hidden)]
    const VALID: ();
}

macro_rules! scope_list {
    ($($name:ident),+) => {
        impl<$($name: RequiredScope),+> ScopeList for ($($name,)+) {
            const SCOPES: &'static [&'static str] = &[$($name::SCOPE),+];
            const VALID: () = { $(let () = Checked::<$name>::VALID;)+ };
        }
    };
}
scope_list!(A);
scope_list!(A, B);
scope_list!(A, B, C);
scope_list!(A, B, C, D);

/// The built-in `read` scope.
#[derive(Debug, Clone, Copy)]
pub struct Read;
/// The built-in `write` scope (implied by `admin`).
#[derive(Debug, Clone, Copy)]
pub struct Write;
/// The built-in `admin` scope.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl RequiredScope for Read {
    const SCOPE: &'static str = "read";
}
impl RequiredScope for Write {
    const SCOPE: &'static str = "write";
}
impl RequiredScope for Admin {
    const SCOPE: &'static str = "admin";
}

/// A [`Principal`] that holds scope `R::SCOPE` (implications applied); otherwise a 403
/// `insufficient_scope`. Derefs to the principal.
pub struct Scoped<R> {
    principal: Principal,
    scope: PhantomData<fn() -> R>,
}

/// A [`Principal`] that holds at least one of the scopes of `L` (a tuple of
/// [`RequiredScope`]s), e.g. "`reports:read` or `admin`"; otherwise a 403 naming them all.
///
/// ```
/// use tower_bearer::extract::{Admin, RequiredScope, ScopedAny};
///
/// pub struct ReadReports;
/// impl RequiredScope for ReadReports {
///     const SCOPE: &'static str = "reports:read";
/// }
///
/// async fn reports(_: ScopedAny<(ReadReports, Admin)>) -> &'static str { "…" }
/// ```
pub struct ScopedAny<L> {
    principal: Principal,
    scopes: PhantomData<fn() -> L>,
}

/// A [`Principal`] that holds every scope of `L` (a tuple of [`RequiredScope`]s);
/// otherwise a 403 naming the ones it lacks.
///
/// ```
/// use tower_bearer::extract::{Read, RequiredScope, ScopedAll};
///
/// pub struct Export;
/// impl RequiredScope for Export {
///     const SCOPE: &'static str = "reports:export";
/// }
///
/// async fn export(_: ScopedAll<(Read, Export)>) -> &'static str { "…" }
/// ```
pub struct ScopedAll<L> {
    principal: Principal,
    scopes: PhantomData<fn() -> L>,
}

macro_rules! scoped_extractor {
    ($name:ident, $param:ident, $bound:path, $field:ident) => {
        impl<$param> $name<$param> {
            /// The principal.
            pub fn into_inner(self) -> Principal {
                self.principal
            }
        }

        impl<$param> Deref for $name<$param> {
            type Target = Principal;

            fn deref(&self) -> &Principal {
                &self.principal
            }
        }

        impl<$param> Clone for $name<$param> {
            fn clone(&self) -> Self {
                Self {
                    principal: self.principal.clone(),
                    $field: PhantomData,
                }
            }
        }

        impl<$param> fmt::Debug for $name<$param> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("principal", &self.principal)
                    .finish()
            }
        }
    };
}

scoped_extractor!(Scoped, R, RequiredScope, scope);
scoped_extractor!(ScopedAny, L, ScopeList, scopes);
scoped_extractor!(ScopedAll, L, ScopeList, scopes);

impl<S: Send + Sync, R: RequiredScope> FromRequestParts<S> for Scoped<R> {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        #[allow(clippy::let_unit_value)]
        let () = Checked::<R>::VALID;
        let principal = principal_of(parts)?.ok_or(PrincipalRejection::Unauthenticated)?;
        if !principal.has_scope(R::SCOPE) {
            return Err(PrincipalRejection::InsufficientScope {
                scope: R::SCOPE.into(),
            });
        }
        Ok(Self {
            principal,
            scope: PhantomData,
        })
    }
}

impl<S: Send + Sync, L: ScopeList> FromRequestParts<S> for ScopedAny<L> {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        #[allow(clippy::let_unit_value)]
        let () = L::VALID;
        let principal = principal_of(parts)?.ok_or(PrincipalRejection::Unauthenticated)?;
        if !L::SCOPES.iter().any(|scope| principal.has_scope(scope)) {
            return Err(PrincipalRejection::InsufficientScope {
                scope: L::SCOPES.join(" ").into(),
            });
        }
        Ok(Self {
            principal,
            scopes: PhantomData,
        })
    }
}

impl<S: Send + Sync, L: ScopeList> FromRequestParts<S> for ScopedAll<L> {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        #[allow(clippy::let_unit_value)]
        let () = L::VALID;
        let principal = principal_of(parts)?.ok_or(PrincipalRejection::Unauthenticated)?;
        let missing: Vec<&str> = L::SCOPES
            .iter()
            .copied()
            .filter(|scope| !principal.has_scope(scope))
            .collect();
        if !missing.is_empty() {
            return Err(PrincipalRejection::InsufficientScope {
                scope: missing.join(" ").into(),
            });
        }
        Ok(Self {
            principal,
            scopes: PhantomData,
        })
    }
}

/// Handlers can answer with a [`Rejection`] of their own (e.g. after a custom check); the
/// enclosing layer renders it like its own rejections.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        render_later(self, false).map(Body::from)
    }
}
