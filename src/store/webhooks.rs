//! Webhook endpoints' storage (feature `webhooks`): the [`WebhookStore`] capability a
//! [`TokenStore`](super::TokenStore) may have, as the memory, SQLite and PostgreSQL
//! stores do. An endpoint belongs to one tenant and keeps its signing secret (and, for a
//! while after a rotation, the one before), which a sender must know: unlike tokens,
//! webhook secrets are stored as they are.
//!
//! The same stores keep the outbox: a token store that is also a [`WebhookStore`]
//! writes, in the transaction of each change, one [`Queued`] message per endpoint of the
//! tenant subscribed to the event; the registry claims them
//! ([`WebhookStore::claim_messages`]), delivers them and records each attempt
//! ([`WebhookStore::record_attempt`]).

pub(crate) mod events;

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::webhooks::WebhookSecret;

/// An endpoint's id: positive, unique in the store.
pub type EndpointId = u64;

/// What a new endpoint is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewEndpoint {
    /// Its tenant.
    pub tenant: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it subscribes to (`token.revoked`…).
    pub events: Vec<String>,
    /// What the tenant calls it.
    pub description: Option<String>,
    /// Its signing secret.
    pub secret: WebhookSecret,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

impl NewEndpoint {
    /// An endpoint of `tenant` at `url` for `events`, signed with `secret`.
    pub fn new(
        tenant: &str,
        url: &str,
        events: Vec<String>,
        secret: WebhookSecret,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            tenant: tenant.to_owned(),
            url: url.to_owned(),
            events,
            description: None,
            secret,
            created_at,
        }
    }
}

/// A stored endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// Its id.
    pub id: EndpointId,
    /// Its tenant.
    pub tenant: String,
    /// Where deliveries go.
    pub url: String,
    /// The event types it subscribes to.
    pub events: Vec<String>,
    /// What the tenant calls it.
    pub description: Option<String>,
    /// The secret deliveries are signed with.
    pub secret: WebhookSecret,
    /// The secret before the last rotation, and until when deliveries are signed with it
    /// too (receivers switch over meanwhile).
    pub previous_secret: Option<(WebhookSecret, OffsetDateTime)>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Since when its deliveries have kept failing, if they have (not deleted: marked).
    pub failing_since: Option<OffsetDateTime>,
}

/// A change to an endpoint: the fields given are replaced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointUpdate {
    /// A new URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// A new description (`Some(None)` removes it).
    pub description: Option<Option<String>>,
}

/// A message in the outbox: one event for one endpoint, delivered until it succeeds or
/// its retries run out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queued {
    /// Its id in the store.
    pub id: u64,
    /// The event's id: the `webhook-id` of every attempt (the same for every endpoint).
    pub event_id: String,
    /// `token.revoked`…
    pub event_type: String,
    /// The tenant whose endpoint receives it.
    pub tenant: String,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// When the event happened.
    pub created_at: OffsetDateTime,
    /// The body, sent as it is on every attempt.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// A message claimed for delivery, and the endpoint it goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The message.
    pub message: Queued,
    /// Its endpoint, as it is now (URL and secrets).
    pub endpoint: Endpoint,
}

/// What an attempt at a message led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// The endpoint answered 2xx: done.
    Delivered,
    /// Try again at that time.
    RetryAt(OffsetDateTime),
    /// The retries ran out: the message is given up and its endpoint marked failing.
    GiveUp,
}

/// One attempt at delivering a message, as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewAttempt {
    /// When it started.
    pub at: OffsetDateTime,
    /// The endpoint's status code, if it answered.
    pub status: Option<u16>,
    /// How long it took.
    pub latency: Duration,
    /// Why it failed, if it did (never a secret).
    pub error: Option<String>,
}

impl NewAttempt {
    /// An attempt at `at` that took `latency`, answered `status` or failed with `error`.
    pub fn new(
        at: OffsetDateTime,
        status: Option<u16>,
        latency: Duration,
        error: Option<String>,
    ) -> Self {
        Self {
            at,
            status,
            latency,
            error,
        }
    }
}

/// One attempt as an endpoint's deliveries list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryAttempt {
    /// Its id in the store (the list's cursor).
    pub id: u64,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// Which attempt at the message it was, from 1.
    pub attempt: u32,
    /// When it started.
    pub at: OffsetDateTime,
    /// The endpoint's status code, if it answered.
    pub status: Option<u16>,
    /// How long it took, to the millisecond.
    pub latency: Duration,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Where webhook endpoints are kept: an optional capability of a token store.
///
/// The contract (checked by [`testing::webhook_contract`](crate::testing::webhook_contract)
/// with feature `testing`): ids are positive and never reused; an endpoint of another
/// tenant is [`StoreError::NotFound`], like one that does not exist; fields read back
/// equal those written (times to the millisecond).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new endpoint.
    async fn create_endpoint(&self, endpoint: NewEndpoint) -> Result<Endpoint, StoreError>;

    /// The endpoints of `tenant`, by id.
    async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError>;

    /// Endpoint `id` of `tenant`.
    async fn endpoint(&self, tenant: &str, id: EndpointId) -> Result<Endpoint, StoreError>;

    /// Changes endpoint `id` of `tenant`.
    async fn update_endpoint(
        &self,
        tenant: &str,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<Endpoint, StoreError>;

    /// Deletes endpoint `id` of `tenant`.
    async fn delete_endpoint(&self, tenant: &str, id: EndpointId) -> Result<(), StoreError>;

    /// Replaces the signing secret of endpoint `id` of `tenant` by `secret`; the one it
    /// had stays valid until `previous_until`.
    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: EndpointId,
        secret: WebhookSecret,
        previous_until: OffsetDateTime,
    ) -> Result<Endpoint, StoreError>;

    /// Claims up to `limit` messages due at `now` that no one holds, oldest first: each
    /// is held until `lease_until`, when another caller may claim it again (a node that
    /// stopped mid-delivery hands it over that way). PostgreSQL claims with
    /// `FOR UPDATE SKIP LOCKED`, so that nodes claiming at once never share a message.
    /// The messages of endpoints deleted since are dropped, not claimed.
    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Records an attempt at `message` and what comes `next`: delivered (its endpoint is
    /// no longer failing), retried at a time, or given up (its endpoint is marked
    /// failing, from then on until a delivery succeeds).
    async fn record_attempt(
        &self,
        message: &Queued,
        attempt: NewAttempt,
        next: Next,
    ) -> Result<(), StoreError>;

    /// Attempts at the messages of endpoint `id` of `tenant`, newest first, those
    /// before attempt `before` when given; at most `limit`.
    async fn delivery_attempts(
        &self,
        tenant: &str,
        id: EndpointId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError>;

    /// Writes the events of tokens whose expiry is near or past at `now`, once per token
    /// and threshold however many nodes call this: `token.expiring` when a token of a
    /// tenant with endpoints expires within one of `thresholds` (the smallest it is
    /// within; the larger ones count as sent), and `token.expired` (`session.ended` for
    /// a session) when its expiry passed within the last day. Returns how many events.
    async fn write_expiry_events(
        &self,
        now: OffsetDateTime,
        thresholds: &[Duration],
    ) -> Result<usize, StoreError>;

    /// Forgets the messages delivered or given up before `cutoff` and their attempts,
    /// and the expiry marks of tokens that are gone; returns how many messages.
    async fn prune_messages(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError>;
}

#[async_trait]
impl<T: WebhookStore + ?Sized> WebhookStore for std::sync::Arc<T> {
    async fn create_endpoint(&self, endpoint: NewEndpoint) -> Result<Endpoint, StoreError> {
        (**self).create_endpoint(endpoint).await
    }

    async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError> {
        (**self).endpoints(tenant).await
    }

    async fn endpoint(&self, tenant: &str, id: EndpointId) -> Result<Endpoint, StoreError> {
        (**self).endpoint(tenant, id).await
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<Endpoint, StoreError> {
        (**self).update_endpoint(tenant, id, update).await
    }

    async fn delete_endpoint(&self, tenant: &str, id: EndpointId) -> Result<(), StoreError> {
        (**self).delete_endpoint(tenant, id).await
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: EndpointId,
        secret: WebhookSecret,
        previous_until: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        (**self)
            .rotate_endpoint_secret(tenant, id, secret, previous_until)
            .await
    }

    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        (**self).claim_messages(now, lease_until, limit).await
    }

    async fn record_attempt(
        &self,
        message: &Queued,
        attempt: NewAttempt,
        next: Next,
    ) -> Result<(), StoreError> {
        (**self).record_attempt(message, attempt, next).await
    }

    async fn delivery_attempts(
        &self,
        tenant: &str,
        id: EndpointId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        (**self).delivery_attempts(tenant, id, before, limit).await
    }

    async fn write_expiry_events(
        &self,
        now: OffsetDateTime,
        thresholds: &[Duration],
    ) -> Result<usize, StoreError> {
        (**self).write_expiry_events(now, thresholds).await
    }

    async fn prune_messages(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        (**self).prune_messages(cutoff).await
    }
}

/// The columns of an endpoint row, in the order [`RawEndpoint`] reads them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) const ENDPOINT_COLUMNS: &str = "id, tenant, url, events, description, secret, \
    previous_secret, previous_until, created_at, failing_since";

/// An endpoint row as both drivers read it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) struct RawEndpoint {
    pub(super) id: i64,
    pub(super) tenant: String,
    pub(super) url: String,
    pub(super) events: String,
    pub(super) description: Option<String>,
    pub(super) secret: Vec<u8>,
    pub(super) previous_secret: Option<Vec<u8>>,
    pub(super) previous_until: Option<i64>,
    pub(super) created_at: i64,
    pub(super) failing_since: Option<i64>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl RawEndpoint {
    /// The endpoint, checked.
    pub(super) fn parse(self) -> Result<Endpoint, StoreError> {
        use super::columns::from_millis;
        let corrupt = |what: &str| StoreError::unavailable(format!("corrupt endpoint row: {what}"));
        let previous_secret = match (self.previous_secret, self.previous_until) {
            (Some(secret), Some(until)) => {
                Some((WebhookSecret::from_bytes(secret), from_millis(until)?))
            }
            _ => None,
        };
        Ok(Endpoint {
            id: u64::try_from(self.id).map_err(|_| corrupt("id"))?,
            tenant: self.tenant,
            url: self.url,
            events: serde_json::from_str(&self.events).map_err(|_| corrupt("events"))?,
            description: self.description,
            secret: WebhookSecret::from_bytes(self.secret),
            previous_secret,
            created_at: from_millis(self.created_at)?,
            failing_since: self.failing_since.map(from_millis).transpose()?,
        })
    }
}

/// An event list as both drivers store it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) fn events_column(events: &[String]) -> String {
    serde_json::to_string(events).expect("a list of strings serializes")
}

/// The columns of an outbox message row, in the order [`RawQueued`] reads them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) const MESSAGE_COLUMNS: &str =
    "id, event_id, event_type, tenant, endpoint_id, created_at, body, attempts";

/// An outbox message row as both drivers read it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) struct RawQueued {
    pub(super) id: i64,
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) tenant: String,
    pub(super) endpoint_id: i64,
    pub(super) created_at: i64,
    pub(super) body: String,
    pub(super) attempts: i64,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl RawQueued {
    /// The message, checked.
    pub(super) fn parse(self) -> Result<Queued, StoreError> {
        let corrupt = |what: &str| StoreError::unavailable(format!("corrupt message row: {what}"));
        Ok(Queued {
            id: u64::try_from(self.id).map_err(|_| corrupt("id"))?,
            event_id: self.event_id,
            event_type: self.event_type,
            tenant: self.tenant,
            endpoint_id: u64::try_from(self.endpoint_id).map_err(|_| corrupt("endpoint"))?,
            created_at: super::columns::from_millis(self.created_at)?,
            body: self.body,
            attempts: u32::try_from(self.attempts).map_err(|_| corrupt("attempts"))?,
        })
    }
}

/// The columns of an attempt row, in the order [`RawAttempt`] reads them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) const ATTEMPT_COLUMNS: &str =
    "id, event_id, event_type, attempt, at, status, latency_ms, error";

/// An attempt row as both drivers read it.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) struct RawAttempt {
    pub(super) id: i64,
    pub(super) event_id: String,
    pub(super) event_type: String,
    pub(super) attempt: i64,
    pub(super) at: i64,
    pub(super) status: Option<i64>,
    pub(super) latency_ms: i64,
    pub(super) error: Option<String>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl RawAttempt {
    /// The attempt, checked.
    pub(super) fn parse(self) -> Result<DeliveryAttempt, StoreError> {
        let corrupt = |what: &str| StoreError::unavailable(format!("corrupt attempt row: {what}"));
        Ok(DeliveryAttempt {
            id: u64::try_from(self.id).map_err(|_| corrupt("id"))?,
            event_id: self.event_id,
            event_type: self.event_type,
            attempt: u32::try_from(self.attempt).map_err(|_| corrupt("attempt"))?,
            at: super::columns::from_millis(self.at)?,
            status: self
                .status
                .map(|status| u16::try_from(status).map_err(|_| corrupt("status")))
                .transpose()?,
            latency: Duration::from_millis(
                u64::try_from(self.latency_ms).map_err(|_| corrupt("latency"))?,
            ),
            error: self.error,
        })
    }
}

/// What [`WebhookStore::record_attempt`] writes, as both drivers bind it: the
/// message's `delivered_at`, `next_attempt_at` and `given_up_at`, and whether the
/// endpoint stops (`Some(false)`) or starts (`Some(true)`) failing.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(super) struct AttemptColumns {
    pub(super) delivered_at: Option<i64>,
    pub(super) next_attempt_at: Option<i64>,
    pub(super) given_up_at: Option<i64>,
    pub(super) failing: Option<bool>,
    pub(super) at: i64,
    pub(super) status: Option<i64>,
    pub(super) latency_ms: i64,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl AttemptColumns {
    pub(super) fn of(attempt: &NewAttempt, next: Next) -> Self {
        let at = crate::clock::to_millis(attempt.at);
        let finished = at.saturating_add(i64::try_from(attempt.latency.as_millis()).unwrap_or(0));
        let (delivered_at, next_attempt_at, given_up_at, failing) = match next {
            Next::Delivered => (Some(finished), None, None, Some(false)),
            Next::RetryAt(when) => (None, Some(crate::clock::to_millis(when)), None, None),
            Next::GiveUp => (None, None, Some(finished), Some(true)),
        };
        Self {
            delivered_at,
            next_attempt_at,
            given_up_at,
            failing,
            at,
            status: attempt.status.map(i64::from),
            latency_ms: i64::try_from(attempt.latency.as_millis()).unwrap_or(i64::MAX),
        }
    }
}
