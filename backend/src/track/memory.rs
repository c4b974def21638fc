//! The embedded track queue: a bounded channel and one batch writer task.
//!
//! The writer takes whatever is queued (up to [`BATCH`] points) and stores it
//! in one transaction, retrying with backoff while the store fails; on stop it
//! drains the queue before ending. A full queue makes `push` wait: ingest slows
//! down rather than dropping points. Each push's [`Stored`] resolves once its
//! batch has committed: the MQTT ack and the HTTP `accepted` wait for that, so
//! a `kill -9` of the process loses no fix it has acknowledged.

use super::{Stored, TrackQueue};
use crate::retry::Backoff;
use crate::{LogError, Store, TrackPoint};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Most points written in one transaction.
pub const BATCH: usize = 1000;

/// How long the writer waits to fill a batch; points reach the store (and
/// their acks go out) this much later. Short, as acks wait for it; long
/// enough that at 1k fixes/s a transaction holds tens of them.
pub const LINGER: Duration = Duration::from_millis(20);

/// Tries at storing a batch once stopping, before its receipts are dropped.
const STOPPING_TRIES: u32 = 5;

type Job = (Vec<TrackPoint>, tokio::sync::watch::Sender<bool>);

/// The in-process [`TrackQueue`].
pub struct MemoryTrackQueue {
    tx: mpsc::Sender<Job>,
}

impl MemoryTrackQueue {
    /// Starts the writer on `store`; it ends, after draining, when `stop` is cancelled.
    pub fn start(store: Arc<dyn Store>, stop: CancellationToken) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1024);
        let writer = tokio::spawn(write_loop(store, rx, stop));
        (MemoryTrackQueue { tx }, writer)
    }
}

#[async_trait]
impl TrackQueue for MemoryTrackQueue {
    async fn push(&self, points: Vec<TrackPoint>) -> Result<Stored, LogError> {
        let (done, stored) = Stored::pending();
        self.tx
            .send((points, done))
            .await
            .map_err(|_| LogError::Unavailable("the track writer has stopped".into()))?;
        Ok(stored)
    }
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
    loop {
        let first = tokio::select! {
            b = rx.recv() => b,
            _ = stop.cancelled() => {
                rx.close(); // drain what is already queued, then end
                rx.recv().await
            }
        };
        let Some((mut batch, done)) = first else {
            return;
        };
        let mut waiting = vec![done];
        // Linger a little for more: one transaction per LINGER instead of one
        // per fix (at 1k fixes/s that was most of the store's CPU).
        let until = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            if stop.is_cancelled() {
                match rx.try_recv() {
                    Ok((more, done)) => {
                        batch.extend(more);
                        waiting.push(done);
                    }
                    Err(_) => break,
                }
                continue;
            }
            tokio::select! {
                more = rx.recv() => match more {
                    Some((more, done)) => {
                        batch.extend(more);
                        waiting.push(done);
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
                _ = stop.cancelled() => {}
            }
        }
        // Retried while the store fails. Stopping, a few tries only: nothing
        // of this batch has been acked yet (acks wait for `waiting`), so
        // giving up drops the receipts and the senders send again.
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        let mut tries = 0;
        let mut stored = true;
        while let Err(e) = store.insert_track_points(&batch).await {
            tracing::warn!(error = %e, points = batch.len(), "storing track points failed; retrying");
            metrics::counter!("tracker_track_write_errors_total").increment(1);
            tries += 1;
            if stop.is_cancelled() && tries >= STOPPING_TRIES {
                tracing::error!(
                    points = batch.len(),
                    "stopping with the store down: these track points stay unacknowledged"
                );
                stored = false;
                break;
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
        if !stored {
            continue; // `waiting` dropped: the receipts resolve false
        }
        metrics::counter!("tracker_track_points_stored_total").increment(batch.len() as u64);
        for done in waiting {
            let _ = done.send(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[tokio::test]
    async fn queued_points_are_stored_and_stop_drains_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let stop = CancellationToken::new();
        let (queue, writer) = MemoryTrackQueue::start(store.clone(), stop.clone());
        let mut receipts = Vec::new();
        for ts in 0..50 {
            let p = TrackPoint {
                order_id: "O1".into(),
                rider_id: "r1".into(),
                ts,
                lat: 1.0,
                lon: 2.0,
                speed: None,
                heading: None,
                acc: None,
            };
            receipts.push(queue.push(vec![p.clone(), p]).await.unwrap());
        }
        let first = receipts.remove(0);
        assert!(first.wait().await, "a push resolves once stored");
        assert!(
            !store.track_of("O1").await.unwrap().is_empty(),
            "stored when its receipt resolved"
        );
        stop.cancel();
        writer.await.unwrap();
        for r in receipts {
            assert!(r.wait().await);
        }
        assert_eq!(
            store.track_of("O1").await.unwrap().len(),
            50,
            "every point once, none lost at stop"
        );
    }
}
