//! The registry's webhooks (feature `webhooks`): where endpoints are kept, and the task
//! that delivers the outbox's messages — claimed a batch at a time (one node per message),
//! sent with bounded concurrency, each attempt recorded with what comes next — and
//! writes the expiry events as their time comes. Off the request path: a slow receiver
//! delays only its own messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Registry;
use super::tasks::Outage;
use crate::store::webhooks::{Claimed, NewAttempt, Next, WebhookStore};
use crate::webhooks::{Attempt, Deliverer, DeliveryOptions, Message, Targets, WebhookSecret};

/// How many messages one claim takes, per delivery running at once.
const CLAIM_PER_DELIVERY: usize = 4;
/// How often delivered and given-up messages older than [`KEEP_MESSAGES`] are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// What a claim's lease adds to the longest its batch can take, and its bound.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
const MAX_LEASE: Duration = Duration::from_secs(86_400);
/// How long delivered and given-up messages stay listed with their attempts.
const KEEP_MESSAGES: Duration = Duration::from_secs(30 * 86_400);

/// A registry's webhook endpoints and their delivery ([`RegistryBuilder::webhooks`](super::RegistryBuilder::webhooks)).
#[derive(Clone)]
pub struct Webhooks {
    store: Arc<dyn WebhookStore>,
    targets: Targets,
    options: DeliveryOptions,
    delivery: Arc<Delivery>,
}

/// The delivery task: told to stop, then awaited.
struct Delivery {
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Webhooks {
    pub(super) fn new(
        store: Arc<dyn WebhookStore>,
        targets: Targets,
        options: DeliveryOptions,
    ) -> Self {
        Self {
            store,
            targets,
            options,
            delivery: Arc::new(Delivery {
                stop: watch::channel(false).0,
                task: Mutex::new(None),
            }),
        }
    }

    pub(super) fn set_options(&mut self, options: DeliveryOptions) {
        self.options = options;
    }

    /// Where the endpoints are kept.
    pub fn store(&self) -> &Arc<dyn WebhookStore> {
        &self.store
    }

    /// Which endpoint URLs are allowed.
    pub fn targets(&self) -> Targets {
        self.targets
    }

    /// How messages are delivered.
    pub fn options(&self) -> &DeliveryOptions {
        &self.options
    }
}

impl Registry {
    /// Starts the delivery task of the configured webhooks, if any.
    pub(super) fn spawn_webhook_delivery(&self) {
        let Some(webhooks) = self
            .inner
            .webhooks
            .as_ref()
            .filter(|webhooks| webhooks.options.deliver_here)
        else {
            return;
        };
        let task = tokio::spawn(deliver(
            webhooks.store.clone(),
            Deliverer::new(webhooks.targets, webhooks.options.timeout),
            webhooks.options.clone(),
            webhooks.delivery.stop.subscribe(),
        ));
        self.track(task.abort_handle());
        *webhooks
            .delivery
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Stops delivering webhooks on this node, for a shutdown: the messages it claimed
    /// are sent (each within its timeout) and recorded, so that no receiver gets a
    /// message twice because this process stopped; the messages not yet claimed stay in the
    /// outbox for the other nodes, or for this one's next start. Without webhooks, or
    /// called again, it returns at once.
    pub async fn stop_webhooks(&self) {
        let Some(webhooks) = &self.inner.webhooks else {
            return;
        };
        webhooks.delivery.stop.send_replace(true);
        let task = webhooks
            .delivery
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// The delivery loop: every poll interval, the expiry events when their check is due,
/// the old messages pruned hourly, then the messages due, a batch at a time.
async fn deliver(
    store: Arc<dyn WebhookStore>,
    deliverer: Deliverer,
    options: DeliveryOptions,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(options.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expiry_checked: Option<tokio::time::Instant> = None;
    let mut pruned: Option<tokio::time::Instant> = None;
    let mut claiming = Outage::new("claiming webhook messages");
    let mut expiry = Outage::new("writing webhook expiry events");
    let mut pruning = Outage::new("pruning webhook messages");
    let batch = options.concurrency * CLAIM_PER_DELIVERY;
    // Longer than a batch can take (each delivery slot sends its share, one after the
    // other, each within the timeout), so that no message of it is claimed again by
    // another node while this one may still send it; short enough that the messages of
    // a node that died go to another soon.
    let lease = options
        .timeout
        .checked_mul(u32::try_from(CLAIM_PER_DELIVERY).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
        .saturating_add(LEASE_MARGIN)
        .min(MAX_LEASE);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let now = OffsetDateTime::now_utc();
        if expiry_checked.is_none_or(|at| at.elapsed() >= options.expiry_check_interval) {
            expiry_checked = Some(tokio::time::Instant::now());
            expiry.record(
                store
                    .write_expiry_events(now, &options.expiry_thresholds)
                    .await
                    .map(drop),
            );
        }
        if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned = Some(tokio::time::Instant::now());
            let cutoff = now - KEEP_MESSAGES;
            pruning.record(store.prune_messages(cutoff).await.map(drop));
        }
        loop {
            let now = OffsetDateTime::now_utc();
            let claimed = match store.claim_messages(now, now + lease, batch).await {
                Ok(claimed) => {
                    claiming.record(Ok::<(), crate::store::StoreError>(()));
                    claimed
                }
                Err(error) => {
                    claiming.record(Err(error));
                    break;
                }
            };
            let full = claimed.len() == batch;
            // Bounded: at most `concurrency` receivers wait on this node at once.
            futures_util::stream::iter(claimed)
                .for_each_concurrent(options.concurrency, |claimed| {
                    attempt(&*store, &deliverer, &options, claimed)
                })
                .await;
            if !full || *stop.borrow() {
                break;
            }
        }
    }
}

/// One attempt at a claimed message, recorded with what comes next.
async fn attempt(
    store: &dyn WebhookStore,
    deliverer: &Deliverer,
    options: &DeliveryOptions,
    claimed: Claimed,
) {
    let Claimed { message, endpoint } = claimed;
    let started = OffsetDateTime::now_utc();
    let mut secrets: Vec<WebhookSecret> = vec![endpoint.secret.clone()];
    if let Some((previous, until)) = &endpoint.previous_secret
        && *until > started
    {
        secrets.push(previous.clone());
    }
    let sent = deliverer
        .deliver(&Message::new(
            &endpoint.url,
            &message.event_id,
            started.unix_timestamp(),
            message.body.as_bytes(),
            &secrets,
        ))
        .await;
    let attempts = message.attempts + 1;
    let (record, next) = match sent {
        Attempt::Delivered { status, latency } => (
            NewAttempt::new(started, Some(status), latency, None),
            Next::Delivered,
        ),
        Attempt::Failed {
            status,
            error,
            latency,
        } => {
            let retry_at = started + options.retry_delay(attempts);
            let next = if retry_at > message.created_at + options.give_up_after {
                tracing::warn!(
                    target: "tower_bearer::webhooks",
                    endpoint_id = endpoint.id,
                    tenant = %endpoint.tenant,
                    event_id = %message.event_id,
                    event_type = %message.event_type,
                    attempts,
                    %error,
                    "webhook message given up; endpoint marked failing"
                );
                Next::GiveUp
            } else {
                tracing::debug!(
                    target: "tower_bearer::webhooks",
                    endpoint_id = endpoint.id,
                    event_id = %message.event_id,
                    attempts,
                    %error,
                    "webhook delivery failed; retrying later"
                );
                Next::RetryAt(retry_at)
            };
            (NewAttempt::new(started, status, latency, Some(error)), next)
        }
    };
    #[cfg(feature = "metrics")]
    crate::telemetry::webhook_attempt(match next {
        Next::Delivered => "delivered",
        Next::RetryAt(_) => "failed",
        _ => "given_up",
    });
    if let Err(error) = store.record_attempt(&message, record, next).await {
        // The lease runs out and the message is tried again: a receiver may see it
        // twice (same webhook-id), never lose it.
        tracing::warn!(
            target: "tower_bearer::webhooks",
            endpoint_id = endpoint.id,
            event_id = %message.event_id,
            %error,
            "could not record a webhook attempt"
        );
    }
}
