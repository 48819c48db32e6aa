//! Rejections of gRPC calls: trailers-only responses with `grpc-status` and
//! `grpc-message`.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};

use super::Rejection;

/// What `grpc-message` leaves as it is: printable ASCII except `%` (gRPC's
/// percent-encoding rule).
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

/// A trailers-only gRPC response: HTTP 200, `content-type: application/grpc`, the status
/// in `grpc-status` and `grpc-message`, no body.
pub(super) fn render_grpc(rejection: &Rejection) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(
        "grpc-status",
        HeaderValue::from(u16::from(rejection.grpc_code())),
    );
    let message = rejection.grpc_message();
    let encoded = percent_encoding::utf8_percent_encode(&message, GRPC_MESSAGE).to_string();
    if let Ok(message) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", message);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RejectCause;
    use crate::reject::Rendering;
    use http::StatusCode;
    use http::header::WWW_AUTHENTICATE;

    #[test]
    fn grpc_rejections_are_trailers_only_with_a_percent_encoded_message() {
        let rejection = Rejection::InsufficientScope {
            scope: "ünï%code".into(),
            token_id: None,
        };
        let response = Rendering::default().render_for(&rejection, true);
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.body().is_empty());
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "7");
        assert_eq!(
            headers["grpc-message"],
            "insufficient scope: requires %C3%BCn%C3%AF%25code"
        );
        assert!(!headers.contains_key(WWW_AUTHENTICATE));
    }

    #[test]
    fn grpc_codes_follow_the_http_statuses() {
        let unauthenticated = Rejection::Unauthenticated {
            cause: RejectCause::Revoked,
            token_id: None,
        };
        assert_eq!(unauthenticated.grpc_code(), 16);
        assert_eq!(Rejection::Unavailable.grpc_code(), 14);
        let response = Rendering::default().render_for(&Rejection::Unavailable, true);
        assert_eq!(response.headers()["grpc-status"], "14");
    }
}
