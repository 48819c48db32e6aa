//! Session exchange (features `exchange` and `admin`): `POST /auth/login` trades an API key for a
//! short-lived access token, which the same [`BearerAuthLayer`](crate::layer::BearerAuthLayer)
//! then accepts, at the cost of an opaque token once it is cached.
//!
//! | route | answer |
//! |---|---|
//! | `POST /auth/login` `{"api_key", "session_id"}` (no `Authorization` header) | 200 `{"access_token","expires_in","token_type":"Bearer"}`, `Cache-Control: no-store` |
//! | `POST /auth/logout` (the access token as `Authorization: Bearer`) | 204: the session is over, its token refused at once |
//!
//! - **`api_key`**: any token the registry accepts (prefixed, Sanctum-style, account
//!   credentials). A missing, unknown, expired, revoked or malformed key answers the
//!   layer's 401, byte for byte the same as every other 401 of the app; a store that
//!   cannot answer, its 503.
//! - **`session_id`** (optional): 1 to 128 characters of `A-Z a-z 0-9 . _ : -`, the
//!   client's name for the session; without it, the key's default session.
//! - **The same token while valid**: the same key and session id get the byte-identical
//!   token back while more than 10% of its lifetime remains (`expires_in` counts down),
//!   concurrent logins included; then, or once the session was revoked, a new one.
//! - **Signing out**: login hands out the same token while it is valid, so a client that
//!   signs out calls `POST /auth/logout` with its access token, which ends the session
//!   (on every node once the change feed delivers); the next login opens a new one.
//!   Called with an API key it is a 400 (keys are revoked through the management API).
//! - **Errors** of the request itself: invalid JSON is a 400, a mistyped field, an unknown
//!   field or a bad `session_id` a 422, in the management API's [`ErrorStyle`]; nothing
//!   is stored on any error.
//!
//! The access token is an HS256 JWT ([`session`](crate::session)) with the claims `iss`,
//! `sub` (the key's id), `sid`, `tenant`, `scope` (the key's scopes at login), `iat`,
//! `exp` and `jti`. The layer verifies it by signature on a cache miss, and from the
//! cache afterwards; revoking the session (`DELETE /sessions/{id}` of the management
//! API, or [`Registry::revoke_session`]) or the key ends it at once.
//!
//! Mount the router inside the layer, with `/auth/login` public (and `/auth/logout`
//! not: it needs the caller's principal), so that its 401s are rendered by the layer's
//! preset:
//!
//! ```
//! use axum::body::Body;
//! use axum::routing::get;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::registry::IssueRequest;
//! use tower_bearer::session::{SessionConfig, SessionKeys};
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Principal, Registry, exchange};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = SessionKeys::new("2026-11", &[7u8; 32])?; // load 32+ random bytes
//! let registry = Registry::builder(MemoryStore::new())
//!     .sessions(SessionConfig::new(keys))
//!     .build();
//! let key = registry.issue(IssueRequest::new("sdk", "acme")?.scopes(["read"])?).await?;
//!
//! let app = axum::Router::new()
//!     .route("/me", get(|p: Principal| async move { format!("{:?}", p.kind()) }))
//!     .merge(exchange::router(registry.clone()));
//! let app = BearerAuthLayer::new(registry).public(["/auth/login"]).protect(app);
//!
//! let body = format!(r#"{{"api_key":"{}"}}"#, key.secret.expose_secret());
//! let response = app
//!     .clone()
//!     .oneshot(
//!         Request::post("/auth/login")
//!             .header("content-type", "application/json")
//!             .body(Body::from(body))?,
//!     )
//!     .await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await?;
//! let login: serde_json::Value = serde_json::from_slice(&bytes)?;
//! assert_eq!(login["token_type"], "Bearer");
//!
//! let access_token = login["access_token"].as_str().unwrap();
//! let response = app
//!     .oneshot(
//!         Request::get("/me")
//!             .header("authorization", format!("Bearer {access_token}"))
//!             .body(Body::empty())?,
//!     )
//!     .await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```

mod login;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::error::ErrorStyle;
use crate::api::mount::{is_valid_base, mount};

use crate::registry::Registry;
use login::Context;

/// `POST /auth/login` and `POST /auth/logout` over `registry` (which needs a
/// [`SessionConfig`](crate::registry::RegistryBuilder::sessions)), with Laravel-style
/// request errors. Generic over the application's state.
pub fn router<S>(registry: Registry) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    LoginApi::new(registry).router()
}

/// The login and logout routes, configured: `LoginApi::new(registry).error_style(ErrorStyle::Drf).router()`.
#[derive(Clone, Debug)]
#[must_use]
pub struct LoginApi {
    registry: Registry,
    style: ErrorStyle,
    base: String,
}

impl LoginApi {
    /// The login route over `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            style: ErrorStyle::default(),
            base: String::new(),
        }
    }

    /// Serves the routes under `base` (`"/v1"`: `POST /v1/auth/login`); the OpenAPI document
    /// names the same paths, and the dashboard of the same registry
    /// finds them. Default: the root.
    ///
    /// # Panics
    ///
    /// On a base that is not `/`-separated segments of letters, digits, `-`, `_` and `.`
    /// without a trailing `/`: a mistake in the program, found at its start.
    #[track_caller]
    pub fn base_path(mut self, base: &str) -> Self {
        assert!(is_valid_base(base), "invalid base path {base:?}");
        self.base = base.to_owned();
        self
    }

    /// The shape of request errors (400, 422; default [`ErrorStyle::Laravel`]). The 401
    /// is the layer's.
    pub fn error_style(mut self, style: ErrorStyle) -> Self {
        self.style = style;
        self
    }

    /// The routes.
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        self.split().0
    }

    /// The routes and their OpenAPI document, built together.
    pub fn split<S>(self) -> (Router<S>, utoipa::openapi::OpenApi)
    where
        S: Clone + Send + Sync + 'static,
    {
        self.registry
            .record_login_route(&format!("{}/auth/login", self.base));
        let context = Context {
            registry: self.registry,
            style: self.style,
        };
        let (router, api) = documented_routes().split_for_parts();
        mount(&self.base, router.with_state(context), api)
    }
}

fn documented_routes() -> OpenApiRouter<Context> {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(login::login))
        .routes(routes!(login::logout))
}

/// The OpenAPI 3.1 document of `POST /auth/login` and `POST /auth/logout`, to merge with
/// [`admin::openapi`](crate::admin::openapi) or an application's own.
///
/// ```
/// let api = tower_bearer::exchange::openapi();
/// assert!(api.paths.paths.contains_key("/auth/login"));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tower-bearer session exchange",
        description = "Trade an API key for a short-lived Bearer access token."
    ),
    tags((name = "auth", description = "Session exchange")),
    modifiers(&AccessTokenScheme)
)]
struct Document;

/// The scheme of `POST /auth/logout`: the access token a login answered.
struct AccessTokenScheme;

impl utoipa::Modify for AccessTokenScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /auth/login`: `Authorization: Bearer <access_token>`.",
                    ))
                    .build(),
            ),
        );
    }
}
