//! [`WebhookStore`] for [`MemoryStore`]: endpoints in a map, by id.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::store::StoreError;
use crate::store::webhooks::{Endpoint, EndpointId, EndpointUpdate, NewEndpoint, WebhookStore};
use crate::webhooks::WebhookSecret;

/// A memory store's endpoints.
#[derive(Default)]
struct MemoryWebhooks {
    endpoints: Mutex<(EndpointId, BTreeMap<EndpointId, Endpoint>)>,
}

impl MemoryStore {
    fn webhooks(&self) -> MutexGuard<'_, (EndpointId, BTreeMap<EndpointId, Endpoint>)> {
        self.capability::<MemoryWebhooks>()
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// Endpoint `id` of `tenant` in `endpoints`, for a change.
fn mine<'a>(
    endpoints: &'a mut BTreeMap<EndpointId, Endpoint>,
    tenant: &str,
    id: EndpointId,
) -> Result<&'a mut Endpoint, StoreError> {
    endpoints
        .get_mut(&id)
        .filter(|endpoint| endpoint.tenant == tenant)
        .ok_or(StoreError::NotFound)
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_endpoint(&self, new: NewEndpoint) -> Result<Endpoint, StoreError> {
        let mut state = self.webhooks();
        state.0 += 1;
        let endpoint = Endpoint {
            id: state.0,
            tenant: new.tenant,
            url: new.url,
            events: new.events,
            description: new.description,
            secret: new.secret,
            previous_secret: None,
            created_at: crate::clock::truncate_to_millis(new.created_at),
            failing_since: None,
        };
        state.1.insert(endpoint.id, endpoint.clone());
        Ok(endpoint)
    }

    async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError> {
        Ok(self
            .webhooks()
            .1
            .values()
            .filter(|endpoint| endpoint.tenant == tenant)
            .cloned()
            .collect())
    }

    async fn endpoint(&self, tenant: &str, id: EndpointId) -> Result<Endpoint, StoreError> {
        mine(&mut self.webhooks().1, tenant, id).map(|endpoint| endpoint.clone())
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<Endpoint, StoreError> {
        let mut state = self.webhooks();
        let endpoint = mine(&mut state.1, tenant, id)?;
        if let Some(url) = update.url {
            endpoint.url = url;
        }
        if let Some(events) = update.events {
            endpoint.events = events;
        }
        if let Some(description) = update.description {
            endpoint.description = description;
        }
        Ok(endpoint.clone())
    }

    async fn delete_endpoint(&self, tenant: &str, id: EndpointId) -> Result<(), StoreError> {
        let mut state = self.webhooks();
        mine(&mut state.1, tenant, id)?;
        state.1.remove(&id);
        Ok(())
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: EndpointId,
        secret: WebhookSecret,
        previous_until: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        let mut state = self.webhooks();
        let endpoint = mine(&mut state.1, tenant, id)?;
        let previous = std::mem::replace(&mut endpoint.secret, secret);
        endpoint.previous_secret =
            Some((previous, crate::clock::truncate_to_millis(previous_until)));
        Ok(endpoint.clone())
    }
}
