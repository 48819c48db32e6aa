//! What the layer's responses carry along: how rejections look, and (feature
//! `activity`) the log that records them.

use std::fmt;

use bytes::Bytes;
use http::Response;

use crate::reject::{Rejection, Rendering};

/// The rendering of rejections and the registry's activity log. The log travels with the
/// rendering, which every response future holds already, so that recording costs no
/// extra shared reference count.
#[derive(Clone, Default)]
pub(crate) struct Responder {
    pub(crate) rendering: Rendering,
    /// The layer's registry: it tells whether a scope refused further in can be held.
    pub(crate) registry: Option<crate::registry::Registry>,
    #[cfg(feature = "activity")]
    pub(crate) activity: Option<crate::activity::ActivityLog>,
    /// Whether answers to rate-limited keys also carry GitHub's `X-RateLimit-*`.
    pub(crate) github_rate_limit_headers: bool,
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("rendering", &self.rendering)
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Renders `rejection` for a gRPC call (`grpc`) or a plain HTTP request.
    pub(crate) fn render_for(&self, rejection: &Rejection, grpc: bool) -> Response<Bytes> {
        self.rendering.render_for(rejection, grpc)
    }
}
