//! The event-log seam: every change of an order, numbered by `seq`, in order.
//!
//! The hub's per-message fan-out never goes through this trait: a hub takes one
//! [`EventLog::tail`] and fans entries out itself; only appends, history
//! reads (subscribe, resume, long-poll) and the watch of an order's first
//! watcher on a process call the log.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod memory;
pub mod redis;
mod redis_watch;

use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::broadcast;
use tracker_domain::{EventBody, LiveState};

/// An order id as the log and the hub keep it: shared, never copied per message.
pub type OrderKey = Arc<str>;

/// One appended event, encoded once into the exact text every watcher receives.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The order whose log holds it.
    pub order: OrderKey,
    /// Its position in that log: the previous entry's `seq` plus one.
    pub seq: u64,
    /// The event's own time (a fix's phone time), for delivery-latency metrics.
    pub ts: i64,
    /// The JSON text frame of `docs/protocol.md`, including `order` and `seq`.
    pub json: Bytes,
}

/// What a tail of the log delivers.
#[derive(Debug, Clone)]
pub enum TailEvent {
    /// The entries of one append by any process: one order's, consecutive, in
    /// `seq` order (a batch of fixes arrives as one, so it can be handed on as one).
    Entries(Arc<[Arc<Entry>]>),
    /// Entries may have been missed (the tail's connection dropped and came back):
    /// every watcher must catch up from [`EventLog::read`].
    Gap,
}

/// The epoch a read names for an order whose log has no event yet (on Redis
/// the history's epoch is made by its first append): it matches no history,
/// so a watcher that holds it learns the real one before it counts on it.
pub const EPOCH_BEFORE_HISTORY: &str = "redis-new";

/// What [`EventLog::read`] found.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// The order's live state; `state.seq` is the top of its log at the time of the read.
    pub state: LiveState,
    /// Identity of this log's history; a different epoch means history was lost
    /// (embedded log restarted, Redis stream gone) and old `seq`s mean nothing.
    pub epoch: Arc<str>,
    /// Asked with `since`: every entry after it up to `state.seq`, in order, or
    /// `None` when history no longer reaches back that far (or the gap exceeds
    /// the limit, or `since` is above the top). Asked without: `None`.
    pub missed: Option<Vec<Arc<Entry>>>,
}

/// Why a log call failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The backend could not be reached or answered nonsense; the call may be retried.
    #[error("event log unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

/// A per-order, append-only event log shared by every hub and ingest process.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `events` to `order`'s log as consecutive `seq`s, folding each into
    /// the order's live state in the same atomic step, and publishes them to
    /// every tail in `seq` order. Concurrent appends to one order from any
    /// number of processes never repeat or skip a `seq`.
    ///
    /// `origin` makes retries idempotent: when given (an outbox row id, rising
    /// over time), an append whose origin is not above the last origin applied
    /// to this order is skipped and returns no entries.
    async fn append(
        &self,
        order: &str,
        events: Vec<EventBody>,
        origin: Option<u64>,
    ) -> Result<Vec<Arc<Entry>>, LogError>;

    /// Answers once the log can serve (a round trip to Redis); `/readyz` asks.
    async fn ping(&self) -> Result<(), LogError>;

    /// Appends each order's events as [`EventLog::append`] without an origin
    /// would, and returns how many entries were appended in all. Orders are
    /// independent steps (one may be applied when another fails), which is what
    /// ingest wants for a burst of fixes; a backend that can sends them in one
    /// round trip (Redis pipelines the scripts). The default appends one by one.
    async fn append_many(&self, batch: Vec<(OrderKey, Vec<EventBody>)>) -> Result<usize, LogError> {
        let mut n = 0;
        for (order, events) in batch {
            n += self.append(&order, events, None).await?.len();
        }
        Ok(n)
    }

    /// The live state of `order` and, when `since` is given, the entries after it
    /// (at most `limit`; more than that counts as not recoverable). An order
    /// never appended to reads as seq 0 with an empty state.
    async fn read(
        &self,
        order: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<ReadResult, LogError>;

    /// A receiver of every entry appended from now on, by any process, in `seq`
    /// order per order, of the orders this process [watches](EventLog::watch)
    /// (a backend may send more; the in-process log sends every order's). A
    /// receiver that falls behind gets `Lagged`, or a [`TailEvent::Gap`] when
    /// the backend lost messages; either way it must resynchronise its
    /// watchers from [`EventLog::read`].
    fn tail(&self) -> broadcast::Receiver<TailEvent>;

    /// Asks for `order`'s entries on this process's [`tail`](EventLog::tail),
    /// and returns once they come (so a read made after it misses nothing).
    /// Counted: every call is ended by one [`unwatch`](EventLog::unwatch).
    /// The default (a tail of every order) has nothing to do.
    async fn watch(&self, _order: &str) -> Result<(), LogError> {
        Ok(())
    }

    /// Ends one [`watch`](EventLog::watch) of `order`; the last one stops its
    /// entries coming. Never waits.
    fn unwatch(&self, _order: &str) {}

    /// A receiver of the changes of every order that move who holds it
    /// (`status` and `assignment` entries; a backend may send more), whether
    /// watched or not, with [`TailEvent::Gap`] when some may be lost: what a
    /// cache of riders' orders follows. The default is [`tail`](EventLog::tail).
    fn changes(&self) -> broadcast::Receiver<TailEvent> {
        self.tail()
    }

    /// Releases connections and background tasks; the default does nothing.
    async fn close(&self) {}
}
