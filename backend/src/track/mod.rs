//! The track seam: every routed fix, queued for batched storage off the hot path.
//!
//! Ingest pushes a rider's fixes here (one point per order held) before it acks
//! the MQTT publish; a writer stores them in batches with
//! [`crate::Store::insert_track_points`], which skips points already stored, so
//! redelivery never duplicates a point. `GET /v1/orders/{id}/track` and trip
//! replay read them back.
//!
//! - [`memory`]: a bounded in-process queue and batch writer (embedded default).
//! - [`redis`]: a Redis stream read by a consumer group; a worker that dies
//!   leaves its pending entries to be claimed by another (`XAUTOCLAIM`).

pub mod memory;
pub mod redis;

use crate::{LogError, TrackPoint};
use async_trait::async_trait;
use tokio::sync::watch;

/// Where routed fixes wait for storage.
#[async_trait]
pub trait TrackQueue: Send + Sync + 'static {
    /// Queues `points`; the answer resolves once they would outlive a crash of
    /// this process: at once on Redis (the stream holds them for any
    /// worker), after the batch's transaction in process.
    async fn push(&self, points: Vec<TrackPoint>) -> Result<Stored, LogError>;
}

/// Resolves once the points of a push are durable; what a fix's ack or
/// `accepted` answer waits for. Cheap to clone (one wait per publish of a burst).
#[derive(Debug, Clone, Default)]
pub struct Stored(Option<watch::Receiver<bool>>);

impl Stored {
    /// Already durable.
    pub fn now() -> Self {
        Stored(None)
    }

    /// Durable once `tx` sends `true`; never, if it is dropped first.
    pub fn pending() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Stored(Some(rx)))
    }

    /// Waits until the points are durable: false if they never will be (the
    /// writer stopped before storing them), so the caller must not ack.
    pub async fn wait(self) -> bool {
        match self.0 {
            None => true,
            Some(mut rx) => rx.wait_for(|stored| *stored).await.is_ok(),
        }
    }
}
