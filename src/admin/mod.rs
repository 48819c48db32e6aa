//! The token management API: an axum [`Router`] to mount behind
//! [`BearerAuthLayer`](crate::layer::BearerAuthLayer).
//!
//! Every route needs scope `admin`, and an admin token manages only its own tenant's
//! tokens (another tenant's token is a 404, exactly like a token that does not exist).
//!
//! | route | answer |
//! |---|---|
//! | `POST /tokens` `{"name","scopes","expires_in_days" \| "expires_at" \| "never_expires","owner","metadata","rate_limits","credits","allowed_ips"}` | 201 `{"id","name","token","scopes","tenant","created_at","expires_at","created_by","created_by_session","owner","metadata","rate_limits","credits","allowed_ips"}` — the only time `token` is shown |
//! | `GET /tokens?limit=50&starting_after=<id>&owner=<owner>` | 200 `{"data":[{"id","name","prefix","scopes","tenant","created_at","expires_at","last_used_at","expired","created_by","created_by_session","rotated_to","owner","metadata","rate_limits","credits","allowed_ips"}],"has_more":false}` |
//! | `GET /tokens/{id}` | 200 one token as listed (never its secret); an API key revoked within the activity log's retention (feature `activity`) as `{"id","tenant","revoked_at","revoked_reason","leak"}`: why (`manual`, `cascade`, `rotated`, `leaked`, `last_admin_forced`) and, for a leaked key, `{"url","source"}` where a secret scanner found it |
//! | `PATCH /tokens/{id}` `{"name","scopes","expires_at" \| "expires_in_days","rate_limits","credits","allowed_ips"}` | 200 the token as listed: renamed, new scopes (within the caller's), an earlier expiry, other limits; effective on every node at once |
//! | `DELETE /tokens/{id}` | 204; the token stops working at once |
//! | `DELETE /tokens/{id}?cascade=true` | 200 `{"revoked":[ids]}`: the token and every token it created, recursively, in one transaction |
//! | `POST /tokens/{id}/rotate` `{"grace_seconds"}` (body optional) | 201 like `POST /tokens`, with a new token; the old one stops working at once, or after `grace_seconds` (at most 86400) |
//! | `GET /tokens/{id}/sessions?limit=&starting_after=` (feature `exchange`) | 200 `{"data":[{"id","api_key_id","session_id","issued_at","expires_at","kid"}],"has_more":false}`: the key's live sessions, never their tokens, a page at a time |
//! | `DELETE /sessions/{id}?cascade=true` (feature `exchange`) | 204; the session's access token stops working at once; with `cascade`, 200 `{"revoked":[ids]}`: the tokens issued through the session go too |
//! | `GET /tokens/{id}/activity?limit=&starting_after=&outcome=&status=&since=&until=` (feature `activity`) | 200 `{"data":[{"id","at","token_id","session_id","tenant","method","route","status","outcome","latency_us","client_ip","user_agent","request_id","new_ip"}],"has_more":false}`: the token's requests, newest first (a key's include its sessions'; a revoked token's stay readable) |
//! | `GET /activity?…` (feature `activity`) | 200 the same for every token of the tenant |
//! | `POST /webhooks` `{"url","events","description"}` (feature `webhooks`) | 201 `{"id","url","events","description","created_at","status","secret"}` — the only time `secret` (`whsec_…`) is shown; `url` must be `https` to a public address unless the registry allows private targets |
//! | `GET /webhooks`, `GET /webhooks/{id}`, `PATCH /webhooks/{id}`, `DELETE /webhooks/{id}` (feature `webhooks`) | the tenant's endpoints, never their secrets |
//! | `POST /webhooks/{id}/rotate-secret` (feature `webhooks`) | 200 the endpoint with its new `secret`; the old one keeps signing for 24 hours |
//! | `GET /webhooks/{id}/deliveries?limit=&starting_after=` (feature `webhooks`) | 200 `{"data":[{"id","event_id","event","attempt","at","status","latency_ms","error"}],"has_more"}`, newest first |
//! | `GET /activity/summary?token_id=&bucket=hour\|day&since=&until=` (feature `activity`) | 200 `{"bucket","token_id","since","until","buckets":[{"start","outcomes":{"ok":12,…},"total"}],"totals","total","last_used":{"at","client_ip"},"busiest":[{"token_id","name","requests"}]}`: requests per hour (last 24 hours by default) or day (30 days) by outcome, every bucket of the range, for charts; the tenant's busiest ten keys when no `token_id` |
//!
//! **Limits.** `"rate_limits": [{"name": "burst", "limit": 100, "window_seconds": 60}]`
//! (at most 4, names of 1 to 32 `a-z 0-9 _ -`, limits up to 10⁹, windows up to 31
//! days), `"credits": {"remaining": 1000, "refill": {"amount": 1000, "every": "day" |
//! "month"}}` (`null`: unlimited; `GET` shows the balance as it stands) and
//! `"allowed_ips": ["203.0.113.0/24", "127.0.0.1"]` (at most 64; shown as CIDR ranges;
//! empty: anywhere). `null` in a `PATCH` removes them; credits given in a `PATCH` count
//! from then. See [`policy`](crate::policy) for how the layer enforces them.
//!
//! **Sessions.** Revoking or rotating a key, or changing its scopes or expiry, revokes
//! its sessions (see [`exchange`](crate::exchange) for `POST /auth/login`).
//!
//! **Expiry.** Without an expiry field a token expires in 180 days (the registry's
//! default). With a lifetime policy ([`RegistryBuilder::max_lifetime`](crate::registry::RegistryBuilder::max_lifetime))
//! an expiry beyond it, or `never_expires`, is a 422 naming the field; without one, 100
//! years is the limit.
//!
//! **Scopes.** An admin can only grant scopes it holds itself (with implications: `admin`
//! grants `write` and `read`), and only rotate tokens whose scopes it holds, so that no
//! token can create a more powerful one. Expired tokens cannot be rotated (create a new
//! one).
//!
//! **Scopes an application declares.** Custom scopes are `resource:action` names. An
//! application declares them on the registry
//! ([`RegistryBuilder::declare_scopes`](crate::registry::RegistryBuilder::declare_scopes)),
//! so that granting an undeclared one (`billing:exprot`) is a 422, and says which of them
//! `admin` implies ([`RegistryBuilder::implications`](crate::registry::RegistryBuilder::implications)):
//!
//! ```
//! use tower_bearer::scope::Implications;
//! use tower_bearer::{MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new())
//!     .declare_scopes(["billing:export", "billing:refund"])?
//!     // Admin tokens hold billing:export (and may grant it); billing:refund must be
//!     // granted by name, by a token that holds it (or `*`).
//!     .implications(Implications::default().imply("admin", "billing:export")?)
//!     .build();
//! # let _ = registry;
//! # Ok(())
//! # }
//! ```
//!
//! **The last admin.** Revoking the tenant's last live token that holds `admin` (alone or
//! in a cascade), taking `admin` from it, or setting it an expiry answers 409, unless
//! `?force=true`: otherwise nobody could manage the tenant's tokens any more (now, or once
//! the expiry passes). Rotating it is allowed: the replacement holds `admin`. The way back in is
//! [`Registry::issue_recovery_admin`](crate::registry::Registry::issue_recovery_admin), from a
//! command line (the example server's `--issue-admin-token`).
//!
//! **Owners and metadata.** A token may belong to an application user (`owner`, an opaque
//! id of at most 255 bytes, filterable with `?owner=`) and carry the application's notes
//! (`metadata`, a JSON object of at most 4 KiB), like Sanctum's `tokenable` and Unkey's
//! `ownerId` / `meta`. The owner is also on the [`Principal`](crate::principal::Principal).
//!
//! **Error bodies** follow [`ErrorStyle`]: Laravel's (the default), DRF's or the
//! envelope, like the layer's presets ([`ManagementApi::error_style`]).
//!
//! **Lineage.** Every token records `created_by`: the id of the token that issued it
//! through this API (`null` for tokens issued server-side), and `created_by_session`:
//! the session it was issued through, when the caller used a session's access token
//! (`DELETE /sessions/{id}?cascade=true` revokes what a session issued, so that a
//! two-hour session cannot leave never-expiring keys behind). A rotated token's
//! replacement is created by the rotating token, and inherits what the old one had
//! created.
//!
//! **Lists** are paginated the way Stripe's are: `limit` (1 to 100, default 50) and
//! `starting_after` (the last id of the previous page), answering `{"data","has_more"}`.
//!
//! **Input.** Bodies are JSON objects of at most 64 KiB (413 beyond); a request that
//! carries a body or a `Content-Type` must say `application/json` (415 otherwise), so that
//! a cross-site form post can never create or rotate tokens when the cookie source is
//! enabled. Unknown fields, more than 64 scopes, and invalid values answer 422 with a
//! Laravel-style validation error naming the field (at most 10 messages per field), and
//! nothing is stored:
//! `422 {"message":"The name field is required.","errors":{"name":["The name field is required."]}}`.
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//! use tower_bearer::registry::{Expiry, IssueRequest};
//! use tower_bearer::{admin, BearerAuthLayer, MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new()).build();
//! let root = registry
//!     .issue(IssueRequest::new("root", "acme")?.scopes(["admin"])?.expires(Expiry::Never))
//!     .await?;
//! let app = BearerAuthLayer::new(registry.clone()).protect(admin::router::<()>(registry));
//!
//! let response = app
//!     .oneshot(
//!         Request::post("/tokens")
//!             .header("authorization", format!("Bearer {}", root.secret.expose_secret()))
//!             .header("content-type", "application/json")
//!             .body(Body::from(r#"{"name":"CI","scopes":["read"],"expires_in_days":30}"#))?,
//!     )
//!     .await?;
//! assert_eq!(response.status(), StatusCode::CREATED);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "activity")]
mod activity;
mod handlers;
mod openapi;
mod revoked;
#[cfg(feature = "exchange")]
mod sessions;
mod token_errors;
mod validate;
mod validate_policies;
#[cfg(feature = "webhooks")]
mod webhooks;

use axum::Router;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use openapi::BearerScheme;

pub use crate::api::error::ErrorStyle;
use crate::api::mount::{is_valid_base, mount};
use handlers::Context;

use crate::registry::Registry;

/// The management routes over `registry`, with Laravel-style errors. Generic over the
/// application's state, so that it nests or merges before `.with_state(…)`.
pub fn router<S>(registry: Registry) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    ManagementApi::new(registry).router()
}

/// The management API, configured: `ManagementApi::new(registry).error_style(ErrorStyle::Drf).router()`.
#[derive(Clone, Debug)]
#[must_use]
pub struct ManagementApi {
    registry: Registry,
    style: ErrorStyle,
    base: String,
}

impl ManagementApi {
    /// The management API over `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            style: ErrorStyle::default(),
            base: String::new(),
        }
    }

    /// Serves the routes under `base` (`"/v1"`: `POST /v1/tokens`); the OpenAPI document
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

    /// The shape of error bodies (default [`ErrorStyle::Laravel`]); pick the one that
    /// matches the layer's [`Preset`](crate::reject::Preset).
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

    /// The routes and their OpenAPI document, built together (so that no route can be
    /// missing from the document).
    pub fn split<S>(self) -> (Router<S>, utoipa::openapi::OpenApi)
    where
        S: Clone + Send + Sync + 'static,
    {
        self.registry.record_management_mount(&self.base);
        let context = Context {
            registry: self.registry,
            style: self.style,
        };
        let (router, api) = documented_routes().split_for_parts();
        mount(&self.base, router.with_state(context), api)
    }
}

/// Every route, each with its OpenAPI operation.
fn documented_routes() -> OpenApiRouter<Context> {
    let routes = OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(handlers::create, handlers::list))
        .routes(routes!(
            handlers::get_one,
            handlers::update,
            handlers::revoke
        ))
        .routes(routes!(handlers::rotate));
    #[cfg(feature = "exchange")]
    let routes = routes
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::revoke));
    #[cfg(feature = "activity")]
    let routes = routes
        .routes(routes!(activity::of_token))
        .routes(routes!(activity::of_tenant))
        .routes(routes!(activity::summary));
    #[cfg(feature = "webhooks")]
    let routes = routes
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(
            webhooks::get_one,
            webhooks::update,
            webhooks::delete
        ))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::deliveries));
    // Links are added once every operation is in: they lead only to operations present.
    let mut routes = routes;
    openapi::link_operations(routes.get_openapi_mut());
    routes
}

/// The OpenAPI 3.1 document of the management routes, to serve (the example server does,
/// at `GET /openapi.json`) or to merge into an application's own.
///
/// ```
/// let api = tower_bearer::admin::openapi();
/// assert!(api.paths.paths.contains_key("/tokens/{id}/rotate"));
/// let json = api.to_json().unwrap();
/// assert!(json.contains(r#""openapi":"3.1.0""#));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().into_openapi()
}

/// The document's frame: title, tags, the Bearer scheme.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "tower-bearer token management",
        description = "Issue, list, change, rotate and revoke API tokens. Every route needs a \
                       Bearer token with scope `admin`, and manages its tenant's tokens only."
    ),
    tags(
        (name = "tokens", description = "API tokens"),
        (name = "sessions", description = "Sessions opened with an API key (`POST /auth/login`)"),
        (name = "activity", description = "The requests tokens made (feature `activity`)"),
        (name = "webhooks", description = "Where the tenant's events are delivered (feature `webhooks`)")
    ),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
struct Document;
