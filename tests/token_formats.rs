//! Property tests for the wire formats: minted tokens round-trip, the checksum catches
//! every single-character change, and no input makes a decoder panic.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use proptest::prelude::*;
use tower_bearer::token::{Digest, Env, Formats, Malformed, PrefixedFormat};

fn env() -> impl Strategy<Value = Env> {
    prop_oneof![Just(Env::Live), Just(Env::Test)]
}

fn prefixed_format() -> impl Strategy<Value = PrefixedFormat> {
    ("[a-z][a-z0-9]{0,15}", 30usize..=128).prop_map(|(prefix, len)| {
        PrefixedFormat::new(&prefix)
            .unwrap()
            .random_len(len)
            .unwrap()
    })
}

fn every_format(prefixed: PrefixedFormat) -> Formats {
    Formats::none().prefixed(prefixed).sanctum().account()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn minted_tokens_round_trip(format in prefixed_format(), env in env()) {
        let minted = format.mint(env).unwrap();
        let token = minted.secret.expose_secret();
        prop_assert_eq!(format.decode(token), Ok(env));
        let presented = every_format(format.clone()).decode(token).unwrap();
        prop_assert_eq!(*presented.digest(), Digest::of(token.as_bytes()));
        prop_assert_eq!(presented.digest(), &minted.digest);
        prop_assert_eq!(presented.env(), Some(env));
        prop_assert!(token.starts_with(&minted.display_prefix));
        prop_assert_eq!(minted.display_prefix.len(), format.prefix().len() + 10);
    }

    /// The pattern registered with secret scanners finds every minted token in text,
    /// whole, and nothing one character longer or shorter.
    #[test]
    fn the_scanning_pattern_finds_minted_tokens_in_text(
        format in prefixed_format(),
        env in env(),
        before in "[ \n=:\"']{0,3}",
        after in "[ \n,\"']{0,3}",
    ) {
        let minted = format.mint(env).unwrap();
        let token = minted.secret.expose_secret();
        let pattern = regex::Regex::new(&format.scanning_pattern()).unwrap();
        let text = format!("{before}API_KEY={token}{after}");
        let found: Vec<&str> = pattern.find_iter(&text).map(|m| m.as_str()).collect();
        prop_assert_eq!(found, vec![token]);
        let longer = format!("{token}x");
        prop_assert!(!pattern.is_match(&longer));
        prop_assert!(!pattern.is_match(&token[..token.len() - 1]));
        prop_assert_eq!(
            every_format(format.clone()).scanning_pattern(),
            Some(format.scanning_pattern())
        );
    }

    #[test]
    fn any_single_character_change_is_caught(
        format in prefixed_format(),
        env in env(),
        position in any::<prop::sample::Index>(),
        replacement in prop::char::any(),
    ) {
        let minted = format.mint(env).unwrap();
        let token = minted.secret.expose_secret();
        let at = position.index(token.len());
        let original = token.as_bytes()[at] as char;
        prop_assume!(replacement != original);
        let mut changed = String::with_capacity(token.len() + 4);
        changed.push_str(&token[..at]);
        changed.push(replacement);
        changed.push_str(&token[at + 1..]);
        prop_assert!(format.decode(&changed).is_err(), "{changed} accepted");
        prop_assert!(every_format(format).decode(&changed).is_err(), "{changed} accepted");
    }

    #[test]
    fn any_adjacent_swap_is_caught(format in prefixed_format(), env in env(), position in any::<prop::sample::Index>()) {
        let minted = format.mint(env).unwrap();
        let mut bytes = minted.secret.expose_secret().as_bytes().to_vec();
        let at = position.index(bytes.len() - 1);
        prop_assume!(bytes[at] != bytes[at + 1]);
        bytes.swap(at, at + 1);
        let swapped = String::from_utf8(bytes).unwrap();
        prop_assert!(format.decode(&swapped).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let text = String::from_utf8_lossy(&bytes);
        let formats = every_format(PrefixedFormat::default());
        let _ = formats.decode(&text);
        let _ = Formats::default().decode(&text);
        let _ = PrefixedFormat::default().decode(&text);
    }

    #[test]
    fn token_like_strings_never_panic(text in "[A-Za-z0-9_|+/=:.~-]{0,600}") {
        let _ = every_format(PrefixedFormat::default()).decode(&text);
        let _ = every_format(PrefixedFormat::default()).decode(&STANDARD.encode(&text));
    }

    #[test]
    fn sanctum_tokens_round_trip(id in 1u64.., secret in "[A-Za-z0-9._~+/-]{1,200}") {
        let token = format!("{id}|{secret}");
        let presented = Formats::none().sanctum().decode(&token).unwrap();
        prop_assert_eq!(presented.expected_id().map(|id| id.get()), Some(id));
        prop_assert_eq!(*presented.digest(), Digest::of(secret.as_bytes()));
    }

    #[test]
    fn account_credentials_round_trip_with_and_without_padding(
        account in "[A-Za-z0-9_.-]{1,40}",
        env in env(),
    ) {
        let minted = PrefixedFormat::default().mint(env).unwrap();
        let key = minted.secret.expose_secret();
        let formats = Formats::default().account();
        for encoded in [STANDARD.encode(format!("{account}:{key}")), STANDARD_NO_PAD.encode(format!("{account}:{key}"))] {
            let presented = formats.decode(&encoded).unwrap();
            prop_assert_eq!(presented.account(), Some(account.as_str()));
            prop_assert_eq!(presented.digest(), &minted.digest);
        }
    }
}

#[test]
fn malformed_reasons_name_the_broken_part() {
    let formats = every_format(PrefixedFormat::default());
    let valid = PrefixedFormat::default().mint(Env::Live).unwrap();
    let valid = valid.secret.expose_secret();
    let long = "a".repeat(tower_bearer::token::MAX_TOKEN_LEN + 1);
    let cases: &[(&str, Malformed)] = &[
        ("", Malformed::Empty),
        (&long, Malformed::TooLong),
        ("sk_prod_abc", Malformed::Env),
        ("pk_live_abc", Malformed::Prefix),
        ("sk_live_abc", Malformed::Length),
        (
            "sk_live_0123456789012345678901234567890123-5",
            Malformed::Character,
        ),
        (
            "sk_live_012345678901234567890123456789012345",
            Malformed::Checksum,
        ),
        ("abc|def", Malformed::Id),
        ("1|abc def", Malformed::Character),
        ("YWJjZ", Malformed::Base64),
        ("YWJjZA", Malformed::Account),
        ("a b c", Malformed::Shape),
    ];
    for (input, expected) in cases {
        assert_eq!(formats.decode(input).unwrap_err(), *expected, "{input:?}");
    }
    assert!(formats.decode(valid).is_ok());
}

#[test]
fn formats_accept_only_what_they_are_configured_with() {
    let sanctum = "12|abcdefghijklmnopqrstuvwxyz0123456789ABCD";
    let prefixed = PrefixedFormat::default().mint(Env::Live).unwrap();
    let prefixed = prefixed.secret.expose_secret();
    let account = STANDARD.encode(format!("acme:{prefixed}"));

    let only_prefixed = Formats::default();
    assert!(only_prefixed.decode(prefixed).is_ok());
    assert!(only_prefixed.decode(sanctum).is_err());
    assert!(only_prefixed.decode(&account).is_err());

    let only_sanctum = Formats::none().sanctum();
    assert!(only_sanctum.decode(sanctum).is_ok());
    assert!(only_sanctum.decode(prefixed).is_err());
}

/// Regression (found by `any_single_character_change_is_caught`): with an all-digit prefix,
/// `1_live_…` changed to `1|live_…` was a well-formed Sanctum credential. Prefixes start
/// with a letter, so the formats never overlap one character apart.
#[test]
fn prefixes_start_with_a_letter() {
    for bad in ["1", "42", "9abc", "", "Sk", "s-k"] {
        assert!(PrefixedFormat::new(bad).is_err(), "{bad:?}");
    }
    for good in ["sk", "a1", "pk9"] {
        assert!(PrefixedFormat::new(good).is_ok(), "{good:?}");
    }
}
