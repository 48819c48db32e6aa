//! gRPC: the per-method scopes the layer enforces ([`GrpcScopes`]) and, with the feature
//! `grpc` (tonic), reading the [`Principal`](crate::principal::Principal) in a handler.
//!
//! Put [`BearerAuthLayer`](crate::layer::BearerAuthLayer) in front of the services with
//! `tonic::transport::Server::builder().layer(…)`; it reads the token from the
//! `authorization` metadata, answers rejections with gRPC statuses (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED`, `UNAVAILABLE`) and enforces
//! [`GrpcScopes`]. Handlers then call
//! `principal()` (`RequestPrincipalExt`, feature `grpc`).

#[cfg(feature = "grpc")]
mod principal;
mod scopes;

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub use principal::RequestPrincipalExt;
pub(crate) use scopes::is_grpc;
pub use scopes::{GrpcScopes, InvalidGrpcScope, MethodRequirement};
