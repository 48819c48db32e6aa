//! `SqliteStore` against real SQLite files.
#![cfg(feature = "sqlite")]

mod support;

use std::collections::HashSet;

use tower_bearer::registry::{Expiry, IssueRequest};
use tower_bearer::store::SqliteStore;
use tower_bearer::token::{Formats, IssueFormat};
use tower_bearer::{Registry, RejectCause, TokenStore as _};

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap()
}

/// The contract runs on multi-threaded runtimes (`tests/store_contract.rs`); here, a few
/// properties on a current-thread runtime, where the store runs its queries on the
/// blocking pool instead of in place.
#[tokio::test]
async fn sqlite_store_keeps_the_contract_on_a_current_thread_runtime() {
    use tower_bearer::testing;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    testing::insert_assigns_increasing_ids_and_keeps_every_field(&store).await;
    testing::rotation_replaces_a_token_in_one_transaction(&store).await;
    testing::cascade_deletes_a_token_and_its_descendants_only(&store).await;
    testing::update_changes_only_what_it_names(&store).await;
}

#[tokio::test]
async fn the_database_is_in_wal_mode_with_a_unique_digest_index() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&dir).await;
    let db = rusqlite::Connection::open(dir.path().join("tokens.db")).unwrap();
    let mode: String = db
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let unique: i64 = db
        .query_row(
            "SELECT \"unique\" FROM pragma_index_list('tokens') WHERE name = 'tokens_digest'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(unique, 1);
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 11, "migrations are recorded");
}

#[tokio::test]
async fn reopening_a_migrated_database_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let registry = Registry::builder(store.clone()).build();
    registry
        .issue(IssueRequest::new("kept", "acme").unwrap())
        .await
        .unwrap();
    store.close().await;
    let reopened = open(&dir).await;
    assert_eq!(reopened.count().await.unwrap(), 1);
}

#[tokio::test]
async fn tokens_survive_a_reopen_and_revocations_too() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, revoked) = {
        let store = open(&dir).await;
        let registry = Registry::builder(store.clone()).build();
        let issue = |name: &'static str| {
            let registry = registry.clone();
            async move {
                registry
                    .issue(
                        IssueRequest::new(name, "acme")
                            .unwrap()
                            .scopes(["write"])
                            .unwrap(),
                    )
                    .await
                    .unwrap()
            }
        };
        let kept = issue("kept").await;
        let revoked = issue("revoked").await;
        registry.verify(kept.secret.expose_secret()).await.unwrap();
        registry.revoke("acme", revoked.info.id).await.unwrap();
        registry.flush().await.unwrap();
        store.close().await;
        (
            kept.secret.expose_secret().to_owned(),
            revoked.secret.expose_secret().to_owned(),
        )
    };

    let registry = Registry::builder(open(&dir).await).build();
    let principal = registry.verify(&kept).await.unwrap();
    assert_eq!(principal.name(), "kept");
    assert!(principal.has_scope("read"));
    let error = registry.verify(&revoked).await.unwrap_err();
    assert_eq!(error.cause(), Some(RejectCause::Unknown));
    let listed = registry.list("acme").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].use_count, 1, "usage flushed before the reopen");
}

#[tokio::test]
async fn sanctum_ids_round_trip_through_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::builder(open(&dir).await)
        .formats(Formats::default().sanctum())
        .issue_format(IssueFormat::Sanctum)
        .build();
    let issued = registry
        .issue(
            IssueRequest::new("s", "acme")
                .unwrap()
                .expires(Expiry::Never),
        )
        .await
        .unwrap();
    let token = issued.secret.expose_secret();
    assert!(token.starts_with(&format!("{}|", issued.info.id)));
    registry.verify(token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_issuance_gives_distinct_working_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::builder(open(&dir).await).build();
    let issuing: Vec<_> = (0..64)
        .map(|n| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let request = IssueRequest::new(&format!("token {n}"), "acme").unwrap();
                registry.issue(request).await.unwrap()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for issuing in issuing {
        let issued = issuing.await.unwrap();
        assert!(ids.insert(issued.info.id));
        registry
            .verify(issued.secret.expose_secret())
            .await
            .unwrap();
    }
    assert_eq!(registry.list("acme").await.unwrap().len(), 64);
}

#[tokio::test]
async fn no_plaintext_reaches_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let registry = Registry::builder(store.clone()).build();
    let issued = registry
        .issue(IssueRequest::new("secretive", "acme").unwrap())
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let random_part = token.as_bytes()["sk_live_".len()..].to_vec();
    let holds_plaintext = |path: &std::path::Path| {
        let bytes = std::fs::read(path).unwrap();
        bytes
            .windows(random_part.len())
            .any(|w| w == random_part.as_slice())
    };
    // While open, the new row may still be only in the WAL file: read every file.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for file in &files {
        assert!(
            !holds_plaintext(file),
            "plaintext found in {}",
            file.display()
        );
    }
    // Closed, everything is checkpointed into the database file.
    store.close().await;
    assert!(!holds_plaintext(&dir.path().join("tokens.db")));
}

#[tokio::test]
async fn a_closed_database_is_unavailable_not_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let registry = Registry::builder(store.clone()).build();
    let issued = registry
        .issue(IssueRequest::new("t", "acme").unwrap())
        .await
        .unwrap();
    store.close().await;
    let error = registry
        .verify(issued.secret.expose_secret())
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        store
            .list_by_tenant("acme", tower_bearer::store::ListQuery::all())
            .await
            .is_err()
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_and_its_wal_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let registry = Registry::builder(store.clone()).build();
    registry
        .issue(IssueRequest::new("x", "acme").unwrap())
        .await
        .unwrap();
    for name in ["tokens.db", "tokens.db-wal", "tokens.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}

#[tokio::test]
async fn a_version_1_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    {
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(include_str!("../migrations/sqlite/0001_create_tokens.sql"))
            .unwrap();
        db.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO tokens (name, tenant, scopes, env, kind, display_prefix, digest, created_at)
             VALUES ('old', 'acme', 'read', 'live', 'api_key', 'sk_live_abcd', zeroblob(32), 0);",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    let old = store
        .find_by_id("acme", tower_bearer::TokenId::new(1))
        .await
        .unwrap();
    assert_eq!((old.created_by, old.rotated_to), (None, None));
    assert_eq!(
        old.created_by_session, None,
        "the session lineage column was added"
    );
    assert!(old.policies.is_empty(), "the policy columns were added");
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 11);
}

/// The change log after pruning: a subscriber that starts when every logged change was
/// pruned follows the next change as it is, without taking the pruned ones for a gap
/// (which would make its registry drop its whole cache).
#[tokio::test(flavor = "multi_thread")]
async fn a_feed_started_after_pruning_sees_changes_not_a_gap() {
    use futures_util::StreamExt as _;
    use tower_bearer::store::Change;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir)
        .await
        .poll_changes_every(std::time::Duration::from_millis(5));
    let registry = Registry::builder(store.clone()).build();
    let first = registry
        .issue(IssueRequest::new("first", "acme").unwrap())
        .await
        .unwrap();
    let second = registry
        .issue(IssueRequest::new("second", "acme").unwrap())
        .await
        .unwrap();
    registry.revoke("acme", first.info.id).await.unwrap();
    // The log's retention ran out: every logged change is gone.
    rusqlite::Connection::open(dir.path().join("tokens.db"))
        .unwrap()
        .execute("DELETE FROM changes", [])
        .unwrap();

    let mut feed = store.changes().expect("the SQLite store has a change feed");
    registry.revoke("acme", second.info.id).await.unwrap();
    let change = tokio::time::timeout(std::time::Duration::from_secs(5), feed.next())
        .await
        .expect("a change within the poll")
        .unwrap();
    match change {
        Change::Invalidated(gone) => assert_eq!(gone.id, second.info.id),
        other => panic!("expected the revocation, got {other:?}"),
    }
}
