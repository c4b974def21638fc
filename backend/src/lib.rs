//! The seams between the tracker's services and what they run on.
//!
//! Each seam is one small async trait with its contract written on it, and an
//! embedded implementation that needs no services; the real backends (Redis
//! streams, PostgreSQL) implement the same traits and pass the same contract
//! tests. Which one runs is chosen from a URL in [`select`].
//!
//! - [`background`]: where backends run their own loops (the process's task tracker).
//! - [`log`]: the per-order event log (allocates `seq`, appends, tails, reads since a `seq`).
//! - [`store`]: orders, their goods, history and dedup records, and the transactional outbox.
//! - [`relay`]: moves committed outbox rows into the event log.
//! - [`redis_conn`]: how every Redis-backed seam connects, to one server or a cluster.
//! - [`lease`]: which process follows which partition of a shared structure.
//! - [`shard`]: which part of a partitioned structure an id belongs to.
//! - [`retry`]: capped exponential backoff for every retrying loop.
//! - [`track`]: routed fixes queued for batched storage (trip history).
//! - [`dispatch`]: open orders and riders by distance, and the atomic grab.
//! - [`timers`]: the delay queue of order timeouts, each claimed once.
//! - [`stock`]: stock per SKU and each order's reservation, all or nothing, settled once.
//! - [`archive`]: the cold store of finished orders, and the mover that fills it.
//! - [`webhooks`]: every order event but fixes, queued per order for the webhook, and who is due.
//! - [`ids`]: the order id generator's leased node id and its high-water mark in the store.

pub mod archive;
pub mod background;
pub mod dispatch;
pub mod feed;
pub mod ids;
pub mod lease;
pub mod log;
pub mod redis_conn;
pub mod relay;
pub mod retry;
pub mod select;
pub mod shard;
pub mod stock;
pub mod store;
pub mod timers;
pub mod track;
pub mod webhooks;

/// The cause a seam error keeps (`#[source]`), whatever the backend's own error type.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub use log::{Entry, EventLog, LogError, ReadResult, TailEvent};
pub use store::{OutboxItem, Store, StoreError, TrackPoint};
