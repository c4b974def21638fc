//! The feed seam: which orders' logs moved, for a worker that follows every
//! order (the trip watcher), shared by several processes.
//!
//! A feed item only names an order; the worker reads what is new from the
//! order's log by `seq`, so an item delivered twice, or one lost between the
//! append and the feed (the docs say when), costs a read and loses nothing
//! the next item of that order does not bring back. Orders are split into
//! partitions; each partition is followed by one process at a time, so one
//! order's events are judged in order by one worker, and the partitions of
//! a process that stops move to the others.

pub mod memory;
pub mod redis;

use crate::LogError;
use crate::log::OrderKey;
use async_trait::async_trait;
use std::time::Duration;

/// Event kinds the trip watcher takes in: the ones that change a trip.
pub const FED_KINDS: [&str; 4] = ["pos", "status", "assignment", "route"];

/// True when an event of kind `t` goes to the feed.
pub fn fed(t: &str) -> bool {
    FED_KINDS.contains(&t)
}

/// What [`Feed::next`] hands over.
#[derive(Debug, Default)]
pub struct FeedBatch {
    /// Orders whose logs moved, each once.
    pub orders: Vec<OrderKey>,
    /// Items may have been missed (a lagging receiver): every trip the worker
    /// follows must be read again.
    pub resync: bool,
    /// When the oldest item of the batch was added, Unix ms, for the lag metric.
    pub oldest_ms: Option<i64>,
    /// What [`Feed::ack`] needs to mark the batch done.
    pub(crate) receipts: Vec<(usize, String)>,
}

/// A partitioned feed of the orders that changed.
#[async_trait]
pub trait Feed: Send + Sync + 'static {
    /// The next batch, waiting at most `wait` (an empty batch then). Items of
    /// a partition this process just took over, left unacknowledged by its
    /// last owner, come first.
    async fn next(&self, wait: Duration) -> Result<FeedBatch, LogError>;

    /// Marks a batch done: after a restart it is not handed out again.
    async fn ack(&self, batch: &FeedBatch) -> Result<(), LogError>;

    /// True while this process follows the partition of `order`.
    fn owns(&self, order: &str) -> bool;

    /// Keeps this process's share of the partitions (renews, takes over the
    /// ones nobody holds, gives back what is above its share); returns true
    /// when the set it owns changed. Called about once a second.
    async fn maintain(&self) -> Result<bool, LogError>;

    /// Gives back every partition at once (a clean stop), so others take them
    /// without waiting for the leases to run out.
    async fn release(&self) {}
}

pub use crate::shard::partition;

/// Partitions of the Redis feed: more than the watcher processes a
/// deployment runs, so each takes a fair share.
pub const FEED_PARTITIONS: usize = 16;

pub use crate::lease::LEASE;

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(super::partition("123", 16), super::partition("123", 16));
        let mut seen = [0usize; 16];
        for i in 0..1600 {
            seen[super::partition(&format!("{}", 7_000_000_000u64 + i), 16)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }
}
