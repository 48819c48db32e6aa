//! [`WebhookStore`] for [`PostgresStore`]: the `tower_bearer_webhook_endpoints` table.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{PostgresStore, outbox, unavailable};
use crate::clock::to_millis as millis;
use crate::store::StoreError;
use crate::store::columns::count_param;
use crate::store::webhooks::{
    Claimed, DeliveryAttempt, ENDPOINT_COLUMNS, Endpoint, EndpointId, EndpointUpdate, NewAttempt,
    NewEndpoint, Next, Queued, RawEndpoint, WebhookStore, events_column,
};
use crate::webhooks::WebhookSecret;

pub(super) fn raw(row: &tokio_postgres::Row) -> Result<RawEndpoint, tokio_postgres::Error> {
    Ok(RawEndpoint {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        url: row.try_get(2)?,
        events: row.try_get(3)?,
        description: row.try_get(4)?,
        secret: row.try_get(5)?,
        previous_secret: row.try_get(6)?,
        previous_until: row.try_get(7)?,
        created_at: row.try_get(8)?,
        failing_since: row.try_get(9)?,
    })
}

/// The one endpoint `rows` holds, or not found.
fn one(row: Option<tokio_postgres::Row>) -> Result<Endpoint, StoreError> {
    let row = row.ok_or(StoreError::NotFound)?;
    raw(&row).map_err(unavailable)?.parse()
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_endpoint(&self, new: NewEndpoint) -> Result<Endpoint, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "INSERT INTO tower_bearer_webhook_endpoints \
                     (tenant, url, events, description, secret, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[
                    &new.tenant,
                    &new.url,
                    &events_column(&new.events),
                    &new.description,
                    &new.secret.as_bytes(),
                    &millis(new.created_at),
                ],
            )
            .await
            .map_err(unavailable)?;
        one(row)
    }

    async fn endpoints(&self, tenant: &str) -> Result<Vec<Endpoint>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM tower_bearer_webhook_endpoints \
                     WHERE tenant = $1 ORDER BY id"
                ),
                &[&tenant],
            )
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| raw(row).map_err(unavailable)?.parse())
            .collect()
    }

    async fn endpoint(&self, tenant: &str, id: EndpointId) -> Result<Endpoint, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM tower_bearer_webhook_endpoints \
                     WHERE tenant = $1 AND id = $2"
                ),
                &[&tenant, &count_param(id)],
            )
            .await
            .map_err(unavailable)?;
        one(row)
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: EndpointId,
        update: EndpointUpdate,
    ) -> Result<Endpoint, StoreError> {
        // COALESCE keeps what is not given; the description is set when given, even
        // to NULL.
        let (set_description, description) = match update.description {
            Some(description) => (true, description),
            None => (false, None),
        };
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE tower_bearer_webhook_endpoints SET url = COALESCE($1, url), \
                     events = COALESCE($2, events), \
                     description = CASE WHEN $3 THEN $4 ELSE description END \
                     WHERE tenant = $5 AND id = $6 RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[
                    &update.url,
                    &update.events.as_deref().map(events_column),
                    &set_description,
                    &description,
                    &tenant,
                    &count_param(id),
                ],
            )
            .await
            .map_err(unavailable)?;
        one(row)
    }

    async fn delete_endpoint(&self, tenant: &str, id: EndpointId) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let deleted = transaction
            .execute(
                "DELETE FROM tower_bearer_webhook_endpoints WHERE tenant = $1 AND id = $2",
                &[&tenant, &count_param(id)],
            )
            .await
            .map_err(unavailable)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        outbox::forget_endpoint(&transaction, id).await?;
        transaction.commit().await.map_err(unavailable)
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: EndpointId,
        secret: WebhookSecret,
        previous_until: OffsetDateTime,
    ) -> Result<Endpoint, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "UPDATE tower_bearer_webhook_endpoints SET previous_secret = secret, \
                     previous_until = $1, secret = $2 WHERE tenant = $3 AND id = $4 \
                     RETURNING {ENDPOINT_COLUMNS}"
                ),
                &[
                    &millis(previous_until),
                    &secret.as_bytes(),
                    &tenant,
                    &count_param(id),
                ],
            )
            .await
            .map_err(unavailable)?;
        one(row)
    }

    async fn claim_messages(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut client = self.client().await?;
        outbox::claim(&mut client, now, lease_until, limit).await
    }

    async fn record_attempt(
        &self,
        message: &Queued,
        attempt: NewAttempt,
        next: Next,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        outbox::record_attempt(&mut client, message, &attempt, next).await
    }

    async fn delivery_attempts(
        &self,
        tenant: &str,
        id: EndpointId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let client = self.client().await?;
        outbox::attempts(&client, tenant, id, before, limit).await
    }

    async fn write_expiry_events(
        &self,
        now: OffsetDateTime,
        thresholds: &[Duration],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        outbox::write_expiry_events(&mut client, now, thresholds).await
    }

    async fn prune_messages(&self, cutoff: OffsetDateTime) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        outbox::prune(&mut client, cutoff).await
    }
}
