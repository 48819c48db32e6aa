//! The HS256 check the benches compare against: what a JWT-based API does on every
//! request, as a tower-http `ValidateRequestHeaderLayer::custom` (the same harness as
//! tower-http's static compare).

use axum::body::Body;
use axum::response::Response;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tower_http::validate_request::ValidateRequestHeaderLayer;

const SECRET: &[u8] = b"an HS256 secret of a reasonable length, 32+ bytes";

#[derive(Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    scope: String,
    exp: u64,
}

/// A token the check accepts (expires in 2100).
pub fn token() -> String {
    let claims = Claims {
        sub: "42".into(),
        tenant: "tenant-1".into(),
        scope: "read write".into(),
        exp: 4_102_444_800,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// The layer: decodes and verifies the bearer JWT, inserts its claims (401 otherwise).
pub fn layer()
-> ValidateRequestHeaderLayer<impl FnMut(&mut Request<Body>) -> Result<(), Response> + Clone> {
    ValidateRequestHeaderLayer::custom(check(DecodingKey::from_secret(SECRET)))
}

// The `Response` error is tower-http's `ValidateRequest` signature.
#[allow(clippy::result_large_err)]
fn check(key: DecodingKey) -> impl FnMut(&mut Request<Body>) -> Result<(), Response> + Clone {
    let validation = Validation::new(Algorithm::HS256);
    move |request: &mut Request<Body>| {
        let token = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match token.map(|token| jsonwebtoken::decode::<Claims>(token, &key, &validation)) {
            Some(Ok(data)) => {
                request.extensions_mut().insert(data.claims);
                Ok(())
            }
            _ => Err(Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Body::empty())
                .unwrap()),
        }
    }
}
