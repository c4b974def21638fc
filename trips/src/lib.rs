//! The trip watcher: follows every order's log (through the feed of
//! `backend/src/feed/`, so processes share the orders), predicts arrival,
//! raises and clears alert episodes on fix time, and notes arrivals
//! (`docs/protocol.md`, "ETA, alerts, arrival"). It runs beside the hub, never
//! in the path of fixes: ingest only appends, and the watcher reads after.
//!
//! - [`geo`]: distances, and where a fix falls along a route.
//! - [`model`]: what ETA learns from finished trips (speeds by area and hour, detours).
//! - [`trip`]: one order's trip: the estimate and the detectors; it decides, never writes.
//! - [`worker`]: the loop that reads, decides and writes.
//! - [`report`]: a trip summed up from its stored track (distance, stops, speeds).
//! - [`replay`]: a trip fed by hand, decisions kept in memory (tests, accuracy runs).
//! - [`settings`]: the thresholds.

pub mod geo;
pub mod model;
pub mod replay;
pub mod report;
pub mod settings;
pub mod trip;
pub mod worker;

pub use settings::TripSettings;
pub use worker::TripWorker;

#[cfg(test)]
mod tests;
