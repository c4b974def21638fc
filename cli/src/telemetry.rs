//! The Prometheus recorder every process installs: one place for metric buckets.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, milliseconds: fine below 50 ms, where the targets are.
const LATENCY_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0, 30000.0,
];

/// Installs the global recorder; histograms ending in `_ms` get [`LATENCY_MS`] buckets.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_ms".into()), &LATENCY_MS)?
        .install_recorder()
}
