//! The activity log: every request a token makes, recorded off the request path and
//! queryable per token (feature `activity`).
//!
//! With a log configured on the registry
//! ([`RegistryBuilder::activity`](crate::registry::RegistryBuilder::activity)), every
//! [`BearerAuthLayer`](crate::layer::BearerAuthLayer) over that registry records one row per
//! request whose credential is attributable to a token: time, token id, session id (for
//! session tokens), tenant, method, route, status, [`Outcome`](crate::store::activity::Outcome), latency, client IP, user
//! agent and request id. Calls with an expired or a revoked token are recorded against
//! that token: the signature of a leaked token. The cache knows an expired token, and a
//! just-revoked one by its tombstone; beyond that, the store remembers every token
//! revoked through the registry, by digest, for the retention
//! ([`ActivityStore::remember_revoked`](crate::store::activity::ActivityStore::remember_revoked)), so that a call made with it a week later, on
//! another node, or after a restart is still recorded as `revoked`. Unknown tokens are not
//! attributable: they are only counted ([`ActivityStats::unattributed`]). Never a secret,
//! never a query string, never a body; the route is axum's template (`/items/{id}`), in
//! both placements of the layer, and a raw path (which can hold an invite code) only when
//! the application asks for it ([`ActivityConfig::record_raw_paths`]).
//!
//! # Off the request path
//!
//! The layer hands each row to a bounded queue without waiting (one queue shard per
//! thread, no lock shared between threads); when the queue is full the row is dropped and
//! counted ([`ActivityStats::dropped`]), with one warning per burst. A background writer
//! appends the rows in batches (every second, or sooner once 1,000 are waiting) to an
//! [`ActivityStore`](crate::store::activity::ActivityStore), retrying with backoff while the store fails, and prunes rows older
//! than the retention (30 days by default) every hour.
//!
//! # Reading it
//!
//! [`ActivityLog::query`], or the management API's `GET /tokens/{id}/activity` and
//! `GET /activity` (see [`admin`](crate::admin)).
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::Request;
//! use tower::ServiceExt as _;
//! use tower_bearer::activity::ActivityConfig;
//! use tower_bearer::store::activity::{ActivityQuery, Outcome};
//! use tower_bearer::registry::IssueRequest;
//! use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let registry = Registry::builder(store.clone())
//!     .activity(ActivityConfig::new(store))
//!     .build();
//! let issued = registry.issue(IssueRequest::new("ci", "acme")?.scopes(["read"])?).await?;
//! let app = BearerAuthLayer::new(registry.clone())
//!     .protect(Router::new().route("/items", get(|| async { "items" })));
//!
//! let request = Request::get("/items?page=2")
//!     .header("authorization", format!("Bearer {}", issued.secret.expose_secret()))
//!     .header("user-agent", "doc-test")
//!     .body(Body::empty())?;
//! assert_eq!(app.oneshot(request).await?.status(), 200);
//!
//! let log = registry.activity().unwrap();
//! log.flush().await?;
//! let rows = log.query("acme", &ActivityQuery::new().token(issued.info.id)).await?;
//! assert_eq!(rows.len(), 1);
//! assert_eq!(rows[0].route, "/items"); // never the query string
//! assert_eq!(rows[0].outcome, Outcome::Ok);
//! assert_eq!(rows[0].user_agent.as_deref(), Some("doc-test"));
//! # Ok(())
//! # }
//! ```

mod capture;
mod config;
mod log;
mod queue;

pub use config::{ActivityConfig, DEFAULT_RETENTION};
pub use log::{ActivityLog, ActivityStats};
pub(crate) use queue::Ticket;
