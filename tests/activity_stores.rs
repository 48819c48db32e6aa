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

/// Two nodes on one PostgreSQL database: each writes its rows to the shared table, and a
/// call made on B with a token revoked on A is recorded on B as `revoked` (the change
/// feed's tombstone remembers the token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_the_log_and_record_revoked_calls_made_elsewhere() {
    use tower_bearer::activity::ActivityConfig;
    use tower_bearer::registry::{Expiry, IssueRequest};
    use tower_bearer::store::PostgresStore;
    use tower_bearer::store::activity::{ActivityQuery, Outcome};
    use tower_bearer::{BearerAuthLayer, RejectCause};

    let Some(server) = support::postgres::server() else {
        return;
    };
    let url = server.database().await;
    let mut nodes = Vec::new();
    for name in ["activity-a", "activity-b"] {
        let log = PostgresStore::connect(&url).await.unwrap();
        nodes.push(
            support::postgres::node(&url, name, |builder| {
                builder.activity(ActivityConfig::new(log))
            })
            .await,
        );
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let issued = a
        .issue(
            IssueRequest::new("ci", "acme")
                .unwrap()
                .expires(Expiry::Never),
        )
        .await
        .unwrap();
    let token = issued.secret.expose_secret().to_owned();
    let app = |registry: &tower_bearer::Registry| {
        BearerAuthLayer::new(registry.clone())
            .protect(axum::Router::new().route("/items", axum::routing::get(|| async { "items" })))
    };
    let client_a = support::http::HttpClient::new(support::http::serve_with_peer(app(a)).await);
    let client_b = support::http::HttpClient::new(support::http::serve_with_peer(app(b)).await);
    assert_eq!(client_a.get("/items", &token).await.status, 200);
    assert_eq!(client_b.get("/items", &token).await.status, 200);

    a.revoke("acme", issued.info.id).await.unwrap();
    // Once B's change feed has delivered, its cache answers "revoked".
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while b.verify(&token).await.err().and_then(|e| e.cause()) != Some(RejectCause::Revoked) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the revocation reaches B");
    assert_eq!(client_b.get("/items", &token).await.status, 401);

    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let query = ActivityQuery::new().token(issued.info.id);
    let rows = a.activity().unwrap().query("acme", &query).await.unwrap();
    let outcomes: Vec<Outcome> = rows.iter().rev().map(|row| row.outcome).collect();
    assert_eq!(outcomes, [Outcome::Ok, Outcome::Ok, Outcome::Revoked]);
    let from_b = b.activity().unwrap().query("acme", &query).await.unwrap();
    assert_eq!(from_b, rows, "one log, read from either node");

    // A node started after the revocation never cached the token: the store's memory of
    // revoked tokens (written by A) attributes the call.
    let log = PostgresStore::connect(&url).await.unwrap();
    let c = support::postgres::node(&url, "activity-c", |builder| {
        builder.activity(ActivityConfig::new(log))
    })
    .await;
    let client_c = support::http::HttpClient::new(support::http::serve_with_peer(app(&c)).await);
    assert_eq!(client_c.get("/items", &token).await.status, 401);
    c.flush().await.unwrap();
    let rows = c.activity().unwrap().query("acme", &query).await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].outcome, Outcome::Revoked);
}
