//! The Prometheus recorder every process installs: one place for metric
//! buckets, and the help lines of `cli/src/metric_catalogue.rs`.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, seconds: fine below 50 ms, where the targets are.
const LATENCY_SECONDS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0, 30.0,
];

/// Installs the global recorder, with every metric's help line; histograms
/// ending in `_seconds` get [`LATENCY_SECONDS`] buckets.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_SECONDS)?
        .install_recorder()?;
    crate::metric_catalogue::describe();
    Ok(handle)
}
