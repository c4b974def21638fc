//! Fix routing: riders' payloads, from whichever door they came in (MQTT
//! ingest, `POST /v1/riders/me/pos`), validated and appended as `pos` events to
//! the logs of the orders the rider holds.
//!
//! Neither the hub nor the MQTT code owns this: both call one [`Router`].
//!
//! # Layout
//! - [`router`]: validates a payload, finds the rider's orders, appends in bursts.
//! - [`holders`]: which orders each rider holds, cached and kept honest by the log's tail.
//! - [`riders`]: riders' newest positions into the dispatch index, thinned.
//! - [`stats`]: counters of accepted, unrouted and rejected fixes (by reason).

pub mod holders;
pub mod riders;
pub mod router;
pub mod stats;

pub use router::{Kind, Outcome, RouteError, Router};
pub use stats::Stats;
