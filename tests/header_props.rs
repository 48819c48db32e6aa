//! Property tests for the credential parser: no input panics it, and every well-formed
//! `Authorization: Bearer` value gives back exactly its token.

use proptest::prelude::*;
use tower_bearer::Scope;
use tower_bearer::header::{InvalidCredentials, TokenSources, parse_authorization};

/// RFC 6750 `b64token` characters plus `|`, then optional `=` padding.
fn token() -> impl Strategy<Value = String> {
    ("[A-Za-z0-9._~+/|-]{1,200}", "={0,2}").prop_map(|(body, padding)| body + &padding)
}

fn scheme() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["Bearer", "bearer", "BEARER", "bEaReR"]).prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_header_bytes_never_panic(value in prop::collection::vec(any::<u8>(), 0..20_000)) {
        let _ = parse_authorization(&value);
    }

    #[test]
    fn arbitrary_requests_never_panic(
        value in prop::collection::vec(any::<u8>(), 0..600),
        query in "[ -~]{0,200}",
        cookie in "[ -~]{0,200}",
    ) {
        let mut request = http::Request::builder();
        if let Ok(value) = http::HeaderValue::from_bytes(&value) {
            request = request.header("authorization", value);
        }
        if let Ok(cookie) = http::HeaderValue::from_str(&cookie) {
            request = request.header("cookie", cookie);
        }
        let uri = format!("/path?{}", query.replace([' ', '#'], ""));
        if let Ok(request) = request.uri(uri.as_str()).body(()) {
            let sources = TokenSources::new().query_param().cookie("token");
            let _ = sources.extract(request.headers(), request.uri());
        }
    }

    #[test]
    fn well_formed_values_give_back_their_token(
        scheme in scheme(),
        gap in "[ \t]{1,4}",
        token in token(),
        trailing in "[ \t]{0,3}",
    ) {
        let value = format!("{scheme}{gap}{token}{trailing}");
        prop_assert_eq!(parse_authorization(value.as_bytes()), Ok(Some(token.as_str())));
    }

    #[test]
    fn a_space_inside_the_token_is_invalid(left in "[A-Za-z0-9]{1,20}", right in "[A-Za-z0-9]{1,20}") {
        let value = format!("Bearer {left} {right}");
        prop_assert_eq!(parse_authorization(value.as_bytes()), Err(InvalidCredentials::Character));
    }

    #[test]
    fn scope_names_never_panic_and_round_trip(name in "\\PC{0,80}") {
        if let Ok(scope) = Scope::new(&name) {
            prop_assert_eq!(scope.as_str(), name.as_str());
            prop_assert_eq!(Scope::new(scope.as_str()).unwrap(), scope);
        }
    }
}
