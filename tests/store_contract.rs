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
