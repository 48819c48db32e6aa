//! [`WebhookStore`] for [`SqliteStore`]: the `webhook_endpoints` table of the same file.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension as _, params};
use time::OffsetDateTime;

use super::{Role, SqliteStore, in_transaction, outbox, unavailable};
use crate::clock::to_millis as millis;
use crate::store::StoreError;
use crate::store::columns::count_param;
use crate::store::webhooks::{
    Claimed, DeliveryAttempt, ENDPOINT_COLUMNS, Endpoint, EndpointId, EndpointUpdate, NewAttempt,
    NewEndpoint, Next, Queued, RawEndpoint, WebhookStore, events_column,
};
use crate::webhooks::WebhookSecret;

fn raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawEndpoint> {
    Ok(RawEndpoint {
        id: row.get(0)?,
        tenant: row.get(1)?,
        url: row.get(2)?,
        events: row.get(3)?,
        description: row.get(4)?,
        secret: row.get(5)?,
        previous_secret: row.get(6)?,
        previous_until: row.get(7)?,
        created_at: row.get(8)?,
        failing_since: row.get(9)?,
    })
}

/// Endpoint `id` of `tenant`, read on `db`.
pub(super) fn read(
    db: &rusqlite::Connection,
    tenant: &str,
    id: EndpointId,
) -> Result<Endpoint, StoreError> {
    db.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant = ?1 AND id = ?2"
    ))
    .map_err(unavailable)?
    .query_row(params![tenant, count_param(id)], raw)
    .optional()
    .map_err(unavailable)?
    .ok_or(StoreError::NotFound)?
    .parse()
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_endpoint(&self, new: NewEndpoint) -> Result<Endpoint, StoreError> {
        self.run(Role::Write, move |db| {
            db.prepare_cached(
                "INSERT INTO webhook_endpoints (tenant, url, events, description, secret, \
                 created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(unavailable)?
            .execute(params![
                new.tenant,
                new.url,
                events_column(&new.events),
                new.description,
                new.secret.as_bytes(),
                millis(new.created_at),
            ])
            .map_err(unavailable)?;
            let id = u64::try_from(db.last_insert_rowid()).unwrap_or(0);
            read(db, &new.tenant, id)
        })
        .await
    }

    async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            let mut statement = db
                .prepare_cached(&format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant = ?1 ORDER BY id"
                ))
                .map_err(unavailable)?;
            let rows = statement
                .query_map([tenant], raw)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            rows.into_iter().map(RawEndpoint::parse).collect()
        })
        .await
    }

    async fn endpoint(&self, tenant: &str, id: EndpointId) -> Result<Endpoint, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| read(db, &tenant, id)).await
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<Endpoint, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            let current = read(db, &tenant, id)?;
            let description = update.description.unwrap_or(current.description);
            db.prepare_cached(
                "UPDATE webhook_endpoints SET url = ?1, events = ?2, description = ?3 \
                 WHERE tenant = ?4 AND id = ?5",
            )
            .map_err(unavailable)?
            .execute(params![
                update.url.unwrap_or(current.url),
                events_column(&update.events.unwrap_or(current.events)),
                description,
                tenant,
                count_param(id),
            ])
            .map_err(unavailable)?;
            read(db, &tenant, id)
        })
        .await
    }

    async fn delete_endpoint(&self, tenant: &str, id: EndpointId) -> Result<(), StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let deleted = db
                    .prepare_cached("DELETE FROM webhook_endpoints WHERE tenant = ?1 AND id = ?2")
                    .map_err(unavailable)?
                    .execute(params![tenant, count_param(id)])
                    .map_err(unavailable)?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                outbox::forget_endpoint(db, id)
            })
        })
        .await
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: EndpointId,
        secret: WebhookSecret,
        previous_until: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            let rotated = db
                .prepare_cached(
                    "UPDATE webhook_endpoints SET previous_secret = secret, \
                     previous_until = ?1, secret = ?2 WHERE tenant = ?3 AND id = ?4",
                )
                .map_err(unavailable)?
                .execute(params![
                    millis(previous_until),
                    secret.as_bytes(),
                    tenant,
                    count_param(id)
                ])
                .map_err(unavailable)?;
            if rotated == 0 {
                return Err(StoreError::NotFound);
            }
            read(db, &tenant, id)
        })
        .await
    }

    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.run(Role::Write, move |db| {
            outbox::claim(db, now, lease_until, limit)
        })
        .await
    }

    async fn record_attempt(
        &self,
        message: &Queued,
        attempt: NewAttempt,
        next: Next,
    ) -> Result<(), StoreError> {
        let message = message.clone();
        self.run(Role::Write, move |db| {
            outbox::record_attempt(db, &message, &attempt, next)
        })
        .await
    }

    async fn delivery_attempts(
        &self,
        tenant: &str,
        id: EndpointId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            outbox::attempts(db, &tenant, id, before, limit)
        })
        .await
    }

    async fn write_expiry_events(
        &self,
        now: OffsetDateTime,
        thresholds: &[Duration],
    ) -> Result<usize, StoreError> {
        let thresholds = thresholds.to_vec();
        self.run(Role::Write, move |db| {
            outbox::write_expiry_events(db, now, &thresholds)
        })
        .await
    }

    async fn prune_messages(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        self.run(Role::Write, move |db| outbox::prune(db, cutoff))
            .await
    }
}
