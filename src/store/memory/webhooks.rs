//! [`WebhookStore`] for [`MemoryStore`]: endpoints in a map, by id, and the outbox of
//! their messages beside them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::clock::truncate_to_millis;
use crate::identity::{TokenId, TokenKind};
use crate::store::webhooks::events::{Event, event_type, expired_window, expiry_windows};
use crate::store::webhooks::{
    Claimed, DeliveryAttempt, Endpoint, EndpointId, EndpointUpdate, NewAttempt, NewEndpoint, Next,
    Queued, WebhookStore,
};
use crate::store::{Happened, StoreError, TokenRecord};
use crate::webhooks::WebhookSecret;

/// A memory store's endpoints and outbox.
#[derive(Default)]
struct MemoryWebhooks {
    endpoints: Mutex<(EndpointId, BTreeMap<EndpointId, Endpoint>)>,
    outbox: Mutex<Outbox>,
}

/// The messages, the attempts at them and the expiry marks.
#[derive(Default)]
struct Outbox {
    next_message: u64,
    messages: BTreeMap<u64, Message>,
    next_attempt: u64,
    /// Per attempt: its endpoint and tenant, and the attempt as listed.
    attempts: Vec<(EndpointId, String, u64, DeliveryAttempt)>,
    marks: HashSet<(TokenId, i64)>,
}

/// A message and where its delivery stands.
struct Message {
    queued: Queued,
    next_attempt_at: OffsetDateTime,
    lease_until: Option<OffsetDateTime>,
    /// When it was delivered or given up.
    done_at: Option<OffsetDateTime>,
}

impl MemoryStore {
    fn webhooks(&self) -> MutexGuard<'_, (EndpointId, BTreeMap<EndpointId, Endpoint>)> {
        self.capability::<MemoryWebhooks>()
            .endpoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.capability::<MemoryWebhooks>()
            .outbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the messages of `happened` to `record`: one per endpoint of its tenant
    /// subscribed to the event.
    pub(super) fn write_messages(&self, record: &TokenRecord, happened: Happened) {
        let Some(kind) = event_type(record.kind, happened) else {
            return;
        };
        if let Some(event) = self
            .subscribed(&record.tenant, kind)
            .then(|| Event::about(record, happened, OffsetDateTime::now_utc()))
            .flatten()
        {
            self.enqueue(&event);
        }
    }

    /// The expiry event of `record`, pruned at `now` before an expiry check saw it
    /// expire: written once (its mark), if it expired within the lookback.
    pub(super) fn expired_on_prune(&self, record: &TokenRecord, now: OffsetDateTime) {
        let window = expired_window(now);
        if window.holds(record)
            && self.outbox().marks.insert((record.id, 0))
            && let Some(event) = window.event(record, now)
        {
            self.enqueue(&event);
        }
    }

    fn subscribed(&self, tenant: &str, kind: &str) -> bool {
        self.webhooks()
            .1
            .values()
            .any(|endpoint| endpoint.tenant == tenant && endpoint.events.iter().any(|e| e == kind))
    }

    fn enqueue(&self, event: &Event) {
        let endpoints: Vec<EndpointId> = self
            .webhooks()
            .1
            .values()
            .filter(|endpoint| {
                endpoint.tenant == event.tenant && endpoint.events.iter().any(|e| e == event.kind)
            })
            .map(|endpoint| endpoint.id)
            .collect();
        let mut outbox = self.outbox();
        for endpoint_id in endpoints {
            outbox.next_message += 1;
            let id = outbox.next_message;
            let queued = Queued {
                id,
                event_id: event.id.clone(),
                event_type: event.kind.to_owned(),
                tenant: event.tenant.clone(),
                endpoint_id,
                created_at: event.at,
                body: event.body.clone(),
                attempts: 0,
            };
            outbox.messages.insert(
                id,
                Message {
                    queued,
                    next_attempt_at: event.at,
                    lease_until: None,
                    done_at: None,
                },
            );
        }
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
        drop(state);
        let mut outbox = self.outbox();
        outbox
            .messages
            .retain(|_, message| message.queued.endpoint_id != id);
        outbox.attempts.retain(|(endpoint, ..)| *endpoint != id);
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

    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let endpoints = self.webhooks().1.clone();
        let mut outbox = self.outbox();
        let mut due: Vec<&mut Message> = outbox
            .messages
            .values_mut()
            .filter(|message| {
                message.done_at.is_none()
                    && message.next_attempt_at <= now
                    && message.lease_until.is_none_or(|until| until <= now)
            })
            .collect();
        due.sort_by_key(|message| (message.next_attempt_at, message.queued.id));
        let mut claimed = Vec::new();
        let mut orphans = Vec::new();
        for message in due.into_iter().take(limit) {
            match endpoints.get(&message.queued.endpoint_id) {
                Some(endpoint) if endpoint.tenant == message.queued.tenant => {
                    message.lease_until = Some(lease_until);
                    claimed.push(Claimed {
                        message: message.queued.clone(),
                        endpoint: endpoint.clone(),
                    });
                }
                _ => orphans.push(message.queued.id),
            }
        }
        for id in orphans {
            outbox.messages.remove(&id);
        }
        claimed.sort_by_key(|claimed| claimed.message.id);
        Ok(claimed)
    }

    async fn record_attempt(
        &self,
        message: &Queued,
        attempt: NewAttempt,
        next: Next,
    ) -> Result<(), StoreError> {
        let at = truncate_to_millis(attempt.at);
        let latency =
            Duration::from_millis(u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX));
        let finished = at + latency;
        {
            let mut outbox = self.outbox();
            outbox.next_attempt += 1;
            let id = outbox.next_attempt;
            let listed = DeliveryAttempt {
                id,
                event_id: message.event_id.clone(),
                event_type: message.event_type.clone(),
                attempt: message.attempts + 1,
                at,
                status: attempt.status,
                latency,
                error: attempt.error,
            };
            outbox.attempts.push((
                message.endpoint_id,
                message.tenant.clone(),
                message.id,
                listed,
            ));
            if let Some(stored) = outbox.messages.get_mut(&message.id) {
                stored.queued.attempts += 1;
                stored.lease_until = None;
                match next {
                    Next::Delivered | Next::GiveUp => stored.done_at = Some(finished),
                    Next::RetryAt(when) => stored.next_attempt_at = truncate_to_millis(when),
                }
            }
        }
        let mut endpoints = self.webhooks();
        if let Some(endpoint) = endpoints.1.get_mut(&message.endpoint_id) {
            match next {
                Next::Delivered => endpoint.failing_since = None,
                Next::GiveUp => {
                    endpoint.failing_since.get_or_insert(at);
                }
                Next::RetryAt(_) => {}
            }
        }
        Ok(())
    }

    async fn delivery_attempts(
        &self,
        tenant: &str,
        id: EndpointId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        mine(&mut self.webhooks().1, tenant, id)?;
        let before = before.unwrap_or(u64::MAX);
        Ok(self
            .outbox()
            .attempts
            .iter()
            .rev()
            .filter(|(endpoint, owner, _, attempt)| {
                *endpoint == id && owner == tenant && attempt.id < before
            })
            .take(limit)
            .map(|(.., attempt)| attempt.clone())
            .collect())
    }

    async fn write_expiry_events(
        &self,
        now: OffsetDateTime,
        thresholds: &[Duration],
    ) -> Result<usize, StoreError> {
        let tenants: HashSet<String> = self
            .webhooks()
            .1
            .values()
            .map(|endpoint| endpoint.tenant.clone())
            .collect();
        // The records' lock first, as every writer takes it: the marks are checked and
        // taken under it, once per token and threshold.
        let state = self.read();
        let mut written = 0;
        for window in expiry_windows(now, thresholds) {
            let candidates: Vec<&TokenRecord> = state
                .records
                .values()
                .filter(|record| {
                    window.holds(record)
                        && tenants.contains(&record.tenant)
                        && (window.is_expiry()
                            || (record.kind == TokenKind::ApiKey && record.rotated_to.is_none()))
                })
                .collect();
            for record in candidates {
                let first = {
                    let mut outbox = self.outbox();
                    let first = outbox.marks.insert((record.id, window.mark));
                    for larger in &window.also {
                        outbox.marks.insert((record.id, *larger));
                    }
                    first
                };
                if first && let Some(event) = window.event(record, now) {
                    self.enqueue(&event);
                    written += 1;
                }
            }
        }
        Ok(written)
    }

    async fn prune_messages(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        let live: HashSet<TokenId> = self.read().records.keys().copied().collect();
        let mut outbox = self.outbox();
        let before = outbox.messages.len();
        outbox
            .messages
            .retain(|_, message| message.done_at.is_none_or(|at| at >= cutoff));
        let pruned = before - outbox.messages.len();
        let Outbox {
            messages,
            attempts,
            marks,
            ..
        } = &mut *outbox;
        attempts.retain(|(_, _, message, _)| messages.contains_key(message));
        marks.retain(|(token, _)| live.contains(token));
        Ok(pruned)
    }
}
