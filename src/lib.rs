//! API-token authentication for tower, axum, hyper and tonic services.
//!
//! `tower-bearer` verifies opaque `Authorization: Bearer …` tokens of the kind SaaS APIs
//! document: issued with a name, shown once, stored only as a SHA-256 digest, scoped,
//! expiring and revocable with immediate effect. Verification goes through a [`Registry`]:
//! a concurrent cache of digests in front of a [`TokenStore`], so that a known token is
//! checked without I/O and without a global lock.
//!
//! # The pieces
//!
//! - [`token`]: minting, the accepted wire formats ([`token::Formats`]), the plaintext
//!   [`token::Secret`] (redacted, zeroized) and the [`token::Digest`] that is all we keep.
//! - [`scope`]: validated scope names and their implications (`admin ⊇ write ⊇ read`).
//! - [`Principal`]: who the caller is, inserted into request extensions by the layer.
//! - [`store`]: the [`TokenStore`] trait, the in-process [`MemoryStore`] and, with the
//!   `sqlite` feature, the embedded `SqliteStore`.
//! - [`registry`]: the cache, single-flight misses, revocation, issuance and usage tracking.
//! - [`header`]: reading the credential from a request (RFC 6750).
//! - [`layer`]: [`BearerAuthLayer`] and [`RequireScopeLayer`], for axum, hyper and tonic.
//! - [`reject`]: rejections, their renderers and the presets (Laravel, DRF, envelope).
//! - `extract` (feature `axum`, default): the axum extractors.
//! - `admin` (feature `admin`): the token management API; `dashboard` (feature
//!   `dashboard`): the API Tokens page over it; `grpc` (feature `grpc`): tonic
//!   helpers; `activity` (feature `activity`): the per-token request log.
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
pub mod clock;
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
pub mod header;
pub mod identity;
pub mod layer;
pub mod principal;
pub mod registry;
pub mod reject;
pub mod scope;
#[cfg(feature = "exchange")]
#[cfg_attr(docsrs, doc(cfg(feature = "exchange")))]
pub mod session;
pub mod store;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
pub mod token;
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
