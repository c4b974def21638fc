//! The store seam: orders, their idempotency records, and the transactional outbox.
//!
//! Every write that changes an order also writes the change's events to the
//! outbox in the same transaction, so an order row and its events are committed
//! together or not at all; [`crate::relay`] moves them into the event log.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod goods;
pub mod nodes;
pub mod postgres;
mod rows;
pub mod sqlite;

use async_trait::async_trait;
pub use goods::{Cursor, Lookup};
pub use nodes::NodeClaim;
use tracker_domain::goods::{Item, Package};
use tracker_domain::history::HistoryEntry;
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
    /// Horizontal accuracy the phone reported, metres (none before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acc: Option<f64>,
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

/// Everything kept per order besides its row: what the archive moves with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderRecords {
    /// Its item lines.
    pub items: Vec<Item>,
    /// Its packages.
    pub packages: Vec<Package>,
    /// Its status history, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Its stored trip, oldest first.
    pub track: Vec<TrackPoint>,
}

/// Durable order storage.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers once the store can serve (one trivial query); `/readyz` asks.
    async fn ping(&self) -> Result<(), StoreError>;

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
    /// in the outbox (and their status changes in the history) in the same
    /// transaction.
    async fn update_order(
        &self,
        order: &Order,
        read_version: i64,
        events: &[EventBody],
    ) -> Result<(), StoreError> {
        self.update_order_and_packages(order, read_version, &[], events)
            .await
    }

    /// [`Store::update_order`] that also writes `packages` of the order, each
    /// a compare-and-set from its `version - 1`, in the same transaction.
    async fn update_order_and_packages(
        &self,
        order: &Order,
        read_version: i64,
        packages: &[Package],
        events: &[EventBody],
    ) -> Result<(), StoreError>;

    /// Writes one package of `order_id` if it is still at `package.version - 1`
    /// ([`StoreError::Conflict`] otherwise, [`StoreError::NotFound`] when the
    /// order has no such package), with `events` and their history.
    async fn update_package(
        &self,
        order_id: &str,
        package: &Package,
        events: &[EventBody],
    ) -> Result<(), StoreError>;

    /// The order's item lines, in the order they were given.
    async fn items_of(&self, order_id: &str) -> Result<Vec<Item>, StoreError>;

    /// The order's packages as they stand, in the order they were given.
    async fn packages_of(&self, order_id: &str) -> Result<Vec<Package>, StoreError>;

    /// Every status change of the order and its packages, oldest first.
    async fn history_of(&self, order_id: &str) -> Result<Vec<HistoryEntry>, StoreError>;

    /// One page of the orders `lookup` finds, newest first, after `after`:
    /// at most `limit` orders, and the cursor of the next page when there is one.
    async fn lookup(
        &self,
        lookup: &Lookup,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), StoreError>;

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

    /// Up to `limit` finished orders (delivered, cancelled, returned) whose
    /// last change is older than `before` (Unix ms), oldest first: what the
    /// archive moves next.
    async fn finished_orders(&self, before: i64, limit: usize) -> Result<Vec<Order>, StoreError>;

    /// Up to `limit` orders whose refund is still pending, last changed
    /// before `before` (Unix ms), oldest first: the refund retries' backstop.
    async fn pending_refunds(&self, before: i64, limit: usize) -> Result<Vec<Order>, StoreError>;

    /// Up to `limit` keys `(created_at, id)` of orders, in that order,
    /// strictly after `after` (from the first without it): the known-ids
    /// filter loads and refreshes itself from here.
    async fn order_keys(
        &self,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Cursor>, StoreError>;

    /// Whether events of `order_id` still wait in the outbox for the relay
    /// (a refund waits until they are through).
    async fn outbox_holds(&self, order_id: &str) -> Result<bool, StoreError>;

    /// The items, packages, history and track of each of the orders `ids`
    /// (empty records for ids it does not hold), in a few statements.
    async fn records_of(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, OrderRecords>, StoreError>;

    /// Deletes each of the orders `(id, version)` that is still at that
    /// version, with its items, packages, history and track, in one
    /// transaction (business keys stay, so a repeated create still finds the
    /// order in the archive). The ids deleted.
    async fn delete_orders(&self, orders: &[(String, i64)]) -> Result<Vec<String>, StoreError>;

    /// Leases a node id of the order id generator to `owner` until `until`
    /// (Unix ms): `wanted` whoever held it, or (`None`) the lowest one free or
    /// whose lease ended before `now`. Answers the highest mark of all nodes.
    async fn claim_node(
        &self,
        owner: &str,
        wanted: Option<u16>,
        now: i64,
        until: i64,
    ) -> Result<NodeClaim, StoreError>;

    /// Extends `owner`'s lease of `node` to `until` and raises the node's
    /// mark to `mark` (Unix ms); false when the lease is no longer theirs.
    async fn renew_node(
        &self,
        node: u16,
        owner: &str,
        until: i64,
        mark: i64,
    ) -> Result<bool, StoreError>;

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
