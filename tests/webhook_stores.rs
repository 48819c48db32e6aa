//! The webhook endpoint store contract against every store: memory, a real SQLite file,
//! and a real PostgreSQL server.

mod support;

use tower_bearer::MemoryStore;
use tower_bearer::store::{PostgresStore, SqliteStore};

#[tokio::test]
async fn memory_keeps_the_webhook_contract() {
    tower_bearer::testing::webhook_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_keeps_the_outbox_contract() {
    tower_bearer::testing::outbox_contract(&MemoryStore::new()).await;
}

/// A store on a fresh SQLite file in `dir`.
async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("hooks.db"))
        .await
        .unwrap()
}

/// A store on a fresh database of the test PostgreSQL server, if there is one.
async fn postgres() -> Option<PostgresStore> {
    let url = support::postgres::server()?.database().await;
    Some(PostgresStore::connect(&url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_keeps_the_outbox_contract() {
    let dir = tempfile::tempdir().unwrap();
    tower_bearer::testing::outbox_contract(&sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_the_outbox_contract() {
    if let Some(store) = postgres().await {
        tower_bearer::testing::outbox_contract(&store).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_keeps_the_webhook_contract() {
    let dir = tempfile::tempdir().unwrap();
    tower_bearer::testing::webhook_contract(&sqlite(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_the_webhook_contract() {
    if let Some(store) = postgres().await {
        tower_bearer::testing::webhook_contract(&store).await;
    }
}

/// One memory store keeps the activity log's rows and webhook endpoints side by side.
#[cfg(feature = "activity")]
#[tokio::test]
async fn a_memory_store_keeps_several_capabilities() {
    use tower_bearer::store::activity::{ActivityQuery, ActivityStore, NewActivity, Outcome};
    let store = MemoryStore::new();
    tower_bearer::testing::webhook_contract(&store).await;
    let row = NewActivity::new(
        time::OffsetDateTime::now_utc(),
        tower_bearer::TokenId::new(1),
        "acme",
        "/",
        200,
        Outcome::Ok,
    );
    store
        .append_activity(&[row], time::OffsetDateTime::UNIX_EPOCH)
        .await
        .unwrap();
    let rows = store.activity("acme", &ActivityQuery::new()).await.unwrap();
    assert_eq!(rows.len(), 1);
}
