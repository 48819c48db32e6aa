//! The webhook outbox of a [`SqliteStore`](super::SqliteStore): messages written in the
//! transaction of the change that caused them, claimed by the writer for delivery, the
//! attempts at them, and the marks that keep each expiry event to one.

use std::time::Duration;

use rusqlite::{Connection, params};
use time::OffsetDateTime;

use super::{in_transaction, unavailable};
use crate::clock::to_millis as millis;
use crate::store::columns::{COLUMNS, count_param, id_param};
use crate::store::webhooks::events::{Event, event_type, expired_window, expiry_windows};
use crate::store::webhooks::{
    ATTEMPT_COLUMNS, AttemptColumns, Claimed, DeliveryAttempt, EndpointId, MESSAGE_COLUMNS,
    NewAttempt, Next, Queued, RawAttempt, RawQueued,
};
use crate::store::{Happened, StoreError, TokenRecord};

/// The endpoints of a tenant subscribed to an event type (`?1` tenant, `?2` type).
const SUBSCRIBED: &str = "FROM webhook_endpoints WHERE tenant = ?1 \
    AND EXISTS (SELECT 1 FROM json_each(events) WHERE value = ?2)";

/// Writes the messages of `happened` to `record`, one per endpoint of its tenant
/// subscribed to the event, in the caller's transaction.
pub(super) fn announce(
    db: &Connection,
    record: &TokenRecord,
    happened: Happened,
) -> Result<(), StoreError> {
    let Some(kind) = event_type(record.kind, happened) else {
        return Ok(());
    };
    // Most changes have no one listening: no body is made for them.
    let subscribed: bool = db
        .prepare_cached(&format!("SELECT EXISTS (SELECT 1 {SUBSCRIBED})"))
        .map_err(unavailable)?
        .query_row(params![record.tenant, kind], |row| row.get(0))
        .map_err(unavailable)?;
    if subscribed && let Some(event) = Event::about(record, happened, OffsetDateTime::now_utc()) {
        enqueue(db, &event)?;
    }
    Ok(())
}

fn enqueue(db: &Connection, event: &Event) -> Result<usize, StoreError> {
    db.prepare_cached(&format!(
        "INSERT INTO webhook_messages (event_id, endpoint_id, tenant, event_type, created_at, \
         body, next_attempt_at) SELECT ?3, id, tenant, ?2, ?4, ?5, ?4 {SUBSCRIBED}"
    ))
    .map_err(unavailable)?
    .execute(params![
        event.tenant,
        event.kind,
        event.id,
        millis(event.at),
        event.body
    ])
    .map_err(unavailable)
}

fn queued(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawQueued> {
    Ok(RawQueued {
        id: row.get(0)?,
        event_id: row.get(1)?,
        event_type: row.get(2)?,
        tenant: row.get(3)?,
        endpoint_id: row.get(4)?,
        created_at: row.get(5)?,
        body: row.get(6)?,
        attempts: row.get(7)?,
    })
}

pub(super) fn claim(
    db: &Connection,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    in_transaction(db, |db| {
        let mut statement = db
            .prepare_cached(&format!(
                "UPDATE webhook_messages SET lease_until = ?2 WHERE id IN ( \
                     SELECT id FROM webhook_messages WHERE delivered_at IS NULL \
                     AND given_up_at IS NULL AND next_attempt_at <= ?1 \
                     AND (lease_until IS NULL OR lease_until <= ?1) \
                     ORDER BY next_attempt_at, id LIMIT ?3) \
                 RETURNING {MESSAGE_COLUMNS}"
            ))
            .map_err(unavailable)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut messages = statement
            .query_map(params![millis(now), millis(lease_until), limit], queued)
            .map_err(unavailable)?
            .map(|row| row.map_err(unavailable)?.parse())
            .collect::<Result<Vec<Queued>, StoreError>>()?;
        messages.sort_by_key(|message| message.id);
        let mut claimed = Vec::with_capacity(messages.len());
        for message in messages {
            match super::webhooks::read(db, &message.tenant, message.endpoint_id) {
                Ok(endpoint) => claimed.push(Claimed { message, endpoint }),
                // Its endpoint was deleted meanwhile: nobody to deliver it to.
                Err(StoreError::NotFound) => {
                    db.prepare_cached("DELETE FROM webhook_messages WHERE id = ?1")
                        .map_err(unavailable)?
                        .execute([count_param(message.id)])
                        .map_err(unavailable)?;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(claimed)
    })
}

pub(super) fn record_attempt(
    db: &Connection,
    message: &Queued,
    attempt: &NewAttempt,
    next: Next,
) -> Result<(), StoreError> {
    let columns = AttemptColumns::of(attempt, next);
    in_transaction(db, |db| {
        db.prepare_cached(
            "INSERT INTO webhook_attempts (message_id, endpoint_id, tenant, event_id, \
             event_type, attempt, at, status, latency_ms, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(unavailable)?
        .execute(params![
            count_param(message.id),
            count_param(message.endpoint_id),
            message.tenant,
            message.event_id,
            message.event_type,
            i64::from(message.attempts) + 1,
            columns.at,
            columns.status,
            columns.latency_ms,
            attempt.error,
        ])
        .map_err(unavailable)?;
        db.prepare_cached(
            "UPDATE webhook_messages SET attempts = attempts + 1, lease_until = NULL, \
             delivered_at = ?2, next_attempt_at = COALESCE(?3, next_attempt_at), \
             given_up_at = ?4 WHERE id = ?1",
        )
        .map_err(unavailable)?
        .execute(params![
            count_param(message.id),
            columns.delivered_at,
            columns.next_attempt_at,
            columns.given_up_at,
        ])
        .map_err(unavailable)?;
        if let Some(failing) = columns.failing {
            db.prepare_cached(
                "UPDATE webhook_endpoints SET failing_since = \
                 CASE WHEN ?2 THEN COALESCE(failing_since, ?3) END WHERE id = ?1",
            )
            .map_err(unavailable)?
            .execute(params![
                count_param(message.endpoint_id),
                failing,
                columns.at
            ])
            .map_err(unavailable)?;
        }
        Ok(())
    })
}

fn attempt_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawAttempt> {
    Ok(RawAttempt {
        id: row.get(0)?,
        event_id: row.get(1)?,
        event_type: row.get(2)?,
        attempt: row.get(3)?,
        at: row.get(4)?,
        status: row.get(5)?,
        latency_ms: row.get(6)?,
        error: row.get(7)?,
    })
}

pub(super) fn attempts(
    db: &Connection,
    tenant: &str,
    id: EndpointId,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<DeliveryAttempt>, StoreError> {
    super::webhooks::read(db, tenant, id)?;
    let mut statement = db
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS} FROM webhook_attempts WHERE tenant = ?1 \
             AND endpoint_id = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4"
        ))
        .map_err(unavailable)?;
    let before = before.map_or(i64::MAX, count_param);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    statement
        .query_map(params![tenant, count_param(id), before, limit], attempt_row)
        .map_err(unavailable)?
        .map(|row| row.map_err(unavailable)?.parse())
        .collect()
}

pub(super) fn write_expiry_events(
    db: &Connection,
    now: OffsetDateTime,
    thresholds: &[Duration],
) -> Result<usize, StoreError> {
    in_transaction(db, |db| {
        let mut written = 0;
        for window in expiry_windows(now, thresholds) {
            let mut candidates = db
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM tokens t WHERE t.expires_at > ?1 \
                     AND t.expires_at <= ?2 \
                     AND (?4 OR (t.kind = 'api_key' AND t.rotated_to IS NULL)) \
                     AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.tenant = t.tenant) \
                     AND NOT EXISTS (SELECT 1 FROM webhook_expiry_marks m \
                         WHERE m.token_id = t.id AND m.mark_ms = ?3) ORDER BY t.id"
                ))
                .map_err(unavailable)?;
            let records = candidates
                .query_map(
                    params![window.after, window.until, window.mark, window.is_expiry()],
                    super::tokens::raw,
                )
                .map_err(unavailable)?
                .map(|row| row.map_err(unavailable)?.check())
                .collect::<Result<Vec<TokenRecord>, StoreError>>()?;
            let mut mark = db
                .prepare_cached(
                    "INSERT OR IGNORE INTO webhook_expiry_marks (token_id, mark_ms) VALUES (?1, ?2)",
                )
                .map_err(unavailable)?;
            for record in records {
                let id = id_param(record.id);
                let first = mark
                    .execute(params![id, window.mark])
                    .map_err(unavailable)?
                    == 1;
                for larger in &window.also {
                    mark.execute(params![id, larger]).map_err(unavailable)?;
                }
                if first && let Some(event) = window.event(&record, now) {
                    enqueue(db, &event)?;
                    written += 1;
                }
            }
        }
        Ok(written)
    })
}

/// The expiry event of `record`, deleted by a prune at `now` before an expiry check saw
/// it expire: written once (its mark), if it expired within the lookback.
pub(super) fn expired_on_prune(
    db: &Connection,
    record: &TokenRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let window = expired_window(now);
    if !window.holds(record) {
        return Ok(());
    }
    let first = db
        .prepare_cached(
            "INSERT OR IGNORE INTO webhook_expiry_marks (token_id, mark_ms) VALUES (?1, 0)",
        )
        .map_err(unavailable)?
        .execute([id_param(record.id)])
        .map_err(unavailable)?
        == 1;
    if first && let Some(event) = window.event(record, now) {
        enqueue(db, &event)?;
    }
    Ok(())
}

pub(super) fn prune(db: &Connection, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
    in_transaction(db, |db| {
        let done = "SELECT id FROM webhook_messages WHERE COALESCE(delivered_at, given_up_at) < ?1";
        db.prepare_cached(&format!(
            "DELETE FROM webhook_attempts WHERE message_id IN ({done})"
        ))
        .map_err(unavailable)?
        .execute([millis(cutoff)])
        .map_err(unavailable)?;
        let pruned = db
            .prepare_cached(&format!(
                "DELETE FROM webhook_messages WHERE id IN ({done})"
            ))
            .map_err(unavailable)?
            .execute([millis(cutoff)])
            .map_err(unavailable)?;
        db.prepare_cached(
            "DELETE FROM webhook_expiry_marks WHERE token_id NOT IN (SELECT id FROM tokens)",
        )
        .map_err(unavailable)?
        .execute([])
        .map_err(unavailable)?;
        Ok(pruned)
    })
}

/// Deletes the messages and attempts of endpoint `id`, which is being deleted.
pub(super) fn forget_endpoint(db: &Connection, id: EndpointId) -> Result<(), StoreError> {
    for table in ["webhook_attempts", "webhook_messages"] {
        db.prepare_cached(&format!("DELETE FROM {table} WHERE endpoint_id = ?1"))
            .map_err(unavailable)?
            .execute([count_param(id)])
            .map_err(unavailable)?;
    }
    Ok(())
}
