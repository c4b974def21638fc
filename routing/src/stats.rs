//! Counters of what ingest did with each fix: kept in the process for tests and
//! health, and exported to Prometheus under the same names.

use std::sync::atomic::{AtomicU64, Ordering};
use tracker_domain::RejectReason;
use tracker_domain::fix::ALL_REASONS;

/// Ingest counters; one instance per running ingest.
#[derive(Debug, Default)]
pub struct Stats {
    accepted: AtomicU64,
    unrouted: AtomicU64,
    appended: AtomicU64,
    rejected: [AtomicU64; ALL_REASONS.len()],
}

impl Stats {
    /// Counts one refused fix (or payload) under `reason`.
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tracker_fixes_rejected_total", "reason" => reason.as_str()).increment(1);
    }
    /// Counts `n` valid fixes.
    pub fn accept(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("tracker_fixes_accepted_total").increment(n);
    }
    /// Counts `n` valid fixes of a rider who holds no order (nothing to append to).
    pub fn unrouted(&self, n: u64) {
        self.unrouted.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("tracker_fixes_unrouted_total").increment(n);
    }
    /// Counts `n` `pos` events appended to order logs.
    pub fn appended(&self, n: u64) {
        self.appended.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("tracker_events_appended_total", "source" => "ingest").increment(n);
    }
    /// Fixes refused for `reason` so far.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].load(Ordering::Relaxed)
    }
    /// Fixes refused for any reason so far.
    pub fn rejected_total(&self) -> u64 {
        self.rejected
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
    /// Valid fixes so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    /// Valid fixes of riders without an order so far.
    pub fn unrouted_total(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }
    /// `pos` events appended so far.
    pub fn appended_total(&self) -> u64 {
        self.appended.load(Ordering::Relaxed)
    }
}
