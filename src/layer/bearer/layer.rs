use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::BearerAuth;
use crate::grpc::GrpcScopes;
use crate::header::TokenSources;
use crate::layer::per_thread::PerThread;
use crate::layer::responder::Responder;
use crate::layer::room::Room;
use crate::registry::Registry;
use crate::reject::{Renderer, Rendering};

/// Authenticates requests with Bearer tokens verified by a [`Registry`].
///
/// On success the request reaches the inner service with the
/// [`Principal`](crate::principal::Principal) in its extensions; otherwise the configured renderer
/// answers (see the [module documentation](crate::layer) for the exact responses).
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
///     .sources(TokenSources::new().cookie("token"))
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
    /// Handed to every authenticated request's future by the calling thread's handle.
    pub(crate) rendering: PerThread<Responder>,
    /// `None` when empty, so that the hit path does not even look at the content type.
    pub(crate) grpc_scopes: Option<GrpcScopes>,
    /// `None` when empty, so that the hit path does not look at the path.
    pub(crate) public: Option<PublicPaths>,
    /// Where a request without extensions gets its map from.
    pub(crate) room: Room,
}

/// Paths that skip authentication: exact paths, and prefixes written `/docs/*`.
#[derive(Clone, Debug, Default)]
pub(crate) struct PublicPaths {
    exact: std::collections::HashSet<Box<str>>,
    /// `/docs/` for `/docs/*` (which also matches `/docs`).
    prefixes: Vec<Box<str>>,
}

impl PublicPaths {
    fn add(&mut self, pattern: &str) {
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.ends_with('/') => {
                self.exact.insert(prefix.trim_end_matches('/').into());
                self.prefixes.push(prefix.into());
            }
            _ => {
                self.exact.insert(pattern.into());
            }
        }
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        self.exact.contains(path) || self.prefixes.iter().any(|p| path.starts_with(&**p))
    }
}

impl BearerAuthLayer {
    /// A layer that verifies tokens with `registry`, reads them from the `Authorization`
    /// header, and renders rejections with [`Preset::laravel`](crate::reject::Preset::laravel)
    /// in realm `api`.
    pub fn new(registry: Registry) -> Self {
        let rendering = Responder {
            #[cfg(feature = "activity")]
            activity: registry.activity().cloned(),
            registry: Some(registry.clone()),
            ..Responder::default()
        };
        Self {
            config: Arc::new(Config {
                registry,
                sources: TokenSources::default(),
                optional: false,
                rendering: PerThread::new(rendering),
                grpc_scopes: None,
                public: None,
                room: Room::new(),
            }),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    fn rendering(&mut self) -> &mut Rendering {
        &mut self.config().rendering.make_mut().rendering
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

    /// Also answers requests of rate-limited keys with GitHub's `X-RateLimit-Limit`,
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds), beside the IETF
    /// `RateLimit` and `RateLimit-Policy` fields they always carry.
    pub fn github_rate_limit_headers(mut self) -> Self {
        self.config().rendering.make_mut().github_rate_limit_headers = true;
        self
    }

    /// Where tokens are looked for (default: the `Authorization` header only).
    pub fn sources(mut self, sources: TokenSources) -> Self {
        self.config().sources = sources;
        self
    }

    /// Paths that skip authentication altogether (`/health`, or `/docs/*` for a whole
    /// subtree): their handlers run without a principal (`Option<Principal>` is `None`,
    /// `Principal` answers 401). Every other path is protected, including routes added to
    /// the router later: this is the allow-list that makes wrapping the whole `Router`
    /// the safe default.
    ///
    /// ```
    /// use axum::{Router, body::Body, routing::get};
    /// use http::{Request, StatusCode};
    /// use tower::ServiceExt as _;
    /// use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new()).build();
    /// let router = Router::new()
    ///     .route("/health", get(|| async { "ok" }))
    ///     .route("/reports", get(|| async { "secret" })); // added last, still protected
    /// let app = BearerAuthLayer::new(registry).public(["/health"]).protect(router);
    ///
    /// let health = app.clone().oneshot(Request::get("/health").body(Body::empty())?).await?;
    /// assert_eq!(health.status(), StatusCode::OK);
    /// let reports = app.oneshot(Request::get("/reports").body(Body::empty())?).await?;
    /// assert_eq!(reports.status(), StatusCode::UNAUTHORIZED);
    /// # Ok(())
    /// # }
    /// ```
    pub fn public<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Self {
        let public = self
            .config()
            .public
            .get_or_insert_with(PublicPaths::default);
        for path in paths {
            public.add(path);
        }
        self
    }

    /// Also accepts `Authorization: <scheme> <token>`, e.g. DRF's `Token` scheme, for
    /// services migrating from DRF clients (see [`TokenSources::scheme_alias`]); off by
    /// default. Challenges keep naming `Bearer`.
    pub fn accept_scheme(mut self, scheme: &str) -> Self {
        let sources = std::mem::take(&mut self.config().sources);
        self.config().sources = sources.scheme_alias(scheme);
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
    #[track_caller]
    pub fn grpc_scopes(mut self, scopes: GrpcScopes) -> Self {
        crate::layer::undeclared::check_grpc_map(&self.config.registry, &scopes);
        self.config().grpc_scopes = (!scopes.is_empty()).then_some(scopes);
        self
    }

    /// The registry tokens are verified with.
    pub fn registry(&self) -> &Registry {
        &self.config.registry
    }

    /// Wraps a whole service (an axum `Router`, say) so that every request to it is
    /// authenticated, except on [public](Self::public) paths: the safe placement. The
    /// result goes to `axum::serve` as it is.
    ///
    /// Unlike `Router::layer`, which applies only to the routes that exist when it is
    /// called (a route added after `.layer(auth)` is **public**, silently), this covers
    /// every route, whenever it was added. It is also faster: axum does not box each
    /// route's service again.
    ///
    /// ```no_run
    /// use axum::{Router, routing::get};
    /// use tower_bearer::{BearerAuthLayer, MemoryStore, Registry};
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new()).build();
    /// let router = Router::new()
    ///     .route("/health", get(|| async { "ok" }))
    ///     .route("/items", get(|| async { "[]" }));
    /// let app = BearerAuthLayer::new(registry).public(["/health"]).protect(router);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    /// axum::serve(listener, app).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn protect<S: 'static>(&self, service: S) -> BearerAuth<S> {
        // With an activity log, each route of a `Router` passes its template on, so
        // that rows keep `/items/{id}` and never the raw path (the layer runs before
        // routing here, and cannot see the template in the request).
        #[cfg(feature = "activity")]
        let service =
            crate::layer::route_template::passing_templates_on(service, &self.config.registry);
        BearerAuth::new(service, self.config.clone())
    }
}

impl<S> Layer<S> for BearerAuthLayer {
    type Service = BearerAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(inner, self.config.clone())
    }
}
