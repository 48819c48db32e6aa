//! One delivery attempt: the event's body `POST`ed to an endpoint with the Standard
//! Webhooks headers, over rustls, no redirect followed, within a deadline, to addresses
//! checked as they are resolved (a name that turns private between registration and
//! delivery is refused, and the connection uses exactly the addresses checked).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::header::CONTENT_TYPE;

use super::address::{Targets, UnsafeUrl, check_url, resolve_host};
use super::signing::{WebhookSecret, signature_header};

/// How long a receiver has to answer (Standard Webhooks: 15 seconds).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// One message to one endpoint.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Message<'a> {
    /// The endpoint's URL.
    pub url: &'a str,
    /// `webhook-id`: the same on every attempt of one event to one endpoint.
    pub id: &'a str,
    /// `webhook-timestamp`: Unix seconds, of this attempt.
    pub timestamp: i64,
    /// The JSON body.
    pub body: &'a [u8],
    /// The secrets to sign with: the endpoint's, and during a rotation the one before.
    pub secrets: &'a [WebhookSecret],
}

impl<'a> Message<'a> {
    /// Message `id` with `body` for `url`, signed with `secrets`, sent at `timestamp`.
    pub fn new(
        url: &'a str,
        id: &'a str,
        timestamp: i64,
        body: &'a [u8],
        secrets: &'a [WebhookSecret],
    ) -> Self {
        Self {
            url,
            id,
            timestamp,
            body,
            secrets,
        }
    }
}

/// What became of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// A 2xx within the deadline.
    Delivered {
        /// The status.
        status: u16,
        /// From sending to the answer.
        latency: Duration,
    },
    /// Anything else: to retry later.
    Failed {
        /// The status, when the receiver answered.
        status: Option<u16>,
        /// Why, in words (never the secret).
        error: String,
        /// From sending to the failure.
        latency: Duration,
    },
}

/// Sends messages to endpoints. Cheap to clone (one connection pool).
#[derive(Clone, Debug)]
pub struct Deliverer {
    client: reqwest::Client,
    targets: Targets,
}

/// A resolver that answers only with addresses `targets` allows.
struct CheckedResolver(Targets);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.0;
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = resolve_host(name.as_str(), 0, targets)
                .await
                .map_err(|why| Box::new(why) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Deliverer {
    /// A deliverer to the endpoints `targets` allows, waiting `timeout` for each answer.
    pub fn new(targets: Targets, timeout: Duration) -> Self {
        let client = crate::tls::http_client()
            .timeout(timeout)
            .dns_resolver(std::sync::Arc::new(CheckedResolver(targets)))
            .build()
            .expect("a rustls client with ring and the platform's roots builds");
        Self { client, targets }
    }

    /// Makes one attempt at `message`.
    pub async fn deliver(&self, message: &Message<'_>) -> Attempt {
        let started = Instant::now();
        let failed = |status: Option<u16>, error: String| Attempt::Failed {
            status,
            error,
            latency: started.elapsed(),
        };
        // An address written in the URL is never resolved: it is checked here.
        if let Err(why) = check_url(message.url, self.targets) {
            return failed(None, why.to_string());
        }
        let signature =
            signature_header(message.secrets, message.id, message.timestamp, message.body);
        let sent = self
            .client
            .post(message.url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", message.id)
            .header("webhook-timestamp", message.timestamp.to_string())
            .header("webhook-signature", signature)
            .body(message.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => Attempt::Delivered {
                status: response.status().as_u16(),
                latency: started.elapsed(),
            },
            Ok(response) => {
                let status = response.status();
                failed(Some(status.as_u16()), format!("answered {status}"))
            }
            Err(error) => failed(None, describe(&error)),
        }
    }
}

/// A failed send in words: the refusal of an address first (it says why).
fn describe(error: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(unsafe_url) = cause.downcast_ref::<UnsafeUrl>() {
            return unsafe_url.to_string();
        }
        source = cause.source();
    }
    if error.is_timeout() {
        "no answer within the deadline".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        error.to_string()
    }
}
