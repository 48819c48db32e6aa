//! TLS to PostgreSQL (issue 27 #1): a throwaway cluster with `ssl=on` and a certificate
//! made here. `verify-full` with the right CA connects, encrypted; a wrong CA or a host
//! name the certificate does not name is refused with an error that says so; `require`
//! connects without checking; `disable` does not encrypt.

mod support;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tower_bearer::registry::{IssueRequest, Registry};
use tower_bearer::store::PostgresStore;

use support::example::ExampleProcess;
use support::http::HttpClient;
use support::postgres::{Server, own_server};

/// A CA (its PEM) and a certificate and key for `localhost` it signed.
fn certificates() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// How many of the server's connections are encrypted.
async fn encrypted_connections(base: &str) -> i64 {
    let client = Server::client(&format!("{base}/postgres")).await;
    client
        .query_one("SELECT count(*) FROM pg_stat_ssl WHERE ssl", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_speaks_tls_as_sslmode_says() {
    let Some(server) = own_server() else { return };
    let (ca, cert, key) = certificates();
    server.enable_tls(&cert, &key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (other_ca, _, _) = certificates();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, &other_ca).unwrap();
    let port = server.port();
    let plain_base = format!("postgres://postgres@127.0.0.1:{port}");
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");
    let root = |path: &std::path::Path| path.to_str().unwrap().to_owned();

    // verify-full, the right CA, the certificate's name: connects, encrypted, works.
    let before = encrypted_connections(&plain_base).await;
    let full = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", root(&ca_file)),
    );
    let store = PostgresStore::connect(&full)
        .await
        .expect("verify-full connects");
    let registry = Registry::builder(store).build();
    let issued = registry
        .issue(IssueRequest::new("tls", "acme").unwrap())
        .await
        .unwrap();
    assert!(registry.verify(issued.secret.expose_secret()).await.is_ok());
    assert!(
        encrypted_connections(&plain_base).await > before,
        "the pool and the listener speak TLS"
    );

    // A CA that did not sign the certificate.
    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", root(&other_ca_file)),
    );
    let error = PostgresStore::connect(&wrong_ca)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("a wrong CA: {error}");
    assert!(error.contains("invalid peer certificate"), "{error}");

    // A host name the certificate does not name (it names `localhost`).
    let wrong_name = url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={}", root(&ca_file)),
    );
    let error = PostgresStore::connect(&wrong_name)
        .await
        .unwrap_err()
        .to_string();
    eprintln!("a wrong host name: {error}");
    assert!(
        error.contains("not valid for name \"127.0.0.1\""),
        "{error}"
    );

    // verify-ca checks the chain only: the address is fine.
    let ca_only = url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={}", root(&ca_file)),
    );
    PostgresStore::connect(&ca_only)
        .await
        .expect("verify-ca connects");

    // require: encrypted, nothing checked (as libpq without a root file).
    PostgresStore::connect(&url("127.0.0.1", "sslmode=require"))
        .await
        .expect("require connects");

    // The example server takes such a URL as it is.
    let database = format!("tls_{}", std::process::id());
    Server::client(&format!("{plain_base}/postgres"))
        .await
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let example_url = format!(
        "postgres://postgres@localhost:{port}/{database}?sslmode=verify-full&sslrootcert={}",
        root(&ca_file)
    );
    let mut example = ExampleProcess::start(
        "server",
        "full",
        &["--addr", "127.0.0.1:0", "--db", &example_url],
        1,
    )
    .await;
    let admin = example.stdout_line().await;
    let admin = admin.strip_prefix("admin token: ").unwrap().to_owned();
    let answer = HttpClient::new(example.addrs[0])
        .get("/tokens", &admin)
        .await;
    assert_eq!(answer.status, http::StatusCode::OK, "{}", answer.text());
    example.interrupt().await;

    // An unknown mode is a clear error.
    let error = PostgresStore::connect(&url("127.0.0.1", "sslmode=verify-everything"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("sslmode=verify-everything"), "{error}");
}
