//! The example server: SQLite storage, the management API, a few protected routes.
//!
//! ```sh
//! cargo run --example server --features full
//! cargo run --example server --features full -- --addr 127.0.0.1:8080 --db /tmp/t.db --style drf
//! ```
//!
//! On first start with a new database it prints `admin token: <token>` (scope `admin`,
//! tenant `default`, never expires) to stdout, once per database, ever; with
//! `--admin-token-file PATH` it writes it to a new file readable by its owner only
//! instead. Logs go to stderr (`RUST_LOG`).
//!
//! Routes: `GET /health` and `GET /openapi.json` (no auth), `POST /auth/login` (an API
//! key in the body, no header: answers a short-lived access token), `GET /me` (any
//! token), `GET /ping` (any token; the load test's authenticated twin of `/health`),
//! `GET /items` (scope `read`), `GET /items/export` (scope `read`, weighing ten requests
//! against a key's limits), `POST /items` (scope `write`), and the management API
//! under `/tokens`, `/sessions` and `/activity` (scope `admin`); the API Tokens page at
//! `/dashboard` (public: the page asks for an admin key).
//!
//! Keys may carry rate limits, credits and IP allow-lists (`rate_limits`, `credits`,
//! `allowed_ips` in `POST /tokens` and `PATCH /tokens/{id}`): answers to rate-limited
//! keys carry the `RateLimit` fields (`--rate-limit-headers github` adds GitHub's).
//!
//! Every request made with a token is recorded in the activity log (in the same
//! database), read with `GET /tokens/{id}/activity` and `GET /activity`. Behind a
//! reverse proxy, `--trusted-proxies 10.0.0.0/8,127.0.0.1` makes the log record the
//! client address the proxy reports in `X-Forwarded-For` (`--forwarded-header forwarded`
//! for proxies that write RFC 7239's `Forwarded` instead; the other header is ignored).
//!
//! Access tokens are signed with the key in `--session-key-file`, else in the
//! `TOWER_BEARER_SESSION_KEY` environment variable (hex), else in
//! `$XDG_STATE_HOME/tower-bearer/session-key` (`~/.local/state/…`, created with a random
//! key on first start): never beside the database, whose backups must not carry it. A
//! key file readable by group or others is refused. Nodes given the same key accept each
//! other's access tokens.
//!
//! `POST /secret-scanning/github` and `POST /secret-scanning/gitlab` take GitHub's and
//! GitLab's signed reports of leaked keys and revoke them (public: the signature is the
//! authentication); `--print-token-pattern` prints the pattern to register with them.
//!
//! `--metrics-addr 127.0.0.1:9100` serves the crate's metrics in Prometheus's text format
//! at `GET /metrics` on that address (see `tower_bearer::telemetry`).
//!
//! Locked out (the last admin token revoked)? `--issue-admin-token [TENANT]` mints a new
//! admin token against the database, prints it once and exits.

#[path = "common/bootstrap.rs"]
mod bootstrap;
#[path = "common/prometheus.rs"]
mod prometheus;
#[path = "common/session_key.rs"]
mod session_key;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_bearer::TokenStore;
use tower_bearer::activity::ActivityConfig;
use tower_bearer::admin::{ErrorStyle, ManagementApi};
use tower_bearer::client_ip::{ForwardedHeader, TrustedProxies};
use tower_bearer::dashboard::Dashboard;
use tower_bearer::exchange::LoginApi;
use tower_bearer::extract::{ReadScope, Scoped, WriteScope};
use tower_bearer::layer::{BearerAuth, CostLayer};
use tower_bearer::registry::DEFAULT_TENANT;
use tower_bearer::reject::Preset;
use tower_bearer::scanning::SecretScanning;
use tower_bearer::session::SessionConfig;
use tower_bearer::store::activity::ActivityStore;
use tower_bearer::store::webhooks::WebhookStore;
use tower_bearer::store::{PostgresStore, SqliteStore};
use tower_bearer::token::{Env, Formats, IssueFormat};
use tower_bearer::webhooks::{DeliveryOptions, Targets};
use tower_bearer::{BearerAuthLayer, Principal, Registry, TokenId};

const USAGE: &str = "\
usage: server [--addr HOST:PORT] [--db PATH] [--style laravel|drf|envelope]
              [--format prefixed|sanctum] [--env live|test]
              [--max-lifetime-days N] [--admin-token-file PATH] [--accept-scheme Token]
              [--session-lifetime SECONDS] [--session-key-file PATH]
              [--trusted-proxies CIDR,…] [--forwarded-header x-forwarded-for|forwarded]
              [--activity on|off] [--rate-limit-headers ietf|github]
              [--github-keys-url URL] [--gitlab-keys-url URL] [--token-type NAME]
              [--metrics-addr HOST:PORT] [--allow-private-webhooks]
              [--no-webhook-delivery]
       server --issue-admin-token [TENANT] [--db PATH]
       server --print-token-pattern

  --addr               where to listen (default 127.0.0.1:3000)
  --db                 the SQLite file (default tower-bearer.db, created if missing, mode 0600),
                       or postgres://user:password@host:port/dbname: one database for many nodes
  --style              the error bodies (of the layer and the management API):
                       laravel (default), drf or envelope
  --format             the format of issued tokens: prefixed (sk_live_…, default) or sanctum (id|secret)
  --env                the accepted token environment: live (default) or test
  --max-lifetime-days  the longest lifetime a token may be issued with (default: no limit)
  --admin-token-file   write the bootstrap admin token to this new file (mode 0600), not stdout
  --accept-scheme      also accept `Authorization: <scheme> <token>` (e.g. Token, for DRF clients)
  --session-lifetime   seconds an access token from POST /auth/login is valid (default 7200)
  --session-key-file   the key access tokens are signed with, in hex, mode 0600 (default:
                       $TOWER_BEARER_SESSION_KEY (hex), else
                       $XDG_STATE_HOME/tower-bearer/session-key (~/.local/state/…), created
                       with a random key when missing; never beside the database)
  --trusted-proxies    proxies whose forwarding header is believed, for the activity log
                       and keys' IP allow-lists (comma-separated addresses or networks;
                       default none)
  --forwarded-header   the header those proxies write the client address into:
                       x-forwarded-for (default) or forwarded; the other one is ignored
  --activity           record every request with a token in the activity log: on (default)
                       or off (the load test measures authentication alone with off)
  --rate-limit-headers the fields answers to rate-limited keys carry: ietf (RateLimit and
                       RateLimit-Policy, default) or github (those and X-RateLimit-*)
  --github-keys-url    where GitHub's secret scanning keys are fetched from (default
                       https://api.github.com/meta/public_keys/secret_scanning)
  --gitlab-keys-url    where GitLab's keys are fetched from (without it, POST
                       /secret-scanning/gitlab answers 503)
  --token-type         the token type registered with the secret scanners for this
                       server's tokens (default tower_bearer_api_key)
  --metrics-addr       serve the metrics in Prometheus's text format at
                       http://HOST:PORT/metrics (default: not served)
  --allow-private-webhooks  let webhook endpoints be plain http and on private
                       addresses (127.0.0.1…): for tests, never on a shared service
  --no-webhook-delivery  write webhook events but deliver none from this process
                       (another node delivers them; a test server reaches nothing)
  --print-token-pattern  print the regular expression to register with the secret
                       scanners, and exit
  --issue-admin-token  mint a new admin token for TENANT (default `default`) in the database,
                       print it once, and exit: the way back in after the last admin is gone";

struct Args {
    addr: SocketAddr,
    db: String,
    style: Preset,
    error_style: ErrorStyle,
    format: IssueFormat,
    env: Env,
    max_lifetime: Option<Duration>,
    admin_token_file: Option<PathBuf>,
    accept_scheme: Option<String>,
    session_lifetime: Duration,
    session_key_file: Option<PathBuf>,
    trusted_proxies: TrustedProxies,
    forwarded_header: ForwardedHeader,
    /// `--activity off`: no activity log.
    activity: bool,
    /// `--rate-limit-headers github`: GitHub's `X-RateLimit-*` too.
    github_rate_limit_headers: bool,
    /// `--issue-admin-token`: the tenant to mint a recovery admin for, instead of serving.
    recovery_tenant: Option<String>,
    /// Where the secret scanners' keys come from, and the type our tokens are reported as.
    github_keys_url: Option<String>,
    gitlab_keys_url: Option<String>,
    token_type: String,
    /// `--print-token-pattern`: print the scanning pattern instead of serving.
    print_token_pattern: bool,
    /// `--metrics-addr`: where Prometheus scrapes.
    metrics_addr: Option<SocketAddr>,
    /// `--allow-private-webhooks`: endpoints on private addresses and plain http too.
    webhook_targets: Targets,
    /// Not `--no-webhook-delivery`.
    deliver_webhooks: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        db: "tower-bearer.db".to_owned(),
        style: Preset::laravel(),
        error_style: ErrorStyle::Laravel,
        format: IssueFormat::Prefixed,
        trusted_proxies: TrustedProxies::none(),
        forwarded_header: ForwardedHeader::XForwardedFor,
        activity: true,
        github_rate_limit_headers: false,
        env: Env::Live,
        max_lifetime: None,
        admin_token_file: None,
        accept_scheme: None,
        session_lifetime: tower_bearer::session::DEFAULT_LIFETIME,
        session_key_file: None,
        recovery_tenant: None,
        github_keys_url: None,
        gitlab_keys_url: None,
        token_type: tower_bearer::scanning::DEFAULT_TOKEN_TYPE.to_owned(),
        print_token_pattern: false,
        metrics_addr: None,
        webhook_targets: Targets::Public,
        deliver_webhooks: true,
    };
    let optional = [
        "--issue-admin-token",
        "--print-token-pattern",
        "--allow-private-webhooks",
        "--no-webhook-delivery",
    ];
    bootstrap::parse_flags(args, &optional, |flag, value| {
        match flag {
            "--addr" => parsed.addr = value.parse().map_err(|e| format!("--addr {value}: {e}"))?,
            "--metrics-addr" => {
                parsed.metrics_addr = Some(
                    value
                        .parse()
                        .map_err(|e| format!("--metrics-addr {value}: {e}"))?,
                );
            }
            "--db" => parsed.db = value,
            "--style" => {
                (parsed.style, parsed.error_style) = match value.as_str() {
                    "laravel" => (Preset::laravel(), ErrorStyle::Laravel),
                    "drf" => (Preset::drf(), ErrorStyle::Drf),
                    "envelope" => (Preset::envelope(), ErrorStyle::Envelope),
                    other => {
                        return Err(format!(
                            "--style {other}: expected laravel, drf or envelope"
                        ));
                    }
                }
            }
            "--format" => {
                parsed.format = match value.as_str() {
                    "prefixed" => IssueFormat::Prefixed,
                    "sanctum" => IssueFormat::Sanctum,
                    other => return Err(format!("--format {other}: expected prefixed or sanctum")),
                }
            }
            "--env" => parsed.env = value.parse().map_err(|e| format!("--env {value}: {e}"))?,
            "--max-lifetime-days" => {
                let days: u64 = value
                    .parse()
                    .ok()
                    .filter(|days| (1..=36_500).contains(days))
                    .ok_or_else(|| format!("--max-lifetime-days {value}: expected 1 to 36500"))?;
                parsed.max_lifetime = Some(Duration::from_secs(days * 86_400));
            }
            "--admin-token-file" => parsed.admin_token_file = Some(PathBuf::from(value)),
            "--accept-scheme" => parsed.accept_scheme = Some(value),
            "--session-lifetime" => {
                let seconds: u64 = value
                    .parse()
                    .ok()
                    .filter(|seconds| (1..=365 * 86_400).contains(seconds))
                    .ok_or_else(|| {
                        format!("--session-lifetime {value}: expected 1 to 31536000 seconds")
                    })?;
                parsed.session_lifetime = Duration::from_secs(seconds);
            }
            "--session-key-file" => parsed.session_key_file = Some(PathBuf::from(value)),
            "--trusted-proxies" => {
                parsed.trusted_proxies = TrustedProxies::new(value.split(','))
                    .map_err(|e| format!("--trusted-proxies {value}: {e}"))?;
            }
            "--forwarded-header" => {
                parsed.forwarded_header = value
                    .parse()
                    .map_err(|e| format!("--forwarded-header {value}: {e}"))?;
            }
            "--activity" => {
                parsed.activity = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    other => return Err(format!("--activity {other}: expected on or off")),
                }
            }
            "--rate-limit-headers" => {
                parsed.github_rate_limit_headers = match value.as_str() {
                    "ietf" => false,
                    "github" => true,
                    other => {
                        return Err(format!(
                            "--rate-limit-headers {other}: expected ietf or github"
                        ));
                    }
                }
            }
            "--github-keys-url" => parsed.github_keys_url = Some(value),
            "--gitlab-keys-url" => parsed.gitlab_keys_url = Some(value),
            "--token-type" => parsed.token_type = value,
            "--print-token-pattern" => parsed.print_token_pattern = true,
            "--allow-private-webhooks" => parsed.webhook_targets = Targets::AllowPrivate,
            "--no-webhook-delivery" => parsed.deliver_webhooks = false,
            "--issue-admin-token" => {
                parsed.recovery_tenant = Some(if value.is_empty() {
                    DEFAULT_TENANT.to_owned()
                } else {
                    value
                })
            }
            other => return Err(format!("unknown flag {other}")),
        }
        Ok(())
    })?;
    Ok(parsed)
}

/// A toy resource, kept in memory per tenant.
#[derive(Clone, Serialize)]
struct Item {
    id: usize,
    name: String,
    created_by: TokenId,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

type Items = Arc<Mutex<BTreeMap<String, Vec<Item>>>>;

async fn me(principal: Principal) -> Json<Principal> {
    Json(principal)
}

async fn list_items(State(items): State<Items>, principal: Scoped<ReadScope>) -> Json<Vec<Item>> {
    let items = items.lock().unwrap_or_else(|e| e.into_inner());
    Json(items.get(principal.tenant()).cloned().unwrap_or_default())
}

async fn create_item(
    State(items): State<Items>,
    principal: Scoped<WriteScope>,
    Json(new): Json<NewItem>,
) -> (StatusCode, Json<Item>) {
    let mut items = items.lock().unwrap_or_else(|e| e.into_inner());
    let tenant_items = items.entry(principal.tenant().to_owned()).or_default();
    let item = Item {
        id: tenant_items.len() + 1,
        name: new.name,
        created_by: principal.id(),
    };
    tenant_items.push(item.clone());
    (StatusCode::CREATED, Json(item))
}

fn app(registry: Registry, args: &Args) -> BearerAuth<Router> {
    let mut auth = BearerAuthLayer::new(registry.clone())
        .renderer(args.style.clone())
        .public([
            "/health",
            "/openapi.json",
            "/auth/login",
            "/dashboard",
            "/dashboard/*",
            // Reports of leaked keys: their signature is their authentication.
            "/secret-scanning/*",
        ]);
    if let Some(scheme) = &args.accept_scheme {
        auth = auth.accept_scheme(scheme);
    }
    if args.github_rate_limit_headers {
        auth = auth.github_rate_limit_headers();
    }
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        // The OpenAPI document of the management API and the login (public, like the
        // docs that describe them).
        .route("/openapi.json", get(|| async { Json(openapi()) }))
        .route("/me", get(me))
        // The cheapest authenticated route: the load test compares it with `/health`.
        .route("/ping", get(|| async { "pong" }))
        .route("/items", get(list_items).post(create_item))
        // An expensive route: it weighs ten requests against a key's limits and credits.
        .route(
            "/items/export",
            get(list_items).route_layer(CostLayer::new(10)),
        )
        .merge(
            LoginApi::new(registry.clone())
                .error_style(args.error_style)
                .router(),
        )
        // The API Tokens page, at /dashboard (it asks for a key itself).
        .merge(Dashboard::new(registry.clone()).router())
        // GitHub's and GitLab's reports of leaked keys.
        .merge(secret_scanning(registry.clone(), args))
        .merge(
            ManagementApi::new(registry)
                .error_style(args.error_style)
                .router(),
        )
        .with_state(Items::default());
    // Every route is authenticated except `/health`, `/openapi.json` and `/auth/login`,
    // whenever it was added.
    auth.protect(router)
}

/// The secret scanning partner endpoint: every token this server issues in its prefixed
/// format is reported as `--token-type`.
fn secret_scanning(registry: Registry, args: &Args) -> Router<Items> {
    let mut scanning = SecretScanning::new(registry.clone());
    if let Some(format) = registry.formats().prefixed_format() {
        scanning = scanning.token_type(&format!("{}_", format.prefix()), &args.token_type);
    }
    if let Some(url) = &args.github_keys_url {
        scanning = scanning.github_keys_url(url);
    }
    if let Some(url) = &args.gitlab_keys_url {
        scanning = scanning.gitlab_keys_url(url);
    }
    scanning.router()
}

/// The served OpenAPI document: the management API and the login route.
fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = tower_bearer::admin::openapi();
    document.merge(tower_bearer::exchange::openapi());
    document.merge(tower_bearer::scanning::openapi());
    document
}

/// The store `--db` names: PostgreSQL for a `postgres://` URL (shared by every node on
/// that database), otherwise a SQLite file. It keeps the activity log and the webhook
/// endpoints too.
async fn open_store(db: &str) -> Result<Stores, String> {
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let store = PostgresStore::connect(db).await.map_err(|error| {
            format!("cannot use PostgreSQL at {}: {}", redact(db), chain(&error))
        })?;
        return Ok((
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            Arc::new(store),
        ));
    }
    let store = SqliteStore::open(db)
        .await
        .map_err(|error| format!("cannot open SQLite database {db}: {error}"))?;
    Ok((
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(store),
    ))
}

/// One database, seen as the token store, the activity log's and the webhooks'.
type Stores = (
    Arc<dyn TokenStore>,
    Arc<dyn ActivityStore>,
    Arc<dyn WebhookStore>,
);

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.print_token_pattern {
        // The formats this server issues in (`--format`): only the prefixed one has a
        // pattern a scanner can recognise.
        match Formats::default().scanning_pattern() {
            Some(pattern) if args.format == IssueFormat::Prefixed => println!("{pattern}"),
            _ => {
                eprintln!(
                    "error: sanctum tokens (id|secret) have no prefix a scanner can recognise"
                );
                std::process::exit(2);
            }
        }
        return Ok(());
    }
    let metrics = args
        .metrics_addr
        .map(|_| prometheus::install())
        .transpose()?;
    let (store, activity, webhooks) = match open_store(&args.db).await {
        Ok(stores) => stores,
        Err(message) => {
            // A configuration error, reported on one line like a bad flag.
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    let keys = session_key::load_or_exit(args.session_key_file.as_deref());
    let sessions = SessionConfig::new(keys).lifetime(args.session_lifetime)?;
    let mut builder = Registry::builder(store)
        .formats(Formats::default().sanctum())
        .issue_format(args.format)
        .env(args.env)
        .sessions(sessions)
        .trusted_proxies(args.trusted_proxies.clone().header(args.forwarded_header))
        .webhooks(webhooks, args.webhook_targets)
        .webhook_options(DeliveryOptions::default().deliver_here(args.deliver_webhooks));
    if args.activity {
        builder = builder.activity(ActivityConfig::new(activity));
    }
    if let Some(max) = args.max_lifetime {
        builder = builder.max_lifetime(max);
    }
    let registry = builder.build();
    if let Some(tenant) = &args.recovery_tenant {
        let issued = registry.issue_recovery_admin(tenant).await?;
        println!("admin token: {}", issued.secret.expose_secret());
        return Ok(());
    }
    bootstrap::bootstrap_admin(&registry, args.admin_token_file.as_deref()).await?;
    session_key::reload_on_hangup(registry.clone(), args.session_key_file.clone());

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let shutdown = bootstrap::shutdown_signal();
    eprintln!("listening on http://{}", listener.local_addr()?);
    if let (Some(handle), Some(addr)) = (metrics, args.metrics_addr) {
        prometheus::serve(handle, addr).await?;
    }
    // With the peer's address, which the activity log records.
    let app = app(registry.clone(), &args).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    // The webhook deliveries under way, so that none is sent twice after a restart;
    // then the usage counts and the activity rows still waiting.
    registry.stop_webhooks().await;
    let flushed = registry.flush().await?;
    tracing::info!(tokens = flushed, "usage flushed");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    bootstrap::init_tracing();
    bootstrap::run_main(USAGE, parse_args(std::env::args().skip(1)), run).await
}
