//! The `tracker` binary as a library, so tests start exactly what users start.
//!
//! - [`demo`]: `tracker run --demo`, simulated riders so the map is alive.
//! - [`metric_catalogue`]: every metric's kind and help line.
//! - [`settings`]: typed configuration from `TRACKER_*` variables and an optional file.
//! - [`system`]: wires the seams, the hub, ingest and the riders' MQTT listener for each mode.
//! - [`telemetry`]: the Prometheus recorder and its buckets.
//! - [`token`]: `tracker token`, tokens minted with the configured secret.

pub mod demo;
pub mod metric_catalogue;
pub mod settings;
pub mod system;
pub mod telemetry;
pub mod token;
