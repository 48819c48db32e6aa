//! The activity store contract against every store: memory, a real SQLite file, and a
//! real PostgreSQL server.

mod support;

use tower_bearer::MemoryStore;
use tower_bearer::store::SqliteStore;

#[tokio::test]
async fn memory_keeps_the_activity_contract() {
    tower_bearer::testing::activity_contract(&MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_keeps_the_activity_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    tower_bearer::testing::activity_contract(&store).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_keeps_the_activity_contract() {
    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let store = tower_bearer::store::PostgresStore::connect(&url)
        .await
        .unwrap();
    tower_bearer::testing::activity_contract(&store).await;
}
