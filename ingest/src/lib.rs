//! Ingest: the MQTT side of riders' GPS fixes, into their orders' event logs.
//!
//! Validating and routing a payload is not MQTT's business: it lives in
//! `tracker-routing` (`routing/`), shared with the hub's HTTP door.
//!
//! # Layout
//! - [`topic`]: `riders/{id}/pos` and `riders/{id}/pos/batch`, parsed and checked.
//! - [`lanes`]: parallel routing lanes keyed by rider, a burst at a time.
//! - [`listener`]: the riders' own MQTT listener (3.1.1 and 5, a login per
//!   rider, publishes straight to the lanes); not yet the default door.
//! - [`consumer`]: the MQTT client loop (shared subscription, manual acks, backoff).
//! - [`broker`]: the embedded MQTT broker (rumqttd) of the one-process default.
//!
//! Data path: broker → [`consumer`] (one task owns the MQTT event loop) →
//! [`lanes`] (bounded, by rider) → `tracker_routing::Router` → event log; the MQTT ack is sent
//! only after the append succeeded, in arrival order, so a crash redelivers
//! instead of losing a fix.

pub mod broker;
pub mod consumer;
pub mod lanes;
pub mod listener;
pub mod topic;

pub use consumer::{IngestConfig, MqttTarget};
