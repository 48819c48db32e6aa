//! A real PostgreSQL server for tests: the one `DATABASE_URL` points at, or a throwaway
//! cluster started here from the installed server binaries (Debian's `postgresql`
//! package), in a temporary directory, on a free port, owned by the `postgres` user when
//! running as root. A watchdog process stops it and removes its files when the test
//! process exits. Each test gets a database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A server tests can make databases in.
pub struct Server {
    /// `postgres://user@host:port` (no database).
    base: String,
    cluster: Option<Cluster>,
}

/// A cluster started by the tests.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

static SHARED: OnceLock<Option<Server>> = OnceLock::new();

/// The shared server, or `None` (with a visible message) where there is none; under
/// `CI=true` that is a failure instead.
pub fn server() -> Option<&'static Server> {
    SHARED
        .get_or_init(|| {
            if let Ok(url) = std::env::var("DATABASE_URL") {
                let base = url
                    .rsplit_once('/')
                    .map_or(url.clone(), |(base, _)| base.to_owned());
                return Some(Server {
                    base,
                    cluster: None,
                });
            }
            started()
        })
        .as_ref()
}

/// A server of this test's own (one it may stop and start), unless `DATABASE_URL` is
/// set (then `None`: a shared server must not be stopped).
pub fn own_server() -> Option<Server> {
    if std::env::var("DATABASE_URL").is_ok() {
        eprintln!("SKIPPED: this test stops its server, which it cannot do to DATABASE_URL");
        return None;
    }
    started()
}

/// A cluster started here, or `None` with a visible message (a failure under `CI`).
fn started() -> Option<Server> {
    match Cluster::start() {
        Ok(cluster) => Some(Server {
            base: format!("postgres://postgres@127.0.0.1:{}", cluster.port),
            cluster: Some(cluster),
        }),
        Err(why) => {
            assert!(
                std::env::var("CI").is_err(),
                "no PostgreSQL for the tests under CI: {why}"
            );
            eprintln!(
                "SKIPPED: PostgreSQL tests need DATABASE_URL or the postgresql package ({why})"
            );
            None
        }
    }
}

impl Server {
    /// A new, empty database; its URL.
    pub async fn database(&self) -> String {
        let name = format!("tb_{:016x}", rand_u64());
        let (client, connection) =
            tokio_postgres::connect(&format!("{}/postgres", self.base), tokio_postgres::NoTls)
                .await
                .expect("connect to the test server");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        drop(client);
        let _ = driver.await;
        format!("{}/{name}", self.base)
    }

    /// A plain client on `url`, for checks and for killing the listener.
    pub async fn client(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        client
    }

    /// Stops the server (this test's own only).
    pub fn stop(&self) {
        self.cluster
            .as_ref()
            .expect("an own server")
            .pg_ctl(&["-m", "immediate", "stop"]);
    }

    /// Turns TLS on (this test's own server only): `cert` and `key` (PEM) become its
    /// certificate and key, and the configuration is reloaded.
    pub async fn enable_tls(&self, cert: &str, key: &str) {
        let cluster = self.cluster.as_ref().expect("an own server");
        for (name, pem) in [("server.crt", cert), ("server.key", key)] {
            let path = cluster.data.join(name);
            std::fs::write(&path, pem).unwrap();
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            if cluster.as_postgres {
                let status = Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(status.success());
            }
        }
        let client = Self::client(&format!("{}/postgres", self.base)).await;
        for statement in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
            client.batch_execute(statement).await.expect("turn TLS on");
        }
        // The reload is asynchronous: wait until new connections see it.
        for _ in 0..100 {
            let client = Self::client(&format!("{}/postgres", self.base)).await;
            let on: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
            if on == "on" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("TLS did not come on");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.cluster.as_ref().expect("an own server").port
    }

    /// Starts it again.
    pub fn start(&self) {
        self.cluster
            .as_ref()
            .expect("an own server")
            .start_server()
            .expect("restart");
    }
}

impl Cluster {
    fn start() -> Result<Self, String> {
        let bin = server_binaries().ok_or("no initdb/pg_ctl under /usr/lib/postgresql")?;
        let root = std::env::temp_dir().join(format!("tower-bearer-pg-{:016x}", rand_u64()));
        let data = root.join("data");
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&root)
                .status()
                .map_err(|e| e.to_string())?;
            if !status.success() {
                return Err("chown to postgres failed (is the postgres user there?)".into());
            }
        }
        let port = free_port();
        let cluster = Self {
            bin,
            data,
            port,
            as_postgres,
        };
        let initdb = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&cluster.data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb: {}",
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        cluster.start_server()?;
        cluster.watchdog(&root);
        Ok(cluster)
    }

    fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
             -c full_page_writes=off -c max_connections=400",
            self.port,
            self.data.parent().unwrap().display()
        );
        let log = self.data.parent().unwrap().join("server.log");
        let output = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&log)
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .stdout(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("pg_ctl start failed: {log}"));
        }
        Ok(())
    }

    fn pg_ctl(&self, args: &[&str]) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A server binary, run as `postgres` when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Stops the cluster and removes its files once this process has exited.
    fn watchdog(&self, root: &Path) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data.display()
            )
        } else {
            format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                self.data.display()
            )
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            root = root.display()
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists() && bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_ne_bytes(bytes)
}

/// A node on the database at `url`: its own `PostgresStore` (named `name` in
/// `pg_stat_activity`) and a registry over it, configured by `configure`.
#[allow(dead_code)]
pub async fn node(
    url: &str,
    name: &str,
    configure: impl FnOnce(
        tower_bearer::registry::RegistryBuilder,
    ) -> tower_bearer::registry::RegistryBuilder,
) -> tower_bearer::Registry {
    use tower_bearer::store::{PostgresOptions, PostgresStore};
    let options = PostgresOptions::default().application_name(name);
    let store = PostgresStore::connect_with(url, options).await.unwrap();
    configure(tower_bearer::Registry::builder(store)).build()
}
