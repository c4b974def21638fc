//! The store seam: orders, their idempotency records, and the transactional outbox.
//!
//! Every write that changes an order also writes the change's events to the
//! outbox in the same transaction, so an order row and its events are committed
//! together or not at all; [`crate::relay`] moves them into the event log.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod postgres;
mod rows;
pub mod sqlite;

use async_trait::async_trait;
use tracker_domain::{EventBody, Order, Status};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such order.
    #[error("not found")]
    NotFound,
    /// The order's version moved since it was read: another writer won.
    #[error("version conflict")]
    Conflict,
    /// The database could not be reached or failed the call (connection,
    /// pool, disk); the call may be retried. Never shown to clients.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
    /// A stored row that cannot be read back, or a value that cannot be
    /// written: a bug or corruption, not an outage. Never shown to clients.
    #[error("corrupt row: {0}")]
    Corrupt(#[source] crate::BoxError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            e @ (sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)) => {
                StoreError::Corrupt(e.into())
            }
            other => StoreError::Unavailable(other.into()),
        }
    }
}

/// Events committed with an order change, waiting for the relay.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Rising row id; passed to the log as the append's `origin`.
    pub id: i64,
    /// The order whose log they go to.
    pub order_id: String,
    /// The events, in order.
    pub events: Vec<EventBody>,
}

/// One stored fix of an order's trip.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct TrackPoint {
    /// The order the rider held.
    pub order_id: String,
    /// The rider (left out of a customer's view, where it is empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rider_id: String,
    /// The phone's fix time, Unix ms; with `order_id` the point's identity.
    pub ts: i64,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Speed, m/s.
    pub speed: Option<f64>,
    /// Heading, degrees.
    pub heading: Option<f64>,
}

/// One learned figure of the ETA model (a typical speed for an area and
/// hour, the detour factor), with how much evidence it rests on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelEntry {
    /// What it is, e.g. `speed:<cell>:<hour>` or `detour`.
    pub key: String,
    /// The learned value.
    pub value: f64,
    /// The weight of the evidence behind it (trips, decayed).
    pub weight: f64,
    /// When it last changed, Unix ms.
    pub updated_at: i64,
}

/// Durable order storage.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `order` with its first `events`, unless an order with the same
    /// `(biz_order_no, biz_type)` exists: then that one is returned with `false`.
    /// Atomic: any number of concurrent creates with one key make one order.
    async fn create_order(
        &self,
        order: &Order,
        events: &[EventBody],
    ) -> Result<(Order, bool), StoreError>;

    /// The order with this id, or [`StoreError::NotFound`].
    async fn get_order(&self, id: &str) -> Result<Order, StoreError>;

    /// Replaces the order with `order` if its stored version is still
    /// `read_version` ([`StoreError::Conflict`] otherwise), and queues `events`
    /// in the outbox in the same transaction.
    async fn update_order(
        &self,
        order: &Order,
        read_version: i64,
        events: &[EventBody],
    ) -> Result<(), StoreError>;

    /// Ids of the orders `rider_id` holds now (status with a rider attached).
    async fn rider_orders(&self, rider_id: &str) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` orders still under way (not delivered, cancelled or
    /// returned), newest first: the operator view's list.
    async fn active_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError>;

    /// Up to `limit` orders in `status` whose last change is older than
    /// `updated_before` (Unix ms), oldest change first: the timeout sweeps'
    /// and the dispatch pool's backstop.
    async fn orders_in(
        &self,
        status: Status,
        updated_before: i64,
        limit: usize,
    ) -> Result<Vec<Order>, StoreError>;

    /// Up to `limit` orders still under way whose `promised_at` is at or
    /// before `now` and whose late alert has not been raised, most overdue first.
    async fn overdue_orders(&self, now: i64, limit: usize) -> Result<Vec<Order>, StoreError>;

    /// Up to `limit` orders with an open alert episode, most recently changed first.
    async fn alerting_orders(&self, limit: usize) -> Result<Vec<Order>, StoreError>;

    /// Every learned figure of the ETA model.
    async fn model_load(&self) -> Result<Vec<ModelEntry>, StoreError>;

    /// Stores `entries`, replacing those with the same keys, in one transaction.
    async fn model_save(&self, entries: &[ModelEntry]) -> Result<(), StoreError>;

    /// Up to `limit` outbox items, oldest first.
    async fn outbox_fetch(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;

    /// Removes outbox items once their events are in the log.
    async fn outbox_ack(&self, ids: &[i64]) -> Result<(), StoreError>;

    /// Stores track points in one transaction; a point already stored (same
    /// order and `ts`) is skipped, so redelivered batches are harmless.
    async fn insert_track_points(&self, points: &[TrackPoint]) -> Result<(), StoreError>;

    /// The stored trip of `order_id`, oldest first.
    async fn track_of(&self, order_id: &str) -> Result<Vec<TrackPoint>, StoreError>;
}
