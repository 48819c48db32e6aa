//! [`TokenStore`] for [`PostgresStore`]: the token and session rows, each change logged
//! in the same transaction for the change feed.

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::feed::{Kind, log_change};
use super::{PostgresStore, WRITE_LOCK, unavailable};
use crate::clock::to_millis as millis;
use crate::identity::{TokenId, TokenKind};
use crate::policy::{CreditGrant, RateGrant, RateLimit};
use crate::store::columns::{
    COLUMNS, RawRecord, count_param, id_param, metadata_column, policy_columns, scopes_column,
};
use crate::store::{
    ChangeStream, Happened, Invalidation, ListQuery, NewToken, RevocationReason, StoreError,
    TokenRecord, TokenStore, TokenUpdate, UsageUpdate,
};
use crate::token::Digest;

impl PostgresStore {
    /// Runs a `DELETE … WHERE … < $1` with `cutoff`, logging each deletion in the change
    /// log in the same transaction, and the expiry event of a token no expiry check saw
    /// expire (feature `webhooks`).
    async fn prune(
        &self,
        delete: &str,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let rows = transaction
            .query(&format!("{delete} RETURNING {COLUMNS}"), &[&millis(cutoff)])
            .await
            .map_err(unavailable)?;
        let now = OffsetDateTime::now_utc();
        let mut pruned = Vec::with_capacity(rows.len());
        for row in &rows {
            let record = record(row)?;
            let gone = Invalidation {
                id: record.id,
                digest: record.digest,
            };
            log_change(&transaction, Kind::Invalidated, &gone).await?;
            #[cfg(feature = "webhooks")]
            super::outbox::expired_on_prune(&transaction, &record, now).await?;
            pruned.push(gone);
        }
        #[cfg(not(feature = "webhooks"))]
        let _ = now;
        transaction.commit().await.map_err(unavailable)?;
        Ok(pruned)
    }
}

fn raw(row: &Row) -> Result<RawRecord, StoreError> {
    let get = |error: tokio_postgres::Error| StoreError::unavailable(error);
    Ok(RawRecord {
        id: row.try_get(0).map_err(get)?,
        name: row.try_get(1).map_err(get)?,
        tenant: row.try_get(2).map_err(get)?,
        scopes: row.try_get(3).map_err(get)?,
        env: row.try_get(4).map_err(get)?,
        kind: row.try_get(5).map_err(get)?,
        display_prefix: row.try_get(6).map_err(get)?,
        digest: row.try_get(7).map_err(get)?,
        created_at: row.try_get(8).map_err(get)?,
        expires_at: row.try_get(9).map_err(get)?,
        last_used_at: row.try_get(10).map_err(get)?,
        use_count: row.try_get(11).map_err(get)?,
        created_by: row.try_get(12).map_err(get)?,
        rotated_to: row.try_get(13).map_err(get)?,
        owner: row.try_get(14).map_err(get)?,
        metadata: row.try_get(15).map_err(get)?,
        created_by_session: row.try_get(16).map_err(get)?,
        policies: row.try_get(17).map_err(get)?,
        credits_remaining: row.try_get(18).map_err(get)?,
        credits_since: row.try_get(19).map_err(get)?,
    })
}

pub(super) fn record(row: &Row) -> Result<TokenRecord, StoreError> {
    raw(row)?.check()
}

/// Deletes with `delete` (a `DELETE … RETURNING {COLUMNS}`) in `transaction`: the
/// records deleted, each logged on the change feed and announced as revoked for `reason`.
async fn delete_records(
    transaction: &deadpool_postgres::Transaction<'_>,
    delete: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    reason: RevocationReason,
) -> Result<Vec<Invalidation>, StoreError> {
    let rows = transaction
        .query(delete, params)
        .await
        .map_err(unavailable)?;
    let mut gone = Vec::with_capacity(rows.len());
    for row in &rows {
        let record = record(row)?;
        let invalidation = Invalidation {
            id: record.id,
            digest: record.digest,
        };
        log_change(transaction, Kind::Invalidated, &invalidation).await?;
        announce(transaction, &record, Happened::Revoked(reason)).await?;
        gone.push(invalidation);
    }
    Ok(gone)
}

/// Token `id`, read in the caller's transaction.
pub(super) async fn read(
    db: &impl deadpool_postgres::GenericClient,
    id: TokenId,
) -> Result<TokenRecord, StoreError> {
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM tower_bearer_tokens WHERE id = $1"),
            &[&id_param(id)],
        )
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::NotFound)?;
    record(&row)
}

/// Writes the webhook messages of `happened` to `record` in the caller's transaction
/// (feature `webhooks`; nothing without it).
pub(super) async fn announce(
    db: &impl deadpool_postgres::GenericClient,
    record: &TokenRecord,
    happened: Happened,
) -> Result<(), StoreError> {
    #[cfg(feature = "webhooks")]
    return super::outbox::announce(db, record, happened).await;
    #[cfg(not(feature = "webhooks"))]
    {
        let _ = (db, record, happened);
        Ok(())
    }
}

/// Starts a transaction that writes the change log: the advisory lock first, so that
/// sequence order is commit order.
async fn write_transaction(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
        .await
        .map_err(unavailable)?;
    Ok(transaction)
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        let record = insert(&transaction, &token).await?;
        announce(&transaction, &record, Happened::Created).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(record)
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE digest = $1"
            ))
            .await
            .map_err(unavailable)?;
        let digest = digest.as_bytes().as_slice();
        match client.query_opt(&statement, &[&digest]).await {
            Ok(Some(row)) => record(&row),
            Ok(None) => Err(StoreError::NotFound),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE id = $1 AND tenant = $2"
            ))
            .await
            .map_err(unavailable)?;
        match client
            .query_opt(&statement, &[&id_param(id), &tenant])
            .await
        {
            Ok(Some(row)) => record(&row),
            Ok(None) => Err(StoreError::NotFound),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM tower_bearer_tokens WHERE tenant = $1 AND id > $2 \
                 AND ($4::TEXT IS NULL OR owner = $4) AND ($5::TEXT IS NULL OR kind = $5) \
                 AND ($6::BIGINT IS NULL OR created_by = $6) \
                 AND ($7::BIGINT IS NULL OR created_by_session = $7) ORDER BY id LIMIT $3"
            ))
            .await
            .map_err(unavailable)?;
        let after = query.after.map_or(0, id_param);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let kind = query.kind.map(TokenKind::as_str);
        let created_by = query.created_by.map(id_param);
        let session = query.created_by_session.map(id_param);
        let rows = client
            .query(
                &statement,
                &[
                    &tenant,
                    &after,
                    &limit,
                    &query.owner,
                    &kind,
                    &created_by,
                    &session,
                ],
            )
            .await
            .map_err(unavailable)?;
        rows.iter().map(record).collect()
    }

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let gone = delete_records(
            &transaction,
            &format!(
                "DELETE FROM tower_bearer_tokens WHERE id = $1 AND tenant = $2 RETURNING {COLUMNS}"
            ),
            &[&id_param(id), &tenant],
            reason,
        )
        .await?
        .pop()
        .ok_or(StoreError::NotFound)?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(gone)
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let scopes = update.scopes.as_ref().map(scopes_column);
        let expires_at = update.expires_at.map(millis);
        let row = transaction
            .query_opt(
                &format!(
                    "UPDATE tower_bearer_tokens SET name = COALESCE($3, name), \
                     scopes = COALESCE($4, scopes), expires_at = COALESCE($5, expires_at) \
                     WHERE id = $1 AND tenant = $2 RETURNING {COLUMNS}"
                ),
                &[&id_param(id), &tenant, &update.name, &scopes, &expires_at],
            )
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
        let mut updated = record(&row)?;
        if update.changes_policies() {
            update.apply(&mut updated);
            let columns = policy_columns(&updated.policies);
            transaction
                .execute(
                    "UPDATE tower_bearer_tokens SET policies = $1, credits_remaining = $2, \
                     credits_since = $3 WHERE id = $4",
                    &[
                        &columns.policies,
                        &columns.credits_remaining,
                        &columns.credits_since,
                        &id_param(id),
                    ],
                )
                .await
                .map_err(unavailable)?;
        }
        let changed = Invalidation {
            id,
            digest: updated.digest,
        };
        log_change(&transaction, Kind::Updated, &changed).await?;
        announce(&transaction, &updated, Happened::Updated).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(updated)
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let mut removed = delete_records(
            &transaction,
            &format!(
                "DELETE FROM tower_bearer_tokens WHERE id = $1 AND tenant = $2 RETURNING {COLUMNS}"
            ),
            &[&id_param(id), &tenant],
            reason,
        )
        .await?;
        if removed.is_empty() {
            return Err(StoreError::NotFound);
        }
        removed.extend(
            delete_records(
                &transaction,
                &format!(
                    "WITH RECURSIVE tree(id) AS ( \
                         SELECT id FROM tower_bearer_tokens WHERE created_by = $1 AND tenant = $2 \
                         UNION SELECT t.id FROM tower_bearer_tokens t \
                             JOIN tree ON t.created_by = tree.id WHERE t.tenant = $2) \
                     DELETE FROM tower_bearer_tokens WHERE id IN (SELECT id FROM tree) \
                     RETURNING {COLUMNS}"
                ),
                &[&id_param(id), &tenant],
                RevocationReason::Cascade,
            )
            .await?,
        );
        transaction.commit().await.map_err(unavailable)?;
        Ok(removed)
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = write_transaction(&mut client).await?;
        let current = transaction
            .query_opt(
                "SELECT digest, scopes, rotated_to FROM tower_bearer_tokens \
                 WHERE id = $1 AND tenant = $2 FOR UPDATE",
                &[&id_param(old.id), &old.tenant],
            )
            .await
            .map_err(unavailable)?
            .ok_or(StoreError::NotFound)?;
        let digest: Vec<u8> = current.get(0);
        let scopes: String = current.get(1);
        let rotated_to: Option<i64> = current.get(2);
        if digest != old.digest.as_bytes()
            || scopes != scopes_column(&old.scopes)
            || rotated_to.is_some()
        {
            return Err(StoreError::Conflict);
        }
        let new = insert(&transaction, &replacement).await?;
        transaction
            .execute(
                "UPDATE tower_bearer_tokens SET created_by = $1 WHERE created_by = $2",
                &[&id_param(new.id), &id_param(old.id)],
            )
            .await
            .map_err(unavailable)?;
        announce(&transaction, &new, Happened::Rotated { from: old.id }).await?;
        let changed = Invalidation {
            id: old.id,
            digest: old.digest,
        };
        match grace_until {
            None => {
                transaction
                    .execute(
                        "DELETE FROM tower_bearer_tokens WHERE id = $1",
                        &[&id_param(old.id)],
                    )
                    .await
                    .map_err(unavailable)?;
                log_change(&transaction, Kind::Invalidated, &changed).await?;
                announce(
                    &transaction,
                    old,
                    Happened::Revoked(RevocationReason::Rotated),
                )
                .await?;
            }
            Some(until) => {
                transaction
                    .execute(
                        "UPDATE tower_bearer_tokens SET rotated_to = $1, \
                         expires_at = LEAST(COALESCE(expires_at, $2), $2) WHERE id = $3",
                        &[&id_param(new.id), &millis(until), &id_param(old.id)],
                    )
                    .await
                    .map_err(unavailable)?;
                log_change(&transaction, Kind::Updated, &changed).await?;
            }
        }
        transaction.commit().await.map_err(unavailable)?;
        Ok(new)
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        // Serialises the processes racing on one marker until the first one commits.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&marker],
            )
            .await
            .map_err(unavailable)?;
        let done = transaction
            .query_opt(
                "SELECT 1 FROM tower_bearer_markers WHERE name = $1",
                &[&marker],
            )
            .await
            .map_err(unavailable)?;
        if done.is_some() {
            return Ok(None);
        }
        let record = insert(&transaction, &token).await?;
        transaction
            .execute(
                "INSERT INTO tower_bearer_markers (name, token_id, created_at) VALUES ($1, $2, $3)",
                &[&marker, &id_param(record.id), &millis(record.created_at)],
            )
            .await
            .map_err(unavailable)?;
        announce(&transaction, &record, Happened::Created).await?;
        transaction.commit().await.map_err(unavailable)?;
        Ok(Some(record))
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = batch.iter().map(|u| id_param(u.id)).collect();
        let last: Vec<i64> = batch.iter().map(|u| millis(u.last_used_at)).collect();
        let uses: Vec<i64> = batch.iter().map(|u| count_param(u.uses)).collect();
        let client = self.client().await?;
        // One statement for the whole batch.
        client
            .execute(
                "UPDATE tower_bearer_tokens AS t \
                 SET last_used_at = GREATEST(COALESCE(t.last_used_at, 0), u.last_used_at), \
                     use_count = t.use_count + u.uses \
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS u(id, last_used_at, uses) \
                 WHERE t.id = u.id",
                &[&ids, &last, &uses],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tower_bearer_tokens WHERE expires_at IS NOT NULL AND expires_at < $1",
            cutoff,
        )
        .await
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tower_bearer_tokens WHERE kind = 'session' AND expires_at IS NOT NULL \
             AND expires_at < $1",
            cutoff,
        )
        .await
    }

    async fn reserve_requests(
        &self,
        id: TokenId,
        rate: &RateLimit,
        window_start: i64,
        want: u64,
    ) -> Result<RateGrant, StoreError> {
        let mut client = self.client().await?;
        super::policies::reserve_requests(&mut client, id, rate, window_start, want).await
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        let mut client = self.client().await?;
        super::policies::reserve_credits(&mut client, id, want, now).await
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        super::policies::return_credits(&client, id, amount, counted_since).await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn changes(&self) -> Option<ChangeStream> {
        Some(crate::store::broadcast_feed(self.shared.feed.subscribe()))
    }
}

async fn insert(
    client: &impl deadpool_postgres::GenericClient,
    token: &NewToken,
) -> Result<TokenRecord, StoreError> {
    let statement = client
        .prepare_cached(&format!(
            "INSERT INTO tower_bearer_tokens (name, tenant, scopes, env, kind, display_prefix, \
             digest, created_at, expires_at, created_by, owner, metadata, created_by_session, \
             policies, credits_remaining, credits_since) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             RETURNING {COLUMNS}"
        ))
        .await
        .map_err(unavailable)?;
    let digest = token.digest.as_bytes().as_slice();
    let policies = policy_columns(&token.policies);
    let row = client
        .query_one(
            &statement,
            &[
                &token.name,
                &token.tenant,
                &scopes_column(&token.scopes),
                &token.env.as_str(),
                &token.kind.as_str(),
                &token.display_prefix,
                &digest,
                &millis(token.created_at),
                &token.expires_at.map(millis),
                &token.created_by.map(id_param),
                &token.owner,
                &token.metadata.as_ref().map(metadata_column),
                &token.created_by_session.map(id_param),
                &policies.policies,
                &policies.credits_remaining,
                &policies.credits_since,
            ],
        )
        .await
        .map_err(unavailable)?;
    record(&row)
}
