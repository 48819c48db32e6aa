use std::sync::Arc;
use std::time::Duration;

use super::{Inner, Registry};
use crate::clock::Clock;
use crate::registry::verify::cache::{Cache, Limits};
use crate::registry::verify::intern::Interner;
use crate::registry::verify::usage::UsageTracker;
use crate::scope::{Implications, InvalidScope, Scope};
use crate::store::TokenStore;
use crate::token::{Env, Formats, IssueFormat};

/// Configures a [`Registry`]. Every setting has a production default.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::{MemoryStore, Registry};
/// use tower_bearer::token::{Env, Formats, IssueFormat};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let registry = Registry::builder(MemoryStore::new())
///     .formats(Formats::default().sanctum())
///     .issue_format(IssueFormat::Sanctum)
///     .env(Env::Test)
///     .positive_ttl(Duration::from_secs(30))
///     .build();
/// # let _ = registry;
/// # }
/// ```
#[must_use]
pub struct RegistryBuilder {
    store: Arc<dyn TokenStore>,
    formats: Formats,
    issue_format: IssueFormat,
    env: Option<Env>,
    implications: Implications,
    clock: Clock,
    positive_ttl: Duration,
    negative_ttl: Duration,
    max_positive: usize,
    max_negative: usize,
    usage_flush_interval: Duration,
    default_lifetime: Duration,
    max_lifetime: Option<Duration>,
    declared: Option<Vec<Scope>>,
    strict_scopes: bool,
    store_timeout: Duration,
    stale_if_error: Duration,
    feed_down_ttl: Duration,
    proxies: crate::client_ip::TrustedProxies,
    #[cfg(feature = "exchange")]
    sessions: Option<crate::session::SessionConfig>,
    #[cfg(feature = "activity")]
    activity: Option<crate::activity::ActivityConfig>,
    #[cfg(feature = "webhooks")]
    webhooks: Option<super::Webhooks>,
    #[cfg(feature = "webhooks")]
    webhook_options: Option<crate::webhooks::DeliveryOptions>,
}

impl std::fmt::Debug for RegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("formats", &self.formats)
            .field("issue_format", &self.issue_format)
            .field("env", &self.env)
            .field("positive_ttl", &self.positive_ttl)
            .field("negative_ttl", &self.negative_ttl)
            .field("max_lifetime", &self.max_lifetime)
            .field("store_timeout", &self.store_timeout)
            .field("stale_if_error", &self.stale_if_error)
            .finish_non_exhaustive()
    }
}

impl RegistryBuilder {
    pub(super) fn new(store: Arc<dyn TokenStore>) -> Self {
        Self {
            store,
            formats: Formats::default(),
            issue_format: IssueFormat::default(),
            env: Some(Env::Live),
            implications: Implications::default(),
            clock: Clock::system(),
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_positive: 1_000_000,
            max_negative: 100_000,
            usage_flush_interval: Duration::from_secs(1),
            default_lifetime: Duration::from_secs(180 * 86_400),
            max_lifetime: None,
            declared: None,
            strict_scopes: false,
            store_timeout: Duration::from_secs(1),
            stale_if_error: Duration::from_secs(300),
            feed_down_ttl: Duration::from_secs(1),
            proxies: crate::client_ip::TrustedProxies::none(),
            #[cfg(feature = "exchange")]
            sessions: None,
            #[cfg(feature = "activity")]
            activity: None,
            #[cfg(feature = "webhooks")]
            webhooks: None,
            #[cfg(feature = "webhooks")]
            webhook_options: None,
        }
    }

    /// The proxies whose forwarding header is believed, and which header that is
    /// ([`TrustedProxies::header`](crate::client_ip::TrustedProxies::header)); default
    /// none: the client is the peer. One reading for everything that needs the client's
    /// address: keys' IP allow-lists and the activity log.
    pub fn trusted_proxies(mut self, proxies: crate::client_ip::TrustedProxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// Records every request of every layer over this registry in an activity log
    /// (feature `activity`): see [`activity`](crate::activity). Its writer and pruner run
    /// on the runtime `build` is called on, timed by the registry's clock.
    #[cfg(feature = "activity")]
    #[cfg_attr(docsrs, doc(cfg(feature = "activity")))]
    pub fn activity(mut self, config: crate::activity::ActivityConfig) -> Self {
        self.activity = Some(config);
        self
    }

    /// Sends webhooks (feature `webhooks`): endpoints and the outbox of their messages
    /// are kept in `store` — the registry's own store, so that each event is written in
    /// the transaction of its change — and the management API's `/webhooks` routes manage
    /// the endpoints. Endpoint URLs must be `https` to public addresses unless `targets`
    /// is [`Targets::AllowPrivate`](crate::webhooks::Targets::AllowPrivate). A task
    /// delivers the messages ([`DeliveryOptions`](crate::webhooks::DeliveryOptions) by
    /// default; see [`webhook_options`](Self::webhook_options)); call
    /// [`Registry::stop_webhooks`] at shutdown.
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn webhooks(
        mut self,
        store: impl crate::store::webhooks::WebhookStore,
        targets: crate::webhooks::Targets,
    ) -> Self {
        self.webhooks = Some(super::Webhooks::new(
            Arc::new(store),
            targets,
            crate::webhooks::DeliveryOptions::default(),
        ));
        self
    }

    /// How webhooks are delivered: retries, concurrency, expiry thresholds (with
    /// [`webhooks`](Self::webhooks); alone, nothing is delivered).
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn webhook_options(mut self, options: crate::webhooks::DeliveryOptions) -> Self {
        self.webhook_options = Some(options);
        self
    }

    /// Accepts session access tokens (JWTs signed with the configured keys) and lets
    /// [`Registry::login`] mint them (feature `exchange`). Without it, a JWT is a
    /// malformed credential.
    #[cfg(feature = "exchange")]
    #[cfg_attr(docsrs, doc(cfg(feature = "exchange")))]
    pub fn sessions(mut self, config: crate::session::SessionConfig) -> Self {
        self.sessions = Some(config);
        self
    }

    /// The wire formats accepted (default: `sk_live_…`/`sk_test_…` only). The issue
    /// format is always added.
    pub fn formats(mut self, formats: Formats) -> Self {
        self.formats = formats;
        self
    }

    /// The format new tokens are minted in (default [`IssueFormat::Prefixed`]).
    pub fn issue_format(mut self, format: IssueFormat) -> Self {
        self.issue_format = format;
        self
    }

    /// Accepts only tokens of this environment (default `live`).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Accepts tokens of both environments.
    pub fn any_env(mut self) -> Self {
        self.env = None;
        self
    }

    /// Which scopes imply which (default `admin ⊇ write ⊇ read`).
    pub fn implications(mut self, implications: Implications) -> Self {
        self.implications = implications;
        self
    }

    /// Declares the application's scopes: issuing (or granting through the management
    /// API) a scope that is not declared fails with
    /// [`RegistryError::UndeclaredScope`](super::RegistryError::UndeclaredScope), a 422
    /// naming it, so that a typo (`billing:exprot`) never becomes a token nobody can
    /// use. `read`, `write`, `admin`, `*` and the scopes named in the
    /// [implications](Self::implications) are always declared. Without a declaration any
    /// valid scope name may be issued.
    ///
    /// ```
    /// use tower_bearer::{MemoryStore, Registry};
    /// use tower_bearer::registry::{IssueRequest, RegistryError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::builder(MemoryStore::new())
    ///     .declare_scopes(["billing:export", "reports:read"])?
    ///     .build();
    /// let typo = IssueRequest::new("t", "acme")?.scopes(["billing:exprot"])?;
    /// assert!(matches!(registry.issue(typo).await, Err(RegistryError::UndeclaredScope(_))));
    /// # Ok(())
    /// # }
    /// ```
    pub fn declare_scopes<I, S>(mut self, scopes: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let declared = self.declared.get_or_insert_with(Vec::new);
        for scope in scopes {
            declared.push(Scope::new(scope.as_ref())?);
        }
        Ok(self)
    }

    /// Makes a scope that code requires but the registry does not
    /// [declare](Self::declare_scopes) an error rather than a warning: a gRPC scope map
    /// naming one panics where it is given to the layer, and a `Scoped` extractor or
    /// `RequireScopeLayer` asking for one answers 500 (logged at ERROR) instead of 403.
    /// Without it, each such scope is warned about once, naming it and the declared
    /// ones. Only a registry that declares its scopes can tell.
    pub fn strict_scopes(mut self) -> Self {
        self.strict_scopes = true;
        self
    }

    /// The clock expiry is measured against (default: the system clock).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// How long a verified token is served from the cache before it is re-read from the
    /// store (default 60 s). This bounds how long a deletion made behind the registry's
    /// back (another node without a change feed, a manual `DELETE`) goes unnoticed.
    pub fn positive_ttl(mut self, ttl: Duration) -> Self {
        self.positive_ttl = ttl;
        self
    }

    /// How long an unknown (well-formed) token is remembered as unknown (default 10 s).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// At most this many verified tokens are cached (default 1,000,000). Beyond that,
    /// tokens are verified against the store without being cached.
    pub fn max_cached_tokens(mut self, max: usize) -> Self {
        self.max_positive = max;
        self
    }

    /// At most this many unknown or revoked digests are remembered (default 100,000);
    /// the oldest are forgotten first. This bounds the memory a flood of distinct,
    /// well-formed junk tokens can take.
    pub fn max_negative_entries(mut self, max: usize) -> Self {
        self.max_negative = max;
        self
    }

    /// How often usage (`last_used_at`, counts) is written to the store (default 1 s).
    pub fn usage_flush_interval(mut self, interval: Duration) -> Self {
        self.usage_flush_interval = interval;
        self
    }

    /// The lifetime of tokens issued with [`Expiry::Default`](super::Expiry::Default)
    /// (default 180 days).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// The longest lifetime a token may be issued with (default: no policy beyond the
    /// hard limit of 100 years). Issuing a token that never expires, or expires later
    /// than this, fails with [`RegistryError::LifetimeTooLong`](super::RegistryError::LifetimeTooLong)
    /// (the management API answers 422 naming the field); the
    /// [default lifetime](Self::default_lifetime) is shortened to it.
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = Some(max);
        self
    }

    /// How long a cache miss waits for the store (default 1 s). Past it the request is
    /// answered "unavailable" (HTTP 503 with `Retry-After`, gRPC `UNAVAILABLE`), and so
    /// are the requests waiting on the same lookup: a hung store never hangs requests.
    ///
    /// Stores that answer in place on the calling thread (the SQLite store) cannot be
    /// interrupted mid-query; the limit applies when they return.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// How long after its freshness window (the [positive TTL](Self::positive_ttl)) a
    /// cached token may still be accepted while the store fails or times out (default
    /// 5 minutes; zero disables). Never for a token known to be revoked or expired;
    /// tokens that are not cached get 503 during the outage.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = window;
        self
    }

    /// While the store's change feed is down (a PostgreSQL listener reconnecting), cached
    /// tokens are read again from the store after at most this long (default 1 s), so
    /// that a revocation made on another node still takes effect within that bound.
    pub fn feed_down_ttl(mut self, ttl: Duration) -> Self {
        self.feed_down_ttl = ttl;
        self
    }

    /// Builds the registry and starts its background tasks (usage flushing, cache
    /// sweeping and, if the store has one, the change feed). The tasks stop when the last
    /// clone of the registry is dropped.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like `tokio::spawn` (the panic points at the caller's
    /// line).
    #[track_caller]
    pub fn build(self) -> Registry {
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        let changes = self.store.changes();
        // Every store call timed, for the metrics (none is on the hit path).
        #[cfg(feature = "metrics")]
        let store = crate::store::TimedStore::wrap(self.store.clone());
        #[cfg(not(feature = "metrics"))]
        let store = self.store.clone();
        let declared = self.declared.map(|declared| {
            let mut all: std::collections::BTreeSet<Scope> = declared.into_iter().collect();
            for builtin in [Scope::READ, Scope::WRITE, Scope::ADMIN, Scope::ALL] {
                all.insert(Scope::new(builtin).expect("built-in scopes are valid"));
            }
            all.extend(self.implications.named());
            all
        });
        let inner = Arc::new(Inner {
            formats: self.formats.accepting(self.issue_format),
            issue_format: self.issue_format,
            env: self.env,
            interner: Interner::new(self.implications),
            clock: self.clock.clone(),
            cache: Cache::new(Limits {
                positive_ttl: nanos(self.positive_ttl),
                negative_ttl: nanos(self.negative_ttl),
                stale_if_error: nanos(self.stale_if_error),
                feed_down_ttl: nanos(self.feed_down_ttl),
                max_positive: self.max_positive,
                max_negative: self.max_negative,
            }),
            flights: Default::default(),
            usage: UsageTracker::new(),
            default_lifetime: match self.max_lifetime {
                Some(max) => self.default_lifetime.min(max),
                None => self.default_lifetime,
            },
            max_lifetime: self
                .max_lifetime
                .unwrap_or(super::HARD_MAX_LIFETIME)
                .min(super::HARD_MAX_LIFETIME),
            lifetime_policy: self.max_lifetime.is_some(),
            store_timeout: self.store_timeout,
            declared,
            health: super::StoreHealth::heard_at(self.clock.now_nanos()),
            mounts: Default::default(),
            strict_scopes: self.strict_scopes,
            undeclared: Default::default(),
            store: store.clone(),
            tasks: Default::default(),
            #[cfg(feature = "exchange")]
            sessions: self
                .sessions
                .map(crate::registry::sessions::keys::Sessions::new),
            #[cfg(feature = "activity")]
            activity: self.activity.map(|mut config| {
                config.proxies = self.proxies.clone();
                crate::activity::ActivityLog::start(config, self.clock.clone())
            }),
            #[cfg(feature = "webhooks")]
            webhooks: self.webhooks.map(|mut webhooks| {
                if let Some(options) = self.webhook_options {
                    webhooks.set_options(options);
                }
                webhooks
            }),
            meters: super::meter::Meters::new(super::meter::MeterContext {
                store,
                clock: self.clock.clone(),
                timeout: self.store_timeout,
                proxies: self.proxies.clone(),
            }),
        });
        let registry = Registry { inner };
        registry.spawn_housekeeping(self.usage_flush_interval);
        if let Some(changes) = changes {
            registry.spawn_change_feed(changes);
        }
        #[cfg(feature = "webhooks")]
        registry.spawn_webhook_delivery();
        registry
    }
}
