//! A secret scanning provider's side: its P-256 signing key, its key document served on
//! 127.0.0.1, and reports signed the way GitHub and GitLab sign them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};

use super::http::serve;

/// A signing key of the provider's, made from the OS's randomness.
pub fn signing_key() -> SigningKey {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).unwrap();
        if let Ok(key) = SigningKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// The provider's key document, served on 127.0.0.1; what it lists can change, and it
/// counts how often it is fetched.
#[derive(Clone, Default)]
pub struct KeyDocument {
    keys: Arc<std::sync::Mutex<Vec<(String, SigningKey)>>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyDocument {
    pub fn publish(&self, id: &str, key: &SigningKey) {
        self.keys.lock().unwrap().push((id.to_owned(), key.clone()));
    }

    pub async fn serve(&self) -> String {
        let document = self.clone();
        let app = Router::new().route(
            "/keys",
            get(move || {
                let document = document.clone();
                async move {
                    document.fetches.fetch_add(1, Ordering::SeqCst);
                    let keys: Vec<Value> = document
                        .keys
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|(id, key)| {
                            let pem = key
                                .verifying_key()
                                .to_public_key_pem(LineEnding::LF)
                                .unwrap();
                            json!({"key_identifier": id, "key": pem, "is_current": true})
                        })
                        .collect();
                    axum::Json(json!({ "public_keys": keys }))
                }
            }),
        );
        format!("http://{}/keys", serve(app).await)
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A report to `provider`'s route (`github`, `gitlab`) carrying `sent`, with the
/// provider's headers: key `id` and `key`'s signature of `signed` (the body itself, or
/// another one to forge a report).
pub fn signed_report(
    provider: &str,
    id: &str,
    key: &SigningKey,
    signed: &[u8],
    sent: &[u8],
) -> Request<Full<Bytes>> {
    let signature: Signature = key.sign(signed);
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let prefix = if provider == "github" {
        "Github"
    } else {
        "Gitlab"
    };
    Request::post(format!("/secret-scanning/{provider}"))
        .header("content-type", "application/json")
        .header(format!("{prefix}-Public-Key-Identifier"), id)
        .header(format!("{prefix}-Public-Key-Signature"), signature)
        .body(Full::new(Bytes::copy_from_slice(sent)))
        .unwrap()
}
