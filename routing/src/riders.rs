//! Riders' live positions for dispatch, written from the fixes ingest routes.
//!
//! Every valid fix of a rider, holding an order or not, may move them in the
//! dispatch index. Writes are thinned to one per rider per `every` (phones
//! report every few seconds; a position query needs no more), so the index
//! costs a small share of a Redis call per fix. A failed write is counted and
//! dropped: the rider's next fix writes again.

use dashmap::DashMap;
use std::sync::Arc;
use tracker_backend::dispatch::Dispatch;
use tracker_domain::{Fix, Point};

/// Default gap between two index writes of one rider, ms.
pub const DEFAULT_EVERY_MS: i64 = 2_000;

/// Writes riders' newest positions into the dispatch index, thinned.
pub struct RiderIndex {
    dispatch: Arc<dyn Dispatch>,
    every_ms: i64,
    /// rider → local time of the last write, ms.
    last: DashMap<String, i64>,
}

impl RiderIndex {
    /// An index writer that writes each rider at most once per `every_ms`.
    pub fn new(dispatch: Arc<dyn Dispatch>, every_ms: i64) -> Self {
        RiderIndex {
            dispatch,
            every_ms,
            last: DashMap::new(),
        }
    }

    /// Records `newest`, the newest fix of a payload of `rider`, unless the
    /// rider was written less than `every_ms` before `now`.
    pub async fn seen(&self, rider: &str, newest: &Fix, now: i64) {
        if self
            .last
            .get(rider)
            .is_some_and(|at| now - *at < self.every_ms)
        {
            return;
        }
        self.last.insert(rider.to_owned(), now);
        let at = Point {
            lat: newest.lat,
            lon: newest.lon,
        };
        if let Err(e) = self.dispatch.rider_seen(rider, at, newest.ts).await {
            tracing::debug!(error = %e, rider, "rider position not indexed");
            metrics::counter!("tracker_rider_index_failures_total").increment(1);
            self.last.remove(rider); // try again with the next fix
        }
    }
}
