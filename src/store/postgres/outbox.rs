//! The webhook outbox of a [`PostgresStore`](super::PostgresStore): messages written in
//! the transaction of the change that caused them, claimed by one node at a time
//! (`FOR UPDATE SKIP LOCKED`), the attempts at them, and the marks that keep each
//! expiry event to one however many nodes see the time pass.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::unavailable;
use crate::clock::to_millis as millis;
use crate::store::columns::{COLUMNS, count_param, id_param};
use crate::store::webhooks::events::{Event, event_type, expired_window, expiry_windows};
use crate::store::webhooks::{
    ATTEMPT_COLUMNS, AttemptColumns, Claimed, DeliveryAttempt, ENDPOINT_COLUMNS, EndpointId,
    MESSAGE_COLUMNS, NewAttempt, Next, Queued, RawAttempt, RawQueued,
};
use crate::store::{Happened, StoreError, TokenRecord};

/// The endpoints of a tenant subscribed to an event type (`$1` tenant, `$2` type).
const SUBSCRIBED: &str =
    "FROM tower_bearer_webhook_endpoints WHERE tenant = $1 AND events::jsonb ? $2";

/// Writes the messages of `happened` to `record`, one per endpoint of its tenant
/// subscribed to the event, in the caller's transaction.
pub(super) async fn announce(
    db: &impl GenericClient,
    record: &TokenRecord,
    happened: Happened,
) -> Result<(), StoreError> {
    let Some(kind) = event_type(record.kind, happened) else {
        return Ok(());
    };
    // Most changes have no one listening: no body is made for them.
    let subscribed: bool = db
        .query_one(
            &format!("SELECT EXISTS (SELECT 1 {SUBSCRIBED})"),
            &[&record.tenant, &kind],
        )
        .await
        .map_err(unavailable)?
        .get(0);
    if subscribed && let Some(event) = Event::about(record, happened, OffsetDateTime::now_utc()) {
        enqueue(db, &event).await?;
    }
    Ok(())
}

async fn enqueue(db: &impl GenericClient, event: &Event) -> Result<u64, StoreError> {
    db.execute(
        &format!(
            "INSERT INTO tower_bearer_webhook_messages (event_id, endpoint_id, tenant, \
             event_type, created_at, body, next_attempt_at) \
             SELECT $3, id, tenant, $2, $4, $5, $4 {SUBSCRIBED}"
        ),
        &[
            &event.tenant,
            &event.kind,
            &event.id,
            &millis(event.at),
            &event.body,
        ],
    )
    .await
    .map_err(unavailable)
}

fn queued(row: &tokio_postgres::Row) -> Result<Queued, StoreError> {
    let get = |error| StoreError::unavailable(error);
    RawQueued {
        id: row.try_get(0).map_err(get)?,
        event_id: row.try_get(1).map_err(get)?,
        event_type: row.try_get(2).map_err(get)?,
        tenant: row.try_get(3).map_err(get)?,
        endpoint_id: row.try_get(4).map_err(get)?,
        created_at: row.try_get(5).map_err(get)?,
        body: row.try_get(6).map_err(get)?,
        attempts: row.try_get(7).map_err(get)?,
    }
    .parse()
}

pub(super) async fn claim(
    client: &mut deadpool_postgres::Object,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // SKIP LOCKED: nodes claiming at once each take other messages, none waits.
    let rows = transaction
        .query(
            &format!(
                "UPDATE tower_bearer_webhook_messages SET lease_until = $2 WHERE id IN ( \
                     SELECT id FROM tower_bearer_webhook_messages WHERE delivered_at IS NULL \
                     AND given_up_at IS NULL AND next_attempt_at <= $1 \
                     AND (lease_until IS NULL OR lease_until <= $1) \
                     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING {MESSAGE_COLUMNS}"
            ),
            &[&millis(now), &millis(lease_until), &limit],
        )
        .await
        .map_err(unavailable)?;
    let mut messages = rows.iter().map(queued).collect::<Result<Vec<_>, _>>()?;
    messages.sort_by_key(|message| message.id);
    let ids: Vec<i64> = messages
        .iter()
        .map(|message| count_param(message.endpoint_id))
        .collect();
    let endpoints = transaction
        .query(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM tower_bearer_webhook_endpoints \
                 WHERE id = ANY($1)"
            ),
            &[&ids],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(|row| super::webhooks::raw(row).map_err(unavailable)?.parse())
        .collect::<Result<Vec<_>, _>>()?;
    let mut claimed = Vec::with_capacity(messages.len());
    for message in messages {
        let endpoint = endpoints.iter().find(|endpoint| {
            endpoint.id == message.endpoint_id && endpoint.tenant == message.tenant
        });
        match endpoint {
            Some(endpoint) => claimed.push(Claimed {
                endpoint: endpoint.clone(),
                message,
            }),
            // Its endpoint was deleted meanwhile: nobody to deliver it to.
            None => {
                transaction
                    .execute(
                        "DELETE FROM tower_bearer_webhook_messages WHERE id = $1",
                        &[&count_param(message.id)],
                    )
                    .await
                    .map_err(unavailable)?;
            }
        }
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(claimed)
}

pub(super) async fn record_attempt(
    client: &mut deadpool_postgres::Object,
    message: &Queued,
    attempt: &NewAttempt,
    next: Next,
) -> Result<(), StoreError> {
    let columns = AttemptColumns::of(attempt, next);
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .execute(
            "INSERT INTO tower_bearer_webhook_attempts (message_id, endpoint_id, tenant, \
             event_id, event_type, attempt, at, status, latency_ms, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &count_param(message.id),
                &count_param(message.endpoint_id),
                &message.tenant,
                &message.event_id,
                &message.event_type,
                &(i64::from(message.attempts) + 1),
                &columns.at,
                &columns.status,
                &columns.latency_ms,
                &attempt.error,
            ],
        )
        .await
        .map_err(unavailable)?;
    transaction
        .execute(
            "UPDATE tower_bearer_webhook_messages SET attempts = attempts + 1, \
             lease_until = NULL, delivered_at = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at), given_up_at = $4 WHERE id = $1",
            &[
                &count_param(message.id),
                &columns.delivered_at,
                &columns.next_attempt_at,
                &columns.given_up_at,
            ],
        )
        .await
        .map_err(unavailable)?;
    if let Some(failing) = columns.failing {
        transaction
            .execute(
                "UPDATE tower_bearer_webhook_endpoints SET failing_since = \
                 CASE WHEN $2 THEN COALESCE(failing_since, $3) END WHERE id = $1",
                &[&count_param(message.endpoint_id), &failing, &columns.at],
            )
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)
}

fn attempt_row(row: &tokio_postgres::Row) -> Result<DeliveryAttempt, StoreError> {
    let get = |error| StoreError::unavailable(error);
    RawAttempt {
        id: row.try_get(0).map_err(get)?,
        event_id: row.try_get(1).map_err(get)?,
        event_type: row.try_get(2).map_err(get)?,
        attempt: row.try_get(3).map_err(get)?,
        at: row.try_get(4).map_err(get)?,
        status: row.try_get(5).map_err(get)?,
        latency_ms: row.try_get(6).map_err(get)?,
        error: row.try_get(7).map_err(get)?,
    }
    .parse()
}

pub(super) async fn attempts(
    client: &deadpool_postgres::Object,
    tenant: &str,
    id: EndpointId,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<DeliveryAttempt>, StoreError> {
    client
        .query_opt(
            "SELECT 1 FROM tower_bearer_webhook_endpoints WHERE tenant = $1 AND id = $2",
            &[&tenant, &count_param(id)],
        )
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::NotFound)?;
    let before = before.map_or(i64::MAX, count_param);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    client
        .query(
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM tower_bearer_webhook_attempts WHERE tenant = $1 \
                 AND endpoint_id = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
            ),
            &[&tenant, &count_param(id), &before, &limit],
        )
        .await
        .map_err(unavailable)?
        .iter()
        .map(attempt_row)
        .collect()
}

pub(super) async fn write_expiry_events(
    client: &mut deadpool_postgres::Object,
    now: OffsetDateTime,
    thresholds: &[Duration],
) -> Result<usize, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    let mut written = 0;
    for window in expiry_windows(now, thresholds) {
        let rows = transaction
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM tower_bearer_tokens t WHERE t.expires_at > $1 \
                     AND t.expires_at <= $2 \
                     AND ($4 OR (t.kind = 'api_key' AND t.rotated_to IS NULL)) \
                     AND EXISTS (SELECT 1 FROM tower_bearer_webhook_endpoints e \
                         WHERE e.tenant = t.tenant) \
                     AND NOT EXISTS (SELECT 1 FROM tower_bearer_webhook_expiry_marks m \
                         WHERE m.token_id = t.id AND m.mark_ms = $3) ORDER BY t.id"
                ),
                &[
                    &window.after,
                    &window.until,
                    &window.mark,
                    &window.is_expiry(),
                ],
            )
            .await
            .map_err(unavailable)?;
        for row in &rows {
            let record = super::tokens::record(row)?;
            let id = id_param(record.id);
            // A node racing this one waits on the mark's key until this transaction
            // ends, then finds it taken: one event per token and threshold.
            let first = transaction
                .execute(
                    "INSERT INTO tower_bearer_webhook_expiry_marks (token_id, mark_ms) \
                     VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&id, &window.mark],
                )
                .await
                .map_err(unavailable)?
                == 1;
            for larger in &window.also {
                transaction
                    .execute(
                        "INSERT INTO tower_bearer_webhook_expiry_marks (token_id, mark_ms) \
                         VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&id, larger],
                    )
                    .await
                    .map_err(unavailable)?;
            }
            if first && let Some(event) = window.event(&record, now) {
                enqueue(&transaction, &event).await?;
                written += 1;
            }
        }
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(written)
}

/// The expiry event of `record`, deleted by a prune at `now` before an expiry check saw
/// it expire: written once (its mark), if it expired within the lookback.
pub(super) async fn expired_on_prune(
    db: &impl GenericClient,
    record: &TokenRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let window = expired_window(now);
    if !window.holds(record) {
        return Ok(());
    }
    let first = db
        .execute(
            "INSERT INTO tower_bearer_webhook_expiry_marks (token_id, mark_ms) \
             VALUES ($1, 0) ON CONFLICT DO NOTHING",
            &[&id_param(record.id)],
        )
        .await
        .map_err(unavailable)?
        == 1;
    if first && let Some(event) = window.event(record, now) {
        enqueue(db, &event).await?;
    }
    Ok(())
}

pub(super) async fn prune(
    client: &mut deadpool_postgres::Object,
    cutoff: OffsetDateTime,
) -> Result<usize, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    let done = "SELECT id FROM tower_bearer_webhook_messages \
                WHERE COALESCE(delivered_at, given_up_at) < $1";
    transaction
        .execute(
            &format!("DELETE FROM tower_bearer_webhook_attempts WHERE message_id IN ({done})"),
            &[&millis(cutoff)],
        )
        .await
        .map_err(unavailable)?;
    let pruned = transaction
        .execute(
            &format!("DELETE FROM tower_bearer_webhook_messages WHERE id IN ({done})"),
            &[&millis(cutoff)],
        )
        .await
        .map_err(unavailable)?;
    transaction
        .execute(
            "DELETE FROM tower_bearer_webhook_expiry_marks m WHERE NOT EXISTS \
             (SELECT 1 FROM tower_bearer_tokens t WHERE t.id = m.token_id)",
            &[],
        )
        .await
        .map_err(unavailable)?;
    transaction.commit().await.map_err(unavailable)?;
    Ok(usize::try_from(pruned).unwrap_or(usize::MAX))
}

/// Deletes the messages and attempts of endpoint `id`, which is being deleted.
pub(super) async fn forget_endpoint(
    db: &impl GenericClient,
    id: EndpointId,
) -> Result<(), StoreError> {
    for table in [
        "tower_bearer_webhook_attempts",
        "tower_bearer_webhook_messages",
    ] {
        db.execute(
            &format!("DELETE FROM {table} WHERE endpoint_id = $1"),
            &[&count_param(id)],
        )
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}
