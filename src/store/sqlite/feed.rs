//! The change feed of a SQLite file shared by several processes (a web and a worker
//! process, a rolling restart): every deletion and change of a token row is written to
//! the `changes` table in the transaction that makes it, and each subscriber polls the
//! table from a thread of its own, with a connection of its own, only when the file
//! changed: `PRAGMA data_version` moves when another connection (of this process or
//! another) commits. A revocation in one process reaches every other within a poll
//! interval (100 ms by default, [`SqliteStore::poll_changes_every`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use rusqlite::{Connection, params};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::{Connections, SqliteStore, configure, unavailable};
use crate::clock::to_millis as millis;
use crate::store::columns::{digest_of, id_param, token_id};
use crate::store::{Change, ChangeStream, Invalidation, StoreError};

/// How long a change stays in the log: a process whose poller stalls longer than this
/// starts over ([`Change::Reset`]).
const RETENTION: Duration = Duration::from_secs(600);

/// How often a poller prunes the log.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What happened to a token, as the log names it.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    /// Deleted: revoked, rotated away, pruned.
    Invalidated,
    /// Changed (scopes, name, expiry, a rotation's grace): re-read it.
    Updated,
}

/// Logs `change` in the transaction `db` is in.
pub(super) fn log_change(
    db: &Connection,
    kind: Kind,
    change: &Invalidation,
) -> Result<(), StoreError> {
    let kind = match kind {
        Kind::Invalidated => "invalidated",
        Kind::Updated => "updated",
    };
    db.prepare_cached("INSERT INTO changes (kind, token_id, digest, at) VALUES (?1, ?2, ?3, ?4)")
        .map_err(unavailable)?
        .execute(params![
            kind,
            id_param(change.id),
            change.digest.as_bytes().as_slice(),
            millis(OffsetDateTime::now_utc()),
        ])
        .map_err(unavailable)?;
    Ok(())
}

impl SqliteStore {
    /// How often each subscriber looks whether the file changed (default 100 ms; at
    /// least 1 ms). A look is one `PRAGMA data_version`; only when it moved, one indexed
    /// query reads the new changes. Applies to feeds subscribed from now on.
    pub fn poll_changes_every(self, interval: Duration) -> Self {
        let nanos = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000_000);
        self.shared.poll_nanos.store(nanos, Ordering::Relaxed);
        self
    }

    /// A feed of the changes made from now on, by this process or any other.
    pub(super) fn subscribe(&self) -> Option<ChangeStream> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Arc::downgrade(&self.shared);
        let path = self.shared.path.clone();
        let every = Duration::from_nanos(self.shared.poll_nanos.load(Ordering::Relaxed));
        let connection = Connection::open(&path).and_then(|db| configure(&db).map(|()| db));
        let mut poller = match connection.map_err(unavailable).and_then(Poller::new) {
            Ok(poller) => poller,
            Err(error) => {
                tracing::warn!(target: "tower_bearer::store::sqlite", %error, "cannot follow the change log");
                return None;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("tower-bearer-sqlite-feed".to_owned())
            .spawn(move || poller.run(&shared, &sender, every));
        if let Err(error) = spawned {
            tracing::warn!(target: "tower_bearer::store::sqlite", %error, "cannot follow the change log");
            return None;
        }
        Some(tokio_stream(receiver))
    }
}

fn tokio_stream(receiver: mpsc::UnboundedReceiver<Change>) -> ChangeStream {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|change| (change, receiver))
    })
    .boxed()
}

/// One subscriber's view of the log: its connection, the last change it has seen, and
/// the file's version when it last looked.
struct Poller {
    db: Connection,
    last_seq: i64,
    version: i64,
    up: bool,
    pruned: Instant,
}

impl Poller {
    fn new(db: Connection) -> Result<Self, StoreError> {
        // The log's counter, not its largest row: after pruning, the table may be empty
        // while the counter goes on, and the next change must not look like a gap.
        let last_seq = db
            .query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), \
                 (SELECT MAX(seq) FROM changes), 0)",
                [],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        let version = data_version(&db).map_err(unavailable)?;
        Ok(Self {
            db,
            last_seq,
            version,
            up: true,
            pruned: Instant::now(),
        })
    }

    /// Polls until the subscriber goes away or the store is closed or dropped.
    fn run(
        &mut self,
        store: &Weak<Connections>,
        sender: &mpsc::UnboundedSender<Change>,
        every: Duration,
    ) {
        loop {
            std::thread::sleep(every);
            let open = store.upgrade().is_some_and(|shared| !shared.is_closed());
            if !open || sender.is_closed() {
                return;
            }
            let changes = self.poll();
            let delivered = match changes {
                Ok(changes) => {
                    let back = (!self.up).then_some(Change::FeedUp);
                    self.up = true;
                    back.into_iter()
                        .chain(changes)
                        .all(|change| sender.send(change).is_ok())
                }
                Err(error) if self.up => {
                    tracing::warn!(target: "tower_bearer::store::sqlite", %error, "change log unreadable; caches re-check tokens until it is back");
                    self.up = false;
                    sender.send(Change::FeedDown).is_ok()
                }
                Err(_) => true,
            };
            if !delivered {
                return;
            }
            if self.pruned.elapsed() >= PRUNE_EVERY {
                self.pruned = Instant::now();
                self.prune();
            }
        }
    }

    /// The changes since the last poll, when the file changed.
    fn poll(&mut self) -> Result<Vec<Change>, StoreError> {
        let version = data_version(&self.db).map_err(unavailable)?;
        if version == self.version && self.up {
            return Ok(Vec::new());
        }
        let oldest: Option<i64> = self
            .db
            .query_row("SELECT MIN(seq) FROM changes", [], |row| row.get(0))
            .map_err(unavailable)?;
        let mut changes = Vec::new();
        if oldest.is_some_and(|oldest| oldest > self.last_seq + 1) {
            // Changes this subscriber never saw were pruned: it cannot know which tokens
            // they concerned.
            changes.push(Change::Reset);
        }
        let mut statement = self
            .db
            .prepare_cached(
                "SELECT seq, kind, token_id, digest FROM changes WHERE seq > ?1 ORDER BY seq",
            )
            .map_err(unavailable)?;
        let rows = statement
            .query_map([self.last_seq], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(unavailable)?;
        for row in rows {
            let (seq, kind, id, digest) = row.map_err(unavailable)?;
            let change = Invalidation {
                id: token_id(id)?,
                digest: digest_of(digest)?,
            };
            changes.push(match kind.as_str() {
                "updated" => Change::Updated(change),
                _ => Change::Invalidated(change),
            });
            self.last_seq = seq;
        }
        self.version = version;
        Ok(changes)
    }

    /// Deletes the changes older than the retention (any process may; a busy file is
    /// left for the next time).
    fn prune(&self) {
        let cutoff = OffsetDateTime::now_utc() - RETENTION;
        let _ = self
            .db
            .execute("DELETE FROM changes WHERE at < ?1", [millis(cutoff)]);
    }
}

/// The file's version as this connection sees it: it moves when another connection
/// commits.
fn data_version(db: &Connection) -> rusqlite::Result<i64> {
    db.query_row("PRAGMA data_version", [], |row| row.get(0))
}
