//! The webhook queue seam: every order event but fixes, kept per order until
//! the webhook endpoint took it, and which orders are due for a delivery.
//!
//! The log puts each hooked event into its order's queue in the same atomic
//! step that appends it (the Redis append script; the in-process log under
//! its order lock), so nothing the log accepted is missing from the queue,
//! and the queue outlives the log's own history (up to [`KEEP`]). Orders are
//! registered as due in a per-partition schedule *before* their append, so a
//! process that dies between the two leaves at worst a registration with
//! nothing behind it. A sender takes due orders of the partitions it holds,
//! sends each order's queue head first, one at a time (per-order `seq`
//! order), and on a failure reschedules that order alone; other orders go on.
//!
//! An order whose queue is empty stays registered for [`IDLE_GRACE`], then is
//! forgotten unless something registered it again meanwhile. The grace is
//! longer than a Redis reply may take, so an append whose registration came
//! before the sender last looked has landed by the time it looks again; on a
//! Redis Cluster, whose client retries a call through a failover for longer
//! than that, the order is registered once more after its append.

pub mod memory;
pub mod redis;

use crate::LogError;
use crate::log::OrderKey;
use async_trait::async_trait;
use std::time::Duration;

/// True when events of kind `t` go to the webhook: all but fixes
/// (`docs/protocol.md`, "Webhooks"; `skip` frames are never logged).
pub fn hooked(t: &str) -> bool {
    t != "pos"
}

/// Partitions of the Redis schedule: more than the senders a deployment runs.
pub const PARTITIONS: usize = 16;

/// How long an order with nothing queued stays registered.
pub const IDLE_GRACE: Duration = Duration::from_secs(30);

/// How long an undelivered event is kept and retried.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// An order due for a delivery, as the schedule had it when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The order.
    pub order: OrderKey,
    /// Failed attempts in a row at its queue's head (0: none).
    pub tries: u32,
    /// It was found empty once and is due for its last look.
    pub idle: bool,
    /// Its registration count when taken: a later registration keeps it due.
    pub(crate) generation: i64,
}

/// One queued event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// When the log took it, Unix ms (its age decides when retries end).
    pub at_ms: i64,
    /// The event's JSON frame, exactly as watchers get it.
    pub json: String,
    /// The stored text, for the removal that must take this one and no other.
    pub(crate) raw: String,
}

impl Queued {
    /// Parses a stored `<at_ms> <json>` text.
    pub(crate) fn parse(raw: String) -> Option<Queued> {
        let (at, json) = raw.split_once(' ')?;
        Some(Queued {
            at_ms: at.parse().ok()?,
            json: json.to_owned(),
            raw: raw.clone(),
        })
    }

    /// The stored text of an event taken at `at_ms`.
    pub(crate) fn stored(at_ms: i64, json: &str) -> String {
        format!("{at_ms} {json}")
    }
}

/// The queues and their schedule, as a sender sees them.
#[async_trait]
pub trait WebhookQueue: Send + Sync + 'static {
    /// Orders due now in the partitions this process holds, at most `limit`.
    async fn due(&self, limit: usize) -> Result<Vec<Due>, LogError>;

    /// The first `n` events queued for `order`, oldest first.
    async fn head(&self, order: &str, n: usize) -> Result<Vec<Queued>, LogError>;

    /// Removes `item` from the head of `order`'s queue (nothing if it is no
    /// longer there): it was delivered, or given up.
    async fn delivered(&self, order: &str, item: &Queued) -> Result<(), LogError>;

    /// The head of `due`'s queue failed for the `tries`-th time in a row: the
    /// order is next due after `delay`.
    async fn retry(&self, due: &Due, delay: Duration, tries: u32) -> Result<(), LogError>;

    /// The head of `due`'s queue, which had failed, went through: the next
    /// failure counts from one again.
    async fn recovered(&self, due: &Due) -> Result<(), LogError>;

    /// `due`'s queue was found empty: it is looked at again after
    /// [`IDLE_GRACE`], then forgotten, unless registered again meanwhile.
    async fn settle(&self, due: &Due) -> Result<(), LogError>;

    /// True while this process sends the orders of `order`'s partition.
    fn owns(&self, order: &str) -> bool;

    /// Keeps this process's share of the partitions; true when it changed.
    /// Called about once a second.
    async fn maintain(&self) -> Result<bool, LogError>;

    /// Gives the partitions back (a clean stop).
    async fn release(&self) {}

    /// Waits until something may have become due, at most `wait`.
    async fn wait(&self, wait: Duration) {
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_round_trips() {
        let q = Queued::parse(Queued::stored(12, r#"{"order":"1","seq":2,"t":"eta"}"#)).unwrap();
        assert_eq!(
            (q.at_ms, q.json.as_str()),
            (12, r#"{"order":"1","seq":2,"t":"eta"}"#)
        );
        assert!(Queued::parse("nonsense".into()).is_none());
        assert!(hooked("status") && hooked("eta") && !hooked("pos"));
    }
}

#[cfg(test)]
#[path = "tests_queue.rs"]
mod queue_story;
