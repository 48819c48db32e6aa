//! [`Preset`]: the error bodies of real APIs, byte for byte.

use std::fmt;

use bytes::Bytes;
use http::Response;

use super::{Rejection, Renderer};

/// A renderer with one fixed JSON body per status: the documented contracts of real APIs.
/// Throttled requests (429) get each API's own words, with DRF's wait in seconds.
#[derive(Clone, PartialEq, Eq)]
pub struct Preset {
    unauthenticated: Bytes,
    forbidden: Bytes,
    unavailable: Bytes,
    throttled: Throttled,
}

/// How a preset words a 429.
#[derive(Clone, PartialEq, Eq)]
enum Throttled {
    /// `{"message":"Too Many Attempts."}`.
    Laravel,
    /// `{"detail":"Request was throttled. Expected available in N seconds."}`.
    Drf,
    /// The envelope, `RATE_LIMITED` or `USAGE_EXCEEDED`.
    Envelope,
    /// One fixed body.
    Fixed(Bytes),
}

impl Preset {
    /// Laravel Sanctum: `{"message":"Unauthenticated."}` /
    /// `{"message":"This action is unauthorized."}` / `{"message":"Service Unavailable."}`.
    ///
    /// Throttled: `{"message":"Too Many Attempts."}` (Laravel's `ThrottleRequestsException`).
    pub fn laravel() -> Self {
        Self {
            throttled: Throttled::Laravel,
            ..Self::new(
                r#"{"message":"Unauthenticated."}"#,
                r#"{"message":"This action is unauthorized."}"#,
                r#"{"message":"Service Unavailable."}"#,
            )
        }
    }

    /// Django REST framework: `{"detail":"Authentication credentials were not provided."}` /
    /// `{"detail":"You do not have permission to perform this action."}` /
    /// `{"detail":"Service temporarily unavailable, try again later."}`.
    ///
    /// Throttled (DRF's `Throttled`): `{"detail":"Request was throttled. Expected
    /// available in 17 seconds."}` (`second` for 1), or `{"detail":"Request was
    /// throttled."}` when no wait is known (credits that are never refilled).
    pub fn drf() -> Self {
        Self {
            throttled: Throttled::Drf,
            ..Self::new(
                r#"{"detail":"Authentication credentials were not provided."}"#,
                r#"{"detail":"You do not have permission to perform this action."}"#,
                r#"{"detail":"Service temporarily unavailable, try again later."}"#,
            )
        }
    }

    /// A response envelope:
    /// `{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}`,
    /// and the same shape for `Forbidden` / `FORBIDDEN` / `Insufficient permissions` and
    /// `Service Unavailable` / `SERVICE_UNAVAILABLE`; throttled, `Too Many Requests` with
    /// `RATE_LIMITED` / `Rate limit exceeded` or `USAGE_EXCEEDED` / `Usage limit exceeded`.
    pub fn envelope() -> Self {
        let preset = Self::new(
            r#"{"type":"response","success":false,"description":"Unauthorized","data":{},"error":{"module":"Auth","code":"UNAUTHORIZED","message":"Invalid or missing authentication credentials"}}"#,
            r#"{"type":"response","success":false,"description":"Forbidden","data":{},"error":{"module":"Auth","code":"FORBIDDEN","message":"Insufficient permissions"}}"#,
            r#"{"type":"response","success":false,"description":"Service Unavailable","data":{},"error":{"module":"Auth","code":"SERVICE_UNAVAILABLE","message":"Authentication temporarily unavailable"}}"#,
        );
        Self {
            throttled: Throttled::Envelope,
            ..preset
        }
    }

    /// Your own fixed bodies for 401, 403 and 503 (served as `application/json`); 429
    /// answers `{"message":"Too Many Requests."}` unless [`throttled`](Self::throttled)
    /// says otherwise.
    pub fn new(
        unauthenticated: impl Into<Bytes>,
        forbidden: impl Into<Bytes>,
        unavailable: impl Into<Bytes>,
    ) -> Self {
        Self {
            unauthenticated: unauthenticated.into(),
            forbidden: forbidden.into(),
            unavailable: unavailable.into(),
            throttled: Throttled::Fixed(Bytes::from_static(br#"{"message":"Too Many Requests."}"#)),
        }
    }

    /// Your own fixed body for 429 (over a rate limit, out of credits).
    #[must_use]
    pub fn throttled(mut self, body: impl Into<Bytes>) -> Self {
        self.throttled = Throttled::Fixed(body.into());
        self
    }

    fn throttled_body(&self, rejection: &Rejection) -> Bytes {
        const ENVELOPE: &str = r#"{"type":"response","success":false,"description":"Too Many Requests","data":{},"error":{"module":"Auth","code":"#;
        match &self.throttled {
            Throttled::Laravel => Bytes::from_static(br#"{"message":"Too Many Attempts."}"#),
            Throttled::Drf => match rejection.retry_after() {
                Some(1) => Bytes::from_static(
                    br#"{"detail":"Request was throttled. Expected available in 1 second."}"#,
                ),
                Some(wait) => Bytes::from(format!(
                    r#"{{"detail":"Request was throttled. Expected available in {wait} seconds."}}"#
                )),
                None => Bytes::from_static(br#"{"detail":"Request was throttled."}"#),
            },
            Throttled::Envelope => Bytes::from(match rejection {
                Rejection::UsageExceeded { .. } => {
                    format!(r#"{ENVELOPE}"USAGE_EXCEEDED","message":"Usage limit exceeded"}}}}"#)
                }
                _ => format!(r#"{ENVELOPE}"RATE_LIMITED","message":"Rate limit exceeded"}}}}"#),
            }),
            Throttled::Fixed(body) => body.clone(),
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
            Rejection::Unauthenticated { .. } => self.unauthenticated.clone(),
            Rejection::InsufficientScope { .. }
            | Rejection::Forbidden { .. }
            | Rejection::IpNotAllowed { .. } => self.forbidden.clone(),
            Rejection::RateLimited { .. } | Rejection::UsageExceeded { .. } => {
                self.throttled_body(rejection)
            }
            Rejection::Unavailable => self.unavailable.clone(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = rejection.status();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(preset: &Preset, rejection: &Rejection) -> String {
        let response = preset.render(rejection);
        assert_eq!(response.status(), 429);
        String::from_utf8(response.body().to_vec()).unwrap()
    }

    #[test]
    fn each_preset_throttles_in_its_own_words() {
        let rate = |retry_after| Rejection::RateLimited {
            policy: "burst".into(),
            retry_after,
            token_id: None,
        };
        let usage = |retry_after| Rejection::UsageExceeded {
            retry_after,
            token_id: None,
        };
        let laravel = Preset::laravel();
        assert_eq!(
            body(&laravel, &rate(5)),
            r#"{"message":"Too Many Attempts."}"#
        );
        assert_eq!(
            body(&laravel, &usage(None)),
            r#"{"message":"Too Many Attempts."}"#
        );
        let drf = Preset::drf();
        assert_eq!(
            body(&drf, &rate(17)),
            r#"{"detail":"Request was throttled. Expected available in 17 seconds."}"#
        );
        assert_eq!(
            body(&drf, &rate(1)),
            r#"{"detail":"Request was throttled. Expected available in 1 second."}"#
        );
        assert_eq!(
            body(&drf, &usage(None)),
            r#"{"detail":"Request was throttled."}"#
        );
        let envelope = Preset::envelope();
        for (rejection, code, message) in [
            (rate(3), "RATE_LIMITED", "Rate limit exceeded"),
            (usage(Some(3)), "USAGE_EXCEEDED", "Usage limit exceeded"),
        ] {
            let json: serde_json::Value =
                serde_json::from_str(&body(&envelope, &rejection)).unwrap();
            assert_eq!(json["error"]["code"], code);
            assert_eq!(json["error"]["message"], message);
            assert_eq!(json["description"], "Too Many Requests");
            assert_eq!(json["success"], false);
        }
        let custom = Preset::new("{}", "{}", "{}").throttled(r#"{"e":429}"#);
        assert_eq!(body(&custom, &rate(1)), r#"{"e":429}"#);
    }
}
