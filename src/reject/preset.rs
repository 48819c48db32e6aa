//! [`Preset`]: the error bodies of real APIs, byte for byte.

use std::fmt;

use bytes::Bytes;
use http::Response;

use super::{Rejection, Renderer};

/// A renderer with one fixed JSON body per status: the documented contracts of real APIs.
#[derive(Clone, PartialEq, Eq)]
pub struct Preset {
    unauthenticated: Bytes,
    forbidden: Bytes,
    unavailable: Bytes,
}

impl Preset {
    /// Laravel Sanctum: `{"message":"Unauthenticated."}` /
    /// `{"message":"This action is unauthorized."}` / `{"message":"Service Unavailable."}`.
    pub fn laravel() -> Self {
        Self::new(
            r#"{"message":"Unauthenticated."}"#,
            r#"{"message":"This action is unauthorized."}"#,
            r#"{"message":"Service Unavailable."}"#,
        )
    }

    /// Django REST framework: `{"detail":"Authentication credentials were not provided."}` /
    /// `{"detail":"You do not have permission to perform this action."}` /
    /// `{"detail":"Service temporarily unavailable, try again later."}`.
    pub fn drf() -> Self {
        Self::new(
            r#"{"detail":"Authentication credentials were not provided."}"#,
            r#"{"detail":"You do not have permission to perform this action."}"#,
            r#"{"detail":"Service temporarily unavailable, try again later."}"#,
        )
    }

    /// A response envelope:
    /// `{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}`,
    /// and the same shape for `Forbidden` / `FORBIDDEN` / `Insufficient permissions` and
    /// `Service Unavailable` / `SERVICE_UNAVAILABLE`.
    pub fn envelope() -> Self {
        Self::new(
            r#"{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}"#,
            r#"{"type":"response","success":false,"description":"Forbidden","data":{},"error":{"module":"Auth","code":"FORBIDDEN","message":"Insufficient permissions"}}"#,
            r#"{"type":"response","success":false,"description":"Service Unavailable","data":{},"error":{"module":"Auth","code":"SERVICE_UNAVAILABLE","message":"Authentication temporarily unavailable"}}"#,
        )
    }

    /// Your own fixed bodies for 401, 403 and 503 (served as `application/json`).
    pub fn new(
        unauthenticated: impl Into<Bytes>,
        forbidden: impl Into<Bytes>,
        unavailable: impl Into<Bytes>,
    ) -> Self {
        Self {
            unauthenticated: unauthenticated.into(),
            forbidden: forbidden.into(),
            unavailable: unavailable.into(),
        }
    }
}

impl Default for Preset {
    /// [`Preset::laravel`].
    fn default() -> Self {
        Self::laravel()
    }
}

impl fmt::Debug for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Preset")
            .field("unauthenticated", &self.unauthenticated)
            .finish_non_exhaustive()
    }
}

impl Renderer for Preset {
    fn render(&self, rejection: &Rejection) -> Response<Bytes> {
        let body = match rejection {
            Rejection::Unauthenticated { .. } => &self.unauthenticated,
            Rejection::InsufficientScope { .. } | Rejection::Forbidden { .. } => &self.forbidden,
            Rejection::Unavailable => &self.unavailable,
        };
        let mut response = Response::new(body.clone());
        *response.status_mut() = rejection.status();
        response
    }
}
