//! The dispatch seam: open orders by pickup point, the atomic grab, and live
//! rider positions, each queried by distance.
//!
//! The pool holds orders in `ready`. [`Dispatch::claim`] takes an order out of
//! it for exactly one caller however many processes ask at once (a Redis Lua
//! script, or one lock in process) and leaves a short-lived claim record, so
//! the losers learn who has it. The store's version check stays the final word:
//! a claim only decides who may try to write the assignment.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod geo;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use serde::Serialize;
use tracker_domain::{Order, Point};

/// Why a dispatch call failed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// The backend could not be reached or answered nonsense; the call may be retried.
    #[error("dispatch index unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

/// An open order as riders see it in the pool.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct OpenOrder {
    /// The order id.
    pub id: String,
    /// Where the goods wait.
    pub pickup: Point,
    /// Where they go.
    pub dropoff: Point,
    /// The promised delivery time, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised_at: Option<i64>,
}

impl From<&Order> for OpenOrder {
    fn from(o: &Order) -> Self {
        OpenOrder {
            id: o.id.clone(),
            pickup: o.pickup,
            dropoff: o.dropoff,
            promised_at: o.promised_at,
        }
    }
}

/// An open order found near a point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearbyOrder {
    /// The order.
    #[serde(flatten)]
    pub order: OpenOrder,
    /// Great-circle distance from the query point to the pickup, metres.
    pub dist_m: f64,
}

/// A rider's last known position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RiderPosition {
    /// The rider.
    pub rider_id: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// The fix's phone time, Unix ms.
    pub ts: i64,
    /// Distance from the query point, metres.
    pub dist_m: f64,
}

/// What [`Dispatch::claim`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This caller took the order out of the pool.
    Won,
    /// Another rider claimed it first (recently).
    Taken {
        /// Who.
        by: String,
    },
    /// It is not in the pool and nobody claimed it lately.
    NotOpen,
}

/// Open orders and rider positions, shared by every hub process.
#[async_trait]
pub trait Dispatch: Send + Sync + 'static {
    /// Puts `order` in the pool (again) and forgets any old claim on it: it
    /// has just entered `ready`.
    async fn open(&self, order: &OpenOrder) -> Result<(), DispatchError>;

    /// Puts `order` in the pool unless it is there or claimed: the sweep's
    /// repair, which must not undo a grab in flight.
    async fn ensure_open(&self, order: &OpenOrder) -> Result<(), DispatchError>;

    /// Takes `order` out of the pool (it left `ready`); idempotent.
    async fn close(&self, order: &str) -> Result<(), DispatchError>;

    /// Ids of every order in the pool, for the sweep.
    async fn open_ids(&self) -> Result<Vec<String>, DispatchError>;

    /// Open orders whose pickup lies within `radius_m` of `at`, nearest first.
    async fn nearby(
        &self,
        at: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyOrder>, DispatchError>;

    /// Takes `order` out of the pool for `rider`: [`Claim::Won`] for exactly
    /// one caller; a claim record names the winner for the claim's lifetime.
    async fn claim(&self, order: &str, rider: &str) -> Result<Claim, DispatchError>;

    /// Drops `rider`'s claim on `order` (its assignment could not be written).
    async fn release(&self, order: &str, rider: &str) -> Result<(), DispatchError>;

    /// Records `rider` at `at` with fix time `ts`; an older fix than the one
    /// held is ignored.
    async fn rider_seen(&self, rider: &str, at: Point, ts: i64) -> Result<(), DispatchError>;

    /// Riders seen at or after `seen_since` (Unix ms) within `radius_m` of
    /// `at`, nearest first.
    async fn riders_near(
        &self,
        at: Point,
        radius_m: f64,
        seen_since: i64,
        limit: usize,
    ) -> Result<Vec<RiderPosition>, DispatchError>;

    /// Forgets riders not seen since `before` (Unix ms); returns how many.
    async fn forget_riders(&self, before: i64) -> Result<usize, DispatchError>;
}
