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

/// Where routed fixes wait for storage.
#[async_trait]
pub trait TrackQueue: Send + Sync + 'static {
    /// Queues `points`. Once this returns, the points are stored eventually:
    /// even if this process dies (Redis), or while it lives (in-process).
    async fn push(&self, points: Vec<TrackPoint>) -> Result<(), LogError>;
}
