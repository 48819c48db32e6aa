//! The tower middleware: [`BearerAuthLayer`] authenticates every request and inserts the
//! [`Principal`](crate::principal::Principal) into its extensions; [`RequireScopeLayer`] guards a
//! route or service with a scope.
//!
//! It works wherever tower does: under an axum `Router`, in a plain hyper 1 server (via
//! hyper-util's `TowerToHyperService`), in front of tonic services.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::layer::{BearerAuthLayer, RequireScopeLayer};
//! use tower_bearer::registry::IssueRequest;
//! use tower_bearer::reject::Preset;
//! use tower_bearer::{MemoryStore, Principal, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let reader = registry.issue(IssueRequest::new("reader", "acme")?.scopes(["read"])?).await?;
//! let auth = BearerAuthLayer::new(registry).renderer(Preset::drf()).realm("example");
//!
//! let router = Router::new()
//!     .route("/items", get(|| async { "items" }).route_layer(RequireScopeLayer::from_static("read")))
//!     .route("/admin", get(|| async { "admin" }).route_layer(RequireScopeLayer::from_static("admin")))
//!     .route("/me", get(|principal: Principal| async move { principal.name().to_owned() }));
//! let app = auth.protect(router);
//! let get = |path: &str, token: Option<&str>| {
//!     let mut request = Request::get(path);
//!     if let Some(token) = token {
//!         request = request.header("authorization", format!("Bearer {token}"));
//!     }
//!     app.clone().oneshot(request.body(Body::empty()).unwrap())
//! };
//!
//! let missing = get("/items", None).await?;
//! assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(missing.headers()["www-authenticate"], r#"Bearer realm="example""#);
//! let token = reader.secret.expose_secret();
//! assert_eq!(get("/items", Some(token)).await?.status(), StatusCode::OK);
//! assert_eq!(get("/admin", Some(token)).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```
//!
//! [`BearerAuthLayer::protect`] wraps the whole router: every route is authenticated,
//! including routes added later. `Router::layer(auth)` works too, but covers only the
//! routes that exist when it is called: a route added after it is public, silently.
//!
//! # Responses
//!
//! | case | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials | 401 | `Bearer realm="api"` |
//! | credentials that cannot be read (two headers, bad characters, `Bearer` alone) | 401 | `Bearer realm="api", error="invalid_request"` |
//! | malformed, unknown, expired, revoked, wrong-env token | 401 | `Bearer realm="api", error="invalid_token"` |
//! | scope missing | 403 | `Bearer realm="api", error="insufficient_scope", scope="write"` |
//! | the store cannot answer a cache miss | 503 (with `Retry-After`) | — |
//!
//! The bodies come from the configured [`Renderer`](crate::reject::Renderer) (Laravel
//! preset by default); every 401 has the same body.

/// `get_ref`, `get_mut` and `into_inner` for a middleware service wrapping `inner`, as
/// tower-http's `define_inner_service_accessors!` gives its services.
macro_rules! inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

mod bearer;
mod body;
mod cost;
mod future;
mod per_thread;
mod require_scope;
mod responder;
mod room;
#[cfg(feature = "activity")]
mod route_template;
pub(crate) mod tracking;
mod undeclared;

#[cfg(feature = "axum")]
pub use bearer::MakeFuture;
pub use bearer::{BearerAuth, BearerAuthLayer};
pub use body::{RejectionBody, ResponseBody};
pub use cost::{Cost, CostLayer};
pub use future::ResponseFuture;
#[cfg(feature = "axum")]
pub(crate) use require_scope::missing_layer_response;
pub use require_scope::{RequireScope, RequireScopeLayer};

/// Inserted into request extensions by an optional-mode layer that let a request without
/// credentials through, so that extractors can tell "not authenticated" (401) from "no
/// layer at all" (a programming error).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;
