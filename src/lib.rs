//! API-token authentication for tower, axum, hyper and tonic services.
//!
//! `tower-bearer` verifies opaque `Authorization: Bearer …` tokens of the kind SaaS APIs
//! document: issued with a name, shown once, stored only as a SHA-256 digest, scoped,
//! expiring and revocable with immediate effect. Verification goes through a [`Registry`]:
//! a concurrent cache of digests in front of a [`TokenStore`], so that a known token is
//! checked without I/O and without a global lock.
//!
//! # The map of the crate
//!
//! Verification, bottom up:
//!
//! - [`identity`] and [`clock`]: the leaves (token ids and kinds; the clock the cache
//!   reads).
//! - [`token`]: minting, the accepted wire formats ([`token::Formats`]), the plaintext
//!   [`token::Secret`] (redacted, zeroized) and the [`token::Digest`] that is all we keep.
//! - [`scope`]: validated scope names and their implications (`admin ⊇ write ⊇ read`).
//! - [`store`]: the [`TokenStore`] trait and its optional activity
//!   capability ([`store::activity`]), [`MemoryStore`] and, one folder
//!   per database, `SqliteStore` (feature `sqlite`) and `PostgresStore` (feature
//!   `postgres`, with its change feed).
//! - [`registry`]: [`Registry`], split by job: the hot path
//!   ([`Registry::check`](registry::Registry::check): the cache, single-flight misses,
//!   hot copies, usage), a token's lifecycle (issue, change, rotate, revoke), and
//!   sessions and user tokens.
//! - [`policy`]: what a key may do: rate limits, credits, IP allow-lists (metered by the
//!   registry, enforced by the layer); [`client_ip`]: who the client is.
//! - [`principal`]: who the caller is, inserted into request extensions by the layer.
//! - `session` (feature `exchange`): session keys, claims and settings (a leaf).
//!
//! Answering requests, on top of it:
//!
//! - [`header`]: reading the credential from a request (RFC 6750).
//! - [`reject`]: rejections, their renderers and the presets (Laravel, DRF, envelope).
//! - [`layer`]: [`BearerAuthLayer`] and
//!   [`RequireScopeLayer`], for axum, hyper and tonic.
//! - [`grpc`]: the per-method scopes the layer enforces; with feature `grpc`, the
//!   principal in a tonic handler.
//! - `extract` (feature `axum`, default): the axum extractors.
//! - `ws` (feature `ws`): authenticated WebSockets.
//! - `activity` (feature `activity`): the per-token request log, written off the request
//!   path.
//!
//! The HTTP surfaces, which share one JSON machinery (errors, strict input):
//!
//! - `admin` (feature `admin`): the token management API and its OpenAPI document.
//! - `exchange` (features `exchange` and `admin`): `POST /auth/login` and `/auth/logout`.
//! - `dashboard` (feature `dashboard`): the API Tokens page over the management API.
//! - `scanning` (feature `secret-scanning`): leaked keys reported by GitHub and GitLab,
//!   verified by signature and revoked.
//! - `testing` (feature `testing`): the store contract suite.
//!
//! Each depends only on the ones above it (`tests/module_graph.rs` holds the rules).
//!
//! # Cargo features
//!
//! `axum` (default), `sqlite`, `postgres`, `admin`, `exchange`, `ws`, `activity`,
//! `dashboard`, `grpc`, `secret-scanning`, `testing`, and `full` (all but `testing`). None
//! pulls in another
//! beyond what it uses: the default build is the layer alone.
//!
//! # Guides
//!
//! The [`guide`] (feature `full`, as on docs.rs) walks through each part: using the layer,
//! concepts, the management API, sessions, the dashboard, several nodes, limits and
//! quotas, security and performance.
//!
//! # Example
//!
//! ```
//! use tower_bearer::{MemoryStore, Registry};
//! use tower_bearer::registry::IssueRequest;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = Registry::builder(MemoryStore::new()).build();
//!
//! // Issue a token: the plaintext is returned exactly once.
//! let issued = registry
//!     .issue(IssueRequest::new("deploy bot", "acme")?.scopes(["write"])?)
//!     .await?;
//! let plaintext = issued.secret.expose_secret().to_owned();
//!
//! // Verify it: a cache miss the first time, a cache hit afterwards.
//! let principal = registry.verify(&plaintext).await?;
//! assert_eq!(principal.tenant(), "acme");
//! assert!(principal.has_scope("read")); // write implies read
//! assert!(!principal.has_scope("admin"));
//!
//! // Revoke it: from now on it is rejected.
//! registry.revoke("acme", issued.info.id).await?;
//! assert!(registry.verify(&plaintext).await.is_err());
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "activity")]
#[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
pub mod activity;
#[cfg(feature = "admin")]
#[cfg_attr(docsrs, doc(cfg(feature = "admin")))]
pub mod admin;
#[cfg(feature = "admin")]
mod api;
pub mod client_ip;
pub mod clock;
mod counting;
#[cfg(feature = "dashboard")]
#[cfg_attr(docsrs, doc(cfg(feature = "dashboard")))]
pub mod dashboard;
#[cfg(all(feature = "exchange", feature = "admin"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "exchange", feature = "admin"))))]
pub mod exchange;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
pub mod grpc;
/// The guide: each part of the crate in prose, with examples that compile. Its pages
/// use every feature a server may, so it is built with `full` (docs.rs has it).
#[cfg(feature = "full")]
pub mod guide {
    #[doc = include_str!("../docs/usage.md")]
    pub mod usage {}
    #[doc = include_str!("../docs/concepts.md")]
    pub mod concepts {}
    #[doc = include_str!("../docs/management-api.md")]
    pub mod management_api {}
    #[doc = include_str!("../docs/sessions.md")]
    pub mod sessions {}
    #[doc = include_str!("../docs/dashboard.md")]
    pub mod dashboard {}
    #[doc = include_str!("../docs/several-nodes.md")]
    pub mod several_nodes {}
    #[doc = include_str!("../docs/limits.md")]
    pub mod limits {}
    #[doc = include_str!("../docs/security.md")]
    pub mod security {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../docs/metrics.md")]
    pub mod metrics {}
    #[doc = include_str!("../docs/webhooks.md")]
    pub mod webhooks {}
}
pub mod header;
pub mod identity;
pub mod layer;
pub mod policy;
pub mod principal;
pub mod registry;
pub mod reject;
#[cfg(feature = "secret-scanning")]
#[cfg_attr(docsrs, doc(cfg(feature = "secret-scanning")))]
pub mod scanning;
pub mod scope;
#[cfg(feature = "exchange")]
#[cfg_attr(docsrs, doc(cfg(feature = "exchange")))]
pub mod session;
pub mod store;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod telemetry;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(any(
    feature = "postgres",
    feature = "secret-scanning",
    feature = "webhooks"
))]
mod tls;
pub mod token;
#[cfg(feature = "webhooks")]
#[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
pub mod webhooks;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod ws;

pub use clock::Clock;
pub use identity::{TokenId, TokenKind};
pub use layer::{BearerAuthLayer, RequireScopeLayer};
pub use principal::{Principal, PrincipalBuilder};
pub use registry::{Registry, RejectCause, VerifyError};
pub use scope::{Scope, ScopeSet};
pub use store::{MemoryStore, TokenStore};

/// The README's examples, compiled (and run where they can be) as doctests: they use
/// every feature a server may.
#[cfg(all(doctest, feature = "full"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
