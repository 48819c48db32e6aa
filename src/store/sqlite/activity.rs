//! [`ActivityStore`] for [`SqliteStore`]: the `activity` table of the same database file,
//! written by its writer connection, one transaction per batch.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};
use time::OffsetDateTime;

use super::{Role, SqliteStore, in_transaction, unavailable};
use crate::clock::to_millis as millis;
use crate::identity::TokenId;
use crate::store::StoreError;
use crate::store::activity::{
    Activity, ActivityQuery, ActivityStore, NewActivity, RevokedToken, Summary, SummaryQuery,
};
use crate::store::activity_rows::{
    COLUMNS, Param, REVOKED_COLUMNS, RawActivity, RawRevoked, SummarySql, bucket_count, busy,
    filters, last_use, ordered,
};
use crate::store::columns::count_param;
use crate::token::Digest;

#[async_trait]
impl ActivityStore for SqliteStore {
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        new_ip_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let rows = rows.to_vec();
        let since = millis(new_ip_since);
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                for row in &rows {
                    append(db, row, since)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        let (clause, mut params) = filters(tenant, query, |n| format!("?{n}"));
        params.push(Param::Int(count_param(query.limit as u64)));
        let sql = format!(
            "SELECT {COLUMNS} FROM activity WHERE {clause} ORDER BY id DESC LIMIT ?{}",
            params.len()
        );
        self.run(Role::Read, move |db| {
            let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
            let rows = statement
                .query_map(params_from_iter(values(&params)), raw)
                .map_err(unavailable)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(unavailable)?;
            rows.into_iter().map(RawActivity::parse).collect()
        })
        .await
    }

    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let cutoff = millis(cutoff);
        self.run(Role::Write, move |db| {
            let deleted = db
                .execute("DELETE FROM activity WHERE at < ?1", [cutoff])
                .map_err(unavailable)?;
            db.execute(
                "DELETE FROM activity_revoked WHERE revoked_at < ?1",
                [cutoff],
            )
            .map_err(unavailable)?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError> {
        let tokens = tokens.to_vec();
        self.run(Role::Write, move |db| {
            in_transaction(db, |db| {
                let mut insert = db
                    .prepare_cached(
                        "INSERT OR REPLACE INTO activity_revoked (digest, token_id, session_id, \
                         tenant, revoked_at, reason, leak_url, leak_source) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(unavailable)?;
                for token in &tokens {
                    insert
                        .execute(params![
                            token.digest.as_bytes().as_slice(),
                            count_param(token.token_id.get()),
                            token.session_id,
                            token.tenant,
                            millis(token.revoked_at),
                            token.reason.as_str(),
                            token.leak_url,
                            token.leak_source,
                        ])
                        .map_err(unavailable)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        let digests = digests.to_vec();
        self.run(Role::Read, move |db| {
            let mut find = db
                .prepare_cached(&format!(
                    "SELECT {REVOKED_COLUMNS} FROM activity_revoked WHERE digest = ?1"
                ))
                .map_err(unavailable)?;
            let mut found = Vec::new();
            for digest in &digests {
                let row = find
                    .query_row([digest.as_bytes().as_slice()], raw_revoked)
                    .optional()
                    .map_err(unavailable)?;
                if let Some(row) = row {
                    found.push(row.parse()?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn summary(&self, tenant: &str, query: &SummaryQuery) -> Result<Summary, StoreError> {
        let sql = SummarySql::new("activity", tenant, query, |n| format!("?{n}"));
        let tenant_wide = query.token_id.is_none();
        self.run(Role::Read, move |db| {
            let (range, latest) = (values(&sql.range), values(&sql.latest));
            let mut counts = Vec::new();
            let mut statement = db.prepare_cached(&sql.counts).map_err(unavailable)?;
            let rows = statement
                .query_map(params_from_iter(range.iter()), |row| {
                    Ok((row.get(0)?, row.get::<_, String>(1)?, row.get(2)?))
                })
                .map_err(unavailable)?;
            for row in rows {
                let (start, outcome, count) = row.map_err(unavailable)?;
                counts.push(bucket_count(start, &outcome, count)?);
            }
            let mut busiest = Vec::new();
            if tenant_wide {
                let mut statement = db.prepare_cached(&sql.busiest).map_err(unavailable)?;
                let rows = statement
                    .query_map(params_from_iter(range.iter()), |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    let (id, count) = row.map_err(unavailable)?;
                    busiest.push(busy(id, count)?);
                }
            }
            let last = db
                .prepare_cached(&sql.last_use)
                .map_err(unavailable)?
                .query_row(params_from_iter(latest.iter()), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
                .map_err(unavailable)?;
            let last_use = last.map(|(at, ip)| last_use(at, ip)).transpose()?;
            Ok(Summary {
                counts: ordered(counts),
                busiest,
                last_use,
            })
        })
        .await
    }

    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        let tenant = tenant.to_owned();
        self.run(Role::Read, move |db| {
            db.prepare_cached(&format!(
                "SELECT {REVOKED_COLUMNS} FROM activity_revoked \
                 WHERE tenant = ?1 AND token_id = ?2 AND session_id IS NULL \
                 ORDER BY revoked_at DESC LIMIT 1"
            ))
            .map_err(unavailable)?
            .query_row(params![tenant, count_param(token_id.get())], raw_revoked)
            .optional()
            .map_err(unavailable)?
            .map(RawRevoked::parse)
            .transpose()
        })
        .await
    }
}

fn append(db: &Connection, row: &NewActivity, since: i64) -> Result<(), StoreError> {
    let ip = row.client_ip.map(|ip| ip.to_string());
    let new_ip = match &ip {
        Some(ip) => db
            .prepare_cached(
                "SELECT 1 FROM activity WHERE token_id = ?1 AND client_ip = ?2 AND at >= ?3 LIMIT 1",
            )
            .and_then(|mut seen| {
                seen.query_row(params![count_param(row.token_id.get()), ip, since], |_| Ok(()))
                    .optional()
            })
            .map_err(unavailable)?
            .is_none(),
        None => false,
    };
    db.prepare_cached(
        "INSERT INTO activity (at, token_id, session_id, tenant, method, route, status, outcome, \
         latency_us, client_ip, user_agent, request_id, new_ip) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )
    .and_then(|mut insert| {
        insert.execute(params![
            millis(row.at),
            count_param(row.token_id.get()),
            row.session_id,
            row.tenant,
            row.method,
            row.route,
            row.status,
            row.outcome.as_str(),
            count_param(row.latency_us),
            ip,
            row.user_agent,
            row.request_id,
            new_ip,
        ])
    })
    .map_err(unavailable)?;
    Ok(())
}

/// The parameters of a statement, as rusqlite binds them.
fn values(params: &[Param]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|param| match param {
            Param::Int(value) => rusqlite::types::Value::Integer(*value),
            Param::Text(value) => rusqlite::types::Value::Text(value.clone()),
        })
        .collect()
}

fn raw_revoked(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawRevoked> {
    Ok(RawRevoked {
        digest: row.get(0)?,
        token_id: row.get(1)?,
        session_id: row.get(2)?,
        tenant: row.get(3)?,
        revoked_at: row.get(4)?,
        reason: row.get(5)?,
        leak_url: row.get(6)?,
        leak_source: row.get(7)?,
    })
}

fn raw(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawActivity> {
    Ok(RawActivity {
        id: row.get(0)?,
        at: row.get(1)?,
        token_id: row.get(2)?,
        session_id: row.get(3)?,
        tenant: row.get(4)?,
        method: row.get(5)?,
        route: row.get(6)?,
        status: row.get(7)?,
        outcome: row.get(8)?,
        latency_us: row.get(9)?,
        client_ip: row.get(10)?,
        user_agent: row.get(11)?,
        request_id: row.get(12)?,
        new_ip: row.get(13)?,
    })
}
