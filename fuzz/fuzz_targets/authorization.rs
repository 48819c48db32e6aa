//! The `Authorization` header parser and the request sources: no input panics, and what
//! comes out is a non-empty `b64token` (plus `|`) that was in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_bearer::header::{TokenSources, parse_authorization};

fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/|=".contains(&b))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(token)) = parse_authorization(data) {
        assert!(is_token(token), "{token:?}");
        assert!(data.windows(token.len()).any(|w| w == token.as_bytes()));
    }
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, value.clone());
    headers.append(http::header::COOKIE, value);
    let query = String::from_utf8_lossy(data).replace(['#', ' '], "");
    let uri = format!("/path?{query}")
        .parse::<http::Uri>()
        .unwrap_or_else(|_| http::Uri::from_static("/"));
    let sources = TokenSources::new()
        .query_param()
        .cookie("token")
        .scheme_alias("Token");
    if let Ok(Some(token)) = sources.extract(&headers, &uri) {
        assert!(is_token(&token), "{token:?}");
    }
});
