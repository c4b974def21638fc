//! The use-case layer: order commands and queries, and what happens after
//! every write.
//!
//! The HTTP handlers (`hub/src/http/`) and the background jobs (the timeouts)
//! call the same functions here, so a rule lives in one place whoever asks.
//! Nothing in this folder knows HTTP: no axum, no imports of the HTTP layer
//! or of the watcher side (`.ci/layout` checks it).
//!
//! - [`commands`]: create (idempotent), change status, assign.
//! - [`grab`]: a rider takes an open order; one winner.
//! - [`write`]: the one write path, and what follows every write (relay wake,
//!   pool upkeep, timers).
//! - [`pool`]: keeps the pool of open orders in step with the store.
//! - [`timeouts`]: payment, pick-up and late timers: schedule, fire, sweep, the job.
//! - [`queries`]: who may watch an order; get, list and track as each role may see them.
//! - [`known`]: the filter of order ids that may exist, so unknown ids never reach the store.
//! - [`nearby`]: open orders and riders near a point.
//! - [`refunds`]: a refund taken as pending, applied once the order's earlier changes are logged.
//! - [`stock`]: an order's reservation of stock, made at create, settled once when it ends.
//! - [`shares`]: share links (viewer tokens) and their revocation.
//! - [`trips`]: planned routes, and the open alerts of all orders.
//! - [`error`]: why a use case refused or failed.

pub mod commands;
pub mod error;
pub mod grab;
pub mod known;
pub mod nearby;
pub mod pool;
pub mod queries;
pub mod refunds;
pub mod shares;
pub mod stock;
pub mod timeouts;
pub mod trips;
pub mod write;

#[cfg(test)]
mod refund_tests;
#[cfg(test)]
mod stock_tests;
#[cfg(test)]
mod tests;

pub use error::OrderError;

use known::{KnownIds, OrderReads};
use std::sync::Arc;
use std::time::Duration;
use tracker_backend::Store;
use tracker_backend::archive::Archive;
use tracker_backend::dispatch::Dispatch;
use tracker_backend::relay::RelayWaker;
use tracker_backend::stock::Stock;
use tracker_backend::timers::DelayQueue;
use tracker_domain::Clock;
use tracker_domain::ids::IdGenerator;
use tracker_domain::order::MAX_KEY_LEN;

/// Durations of dispatch; tests shorten them to seconds.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// An unpaid order is cancelled (`payment_timeout`) this long after creation.
    pub payment_timeout: Duration,
    /// A grabbed order not picked up this long after assignment goes back to the pool.
    pub pickup_timeout: Duration,
    /// How often the store is swept for timeouts the queue missed, and the pool repaired.
    pub sweep_every: Duration,
    /// How often the delay queue is polled for due timers.
    pub poll_every: Duration,
    /// Riders not heard from for this long are left out of position queries
    /// (and forgotten after ten times as long).
    pub rider_stale: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            payment_timeout: Duration::from_secs(15 * 60),
            pickup_timeout: Duration::from_secs(10 * 60),
            sweep_every: Duration::from_secs(30),
            poll_every: Duration::from_millis(250),
            rider_stale: Duration::from_secs(5 * 60),
        }
    }
}

/// What the order use cases touch: the store and what every write keeps in
/// step (the relay, the dispatch pool, the delay queue).
#[derive(Clone)]
pub struct Orders {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ids: Arc<IdGenerator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dispatch: Arc<dyn Dispatch>,
    pub(crate) timers: Arc<dyn DelayQueue>,
    pub(crate) stock: Arc<dyn Stock>,
    pub(crate) relay: RelayWaker,
    pub(crate) cfg: Arc<DispatchConfig>,
    /// Where finished orders go after a while; reads fall back to it.
    pub(crate) archive: Option<Arc<dyn Archive>>,
    /// The ids that may exist; loaded and refreshed by [`known::run`].
    pub(crate) known: Arc<KnownIds>,
    /// The SKUs that may be stock-controlled, likewise.
    pub(crate) known_skus: Arc<KnownIds>,
}

/// The seams the order use cases run on.
#[derive(Clone)]
pub struct OrdersDeps {
    /// Orders and the outbox.
    pub store: Arc<dyn Store>,
    /// Order ids.
    pub ids: Arc<IdGenerator>,
    /// Wall-clock time for timestamps.
    pub clock: Arc<dyn Clock>,
    /// The pool of open orders and the grab.
    pub dispatch: Arc<dyn Dispatch>,
    /// The delay queue of order timeouts.
    pub timers: Arc<dyn DelayQueue>,
    /// Stock levels and the orders' reservations.
    pub stock: Arc<dyn Stock>,
}

impl Orders {
    /// The use cases over `deps`; every write wakes `relay`.
    pub fn new(deps: OrdersDeps, relay: RelayWaker, cfg: DispatchConfig) -> Self {
        Orders {
            store: deps.store,
            ids: deps.ids,
            dispatch: deps.dispatch,
            timers: deps.timers,
            stock: deps.stock,
            known: Arc::new(KnownIds::new(deps.clock.clone(), known::REFRESH_EVERY)),
            known_skus: Arc::new(KnownIds::skus(deps.clock.clone(), known::REFRESH_EVERY)),
            clock: deps.clock,
            relay,
            cfg: Arc::new(cfg),
            archive: None,
        }
    }

    /// The same use cases, reading orders the hot store no longer holds
    /// from `archive`.
    pub fn with_archive(mut self, archive: Option<Arc<dyn Archive>>) -> Self {
        self.archive = archive;
        self
    }

    /// The order reads behind the filter of known ids, for the watcher side.
    pub fn reads(&self) -> OrderReads {
        OrderReads {
            store: self.store.clone(),
            known: self.known.clone(),
        }
    }

    /// The filter of known order ids.
    pub fn known(&self) -> &Arc<KnownIds> {
        &self.known
    }

    /// The filter of known SKUs.
    pub fn known_skus(&self) -> &Arc<KnownIds> {
        &self.known_skus
    }

    /// The order `id` a caller named; an id the filter knows is unused is
    /// `NotFound` without a read.
    pub(crate) async fn order(&self, id: &str) -> Result<tracker_domain::Order, OrderError> {
        self.reads().get(id).await
    }
}

/// An order id as every call takes it: 1..=128 bytes.
pub fn check_id(id: &str) -> Result<(), OrderError> {
    if id.is_empty() || id.len() > MAX_KEY_LEN {
        return Err(OrderError::BadRequest(
            "order id must be 1..=128 characters".into(),
        ));
    }
    Ok(())
}
