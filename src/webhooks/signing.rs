//! Standard Webhooks 1.0 signatures: `webhook-signature: v1,<base64 of
//! HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>`, one per secret during a rotation,
//! separated by spaces; secrets are `whsec_` and the base64 of their bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The prefix of a secret as Standard Webhooks spells it.
pub const SECRET_PREFIX: &str = "whsec_";
/// How many random bytes a new secret has (24 to 64 is what the specification allows).
const SECRET_BYTES: usize = 32;
/// The only signature scheme of Standard Webhooks 1.0 that uses a shared secret.
const VERSION: &str = "v1";

/// An endpoint's signing secret. Shown once (when the endpoint is created or its secret
/// rotated), kept by the store, never logged: `Debug` shows only that it is one.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl WebhookSecret {
    /// A new secret of 32 bytes from the operating system's randomness.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The secret `whsec_…` spells (the prefix may be left out), if it is base64 of 24 to
    /// 64 bytes.
    pub fn parse(text: &str) -> Option<Self> {
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let bytes = Zeroizing::new(STANDARD.decode(encoded).ok()?);
        (24..=64).contains(&bytes.len()).then_some(Self(bytes))
    }

    /// The secret as Standard Webhooks libraries take it: `whsec_` and base64.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0))
    }

    /// The raw bytes (what the store keeps).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret of `bytes` (as the store gives them back).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The signature of message `id` sent at `timestamp` (Unix seconds) with `body`:
    /// `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("{VERSION},{}", STANDARD.encode(tag))
    }

    /// Whether `header` (a `webhook-signature` value: space-separated `v1,<base64>`)
    /// holds this secret's signature of the message, compared in constant time.
    pub fn verify(&self, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter_map(|signature| signature.split_once(','))
            .filter(|(version, _)| *version == VERSION)
            .filter_map(|(_, tag)| STANDARD.decode(tag).ok())
            .any(|tag| self.mac(id, timestamp, body).verify_slice(&tag).is_ok())
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// The `webhook-signature` header of a message signed with each of `secrets` (the
/// current one and, during a rotation, the ones before it).
pub fn signature_header(
    secrets: &[WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks libraries' own test vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn the_specifications_test_vector() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(
            secret.sign(ID, TIMESTAMP, BODY),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        assert_eq!(secret.expose(), SECRET);
        assert!(secret.verify(
            ID,
            TIMESTAMP,
            BODY,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        ));
    }

    #[test]
    fn one_of_several_signatures_verifies_and_nothing_else_does() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let old = WebhookSecret::generate().unwrap();
        let header = signature_header(&[old.clone(), secret.clone()], ID, TIMESTAMP, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(secret.verify(ID, TIMESTAMP, BODY, &header));
        assert!(old.verify(ID, TIMESTAMP, BODY, &header));
        let stranger = WebhookSecret::generate().unwrap();
        assert!(!stranger.verify(ID, TIMESTAMP, BODY, &header));
        assert!(!secret.verify(ID, TIMESTAMP + 1, BODY, &header));
        assert!(!secret.verify("msg_other", TIMESTAMP, BODY, &header));
        assert!(!secret.verify(ID, TIMESTAMP, b"{}", &header));
        for junk in [
            "",
            "v1",
            "v1,",
            "v2,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v1,!!!",
        ] {
            assert!(!secret.verify(ID, TIMESTAMP, BODY, junk), "{junk}");
        }
    }

    proptest::proptest! {
        /// A signature verifies its message and no other: another id, time or body, or
        /// any changed byte of the signature, fails.
        #[test]
        fn a_signature_verifies_its_message_only(
            id in "msg_[0-9A-Za-z]{1,32}",
            timestamp in 0i64..4_000_000_000,
            body: Vec<u8>,
            flip in 0usize..44,
        ) {
            let secret = WebhookSecret::generate().unwrap();
            let signature = secret.sign(&id, timestamp, &body);
            proptest::prop_assert!(secret.verify(&id, timestamp, &body, &signature));
            proptest::prop_assert!(!secret.verify(&id, timestamp + 1, &body, &signature));
            let mut other = body.clone();
            other.push(b'x');
            proptest::prop_assert!(!secret.verify(&id, timestamp, &other, &signature));
            let mut tampered = signature.into_bytes();
            let at = 3 + flip % (tampered.len() - 3);
            tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(tampered).unwrap();
            proptest::prop_assert!(!secret.verify(&id, timestamp, &body, &tampered));
        }
    }

    #[test]
    fn secrets_are_32_random_bytes_and_never_debug_printed() {
        let secret = WebhookSecret::generate().unwrap();
        assert_eq!(secret.as_bytes().len(), 32);
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&secret.expose()), Some(secret.clone()));
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)");
        assert_ne!(secret, WebhookSecret::generate().unwrap());
        for bad in ["whsec_", "whsec_!!", "whsec_AAAA"] {
            assert!(WebhookSecret::parse(bad).is_none(), "{bad}");
        }
    }
}
