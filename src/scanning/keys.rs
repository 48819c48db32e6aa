//! The providers' public keys: fetched over HTTPS from their key document, cached by
//! identifier, and fetched again when a report names a key the cache does not hold (at
//! most once a minute, so that forged identifiers cannot make us hammer the provider).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey as _;
use serde::Deserialize;

/// How often a key document may be fetched again for an unknown key identifier, by
/// default.
pub(crate) const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// The largest key document read.
const MAX_DOCUMENT: usize = 1 << 20;

/// Why the key document could not be read.
#[derive(Debug, thiserror::Error)]
#[error("secret scanning keys from {url}: {why}")]
pub(crate) struct FetchError {
    url: String,
    why: String,
}

/// `{"public_keys": [{"key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", "is_current": true}]}`.
#[derive(Deserialize)]
struct Document {
    public_keys: Vec<PublicKey>,
}

#[derive(Deserialize)]
struct PublicKey {
    key_identifier: String,
    key: String,
}

/// One provider's keys.
pub(crate) struct KeyRing {
    url: String,
    refetch_after: Duration,
    client: reqwest::Client,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, VerifyingKey>,
    fetched_at: Option<Instant>,
}

impl KeyRing {
    pub(crate) fn new(url: String, client: reqwest::Client, refetch_after: Duration) -> Self {
        Self {
            url,
            refetch_after,
            client,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The key named `id`: from the cache, else from the document fetched again (unless
    /// it was fetched less than a minute ago). `Ok(None)`: no such key.
    pub(crate) async fn key(&self, id: &str) -> Result<Option<VerifyingKey>, FetchError> {
        let mut state = self.state.lock().await;
        if let Some(key) = state.keys.get(id) {
            return Ok(Some(*key));
        }
        if state
            .fetched_at
            .is_some_and(|at| at.elapsed() < self.refetch_after)
        {
            return Ok(None);
        }
        let keys = self.fetch().await?;
        state.keys = keys;
        state.fetched_at = Some(Instant::now());
        Ok(state.keys.get(id).copied())
    }

    async fn fetch(&self) -> Result<HashMap<String, VerifyingKey>, FetchError> {
        let error = |why: String| FetchError {
            url: self.url.clone(),
            why,
        };
        let mut response = self
            .client
            .get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| error(e.to_string()))?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error(e.to_string()))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(error("the key document is larger than 1 MiB".into()));
            }
        }
        let document: Document =
            serde_json::from_slice(&body).map_err(|e| error(format!("not a key document: {e}")))?;
        let mut keys = HashMap::new();
        for key in document.public_keys {
            match VerifyingKey::from_public_key_pem(&key.key) {
                Ok(parsed) => {
                    keys.insert(key.key_identifier, parsed);
                }
                Err(why) => tracing::warn!(
                    target: "tower_bearer::scanning",
                    key_identifier = %key.key_identifier,
                    %why,
                    "a key of the document is not a P-256 public key; skipped"
                ),
            }
        }
        Ok(keys)
    }
}

/// The HTTP client that fetches key documents: rustls with ring and the platform's root
/// certificates, no redirects followed, 10 s at most.
pub(crate) fn client() -> reqwest::Client {
    crate::tls::http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a rustls client with ring and the platform's roots builds")
}
