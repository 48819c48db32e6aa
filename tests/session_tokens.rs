//! Session access tokens (feature `exchange`): signed by one key, verified by several;
//! every tampered byte, foreign algorithm, unknown key, and expired token is refused; no
//! three-segment string panics or verifies.
#![cfg(feature = "exchange")]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use tower_bearer::session::{
    InvalidSessionKey, JwtRejected, SessionClaims, SessionKeys, looks_like_jwt,
};

const ISSUER: &str = "tower-bearer";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn keys() -> SessionKeys {
    SessionKeys::new("k2", &[2u8; 32]).unwrap()
}

fn claims(exp_in: i64) -> SessionClaims {
    let now = now();
    SessionClaims::new(
        ISSUER,
        "42",
        "sess-1",
        "acme",
        "read write",
        now,
        now + exp_in,
        "j-1",
    )
}

#[test]
fn tokens_are_deterministic_and_verify() {
    let keys = keys();
    let claims = claims(7200);
    let token = keys.sign(&claims);
    assert!(looks_like_jwt(&token));
    assert_eq!(
        keys.sign(&claims),
        token,
        "HS256 over the same claims is the same token"
    );
    assert_eq!(keys.verify(&token, ISSUER).unwrap(), claims);
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], "k2");
}

#[test]
fn every_changed_byte_of_payload_or_signature_is_refused() {
    let keys = keys();
    let token = keys.sign(&claims(7200));
    let payload_start = token.find('.').unwrap() + 1;
    for at in payload_start..token.len() {
        let original = token.as_bytes()[at];
        if original == b'.' {
            continue;
        }
        for replacement in [b'A', b'z', b'0', b'_', b'-'] {
            if replacement == original {
                continue;
            }
            let mut bytes = token.clone().into_bytes();
            bytes[at] = replacement;
            let tampered = String::from_utf8(bytes).unwrap();
            let verified = keys.verify(&tampered, ISSUER);
            // The last character of a segment may carry unused bits: the same bytes.
            if verified.is_ok() {
                let decode = |t: &str| {
                    t.split('.')
                        .map(|s| URL_SAFE_NO_PAD.decode(s).unwrap_or_default())
                        .collect::<Vec<_>>()
                };
                assert_eq!(
                    decode(&tampered),
                    decode(&token),
                    "accepted tampering at {at}"
                );
            }
        }
    }
}

fn forge(header: &str, claims: &SessionClaims, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    )
}

#[test]
fn algorithm_confusion_and_unknown_keys_are_refused() {
    let keys = keys();
    let claims = claims(7200);
    let genuine = keys.sign(&claims);
    let signature = genuine.rsplit('.').next().unwrap();
    for (header, why) in [
        (r#"{"alg":"none","kid":"k2","typ":"JWT"}"#, "none"),
        (r#"{"alg":"HS384","kid":"k2","typ":"JWT"}"#, "HS384"),
        (r#"{"alg":"RS256","kid":"k2","typ":"JWT"}"#, "RS256"),
    ] {
        for signature in [signature, ""] {
            let forged = forge(header, &claims, signature);
            let rejected = keys.verify(&forged, ISSUER).unwrap_err();
            assert!(
                matches!(rejected, JwtRejected::Algorithm | JwtRejected::Malformed),
                "{why}: {rejected:?}"
            );
        }
    }
    let unknown = forge(
        r#"{"alg":"HS256","kid":"k9","typ":"JWT"}"#,
        &claims,
        signature,
    );
    assert_eq!(keys.verify(&unknown, ISSUER), Err(JwtRejected::UnknownKey));
    let missing = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, signature);
    assert_eq!(keys.verify(&missing, ISSUER), Err(JwtRejected::UnknownKey));
    // Signed by a key this verifier does not have, under a kid it knows.
    let other = SessionKeys::new("k2", &[3u8; 32]).unwrap().sign(&claims);
    assert_eq!(keys.verify(&other, ISSUER), Err(JwtRejected::Signature));
}

#[test]
fn expiry_and_issuer_are_checked_with_30_seconds_of_leeway() {
    let keys = keys();
    let within_leeway = keys.sign(&claims(-10));
    assert!(keys.verify(&within_leeway, ISSUER).is_ok());
    let expired = keys.sign(&claims(-31));
    assert_eq!(keys.verify(&expired, ISSUER), Err(JwtRejected::Expired));
    // Against a given clock (the registry's), not the system's.
    let token = keys.sign(&claims(60));
    assert!(keys.verify_at(&token, ISSUER, now() + 80).is_ok());
    assert_eq!(
        keys.verify_at(&token, ISSUER, now() + 95),
        Err(JwtRejected::Expired)
    );
    // `nbf`, when a token carries one, with the same leeway.
    let mut early = claims(3600);
    early.nbf = Some(now() + 60);
    let early = keys.sign(&early);
    assert_eq!(keys.verify(&early, ISSUER), Err(JwtRejected::Claims));
    assert!(keys.verify_at(&early, ISSUER, now() + 31).is_ok());
    let token = keys.sign(&claims(60));
    assert_eq!(
        keys.verify(&token, "someone-else"),
        Err(JwtRejected::Claims)
    );
}

#[test]
fn keys_rotate_without_logging_anyone_out() {
    let old = SessionKeys::new("2026-05", &[5u8; 32]).unwrap();
    let token = old.sign(&claims(3600));
    let rotated = SessionKeys::new("2026-11", &[11u8; 32])
        .unwrap()
        .verify_with("2026-05", &[5u8; 32])
        .unwrap();
    assert!(
        rotated.verify(&token, ISSUER).is_ok(),
        "an old token still verifies"
    );
    let fresh = rotated.sign(&claims(3600));
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(fresh.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header["kid"], "2026-11",
        "new tokens are signed with the new key"
    );
    assert_eq!(old.verify(&fresh, ISSUER), Err(JwtRejected::UnknownKey));
}

#[test]
fn short_keys_are_refused_when_the_configuration_is_built() {
    assert_eq!(
        SessionKeys::new("k", &[1u8; 31]).unwrap_err(),
        InvalidSessionKey::TooShort("k".into())
    );
    assert_eq!(
        SessionKeys::new("", &[1u8; 32]).unwrap_err(),
        InvalidSessionKey::Kid
    );
    assert!(keys().verify_with("old", b"short").is_err());
}

proptest! {
    #[test]
    fn three_segment_strings_never_panic_and_never_verify(
        a in "[A-Za-z0-9_-]{0,80}",
        b in "[A-Za-z0-9_-]{0,200}",
        c in "[A-Za-z0-9_-]{0,60}",
    ) {
        let token = format!("{a}.{b}.{c}");
        prop_assert!(keys().verify(&token, ISSUER).is_err());
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = looks_like_jwt(&text);
        prop_assert!(keys().verify(&text, ISSUER).is_err());
    }
}

/// Issue 27 #5: key files as an operator keeps them. Created 0600 (its directory 0700),
/// read back to the same keys, refused once group or others may read them; several keys
/// in a variable, the first signing.
#[test]
fn key_files_are_created_private_and_refused_when_readable_by_others() {
    use std::os::unix::fs::PermissionsExt as _;
    use tower_bearer::session::KeyFileError;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/tower-bearer/session-keys");
    let created = SessionKeys::from_file_or_create(&path).unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let read = SessionKeys::from_file(&path).unwrap();
    assert_eq!(read.signing_kid(), created.signing_kid());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = SessionKeys::from_file(&path).unwrap_err();
    assert!(
        matches!(refused, KeyFileError::Readable { mode: 0o644, .. }),
        "{refused:?}"
    );
    let message = refused.to_string();
    assert!(message.contains("chmod 600"), "{message}");
    assert!(message.contains(path.to_str().unwrap()), "{message}");
    assert!(
        SessionKeys::from_file_or_create(&path).is_err(),
        "an existing loose file is not replaced"
    );

    let missing = SessionKeys::from_file(dir.path().join("none")).unwrap_err();
    assert!(matches!(missing, KeyFileError::Io { .. }), "{missing:?}");
}
