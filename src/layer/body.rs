//! Response bodies that can carry a rejection.
//!
//! The middleware answers some requests itself (a JSON body, or an empty gRPC body) and
//! passes the inner service's response through otherwise. Rather than wrapping every
//! response body in a type of its own (which axum would then box again on every request),
//! it builds its rejections in the inner service's own body type, through
//! [`RejectionBody`]. The body types of axum, tonic and http-body-util implement it; for
//! any other, map the inner body into [`ResponseBody`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt as _, Full};
use pin_project_lite::pin_project;

/// A response body type the middleware can answer a rejection in.
pub trait RejectionBody: Sized {
    /// A body with exactly these bytes (empty for gRPC rejections).
    fn from_rejection(bytes: Bytes) -> Self;
}

#[cfg(feature = "axum")]
impl RejectionBody for axum_core::body::Body {
    fn from_rejection(bytes: Bytes) -> Self {
        axum_core::body::Body::from(bytes)
    }
}

#[cfg(feature = "grpc")]
impl RejectionBody for tonic::body::Body {
    fn from_rejection(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            tonic::body::Body::empty()
        } else {
            tonic::body::Body::new(Full::new(bytes))
        }
    }
}

impl<D> RejectionBody for Full<D>
where
    D: Buf + From<Bytes>,
{
    fn from_rejection(bytes: Bytes) -> Self {
        Full::new(D::from(bytes))
    }
}

impl<E> RejectionBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E>
where
    E: 'static,
{
    fn from_rejection(bytes: Bytes) -> Self {
        Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync()
    }
}

impl<E> RejectionBody for http_body_util::combinators::BoxBody<Bytes, E>
where
    E: 'static,
{
    fn from_rejection(bytes: Bytes) -> Self {
        Full::new(bytes).map_err(|never| match never {}).boxed()
    }
}

impl<B> RejectionBody for ResponseBody<B> {
    fn from_rejection(bytes: Bytes) -> Self {
        ResponseBody::rejection(bytes)
    }
}

pin_project! {
    /// A body that is either an inner body or the bytes of a rejection: the adapter for
    /// inner services whose body type cannot carry a rejection (`hyper::body::Incoming`
    /// from a proxy, say). Map their responses with [`ResponseBody::inner`].
    #[project = ResponseBodyProj]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { bytes: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    /// A body of a rejection's bytes.
    pub fn rejection(bytes: Bytes) -> Self {
        let bytes = (!bytes.is_empty()).then_some(bytes);
        Self {
            kind: Kind::Rejection { bytes },
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { bytes } => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner"),
            Kind::Rejection { .. } => f.write_str("ResponseBody::Rejection"),
        }
    }
}
