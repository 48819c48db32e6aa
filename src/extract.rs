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
//! // …then `.layer(BearerAuthLayer::new(registry))`.
//! # let _ = app;
//! ```
//!
//! Rejections are rendered by the enclosing [`BearerAuthLayer`](crate::BearerAuthLayer)'s
//! renderer, so a 403 from `Scoped<Write>` looks exactly like one from the layer. A
//! handler that extracts a principal on a route without the layer answers 500 and logs
//! the missing layer: that is a programming error, not a client's.

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
        /// The scope that was required.
        scope: &'static str,
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
                    scope: scope.into(),
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
pub trait RequiredScope: Send + Sync + 'static {
    /// The scope's name.
    const SCOPE: &'static str;
}

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

impl<R> Scoped<R> {
    /// The principal.
    pub fn into_inner(self) -> Principal {
        self.principal
    }
}

impl<R> Deref for Scoped<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<R> Clone for Scoped<R> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            scope: PhantomData,
        }
    }
}

impl<R: RequiredScope> fmt::Debug for Scoped<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &R::SCOPE)
            .field("principal", &self.principal)
            .finish()
    }
}

impl<S: Send + Sync, R: RequiredScope> FromRequestParts<S> for Scoped<R> {
    type Rejection = PrincipalRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let principal = principal_of(parts)?.ok_or(PrincipalRejection::Unauthenticated)?;
        if !principal.has_scope(R::SCOPE) {
            return Err(PrincipalRejection::InsufficientScope { scope: R::SCOPE });
        }
        Ok(Self {
            principal,
            scope: PhantomData,
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
