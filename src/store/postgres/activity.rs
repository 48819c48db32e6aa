//! [`ActivityStore`] for [`PostgresStore`]: one multi-row insert per batch (arrays
//! unnested server-side: one round trip whatever the batch size).

use std::collections::HashSet;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, unavailable};
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

/// `new_ip` is decided in the statement for rows stored before, and here for earlier rows
/// of the same batch (`$14`: whether a row is the first of its token and IP in it).
const APPEND: &str = "
    INSERT INTO tower_bearer_activity (at, token_id, session_id, tenant, method, route, status,
        outcome, latency_us, client_ip, user_agent, request_id, new_ip)
    SELECT u.at, u.token_id, u.session_id, u.tenant, u.method, u.route, u.status, u.outcome,
        u.latency_us, u.client_ip, u.user_agent, u.request_id,
        u.client_ip IS NOT NULL AND u.first AND NOT EXISTS (
            SELECT 1 FROM tower_bearer_activity seen
            WHERE seen.token_id = u.token_id AND seen.client_ip = u.client_ip AND seen.at >= $15)
    FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                $7::BIGINT[], $8::TEXT[], $9::BIGINT[], $10::TEXT[], $11::TEXT[], $12::TEXT[],
                $13::BIGINT[], $14::BOOL[])
        AS u(at, token_id, session_id, tenant, method, route, status, outcome, latency_us,
             client_ip, user_agent, request_id, ord, first)
    ORDER BY u.ord";

#[async_trait]
impl ActivityStore for PostgresStore {
    async fn append_activity(
        &self,
        rows: &[NewActivity],
        new_ip_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let column = |f: &dyn Fn(&NewActivity) -> Option<String>| -> Vec<Option<String>> {
            rows.iter().map(f).collect()
        };
        let at: Vec<i64> = rows.iter().map(|row| millis(row.at)).collect();
        let token_id: Vec<i64> = rows
            .iter()
            .map(|row| count_param(row.token_id.get()))
            .collect();
        let session_id = column(&|row| row.session_id.clone());
        let tenant: Vec<&str> = rows.iter().map(|row| row.tenant.as_str()).collect();
        let method: Vec<&str> = rows.iter().map(|row| row.method.as_str()).collect();
        let route: Vec<&str> = rows.iter().map(|row| row.route.as_str()).collect();
        let status: Vec<i64> = rows.iter().map(|row| i64::from(row.status)).collect();
        let outcome: Vec<&str> = rows.iter().map(|row| row.outcome.as_str()).collect();
        let latency: Vec<i64> = rows.iter().map(|row| count_param(row.latency_us)).collect();
        let client_ip = column(&|row| row.client_ip.map(|ip| ip.to_string()));
        let user_agent = column(&|row| row.user_agent.clone());
        let request_id = column(&|row| row.request_id.clone());
        let ord: Vec<i64> = (0..rows.len() as i64).collect();
        let mut seen = HashSet::new();
        let first: Vec<bool> = rows
            .iter()
            .map(|row| seen.insert((row.token_id, row.client_ip)))
            .collect();
        let since = millis(new_ip_since);
        let params: [&(dyn ToSql + Sync); 15] = [
            &at,
            &token_id,
            &session_id,
            &tenant,
            &method,
            &route,
            &status,
            &outcome,
            &latency,
            &client_ip,
            &user_agent,
            &request_id,
            &ord,
            &first,
            &since,
        ];
        let client = self.client().await?;
        let statement = client.prepare_cached(APPEND).await.map_err(unavailable)?;
        client
            .execute(&statement, &params)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        let (clause, mut params) = filters(tenant, query, |n| format!("${n}"));
        params.push(Param::Int(count_param(query.limit as u64)));
        let sql = format!(
            "SELECT {COLUMNS} FROM tower_bearer_activity WHERE {clause} ORDER BY id DESC LIMIT ${}",
            params.len()
        );
        let values = boxed(&params);
        let refs = refs(&values);
        let client = self.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(unavailable)?;
        let rows = client.query(&statement, &refs).await.map_err(unavailable)?;
        rows.iter()
            .map(|row| raw(row).map_err(unavailable)?.parse())
            .collect()
    }

    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let cutoff = millis(cutoff);
        client
            .execute(
                "DELETE FROM tower_bearer_activity_revoked WHERE revoked_at < $1",
                &[&cutoff],
            )
            .await
            .map_err(unavailable)?;
        client
            .execute(
                "DELETE FROM tower_bearer_activity WHERE at < $1",
                &[&cutoff],
            )
            .await
            .map_err(unavailable)
    }

    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let digest: Vec<&[u8]> = tokens
            .iter()
            .map(|t| t.digest.as_bytes().as_slice())
            .collect();
        let token_id: Vec<i64> = tokens
            .iter()
            .map(|t| count_param(t.token_id.get()))
            .collect();
        let session_id: Vec<Option<&str>> =
            tokens.iter().map(|t| t.session_id.as_deref()).collect();
        let tenant: Vec<&str> = tokens.iter().map(|t| t.tenant.as_str()).collect();
        let revoked_at: Vec<i64> = tokens.iter().map(|t| millis(t.revoked_at)).collect();
        let reason: Vec<&str> = tokens.iter().map(|t| t.reason.as_str()).collect();
        let leak_url: Vec<Option<&str>> = tokens.iter().map(|t| t.leak_url.as_deref()).collect();
        let leak_source: Vec<Option<&str>> =
            tokens.iter().map(|t| t.leak_source.as_deref()).collect();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO tower_bearer_activity_revoked (digest, token_id, session_id, tenant,
                     revoked_at, reason, leak_url, leak_source)
                 SELECT * FROM UNNEST($1::BYTEA[], $2::BIGINT[], $3::TEXT[], $4::TEXT[],
                     $5::BIGINT[], $6::TEXT[], $7::TEXT[], $8::TEXT[])
                 ON CONFLICT (digest) DO UPDATE SET token_id = EXCLUDED.token_id,
                     session_id = EXCLUDED.session_id, tenant = EXCLUDED.tenant,
                     revoked_at = EXCLUDED.revoked_at, reason = EXCLUDED.reason,
                     leak_url = EXCLUDED.leak_url, leak_source = EXCLUDED.leak_source",
                &[
                    &digest,
                    &token_id,
                    &session_id,
                    &tenant,
                    &revoked_at,
                    &reason,
                    &leak_url,
                    &leak_source,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&[u8]> = digests.iter().map(|d| d.as_bytes().as_slice()).collect();
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {REVOKED_COLUMNS} FROM tower_bearer_activity_revoked \
                     WHERE digest = ANY($1)"
                ),
                &[&wanted],
            )
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| raw_revoked(row).map_err(unavailable)?.parse())
            .collect()
    }

    async fn summary(&self, tenant: &str, query: &SummaryQuery) -> Result<Summary, StoreError> {
        let sql = SummarySql::new("tower_bearer_activity", tenant, query, |n| format!("${n}"));
        let (range, latest) = (boxed(&sql.range), boxed(&sql.latest));
        let client = self.client().await?;
        let mut counts = Vec::new();
        let rows = client
            .query(&sql.counts, &refs(&range))
            .await
            .map_err(unavailable)?;
        for row in &rows {
            let read = || -> Result<(i64, String, i64), tokio_postgres::Error> {
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
            };
            let (start, outcome, count) = read().map_err(unavailable)?;
            counts.push(bucket_count(start, &outcome, count)?);
        }
        let mut busiest = Vec::new();
        if query.token_id.is_none() {
            let rows = client
                .query(&sql.busiest, &refs(&range))
                .await
                .map_err(unavailable)?;
            for row in &rows {
                let read = || -> Result<(i64, i64), tokio_postgres::Error> {
                    Ok((row.try_get(0)?, row.try_get(1)?))
                };
                let (id, count) = read().map_err(unavailable)?;
                busiest.push(busy(id, count)?);
            }
        }
        let last = client
            .query_opt(&sql.last_use, &refs(&latest))
            .await
            .map_err(unavailable)?;
        let last_use = match last {
            Some(row) => {
                let read = || -> Result<(i64, Option<String>), tokio_postgres::Error> {
                    Ok((row.try_get(0)?, row.try_get(1)?))
                };
                let (at, ip) = read().map_err(unavailable)?;
                Some(last_use(at, ip)?)
            }
            None => None,
        };
        Ok(Summary {
            counts: ordered(counts),
            busiest,
            last_use,
        })
    }

    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "SELECT {REVOKED_COLUMNS} FROM tower_bearer_activity_revoked \
                     WHERE tenant = $1 AND token_id = $2 AND session_id IS NULL \
                     ORDER BY revoked_at DESC LIMIT 1"
                ),
                &[&tenant, &count_param(token_id.get())],
            )
            .await
            .map_err(unavailable)?;
        row.map(|row| raw_revoked(&row).map_err(unavailable)?.parse())
            .transpose()
    }
}

/// The parameters of a statement, as tokio-postgres binds them.
fn boxed(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|param| -> Box<dyn ToSql + Sync + Send> {
            match param {
                Param::Int(value) => Box::new(*value),
                Param::Text(value) => Box::new(value.clone()),
            }
        })
        .collect()
}

fn refs(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| &**value as &(dyn ToSql + Sync))
        .collect()
}

fn raw_revoked(row: &tokio_postgres::Row) -> Result<RawRevoked, tokio_postgres::Error> {
    Ok(RawRevoked {
        digest: row.try_get(0)?,
        token_id: row.try_get(1)?,
        session_id: row.try_get(2)?,
        tenant: row.try_get(3)?,
        revoked_at: row.try_get(4)?,
        reason: row.try_get(5)?,
        leak_url: row.try_get(6)?,
        leak_source: row.try_get(7)?,
    })
}

fn raw(row: &tokio_postgres::Row) -> Result<RawActivity, tokio_postgres::Error> {
    Ok(RawActivity {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        token_id: row.try_get(2)?,
        session_id: row.try_get(3)?,
        tenant: row.try_get(4)?,
        method: row.try_get(5)?,
        route: row.try_get(6)?,
        status: row.try_get(7)?,
        outcome: row.try_get(8)?,
        latency_us: row.try_get(9)?,
        client_ip: row.try_get(10)?,
        user_agent: row.try_get(11)?,
        request_id: row.try_get(12)?,
        new_ip: row.try_get(13)?,
    })
}
