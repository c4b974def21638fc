//! Ingest: the MQTT side of riders' GPS fixes, into their orders' event logs.
//!
//! Validating and routing a payload is not MQTT's business: it lives in
//! `tracker-routing` (`routing/`), shared with the hub's HTTP door.
//!
//! # Layout
//! - [`topic`]: `riders/{id}/pos` and `riders/{id}/pos/batch`, parsed and checked.
//! - [`lanes`]: parallel routing lanes keyed by rider, a burst at a time.
//! - [`listener`]: the riders' own MQTT listener (3.1.1 and 5 on one port, a
//!   login per rider, publishes straight to the lanes): the door of `tracker
//!   run`, and of `tracker ingest` without an external broker.
//! - [`consumer`]: the client of an external broker (shared subscription,
//!   manual acks, backoff).
//!
//! Data path: a rider's connection ([`listener`]), or an external broker →
//! [`consumer`] (one task owns the MQTT event loop) → [`lanes`] (bounded, by
//! rider) → `tracker_routing::Router` → event log; the MQTT ack is sent only
//! after the append succeeded, in arrival order, so a crash redelivers
//! instead of losing a fix.

pub mod consumer;
pub mod lanes;
pub mod listener;
pub mod topic;

pub use consumer::{IngestConfig, MqttTarget};
