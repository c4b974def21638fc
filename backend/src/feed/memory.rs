//! The in-process feed: one process owns every partition and follows the
//! log's own tail. A receiver that lags asks for a resync.

use super::{Feed, FeedBatch, fed};
use crate::log::{EventLog, TailEvent};
use async_trait::async_trait;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{Mutex, broadcast};
use tracker_domain::clock::now_ms;
use tracker_domain::event::kind_of;

/// Most orders in one batch.
const BATCH: usize = 512;
/// How long a batch stays open for more after its first item.
const LINGER: Duration = Duration::from_millis(25);

/// The [`Feed`] over an in-process log's tail.
pub struct MemoryFeed {
    rx: Mutex<broadcast::Receiver<TailEvent>>,
}

impl MemoryFeed {
    /// Follows `log` from now on.
    pub fn new(log: &dyn EventLog) -> Self {
        MemoryFeed {
            rx: Mutex::new(log.tail()),
        }
    }
}

#[async_trait]
impl Feed for MemoryFeed {
    async fn next(&self, wait: Duration) -> Result<FeedBatch, crate::LogError> {
        let mut rx = self.rx.lock().await;
        let mut batch = FeedBatch::default();
        let mut seen = HashSet::new();
        let deadline = tokio::time::Instant::now() + wait;
        // Once something came, what follows within LINGER joins it: one
        // wake-up of the watcher per batch rather than per entry.
        let mut linger: Option<tokio::time::Instant> = None;
        loop {
            let until = linger.unwrap_or(deadline).min(deadline);
            let item = match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(r) => r,
                Err(_) => return Ok(batch),
            };
            match item {
                Ok(TailEvent::Entries(run)) => {
                    for e in run.iter() {
                        let kind = kind_of(&e.json).and_then(|k| std::str::from_utf8(k).ok());
                        if kind.is_some_and(fed) && seen.insert(e.order.clone()) {
                            batch.oldest_ms.get_or_insert_with(now_ms);
                            batch.orders.push(e.order.clone());
                            linger.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                        }
                    }
                }
                Ok(TailEvent::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    metrics::counter!("tracker_trips_feed_resyncs_total").increment(1);
                    batch.resync = true;
                    linger.get_or_insert_with(|| tokio::time::Instant::now() + LINGER);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    // The log is gone (shutting down): wait out the call.
                    if batch.orders.is_empty() {
                        tokio::time::sleep_until(deadline).await;
                    }
                    return Ok(batch);
                }
            }
            if batch.orders.len() >= BATCH {
                return Ok(batch);
            }
        }
    }

    async fn ack(&self, _: &FeedBatch) -> Result<(), crate::LogError> {
        Ok(())
    }

    fn owns(&self, _: &str) -> bool {
        true
    }

    async fn maintain(&self) -> Result<bool, crate::LogError> {
        Ok(false)
    }
}
