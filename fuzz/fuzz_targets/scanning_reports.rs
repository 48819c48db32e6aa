//! Secret scanning reports through the real router, signed with the provider's key (so
//! that the body parser is what is fuzzed): no input panics or answers 5xx, a refused
//! body is 400 or 413, and a 200 labels every match of the report, in order.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use tower::ServiceExt as _;
use tower_bearer::scanning::SecretScanning;
use tower_bearer::{MemoryStore, Registry};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: axum::Router,
    key: SigningKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let key = loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                break key;
            }
        };
        let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let app = runtime.block_on(async {
            // The key document, served on loopback by this runtime.
            let document = serde_json::json!({"public_keys": [{"key_identifier": "k", "key": pem}]});
            let keys = axum::Router::new().route(
                "/keys",
                axum::routing::get(move || {
                    let document = document.clone();
                    async move { axum::Json(document) }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, keys).await.unwrap() });
            let registry = Registry::builder(MemoryStore::new()).build();
            SecretScanning::new(registry)
                .github_keys_url(&format!("http://{addr}/keys"))
                .router()
        });
        Fixture { runtime, app, key }
    })
}

fuzz_target!(|body: &[u8]| {
    let fixture = fixture();
    let signature: Signature = fixture.key.sign(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let request = http::Request::post("/secret-scanning/github")
        .header("Github-Public-Key-Identifier", "k")
        .header("Github-Public-Key-Signature", signature)
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    let (status, answer) = fixture.runtime.block_on(async {
        let response = fixture.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, bytes)
    });
    assert!(
        matches!(status.as_u16(), 200 | 400 | 413),
        "{status}: {}",
        String::from_utf8_lossy(&answer)
    );
    if status == 200 {
        // Read as the endpoint reads a match (other fields skipped, unread).
        #[derive(serde::Deserialize)]
        struct Match {
            token: String,
            #[serde(rename = "type")]
            kind: String,
        }
        let matches: Vec<Match> = serde_json::from_slice(body).unwrap();
        let feedback: Vec<serde_json::Value> = serde_json::from_slice(&answer).unwrap();
        assert_eq!(feedback.len(), matches.len());
        for (found, answered) in matches.iter().zip(&feedback) {
            assert_eq!(answered["token_raw"], found.token.as_str());
            assert_eq!(answered["token_type"], found.kind.as_str());
            assert!(matches!(answered["label"].as_str(), Some("true_positive" | "false_positive")));
        }
    }
});
