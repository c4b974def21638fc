//! Ingest: riders' GPS fixes from MQTT into their orders' event logs.
//!
//! # Layout
//! - [`topic`]: `riders/{id}/pos` and `riders/{id}/pos/batch`, parsed and checked.
//! - [`stats`]: counters of accepted, unrouted and rejected fixes (by reason).
//! - [`holders`]: which orders each rider holds, cached and kept honest by the log's tail.
//! - [`riders`]: riders' newest positions into the dispatch index, thinned.
//! - [`lanes`]: parallel routing lanes keyed by rider, a burst at a time.
//! - [`router`]: validates a payload, finds the rider's orders, appends `pos` events.
//! - [`consumer`]: the MQTT client loop (shared subscription, manual acks, backoff).
//! - [`broker`]: the embedded MQTT broker (rumqttd) of the one-process default.
//!
//! Data path: broker → [`consumer`] (one task owns the MQTT event loop) →
//! [`lanes`] (bounded, by rider) → [`router`] → event log; the MQTT ack is sent
//! only after the append succeeded, in arrival order, so a crash redelivers
//! instead of losing a fix.

pub mod broker;
pub mod consumer;
pub mod holders;
pub mod lanes;
pub mod riders;
pub mod router;
pub mod stats;
pub mod topic;

pub use consumer::{IngestConfig, MqttTarget};
pub use router::{Outcome, Router};
pub use stats::Stats;
