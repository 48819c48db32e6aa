//! [`ActivityStore`] for [`MemoryStore`]: rows in a vector, oldest first.

use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::identity::TokenId;
use crate::store::StoreError;
use crate::store::activity::{
    Activity, ActivityQuery, ActivityStore, NewActivity, RevokedToken, Summary, SummaryQuery,
};
use crate::token::Digest;

/// A memory store's activity rows.
#[derive(Default)]
struct MemoryActivity {
    rows: Mutex<Rows>,
}

#[derive(Default)]
struct Rows {
    last_id: u64,
    /// Oldest (smallest id) first.
    rows: Vec<Activity>,
    revoked: std::collections::HashMap<Digest, RevokedToken>,
}

#[async_trait]
impl ActivityStore for MemoryStore {
    async fn append_activity(
        &self,
        new: &[NewActivity],
        new_ip_since: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.capability::<MemoryActivity>().lock();
        for row in new {
            let new_ip = row.client_ip.is_some_and(|ip| {
                !state.rows.iter().any(|seen| {
                    seen.token_id == row.token_id
                        && seen.client_ip == Some(ip)
                        && seen.at >= new_ip_since
                })
            });
            state.last_id += 1;
            let id = state.last_id;
            state.rows.push(row.clone().stored(id, new_ip));
        }
        Ok(())
    }

    async fn activity(
        &self,
        tenant: &str,
        query: &ActivityQuery,
    ) -> Result<Vec<Activity>, StoreError> {
        let state = self.capability::<MemoryActivity>().lock();
        Ok(state
            .rows
            .iter()
            .rev()
            .filter(|row| query.selects(tenant, row))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn prune_activity(&self, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.capability::<MemoryActivity>().lock();
        let before = state.rows.len();
        state.rows.retain(|row| row.at >= cutoff);
        state.revoked.retain(|_, token| token.revoked_at >= cutoff);
        Ok((before - state.rows.len()) as u64)
    }

    async fn remember_revoked(&self, tokens: &[RevokedToken]) -> Result<(), StoreError> {
        let mut state = self.capability::<MemoryActivity>().lock();
        for token in tokens {
            state.revoked.insert(token.digest, token.clone());
        }
        Ok(())
    }

    async fn find_revoked(&self, digests: &[Digest]) -> Result<Vec<RevokedToken>, StoreError> {
        let state = self.capability::<MemoryActivity>().lock();
        Ok(digests
            .iter()
            .filter_map(|digest| state.revoked.get(digest).cloned())
            .collect())
    }

    async fn summary(&self, tenant: &str, query: &SummaryQuery) -> Result<Summary, StoreError> {
        let state = self.capability::<MemoryActivity>().lock();
        Ok(Summary::of(tenant, query, &state.rows))
    }

    async fn find_revoked_key(
        &self,
        tenant: &str,
        token_id: TokenId,
    ) -> Result<Option<RevokedToken>, StoreError> {
        let state = self.capability::<MemoryActivity>().lock();
        Ok(state
            .revoked
            .values()
            .filter(|t| t.tenant == tenant && t.token_id == token_id && t.session_id.is_none())
            .max_by_key(|t| t.revoked_at)
            .cloned())
    }
}

impl MemoryActivity {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}
