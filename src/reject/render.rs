//! Turning rejections into responses: the [`Renderer`] trait, the layer's rendering
//! settings, and render-later for rejections made further in.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use super::grpc::render_grpc;
use super::{Preset, Rejection};

/// Turns a [`Rejection`] into a response.
///
/// Closures `Fn(&Rejection) -> Response<Bytes>` are renderers too:
///
/// ```
/// use bytes::Bytes;
/// use http::Response;
/// use tower_bearer::reject::{Rejection, Renderer};
///
/// let renderer = |rejection: &Rejection| {
///     let body = format!(r#"{{"error":{}}}"#, rejection.status().as_u16());
///     Response::builder()
///         .status(rejection.status())
///         .body(Bytes::from(body))
///         .unwrap()
/// };
/// let response = renderer.render(&Rejection::Unavailable);
/// assert_eq!(response.body(), r#"{"error":503}"#);
/// ```
pub trait Renderer: Send + Sync + 'static {
    /// The response for `rejection`. Headers the renderer leaves out are added by the
    /// layer (see the [module documentation](crate::reject)).
    fn render(&self, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&Rejection) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        self(rejection)
    }
}

/// How rejections look: the renderer, the realm and the `Retry-After` delay.
#[derive(Clone)]
pub(crate) struct Rendering {
    pub(crate) renderer: std::sync::Arc<dyn Renderer>,
    pub(crate) realm: Box<str>,
    pub(crate) retry_after: Duration,
}

impl Default for Rendering {
    fn default() -> Self {
        Self {
            renderer: std::sync::Arc::new(Preset::laravel()),
            realm: "api".into(),
            retry_after: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for Rendering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendering")
            .field("realm", &self.realm)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl Rendering {
    /// Renders `rejection` for a gRPC call (`grpc`) or a plain HTTP request.
    pub(crate) fn render_for(&self, rejection: &Rejection, grpc: bool) -> Response<Bytes> {
        if grpc {
            render_grpc(rejection)
        } else {
            self.render(rejection)
        }
    }

    /// Renders `rejection` and adds the headers the renderer left out.
    pub(crate) fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        let mut response = self.renderer.render(rejection);
        let headers = response.headers_mut();
        if !headers.contains_key(CONTENT_TYPE) {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if !headers.contains_key(WWW_AUTHENTICATE) {
            if let Some(challenge) = rejection.www_authenticate(&self.realm) {
                headers.insert(WWW_AUTHENTICATE, challenge);
            }
        }
        if !headers.contains_key(RETRY_AFTER) {
            let delay = match rejection {
                Rejection::Unavailable => Some(self.retry_after.as_secs().max(1)),
                other => other.retry_after(),
            };
            if let Some(delay) = delay {
                headers.insert(RETRY_AFTER, HeaderValue::from(delay));
            }
        }
        response
    }
}

/// Renders `rejection` the default way (Laravel preset, realm `api`, or a gRPC status) and
/// marks the response so that an enclosing [`BearerAuth`](crate::layer::BearerAuth)
/// renders it again its own way.
pub(crate) fn render_later(rejection: Rejection, grpc: bool) -> Response<Bytes> {
    rejection.trace();
    let mut response = Rendering::default().render_for(&rejection, grpc);
    response
        .extensions_mut()
        .insert(RenderLater(rejection, grpc));
    response
}

/// Placed in a response's extensions by extractors and [`RequireScope`](crate::layer::RequireScope)
/// that reject a request: the enclosing [`BearerAuth`](crate::layer::BearerAuth) replaces
/// that response with its own renderer's, so every rejection of an app looks the same.
#[derive(Clone, Debug)]
pub(crate) struct RenderLater(pub(crate) Rejection, pub(crate) bool);
