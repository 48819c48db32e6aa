//! [`TokenStore`] for [`SqliteStore`]: the token and session rows, and their changes.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use time::OffsetDateTime;

use super::feed::{Kind, log_change};
use super::{Role, SqliteStore, in_transaction, unavailable};
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

pub(super) fn raw(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok(RawRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        tenant: row.get(2)?,
        scopes: row.get(3)?,
        env: row.get(4)?,
        kind: row.get(5)?,
        display_prefix: row.get(6)?,
        digest: row.get(7)?,
        created_at: row.get(8)?,
        expires_at: row.get(9)?,
        last_used_at: row.get(10)?,
        use_count: row.get(11)?,
        created_by: row.get(12)?,
        rotated_to: row.get(13)?,
        owner: row.get(14)?,
        metadata: row.get(15)?,
        created_by_session: row.get(16)?,
        policies: row.get(17)?,
        credits_remaining: row.get(18)?,
        credits_since: row.get(19)?,
    })
}

fn one(
    db: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<TokenRecord, StoreError> {
    let mut statement = db.prepare_cached(sql).map_err(unavailable)?;
    statement
        .query_row(params, raw)
        .map_err(unavailable)?
        .check()
}

fn insert(db: &Connection, token: &NewToken) -> Result<TokenRecord, StoreError> {
    let sql = format!(
        "INSERT INTO tokens (name, tenant, scopes, env, kind, display_prefix, digest, \
         created_at, expires_at, created_by, owner, metadata, created_by_session, policies, \
         credits_remaining, credits_since) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
         RETURNING {COLUMNS}"
    );
    let policies = policy_columns(&token.policies);
    one(
        db,
        &sql,
        params![
            token.name,
            token.tenant,
            scopes_column(&token.scopes),
            token.env.as_str(),
            token.kind.as_str(),
            token.display_prefix,
            token.digest.as_bytes().as_slice(),
            millis(token.created_at),
            token.expires_at.map(millis),
            token.created_by.map(id_param),
            token.owner,
            token.metadata.as_ref().map(metadata_column),
            token.created_by_session.map(id_param),
            policies.policies,
            policies.credits_remaining,
            policies.credits_since,
        ],
    )
}

/// Writes the webhook messages of `happened` to `record` in the caller's transaction
/// (feature `webhooks`; nothing without it).
pub(super) fn announce(
    db: &Connection,
    record: &TokenRecord,
    happened: Happened,
) -> Result<(), StoreError> {
    #[cfg(feature = "webhooks")]
    return super::outbox::announce(db, record, happened);
    #[cfg(not(feature = "webhooks"))]
    {
        let _ = (db, record, happened);
        Ok(())
    }
}

/// Writes the expiry event of `record`, pruned at `now`, unless it was written already
/// (a token pruned before an expiry check saw it expire still gets its event once;
/// feature `webhooks`, nothing without it).
fn announce_expiry(
    db: &Connection,
    record: &TokenRecord,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    #[cfg(feature = "webhooks")]
    return super::outbox::expired_on_prune(db, record, now);
    #[cfg(not(feature = "webhooks"))]
    {
        let _ = (db, record, now);
        Ok(())
    }
}

/// Token `id`, read in the caller's transaction.
pub(super) fn read(db: &Connection, id: TokenId) -> Result<TokenRecord, StoreError> {
    one(
        db,
        &format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1"),
        [id_param(id)],
    )
}

/// Runs a `DELETE … RETURNING {COLUMNS}`: the records it deleted, each logged on the
/// change feed and announced as revoked for `reason`.
fn delete_records(
    db: &Connection,
    delete: &str,
    params: impl rusqlite::Params,
    reason: RevocationReason,
) -> Result<Vec<Invalidation>, StoreError> {
    let mut statement = db.prepare_cached(delete).map_err(unavailable)?;
    let records = statement
        .query_map(params, raw)
        .map_err(unavailable)?
        .map(|row| row.map_err(unavailable)?.check())
        .collect::<Result<Vec<TokenRecord>, StoreError>>()?;
    let mut gone = Vec::with_capacity(records.len());
    for record in &records {
        let invalidation = Invalidation {
            id: record.id,
            digest: record.digest,
        };
        log_change(db, Kind::Invalidated, &invalidation)?;
        announce(db, record, Happened::Revoked(reason))?;
        gone.push(invalidation);
    }
    Ok(gone)
}

impl SqliteStore {
    /// Runs a `DELETE … WHERE … < ?1 RETURNING id, digest` with `cutoff`.
    async fn prune(
        &self,
        delete: &'static str,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let sql = format!("{delete} RETURNING {COLUMNS}");
                let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
                let records = statement
                    .query_map([millis(cutoff)], raw)
                    .map_err(unavailable)?
                    .map(|row| row.map_err(unavailable)?.check())
                    .collect::<Result<Vec<TokenRecord>, StoreError>>()?;
                let now = OffsetDateTime::now_utc();
                let mut pruned = Vec::with_capacity(records.len());
                for record in &records {
                    let gone = Invalidation {
                        id: record.id,
                        digest: record.digest,
                    };
                    log_change(db, Kind::Invalidated, &gone)?;
                    announce_expiry(db, record, now)?;
                    pruned.push(gone);
                }
                // The windows of the tokens that are gone (SQLite keeps no foreign keys
                // here).
                db.prepare_cached(
                    "DELETE FROM rate_windows WHERE token_id NOT IN (SELECT id FROM tokens)",
                )
                .map_err(unavailable)?
                .execute([])
                .map_err(unavailable)?;
                Ok(pruned)
            })
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert(&self, token: NewToken) -> Result<TokenRecord, StoreError> {
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let record = insert(db, &token)?;
                announce(db, &record, Happened::Created)?;
                Ok(record)
            })
        })
        .await
    }

    async fn find_by_digest(&self, digest: &Digest) -> Result<TokenRecord, StoreError> {
        let digest = *digest;
        self.run(Role::Read, move |db| {
            let sql = format!("SELECT {COLUMNS} FROM tokens WHERE digest = ?1");
            one(db, &sql, [digest.as_bytes().as_slice()])
        })
        .await
    }

    async fn find_by_id(&self, tenant: &str, id: TokenId) -> Result<TokenRecord, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            let sql = format!("SELECT {COLUMNS} FROM tokens WHERE id = ?1 AND tenant = ?2");
            one(db, &sql, params![id_param(id), tenant])
        })
        .await
    }

    async fn list_by_tenant(
        &self,
        tenant: &str,
        query: ListQuery,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let tenant = tenant.to_owned();
        let after = query.after.map_or(0, id_param);
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let owner = query.owner;
        let kind = query.kind.map(TokenKind::as_str);
        let created_by = query.created_by.map(id_param);
        let session = query.created_by_session.map(id_param);
        self.run(Role::Read, move |db| {
            let sql = format!(
                "SELECT {COLUMNS} FROM tokens WHERE tenant = ?1 AND id > ?2 \
                 AND (?4 IS NULL OR owner = ?4) AND (?5 IS NULL OR kind = ?5) \
                 AND (?6 IS NULL OR created_by = ?6) \
                 AND (?7 IS NULL OR created_by_session = ?7) ORDER BY id LIMIT ?3"
            );
            let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
            let params = params![tenant, after, limit, owner, kind, created_by, session];
            let rows = statement
                .query_map(params, raw)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            rows.into_iter().map(RawRecord::check).collect()
        })
        .await
    }

    async fn delete(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Invalidation, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let sql =
                    format!("DELETE FROM tokens WHERE id = ?1 AND tenant = ?2 RETURNING {COLUMNS}");
                delete_records(db, &sql, params![id_param(id), tenant], reason)?
                    .pop()
                    .ok_or(StoreError::NotFound)
            })
        })
        .await
    }

    async fn update(
        &self,
        tenant: &str,
        id: TokenId,
        update: TokenUpdate,
    ) -> Result<TokenRecord, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            let sql = format!(
                "UPDATE tokens SET name = COALESCE(?3, name), scopes = COALESCE(?4, scopes), \
                 expires_at = COALESCE(?5, expires_at) WHERE id = ?1 AND tenant = ?2 \
                 RETURNING {COLUMNS}"
            );
            in_transaction(db, |db| {
                let mut record = one(
                    db,
                    &sql,
                    params![
                        id_param(id),
                        tenant,
                        update.name,
                        update.scopes.as_ref().map(scopes_column),
                        update.expires_at.map(millis),
                    ],
                )?;
                if update.changes_policies() {
                    update.apply(&mut record);
                    let columns = policy_columns(&record.policies);
                    db.prepare_cached(
                        "UPDATE tokens SET policies = ?1, credits_remaining = ?2, \
                         credits_since = ?3 WHERE id = ?4",
                    )
                    .map_err(unavailable)?
                    .execute(params![
                        columns.policies,
                        columns.credits_remaining,
                        columns.credits_since,
                        id_param(id)
                    ])
                    .map_err(unavailable)?;
                }
                let changed = Invalidation {
                    id: record.id,
                    digest: record.digest,
                };
                log_change(db, Kind::Updated, &changed)?;
                announce(db, &record, Happened::Updated)?;
                Ok(record)
            })
        })
        .await
    }

    async fn delete_with_descendants(
        &self,
        tenant: &str,
        id: TokenId,
        reason: RevocationReason,
    ) -> Result<Vec<Invalidation>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                // The token first, then its descendants (same tenant: lineage never
                // crosses tenants, and a foreign id must not reach anything).
                let own =
                    format!("DELETE FROM tokens WHERE id = ?1 AND tenant = ?2 RETURNING {COLUMNS}");
                let mut removed = delete_records(db, &own, params![id_param(id), tenant], reason)?;
                if removed.is_empty() {
                    return Err(StoreError::NotFound);
                }
                let descendants = format!(
                    "WITH RECURSIVE tree(id) AS ( \
                         SELECT id FROM tokens WHERE created_by = ?1 AND tenant = ?2 \
                         UNION SELECT t.id FROM tokens t JOIN tree ON t.created_by = tree.id \
                             WHERE t.tenant = ?2) \
                     DELETE FROM tokens WHERE id IN (SELECT id FROM tree) RETURNING {COLUMNS}"
                );
                removed.extend(delete_records(
                    db,
                    &descendants,
                    params![id_param(id), tenant],
                    RevocationReason::Cascade,
                )?);
                Ok(removed)
            })
        })
        .await
    }

    async fn rotate(
        &self,
        old: &TokenRecord,
        replacement: NewToken,
        grace_until: Option<OffsetDateTime>,
    ) -> Result<TokenRecord, StoreError> {
        let old = old.clone();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let current: Option<(Vec<u8>, String, Option<i64>)> = db
                    .prepare_cached(
                        "SELECT digest, scopes, rotated_to FROM tokens WHERE id = ?1 AND tenant = ?2",
                    )
                    .map_err(unavailable)?
                    .query_row(params![id_param(old.id), old.tenant], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })
                    .optional()
                    .map_err(unavailable)?;
                let Some((digest, scopes, rotated_to)) = current else {
                    return Err(StoreError::NotFound);
                };
                if digest != old.digest.as_bytes()
                    || scopes != scopes_column(&old.scopes)
                    || rotated_to.is_some()
                {
                    return Err(StoreError::Conflict);
                }
                let record = insert(db, &replacement)?;
                db.prepare_cached("UPDATE tokens SET created_by = ?1 WHERE created_by = ?2")
                    .map_err(unavailable)?
                    .execute(params![id_param(record.id), id_param(old.id)])
                    .map_err(unavailable)?;
                announce(db, &record, Happened::Rotated { from: old.id })?;
                let changed = Invalidation {
                    id: old.id,
                    digest: old.digest,
                };
                match grace_until {
                    None => {
                        db.prepare_cached("DELETE FROM tokens WHERE id = ?1")
                            .map_err(unavailable)?
                            .execute([id_param(old.id)])
                            .map_err(unavailable)?;
                        log_change(db, Kind::Invalidated, &changed)?;
                        announce(db, &old, Happened::Revoked(RevocationReason::Rotated))?;
                    }
                    Some(until) => {
                        db.prepare_cached(
                            "UPDATE tokens SET rotated_to = ?1, \
                             expires_at = MIN(COALESCE(expires_at, ?2), ?2) WHERE id = ?3",
                        )
                        .map_err(unavailable)?
                        .execute(params![id_param(record.id), millis(until), id_param(old.id)])
                        .map_err(unavailable)?;
                        log_change(db, Kind::Updated, &changed)?;
                    }
                };
                Ok(record)
            })
        })
        .await
    }

    async fn insert_once(
        &self,
        marker: &str,
        token: NewToken,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let marker = marker.to_owned();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let done: Option<i64> = db
                    .prepare_cached("SELECT token_id FROM markers WHERE name = ?1")
                    .map_err(unavailable)?
                    .query_row([&marker], |row| row.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if done.is_some() {
                    return Ok(None);
                }
                let record = insert(db, &token)?;
                db.prepare_cached(
                    "INSERT INTO markers (name, token_id, created_at) VALUES (?1, ?2, ?3)",
                )
                .map_err(unavailable)?
                .execute(params![
                    marker,
                    id_param(record.id),
                    millis(record.created_at)
                ])
                .map_err(unavailable)?;
                announce(db, &record, Happened::Created)?;
                Ok(Some(record))
            })
        })
        .await
    }

    async fn record_usage(&self, batch: &[UsageUpdate]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.run(Role::Write, move |db| {
            let transaction = db.unchecked_transaction().map_err(unavailable)?;
            {
                let mut update = transaction
                    .prepare_cached(
                        "UPDATE tokens SET last_used_at = MAX(COALESCE(last_used_at, 0), ?1), \
                         use_count = use_count + ?2 WHERE id = ?3",
                    )
                    .map_err(unavailable)?;
                for usage in &batch {
                    update
                        .execute(params![
                            millis(usage.last_used_at),
                            count_param(usage.uses),
                            id_param(usage.id),
                        ])
                        .map_err(unavailable)?;
                }
            }
            transaction.commit().map_err(unavailable)
        })
        .await
    }

    async fn prune_expired(&self, cutoff: OffsetDateTime) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?1",
            cutoff,
        )
        .await
    }

    async fn prune_expired_sessions(
        &self,
        cutoff: OffsetDateTime,
    ) -> Result<Vec<Invalidation>, StoreError> {
        self.prune(
            "DELETE FROM tokens WHERE kind = 'session' AND expires_at IS NOT NULL \
             AND expires_at < ?1",
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
        let rate = rate.clone();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                super::policies::reserve_requests(db, id, &rate, window_start, want)
            })
        })
        .await
    }

    async fn reserve_credits(
        &self,
        id: TokenId,
        want: u64,
        now: OffsetDateTime,
    ) -> Result<Option<CreditGrant>, StoreError> {
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| super::policies::reserve_credits(db, id, want, now))
        })
        .await
    }

    async fn return_credits(
        &self,
        id: TokenId,
        amount: u64,
        counted_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.run(Role::Write, move |db| {
            super::policies::return_credits(db, id, amount, counted_since)
        })
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn changes(&self) -> Option<ChangeStream> {
        self.subscribe()
    }
}
