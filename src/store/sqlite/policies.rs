//! Per-key budgets in SQLite: reservations of rate-limit windows and of credits, each
//! one immediate transaction, so that every process on the file draws on one budget.

use rusqlite::{Connection, OptionalExtension as _, params};
use time::OffsetDateTime;

use super::unavailable;
use crate::clock::to_millis as millis;
use crate::identity::TokenId;
use crate::policy::{CreditGrant, MAX_CREDITS, RateGrant, RateLimit};
use crate::store::StoreError;
use crate::store::columns::{count_param, id_param, policies_of};

/// [`TokenStore::reserve_requests`](crate::store::TokenStore::reserve_requests), in a transaction.
pub(super) fn reserve_requests(
    db: &Connection,
    id: TokenId,
    rate: &RateLimit,
    window_start: i64,
    want: u64,
) -> Result<RateGrant, StoreError> {
    let exists = db
        .prepare_cached("SELECT 1 FROM tokens WHERE id = ?1")
        .map_err(unavailable)?
        .query_row([id_param(id)], |_| Ok(()))
        .optional()
        .map_err(unavailable)?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let stored: Option<(i64, i64)> = db
        .prepare_cached(
            "SELECT window_start, reserved FROM rate_windows WHERE token_id = ?1 AND policy = ?2",
        )
        .map_err(unavailable)?
        .query_row(params![id_param(id), rate.name], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(unavailable)?;
    let stored = stored.map(|(start, reserved)| (start, reserved.max(0) as u64));
    let grant = RateGrant::of_window(rate, stored, window_start, want);
    if stored.is_none_or(|(start, _)| start <= window_start) {
        db.prepare_cached(
            "INSERT INTO rate_windows (token_id, policy, window_start, reserved) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (token_id, policy) DO UPDATE SET \
             window_start = excluded.window_start, reserved = excluded.reserved",
        )
        .map_err(unavailable)?
        .execute(params![
            id_param(id),
            rate.name,
            window_start,
            count_param(grant.reserved)
        ])
        .map_err(unavailable)?;
    }
    Ok(grant)
}

/// [`TokenStore::reserve_credits`](crate::store::TokenStore::reserve_credits), in a transaction.
pub(super) fn reserve_credits(
    db: &Connection,
    id: TokenId,
    want: u64,
    now: OffsetDateTime,
) -> Result<Option<CreditGrant>, StoreError> {
    let row: Option<(Option<String>, Option<i64>, i64)> = db
        .prepare_cached(
            "SELECT policies, credits_remaining, credits_since FROM tokens WHERE id = ?1",
        )
        .map_err(unavailable)?
        .query_row([id_param(id)], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(unavailable)?;
    let (json, remaining, since) = row.ok_or(StoreError::NotFound)?;
    let Some(mut credits) = policies_of(json.as_deref(), remaining, since)?.credits else {
        return Ok(None);
    };
    let before = credits.remaining_at(now);
    let grant = credits.take(want, now);
    db.prepare_cached("UPDATE tokens SET credits_remaining = ?1, credits_since = ?2 WHERE id = ?3")
        .map_err(unavailable)?
        .execute(params![
            count_param(grant.remaining),
            millis(grant.counted_since),
            id_param(id)
        ])
        .map_err(unavailable)?;
    if credits.crossed_low(before, grant.remaining) {
        let record = super::tokens::read(db, id)?;
        super::tokens::announce(db, &record, crate::store::Happened::CreditsLow)?;
    }
    Ok(Some(grant))
}

/// [`TokenStore::return_credits`](crate::store::TokenStore::return_credits).
pub(super) fn return_credits(
    db: &Connection,
    id: TokenId,
    amount: u64,
    counted_since: OffsetDateTime,
) -> Result<(), StoreError> {
    db.prepare_cached(
        "UPDATE tokens SET credits_remaining = MIN(credits_remaining + ?1, ?2) \
         WHERE id = ?3 AND credits_since = ?4 AND credits_remaining IS NOT NULL",
    )
    .map_err(unavailable)?
    .execute(params![
        count_param(amount),
        count_param(MAX_CREDITS),
        id_param(id),
        millis(counted_since)
    ])
    .map_err(unavailable)?;
    Ok(())
}
