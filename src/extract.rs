//! axum extractors: [`Principal`], `Option<Principal>` and [`Scoped`].
//!
//! ```
//! use axum::{Router, body::Body, routing::{get, post}};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::extract::{Scoped, WriteScope};
//! use tower_bearer::registry::IssueRequest;
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Principal, Registry};
//!
//! async fn me(principal: Principal) -> String {
//!     format!("{} ({})", principal.name(), principal.tenant())
//! }
//!
//! async fn create(principal: Scoped<WriteScope>) -> &'static str {
//!     // `principal` derefs to `Principal`; it has scope `write` (or `admin`, or `*`).
//!     let _ = principal.tenant();
//!     "created"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let reader = registry.issue(IssueRequest::new("reader", "acme")?.scopes(["read"])?).await?;
//! let router = Router::new().route("/me", get(me)).route("/items", post(create));
//! let app = BearerAuthLayer::new(registry).protect(router);
//! let send = |method: &str, path: &str, token: Option<&str>| {
//!     let mut request = Request::builder().method(method).uri(path);
//!     if let Some(token) = token {
//!         request = request.header("authorization", format!("Bearer {token}"));
//!     }
//!     app.clone().oneshot(request.body(Body::empty()).unwrap())
//! };
//! let token = reader.secret.expose_secret();
//!
//! let me = send("GET", "/me", Some(token)).await?;
//! assert_eq!(me.status(), StatusCode::OK);
//! let anonymous = send("GET", "/me", None).await?;
//! assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="api""#);
//! let denied = send("POST", "/items", Some(token)).await?;
//! assert_eq!(denied.status(), StatusCode::FORBIDDEN);
//! assert_eq!(
//!     denied.headers()["www-authenticate"],
//!     r#"Bearer realm="api", error="insufficient_scope", scope="write""#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! Rejections are rendered by the enclosing [`BearerAuthLayer`](crate::layer::BearerAuthLayer)'s
//! renderer, so a 403 from `Scoped<WriteScope>` looks exactly like one from the layer. A
//! handler that extracts a principal on a route without the layer answers 500 and logs
//! the missing layer: that is a programming error, not a client's.
//!
//! `Option<Principal>` fails closed too: without the layer it is a 500, not `None`
//! (unlike axum's `Option<Extension<T>>`, which cannot tell "no layer" from "anonymous"),
//! so that forgetting the layer never makes a route silently anonymous. With the layer
//! in [optional mode](crate::layer::BearerAuthLayer::optional), a request without credentials
//! gives `None`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::identity::TokenId;
use crate::layer::Anonymous;
use crate::layer::missing_layer_response;
use crate::principal::Principal;
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
        /// The token that lacked it (for the log line, never shown to the client).
        token_id: Option<TokenId>,
    },
}

impl PrincipalRejection {
    /// The status the rejection answers with: 500, 401 or 403.
    pub fn status(&self) -> http::StatusCode {
        match self {
            PrincipalRejection::MissingLayer => http::StatusCode::INTERNAL_SERVER_ERROR,
            PrincipalRejection::Unauthenticated => http::StatusCode::UNAUTHORIZED,
            PrincipalRejection::InsufficientScope { .. } => http::StatusCode::FORBIDDEN,
        }
    }

    /// A description for logs. The body the client receives is the enclosing layer's
    /// renderer's (the same as for the layer's own rejections).
    pub fn body_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for PrincipalRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrincipalRejection::MissingLayer => {
                f.write_str("no BearerAuthLayer in front of the handler")
            }
            PrincipalRejection::Unauthenticated => f.write_str("request is not authenticated"),
            PrincipalRejection::InsufficientScope { scope, .. } => {
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
            PrincipalRejection::InsufficientScope { scope, token_id } => {
                render_later(Rejection::InsufficientScope { scope, token_id }, grpc)
            }
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

/// Declares a marker type for an application scope, checked when the program is
/// checked: `cargo check` (and so rust-analyzer and check-only CI) fails on a name no
/// token could hold, not only `cargo build`. The hand-written `impl RequiredScope` is
/// checked where `Scoped<X>` is compiled to code, which `cargo check` never does.
///
/// ```
/// tower_bearer::required_scope!(
///     /// Exporting reports.
///     pub ExportReports = "reports:export"
/// );
///
/// async fn export(_: tower_bearer::extract::Scoped<ExportReports>) -> &'static str { "…" }
/// ```
///
/// ```compile_fail
/// tower_bearer::required_scope!(pub Typo = "reports-export"); // not resource:action
/// ```
///
/// Whether the registry declares the scope is known only at run time: a route asking
/// for an undeclared one is reported once
/// ([`RegistryBuilder::strict_scopes`](crate::registry::RegistryBuilder::strict_scopes)).
#[macro_export]
macro_rules! required_scope {
    ($(#[$meta:meta])* $vis:vis $name:ident = $scope:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;

        impl $crate::extract::RequiredScope for $name {
            const SCOPE: &'static str = $scope;
        }

        const _: () = ::core::assert!(
            $crate::scope::is_valid_scope($scope),
            ::core::concat!(
                "invalid scope name `",
                $scope,
                "`: expected read, write, admin, * or resource:action"
            )
        );
    };
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

/// The built-in `read` scope (implied by `write` and `admin`): `Scoped<ReadScope>`.
#[derive(Debug, Clone, Copy)]
pub struct ReadScope;
/// The built-in `write` scope (implied by `admin`): `Scoped<WriteScope>`.
#[derive(Debug, Clone, Copy)]
pub struct WriteScope;
/// The built-in `admin` scope: `Scoped<AdminScope>`.
#[derive(Debug, Clone, Copy)]
pub struct AdminScope;

impl RequiredScope for ReadScope {
    const SCOPE: &'static str = "read";
}
impl RequiredScope for WriteScope {
    const SCOPE: &'static str = "write";
}
impl RequiredScope for AdminScope {
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
/// use tower_bearer::extract::{AdminScope, RequiredScope, ScopedAny};
///
/// pub struct ReadReports;
/// impl RequiredScope for ReadReports {
///     const SCOPE: &'static str = "reports:read";
/// }
///
/// async fn reports(_: ScopedAny<(ReadReports, AdminScope)>) -> &'static str { "…" }
/// ```
pub struct ScopedAny<L> {
    principal: Principal,
    scopes: PhantomData<fn() -> L>,
}

/// A [`Principal`] that holds every scope of `L` (a tuple of [`RequiredScope`]s);
/// otherwise a 403 naming the ones it lacks.
///
/// ```
/// use tower_bearer::extract::{ReadScope, RequiredScope, ScopedAll};
///
/// pub struct Export;
/// impl RequiredScope for Export {
///     const SCOPE: &'static str = "reports:export";
/// }
///
/// async fn export(_: ScopedAll<(ReadScope, Export)>) -> &'static str { "…" }
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
                token_id: Some(principal.id()),
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
                token_id: Some(principal.id()),
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
                token_id: Some(principal.id()),
            });
        }
        Ok(Self {
            principal,
            scopes: PhantomData,
        })
    }
}
