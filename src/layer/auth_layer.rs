use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::{BearerAuth, GrpcScopes, RequireScopeLayer};
use crate::Registry;
use crate::header::TokenSources;
use crate::reject::{Renderer, Rendering};

/// Authenticates requests with Bearer tokens verified by a [`Registry`].
///
/// On success the request reaches the inner service with the
/// [`Principal`](crate::Principal) in its extensions; otherwise the configured renderer
/// answers (see the [module documentation](super) for the exact responses).
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::header::TokenSources;
/// use tower_bearer::layer::BearerAuthLayer;
/// use tower_bearer::reject::Preset;
/// use tower_bearer::{MemoryStore, Registry};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::builder(MemoryStore::new()).build();
/// let layer = BearerAuthLayer::new(registry)
///     .renderer(Preset::envelope())
///     .realm("billing")
///     .sources(TokenSources::header_only().cookie("token"))
///     .retry_after(Duration::from_secs(2));
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct BearerAuthLayer {
    pub(crate) config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) registry: Registry,
    pub(crate) sources: TokenSources,
    pub(crate) optional: bool,
    pub(crate) rendering: Arc<Rendering>,
    /// `None` when empty, so that the hit path does not even look at the content type.
    pub(crate) grpc_scopes: Option<GrpcScopes>,
}

impl BearerAuthLayer {
    /// A layer that verifies tokens with `registry`, reads them from the `Authorization`
    /// header, and renders rejections with [`Preset::laravel`](crate::reject::Preset::laravel)
    /// in realm `api`.
    pub fn new(registry: Registry) -> Self {
        Self {
            config: Arc::new(Config {
                registry,
                sources: TokenSources::default(),
                optional: false,
                rendering: Arc::new(Rendering::default()),
                grpc_scopes: None,
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    fn rendering(&mut self) -> &mut Rendering {
        Arc::make_mut(&mut self.config().rendering)
    }

    /// Renders rejections with `renderer`: a [`Preset`](crate::reject::Preset) or a
    /// closure `Fn(&Rejection) -> Response<Bytes>`.
    pub fn renderer(mut self, renderer: impl Renderer) -> Self {
        self.rendering().renderer = Arc::new(renderer);
        self
    }

    /// The realm in `WWW-Authenticate` challenges (default `api`).
    pub fn realm(mut self, realm: &str) -> Self {
        self.rendering().realm = realm.into();
        self
    }

    /// The `Retry-After` of 503 answers (default 5 s, at least 1 s).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.rendering().retry_after = delay;
        self
    }

    /// Where tokens are looked for (default: the `Authorization` header only).
    pub fn sources(mut self, sources: TokenSources) -> Self {
        self.config().sources = sources;
        self
    }

    /// Lets requests without any credentials through, without a principal. Requests with
    /// credentials that do not verify are still rejected.
    pub fn optional(mut self) -> Self {
        self.config().optional = true;
        self
    }

    /// The scopes gRPC methods require (see [`GrpcScopes`]), enforced by request path
    /// whatever the content type. A method without an entry needs only a valid token,
    /// unless the map [denies unlisted methods](GrpcScopes::deny_unlisted).
    ///
    /// Put this layer in front of gRPC services only: every path through it is read as a
    /// gRPC method.
    pub fn grpc_scopes(mut self, scopes: GrpcScopes) -> Self {
        self.config().grpc_scopes = (!scopes.is_empty()).then_some(scopes);
        self
    }

    /// The registry tokens are verified with.
    pub fn registry(&self) -> &Registry {
        &self.config.registry
    }

    /// A per-route layer requiring `scope`, e.g. `auth.require_scope("write")`; the
    /// same as [`RequireScopeLayer::new`]. Its 403 is rendered by this layer's renderer
    /// as long as this layer encloses it.
    ///
    /// # Panics
    ///
    /// If `scope` is not a valid scope name.
    pub fn require_scope(&self, scope: &'static str) -> RequireScopeLayer {
        RequireScopeLayer::new(scope)
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(inner, self.config.clone())
    }
}
