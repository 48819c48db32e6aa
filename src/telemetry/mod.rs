//! Metrics an operator can alert on (feature `metrics`), emitted through the
//! [`metrics`](https://docs.rs/metrics) facade: install any recorder (Prometheus,
//! OpenTelemetry, statsd) and they appear; without one they cost nothing measurable.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `tower_bearer_requests_total` | counter | `outcome`: `ok`, `missing`, `invalid_request`, `malformed`, `unknown`, `expired`, `revoked`, `wrong_env`, `tenant_mismatch`, `changed`, `insufficient_scope`, `forbidden`, `ip_denied`, `rate_limited`, `credits_exhausted`, `unavailable` |
//! | `tower_bearer_cache_lookups_total` | counter | `result`: `hit`, `miss`, `negative`, `stale` |
//! | `tower_bearer_store_duration_seconds` | histogram | `op` (the [`TokenStore`](crate::store::TokenStore) method), `backend` (`memory`, `sqlite`, `postgres`, `custom`), `result` (`ok`, `not_found`, `conflict`, `error`) |
//! | `tower_bearer_feed_lag_seconds` | histogram | — (PostgreSQL: from a change's commit to this node applying it) |
//! | `tower_bearer_feed_up` | gauge | — (1 while the change feed is connected and heard from) |
//! | `tower_bearer_feed_reconnects_total` | counter | — |
//! | `tower_bearer_activity_dropped_total` | counter | — |
//! | `tower_bearer_sessions_issued_total` | counter | — |
//! | `tower_bearer_tokens_cached` | gauge | — |
//!
//! No label carries a token id, a tenant or a path: their number is unbounded.
//!
//! The hit path never calls the recorder: requests and cache lookups are counted per
//! thread, without a lock or a contended cache line, and published by the registry's
//! background task once per usage flush (every second by default), which is also when
//! the gauges are read. Store timings and feed events are recorded as they happen (they
//! are not on the hit path).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In the application, once, before serving (here: metrics-util's debugging recorder;
//! // metrics-exporter-prometheus's `PrometheusBuilder` in production).
//! let recorder = metrics_util::debugging::DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! recorder.install().unwrap();
//! tower_bearer::telemetry::describe();
//!
//! let registry = tower_bearer::Registry::builder(tower_bearer::MemoryStore::new()).build();
//! let _ = registry.check("sk_live_not_a_token");
//! registry.publish_metrics();
//! let names: Vec<String> = snapshotter
//!     .snapshot()
//!     .into_vec()
//!     .into_iter()
//!     .map(|(key, ..)| key.key().name().to_owned())
//!     .collect();
//! assert!(names.iter().any(|name| name == tower_bearer::telemetry::CACHE_LOOKUPS_TOTAL));
//! # }
//! ```

use crate::counting as counts;

/// Requests through the layer, by `outcome` (counter).
pub const REQUESTS_TOTAL: &str = "tower_bearer_requests_total";
/// Cache lookups, by `result` (counter).
pub const CACHE_LOOKUPS_TOTAL: &str = "tower_bearer_cache_lookups_total";
/// Store calls' durations, by `op`, `backend` and `result` (histogram, seconds).
pub const STORE_DURATION_SECONDS: &str = "tower_bearer_store_duration_seconds";
/// From a change's commit to this node applying it (histogram, seconds; PostgreSQL).
pub const FEED_LAG_SECONDS: &str = "tower_bearer_feed_lag_seconds";
/// 1 while the change feed is connected and heard from, else 0 (gauge).
pub const FEED_UP: &str = "tower_bearer_feed_up";
/// Change feed connections re-established after a loss (counter).
pub const FEED_RECONNECTS_TOTAL: &str = "tower_bearer_feed_reconnects_total";
/// Activity rows dropped because the log's queue was full (counter).
pub const ACTIVITY_DROPPED_TOTAL: &str = "tower_bearer_activity_dropped_total";
/// Session access tokens issued by `Registry::login` (counter).
pub const SESSIONS_ISSUED_TOTAL: &str = "tower_bearer_sessions_issued_total";
/// Verified tokens in the registry's cache (gauge).
pub const TOKENS_CACHED: &str = "tower_bearer_tokens_cached";
/// Webhook delivery attempts, by `result`: `delivered`, `failed` (retried later) or
/// `given_up` (the last attempt failed) (counter).
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "tower_bearer_webhook_deliveries_total";

/// Gives the installed recorder every metric's unit and description (exporters show them
/// as `# HELP` and `# UNIT`). Call it once after installing the recorder.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests through the bearer layer, by outcome."
    );
    describe_counter!(
        CACHE_LOOKUPS_TOTAL,
        Unit::Count,
        "Token cache lookups, by result."
    );
    describe_histogram!(
        STORE_DURATION_SECONDS,
        Unit::Seconds,
        "Token store calls, by operation, backend and result."
    );
    describe_histogram!(
        FEED_LAG_SECONDS,
        Unit::Seconds,
        "From a change's commit in the store to this node applying it."
    );
    describe_gauge!(
        FEED_UP,
        "1 while the store's change feed is connected and heard from."
    );
    describe_counter!(
        FEED_RECONNECTS_TOTAL,
        Unit::Count,
        "Change feed connections re-established after a loss."
    );
    describe_counter!(
        ACTIVITY_DROPPED_TOTAL,
        Unit::Count,
        "Activity rows dropped because the log's queue was full."
    );
    describe_counter!(
        SESSIONS_ISSUED_TOTAL,
        Unit::Count,
        "Session access tokens issued."
    );
    describe_gauge!(
        TOKENS_CACHED,
        Unit::Count,
        "Verified tokens in the registry's cache."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        Unit::Count,
        "Webhook delivery attempts, by result."
    );
}

/// Publishes what was counted per thread since the last call, and sets the gauges
/// (`tokens` cached, and the activity log's drops so far, when it has one).
pub(crate) fn publish(tokens: usize, activity_dropped: Option<u64>) {
    use ::metrics::{counter, gauge};
    let (requests, lookups) = counts::take_new();
    // Every series, zero included: a rate over a series that does not exist yet is no
    // rate at all, and alerts on it stay silent.
    for (outcome, new) in counts::Outcome::ALL.into_iter().zip(requests) {
        counter!(REQUESTS_TOTAL, "outcome" => outcome.as_str()).increment(new);
    }
    for (result, new) in counts::Lookup::ALL.into_iter().zip(lookups) {
        counter!(CACHE_LOOKUPS_TOTAL, "result" => result.as_str()).increment(new);
    }
    #[allow(clippy::cast_precision_loss)] // a gauge is a float; a cache holds < 2^53
    gauge!(TOKENS_CACHED).set(tokens as f64);
    if let Some(dropped) = activity_dropped {
        counter!(ACTIVITY_DROPPED_TOTAL).absolute(dropped);
    }
}

/// Records a change applied `lag` after it was committed.
#[cfg(feature = "postgres")]
pub(crate) fn feed_lag(lag: std::time::Duration) {
    ::metrics::histogram!(FEED_LAG_SECONDS).record(lag.as_secs_f64());
}

/// Sets whether the change feed is up.
pub(crate) fn feed_up(up: bool) {
    ::metrics::gauge!(FEED_UP).set(if up { 1.0 } else { 0.0 });
}

/// Counts a change feed connection re-established.
#[cfg(feature = "postgres")]
pub(crate) fn feed_reconnected() {
    ::metrics::counter!(FEED_RECONNECTS_TOTAL).increment(1);
}

/// Counts a session issued.
#[cfg(feature = "exchange")]
pub(crate) fn session_issued() {
    ::metrics::counter!(SESSIONS_ISSUED_TOTAL).increment(1);
}

/// Counts a webhook delivery attempt that ended as `result` (`delivered`, `failed`,
/// `given_up`).
#[cfg(feature = "webhooks")]
pub(crate) fn webhook_attempt(result: &'static str) {
    ::metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "result" => result).increment(1);
}
