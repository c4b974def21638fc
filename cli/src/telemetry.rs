//! The Prometheus recorder every process installs: one place for metric
//! buckets, and the help lines of `cli/src/metric_catalogue.rs`.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: fine below 50 ms, where the targets are.
const LATENCY_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0,
];

/// Webhook lag buckets, seconds: a healthy endpoint takes well under a
/// second, a failing one is retried for up to a day.
const WEBHOOK_LAG_SECONDS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 86400.0,
];

/// Installs the global recorder, with every metric's help line; histograms
/// ending in `_seconds` get [`LATENCY_SECONDS`] buckets, but the webhook's lag
/// (a whole name wins over a suffix).
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_SECONDS)?
        .set_buckets_for_metric(
            Matcher::Full("tracker_webhooks_lag_seconds".into()),
            &WEBHOOK_LAG_SECONDS,
        )?
        .install_recorder()?;
    crate::metric_catalogue::describe();
    Ok(handle)
}
