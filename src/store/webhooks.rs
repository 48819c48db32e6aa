//! Webhook endpoints' storage (feature `webhooks`): the [`WebhookStore`] capability a
//! [`TokenStore`](super::TokenStore) may have, as the memory, SQLite and PostgreSQL
//! stores do. An endpoint belongs to one tenant and keeps its signing secret (and, for a
//! while after a rotation, the one before), which a sender must know: unlike tokens,
//! webhook secrets are stored as they are.

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
