//! The authentication middleware, split by role as tower-http's are: [`BearerAuthLayer`]
//! and its configuration (`layer.rs`), the [`BearerAuth`] service that does the work in
//! `call` (`service.rs`), and `axum::serve` support (`serve.rs`).

mod layer;
pub(crate) mod policing;
#[cfg(feature = "axum")]
mod serve;
mod service;

pub use layer::BearerAuthLayer;
pub(crate) use layer::Config;
#[cfg(feature = "axum")]
pub use serve::MakeFuture;
pub use service::BearerAuth;
