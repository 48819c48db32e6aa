//! Per-key budgets in PostgreSQL: reservations of rate-limit windows and of credits,
//! each one transaction holding the row's lock, so that every node draws on one budget.

use time::OffsetDateTime;
use tokio_postgres::error::SqlState;

use super::unavailable;
use crate::clock::to_millis as millis;
use crate::identity::TokenId;
use crate::policy::{CreditGrant, MAX_CREDITS, RateGrant, RateLimit};
use crate::store::StoreError;
use crate::store::columns::{count_param, id_param, policies_of};

/// [`TokenStore::reserve_requests`](crate::store::TokenStore::reserve_requests).
pub(super) async fn reserve_requests(
    client: &mut deadpool_postgres::Object,
    id: TokenId,
    rate: &RateLimit,
    window_start: i64,
    want: u64,
) -> Result<RateGrant, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    // The row first (two nodes inserting it at once would otherwise both compute from
    // nothing), then its lock: reservations of one window are serialized.
    let inserted = transaction
        .execute(
            "INSERT INTO tower_bearer_rate_windows (token_id, policy, window_start, reserved) \
             VALUES ($1, $2, $3, 0) ON CONFLICT (token_id, policy) DO NOTHING",
            &[&id_param(id), &rate.name, &window_start],
        )
        .await;
    if let Err(error) = inserted {
        return Err(match error.code() {
            Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::NotFound,
            _ => unavailable(error),
        });
    }
    let row = transaction
        .query_one(
            "SELECT window_start, reserved FROM tower_bearer_rate_windows \
             WHERE token_id = $1 AND policy = $2 FOR UPDATE",
            &[&id_param(id), &rate.name],
        )
        .await
        .map_err(unavailable)?;
    let start: i64 = row.try_get(0).map_err(unavailable)?;
    let reserved: i64 = row.try_get(1).map_err(unavailable)?;
    let stored = (start, reserved.max(0) as u64);
    let grant = RateGrant::of_window(rate, Some(stored), window_start, want);
    if start <= window_start {
        transaction
            .execute(
                "UPDATE tower_bearer_rate_windows SET window_start = $3, reserved = $4 \
                 WHERE token_id = $1 AND policy = $2",
                &[
                    &id_param(id),
                    &rate.name,
                    &window_start,
                    &count_param(grant.reserved),
                ],
            )
            .await
            .map_err(unavailable)?;
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(grant)
}

/// [`TokenStore::reserve_credits`](crate::store::TokenStore::reserve_credits).
pub(super) async fn reserve_credits(
    client: &mut deadpool_postgres::Object,
    id: TokenId,
    want: u64,
    now: OffsetDateTime,
) -> Result<Option<CreditGrant>, StoreError> {
    let transaction = client.transaction().await.map_err(unavailable)?;
    let row = transaction
        .query_opt(
            "SELECT policies, credits_remaining, credits_since FROM tower_bearer_tokens \
             WHERE id = $1 FOR UPDATE",
            &[&id_param(id)],
        )
        .await
        .map_err(unavailable)?
        .ok_or(StoreError::NotFound)?;
    let json: Option<String> = row.try_get(0).map_err(unavailable)?;
    let remaining: Option<i64> = row.try_get(1).map_err(unavailable)?;
    let since: i64 = row.try_get(2).map_err(unavailable)?;
    let Some(mut credits) = policies_of(json.as_deref(), remaining, since)?.credits else {
        return Ok(None);
    };
    let before = credits.remaining_at(now);
    let grant = credits.take(want, now);
    transaction
        .execute(
            "UPDATE tower_bearer_tokens SET credits_remaining = $1, credits_since = $2 \
             WHERE id = $3",
            &[
                &count_param(grant.remaining),
                &millis(grant.counted_since),
                &id_param(id),
            ],
        )
        .await
        .map_err(unavailable)?;
    if credits.crossed_low(before, grant.remaining) {
        let record = super::tokens::read(&transaction, id).await?;
        super::tokens::announce(&transaction, &record, crate::store::Happened::CreditsLow).await?;
    }
    transaction.commit().await.map_err(unavailable)?;
    Ok(Some(grant))
}

/// [`TokenStore::return_credits`](crate::store::TokenStore::return_credits).
pub(super) async fn return_credits(
    client: &deadpool_postgres::Object,
    id: TokenId,
    amount: u64,
    counted_since: OffsetDateTime,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE tower_bearer_tokens SET credits_remaining = LEAST(credits_remaining + $1, $2) \
             WHERE id = $3 AND credits_since = $4 AND credits_remaining IS NOT NULL",
            &[
                &count_param(amount),
                &count_param(MAX_CREDITS),
                &id_param(id),
                &millis(counted_since),
            ],
        )
        .await
        .map_err(unavailable)?;
    Ok(())
}
