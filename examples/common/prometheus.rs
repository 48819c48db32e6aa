//! The Prometheus side of the example server (`--metrics-addr HOST:PORT`): a recorder
//! installed for the whole process, its text format served at `GET /metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the `_seconds` histograms: a store call is a fraction of a millisecond on
/// SQLite, a few on PostgreSQL; the feed's lag should stay well under a second.
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Installs the recorder for the whole process: first thing, so that nothing the
/// registry records (its store's first calls included) is lost.
pub(crate) fn install() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)?
        .install_recorder()?;
    tower_bearer::telemetry::describe();
    Ok(handle)
}

/// Serves `handle` on `addr`; prints `metrics listening on http://ADDR` (the bound
/// address: `addr` may have port 0) to stderr.
pub(crate) async fn serve(
    handle: PrometheusHandle,
    addr: SocketAddr,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("metrics listening on http://{}", listener.local_addr()?);
    // The recorder's histograms are drained on a schedule of the application's.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}
