//! The `tracker` binary as a library, so tests start exactly what users start.
//!
//! - [`settings`]: typed configuration from `TRACKER_*` variables and an optional file.
//! - [`system`]: wires the seams, the hub, ingest and the embedded broker for each mode.
//! - [`telemetry`]: the Prometheus recorder and its buckets.

pub mod settings;
pub mod system;
pub mod telemetry;
