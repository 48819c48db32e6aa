//! [`ActivityStore`] for [`SqliteStore`]: the `activity` table of the same database file,
//! written by its writer connection, one transaction per batch.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};
use time::OffsetDateTime;

use super::sql::{COLUMNS, Param, RawActivity, filters, int};
use super::{Activity, ActivityQuery, ActivityStore, NewActivity};
use crate::clock::to_millis as millis;
use crate::store::SqliteStore;
use crate::store::StoreError;
use crate::store::sqlite::{Role, in_transaction, unavailable};

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
        params.push(Param::Int(int(query.limit as u64)));
        let sql = format!(
            "SELECT {COLUMNS} FROM activity WHERE {clause} ORDER BY id DESC LIMIT ?{}",
            params.len()
        );
        self.run(Role::Read, move |db| {
            let mut statement = db.prepare_cached(&sql).map_err(unavailable)?;
            let values = params.iter().map(|param| match param {
                Param::Int(value) => rusqlite::types::Value::Integer(*value),
                Param::Text(value) => rusqlite::types::Value::Text(value.clone()),
            });
            let rows = statement
                .query_map(params_from_iter(values), raw)
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
            Ok(deleted as u64)
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
                seen.query_row(params![int(row.token_id.get()), ip, since], |_| Ok(()))
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
            int(row.token_id.get()),
            row.session_id,
            row.tenant,
            row.method,
            row.route,
            row.status,
            row.outcome.as_str(),
            int(row.latency_us),
            ip,
            row.user_agent,
            row.request_id,
            new_ip,
        ])
    })
    .map_err(unavailable)?;
    Ok(())
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
