//! The PostgreSQL change feed: every change written to the change log in the writing
//! transaction and announced with `NOTIFY`, and the one `LISTEN` connection per store
//! that applies the announcements, catches up from the log on every (re)connect and
//! heartbeat, and prunes it.

use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::AsyncMessage;

use super::{PostgresOptions, unavailable};
use crate::identity::TokenId;
use crate::store::columns::{digest_of, id_param, token_id};
use crate::store::{Change, Invalidation, StoreError};
use crate::token::Digest;

/// The notification channel.
const CHANNEL: &str = "tower_bearer_changes";

/// The database's clock in Unix milliseconds, as SQL: change-log rows are stamped and
/// pruned by it, so that no two machines' clocks are compared.
const NOW_MILLIS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
pub(super) async fn latest_seq(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(MAX(seq), 0)::BIGINT FROM tower_bearer_changes",
            &[],
        )
        .await
        .map_err(unavailable)?;
    Ok(row.get(0))
}

/// The kind of a change-log row.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Invalidated,
    Updated,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Invalidated => "invalidated",
            Kind::Updated => "updated",
        }
    }

    fn change(self, invalidation: Invalidation) -> Change {
        match self {
            Kind::Invalidated => Change::Invalidated(invalidation),
            Kind::Updated => Change::Updated(invalidation),
        }
    }
}

/// Logs a change and notifies the listeners; both take effect when the transaction
/// commits.
pub(super) async fn log_change(
    transaction: &deadpool_postgres::Transaction<'_>,
    kind: Kind,
    invalidation: &Invalidation,
) -> Result<(), StoreError> {
    let digest = invalidation.digest.as_bytes().as_slice();
    let statement = transaction
        .prepare_cached(&format!(
            "INSERT INTO tower_bearer_changes (kind, token_id, digest, at) \
                 VALUES ($1, $2, $3, {NOW_MILLIS}) RETURNING seq, at"
        ))
        .await
        .map_err(unavailable)?;
    let logged = transaction
        .query_one(
            &statement,
            &[&kind.as_str(), &id_param(invalidation.id), &digest],
        )
        .await
        .map_err(unavailable)?;
    let (seq, at): (i64, i64) = (logged.get(0), logged.get(1));
    // `at` (the server's clock, Unix ms) lets listeners measure the feed's lag; a node
    // of an older version reads the first four fields and ignores it.
    let payload = format!(
        "{seq} {} {} {} {at}",
        kind.as_str(),
        invalidation.id,
        hex(invalidation.digest.as_bytes())
    );
    transaction
        .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await
        .map_err(unavailable)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    for (at, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(at * 2..at * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A notification's payload: `seq kind id digest-hex [at]` (`at` in Unix milliseconds,
/// absent from older writers).
fn parse_payload(payload: &str) -> Option<(i64, Change, Option<i64>)> {
    let mut parts = payload.split(' ');
    let seq = parts.next()?.parse().ok()?;
    let kind = match parts.next()? {
        "invalidated" => Kind::Invalidated,
        "updated" => Kind::Updated,
        _ => return None,
    };
    let id = TokenId::new(parts.next()?.parse().ok()?);
    let digest = Digest::from_bytes(unhex(parts.next()?)?);
    let at = parts.next().and_then(|at| at.parse().ok());
    Some((seq, kind.change(Invalidation { id, digest }), at))
}

/// Records how long ago (by this node's clock) a change logged `at` (Unix ms, by the
/// server's clock) was committed: the feed's lag, clock offset included.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn applied_after(at: i64) {
    #[cfg(feature = "metrics")]
    {
        let now = crate::clock::to_millis(time::OffsetDateTime::now_utc());
        let lag = u64::try_from(now.saturating_sub(at)).unwrap_or(0);
        crate::telemetry::feed_lag(Duration::from_millis(lag));
    }
}

/// The LISTEN side: one dedicated connection per store, reconnected with backoff.
pub(super) struct Listener {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pool: Pool,
    feed: broadcast::Sender<Change>,
    options: PostgresOptions,
    /// The last change-log sequence number applied.
    last_seq: i64,
    /// Whether the feed is known down (announced as [`Change::FeedDown`]).
    down: bool,
}

impl Listener {
    /// A listener on `config`'s database that publishes to `feed`, having applied every
    /// change up to `last_seq`; it prunes the log through `pool`.
    pub(super) fn new(
        config: tokio_postgres::Config,
        tls: tokio_postgres_rustls::MakeRustlsConnect,
        pool: Pool,
        feed: broadcast::Sender<Change>,
        options: PostgresOptions,
        last_seq: i64,
    ) -> Self {
        Self {
            config,
            tls,
            pool,
            feed,
            options,
            last_seq,
            down: false,
        }
    }

    /// Listens, reconnecting with backoff, until the task is aborted.
    pub(super) async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.listen().await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(error) => {
                    tracing::debug!(target: "tower_bearer::store::postgres", %error, "change feed connection failed");
                }
            }
            if !self.down {
                self.down = true;
                tracing::warn!(target: "tower_bearer::store::postgres", "change feed down: cached tokens are re-checked until it is back");
                self.publish(Change::FeedDown);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn publish(&self, change: Change) {
        // No subscribers is fine: nobody caches.
        let _ = self.feed.send(change);
    }

    /// One connection's life: connect, LISTEN, catch up, then apply notifications until
    /// the connection fails. Returns `Ok` when a healthy connection was lost.
    async fn listen(&mut self) -> Result<(), StoreError> {
        let (client, mut connection) =
            tokio::time::timeout(self.options.timeout, self.config.connect(self.tls.clone()))
                .await
                .map_err(|_| StoreError::unavailable("connect timed out"))?
                .map_err(unavailable)?;
        let (notes, mut notifications) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(note) = message {
                    if notes.send(note.payload().to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let _driver = AbortOnDrop(driver.abort_handle());
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(unavailable)?;
        self.catch_up(&client).await?;
        if self.down {
            self.down = false;
            #[cfg(feature = "metrics")]
            crate::telemetry::feed_reconnected();
            tracing::info!(target: "tower_bearer::store::postgres", "change feed back");
            self.publish(Change::FeedUp);
        }
        let mut heartbeat = tokio::time::interval(self.options.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                note = notifications.recv() => match note {
                    Some(payload) => self.apply(&client, &payload).await?,
                    None => return Ok(()),
                },
                _ = heartbeat.tick() => {
                    tokio::time::timeout(self.options.timeout, self.catch_up(&client))
                        .await
                        .map_err(|_| StoreError::unavailable("change feed heartbeat timed out"))??;
                }
                // Bounded: a prune that waits on a lock must not stop the heartbeats.
                _ = prune.tick() => {
                    let _ = tokio::time::timeout(self.options.timeout, self.prune_log()).await;
                }
            }
        }
    }

    /// Applies a notification; one that cannot be read is looked up in the log instead.
    async fn apply(
        &mut self,
        client: &tokio_postgres::Client,
        payload: &str,
    ) -> Result<(), StoreError> {
        match parse_payload(payload) {
            Some((seq, change, at)) if seq > self.last_seq => {
                self.publish(change);
                self.last_seq = seq;
                if let Some(at) = at {
                    applied_after(at);
                }
                Ok(())
            }
            Some(_) => Ok(()), // already applied by a catch-up
            None => self.catch_up(client).await,
        }
    }

    /// Applies every logged change after the last one applied. If some were pruned
    /// before this node read them, its whole cache goes. How far the log was pruned and
    /// what it still holds are read in one statement, so in one snapshot: a prune that
    /// commits between two reads could otherwise remove changes this node never saw
    /// while it reads a `pruned_through` from before that prune.
    async fn catch_up(&mut self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        let rows = client
            .query(
                "SELECT f.pruned_through, c.seq, c.kind, c.token_id, c.digest, c.at \
                 FROM tower_bearer_feed f \
                 LEFT JOIN tower_bearer_changes c ON c.seq > $1 \
                 ORDER BY c.seq",
                &[&self.last_seq],
            )
            .await
            .map_err(unavailable)?;
        let pruned_through: i64 = rows.first().map_or(0, |row| row.get(0));
        if pruned_through > self.last_seq {
            tracing::warn!(target: "tower_bearer::store::postgres", "missed changes were pruned: dropping the cache");
            self.publish(Change::Reset);
            self.last_seq = pruned_through;
        }
        for row in rows {
            // The one row of an empty log past `last_seq`: the feed's alone.
            let Some(seq) = row.get::<_, Option<i64>>(1) else {
                continue;
            };
            if seq <= self.last_seq {
                continue;
            }
            let kind = match row.get::<_, &str>(2) {
                "updated" => Kind::Updated,
                _ => Kind::Invalidated,
            };
            let id: i64 = row.get(3);
            let digest: Vec<u8> = row.get(4);
            let change = kind.change(Invalidation {
                id: token_id(id)?,
                digest: digest_of(digest)?,
            });
            self.publish(change);
            self.last_seq = seq;
            applied_after(row.get(5));
        }
        Ok(())
    }

    /// Deletes change-log rows older than the retention, and records how far.
    async fn prune_log(&self) {
        let retention = i64::try_from(self.options.retention.as_millis()).unwrap_or(i64::MAX);
        let result = async {
            let client = self.pool.get().await.map_err(StoreError::unavailable)?;
            // By the database's clock, which also stamps the rows: never two machines'.
            client
                .execute(
                    &format!(
                        "WITH gone AS (DELETE FROM tower_bearer_changes WHERE at < {NOW_MILLIS} - $1 \
                         RETURNING seq) \
                         UPDATE tower_bearer_feed SET pruned_through = \
                             GREATEST(pruned_through, (SELECT COALESCE(MAX(seq), 0) FROM gone))"
                    ),
                    &[&retention],
                )
                .await
                .map_err(unavailable)
        }
        .await;
        if let Err(error) = result {
            tracing::debug!(target: "tower_bearer::store::postgres", %error, "change log pruning failed; will retry");
        }
    }
}

/// Stops the connection driver when the listener moves on.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let digest = Digest::of(b"secret");
        // An older writer's payload has no time.
        let payload = format!("42 updated 7 {}", hex(digest.as_bytes()));
        let (seq, change, at) = parse_payload(&payload).unwrap();
        assert_eq!((seq, at), (42, None));
        let (_, again, at) = parse_payload(&format!("{payload} 1764870000123")).unwrap();
        assert_eq!((&again, at), (&change, Some(1_764_870_000_123)));
        assert_eq!(
            change,
            Change::Updated(Invalidation {
                id: TokenId::new(7),
                digest
            })
        );
        for bad in ["", "x updated 7 00", "1 deleted 7 00", "1 updated 7 zz"] {
            assert!(parse_payload(bad).is_none(), "{bad}");
        }
    }
}
