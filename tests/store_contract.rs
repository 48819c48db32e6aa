//! The store contract (`tower_bearer::testing`), one test per property, for every store
//! of this crate.

mod memory {
    tower_bearer::store_contract_tests!(async { tower_bearer::MemoryStore::new() });
}

mod sqlite {
    /// A fresh database file; the directory outlives the test (the store keeps it open).
    async fn store() -> tower_bearer::store::SqliteStore {
        let dir = tempfile::tempdir().unwrap().keep();
        tower_bearer::store::SqliteStore::open(dir.join("contract.db"))
            .await
            .unwrap()
    }

    tower_bearer::store_contract_tests!(store());
}

#[path = "support/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod pg_server;

mod postgres {
    /// A fresh database on the test server, or `None` where there is no server.
    async fn store() -> Option<tower_bearer::store::PostgresStore> {
        let server = crate::pg_server::server()?;
        let url = server.database().await;
        Some(
            tower_bearer::store::PostgresStore::connect(&url)
                .await
                .unwrap(),
        )
    }

    tower_bearer::store_contract_tests!(maybe store());
}
