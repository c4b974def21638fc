//! The archive seam: the cold store of finished orders, and the mover that
//! fills it from the hot store.
//!
//! An archived order is kept whole (the row with its items and packages,
//! its history, its track) in a SQLite or PostgreSQL database of its own
//! (`TRACKER_ARCHIVE_DATABASE_URL`). The mover ([`mover`]) takes finished
//! orders older than the setting in small batches, writes each batch with
//! its checkpoint in one transaction of the cold store, then deletes it from
//! the hot store in one transaction there. A crash between the two leaves
//! the batch in both; the next pass finishes the delete the checkpoint names,
//! and the cold write skips orders it already holds, so nothing is lost and
//! nothing is kept twice. The hot delete takes only orders still at the
//! version copied: one that changed in between stays hot and is copied again.

pub mod mover;
pub mod sql;

use crate::store::{Cursor, Lookup, StoreError, TrackPoint};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tracker_domain::Order;
use tracker_domain::history::HistoryEntry;

/// A finished order as the archive keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedOrder {
    /// The row, with its items and packages (`Some`, maybe empty).
    pub order: Order,
    /// Every status change, oldest first.
    pub history: Vec<HistoryEntry>,
    /// The stored trip, oldest first.
    pub track: Vec<TrackPoint>,
}

/// Where the mover stands: the last batch it wrote, and the totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The ids of the last batch written; the hot store may still hold them.
    pub last_batch: Vec<String>,
    /// The newest `updated_at` (Unix ms) among the orders moved so far.
    pub finished_at: i64,
    /// Orders moved so far.
    pub orders: i64,
    /// Batches written so far.
    pub batches: i64,
}

/// The cold store of finished orders.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Writes `batch` and the checkpoint after it (the batch's ids, its
    /// newest `updated_at`, the totals raised) in one transaction; an order
    /// already held as it is now is skipped, a later copy replaces the
    /// earlier. How many were written.
    async fn put_batch(&self, batch: &[ArchivedOrder], now: i64) -> Result<u64, StoreError>;

    /// The mover's checkpoint; the default one before the first batch.
    async fn checkpoint(&self) -> Result<Checkpoint, StoreError>;

    /// The archived order `id`, if the archive holds it.
    async fn get(&self, id: &str) -> Result<Option<ArchivedOrder>, StoreError>;

    /// One page of the archived orders `lookup` finds, newest first, as
    /// [`crate::Store::lookup`] pages the hot ones.
    async fn lookup(
        &self,
        lookup: &Lookup,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), StoreError>;

    /// How many orders it holds.
    async fn count(&self) -> Result<u64, StoreError>;

    /// Up to `limit` ids of archived orders after `after`, in id order (the
    /// known-ids filter loads them at start).
    async fn ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError>;
}
