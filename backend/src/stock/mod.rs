//! The stock seam: how much of each SKU is available, reserved and sold, and
//! each order's reservation of it, made all or nothing and settled once.
//!
//! A reservation belongs to an order's business key (`biz_type`,
//! `biz_order_no`), not to its id, so an idempotent create that is repeated
//! reserves once. It is `reserved` until the order ends, then `released`
//! (cancelled, returned) or `sold` (delivered), exactly once whichever process
//! or timer settles it: the settling step checks and changes the state in the
//! same atomic step as the counts. A reservation whose order never got written
//! (a create that failed or a process that died in between) is forgotten by
//! the sweep, which gives its goods back.
//!
//! Two implementations pass [`contract`]: [`sql`] keeps stock in the store's
//! database (one transaction per step; the embedded default, and beside the
//! in-process log), [`redis`] in Redis, each step one Lua script over keys
//! that share one hash tag (one slot on a cluster).

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod redis;
pub mod sql;

use async_trait::async_trait;
use tracker_domain::goods::MAX_CODE;

/// Most units of one SKU that a stock level may hold.
pub const MAX_STOCK: i64 = 1_000_000_000_000;

/// Whose reservation: an order's business key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationKey {
    /// The order's `biz_type`.
    pub biz_type: String,
    /// The order's `biz_order_no`.
    pub biz_order_no: String,
}

/// A quantity of one SKU that an order wants.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StockLine {
    /// The SKU.
    pub sku: String,
    /// How many units (at least one).
    pub qty: i64,
}

/// One SKU's stock, as `GET /v1/stock/{sku}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StockLevel {
    /// The SKU.
    pub sku: String,
    /// Units that may still be reserved.
    pub available: i64,
    /// Units held by orders under way.
    pub reserved: i64,
    /// Units of delivered orders.
    pub sold: i64,
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    /// Held for an order under way.
    Reserved,
    /// Given back (the order was cancelled or returned).
    Released,
    /// Turned into a sale (the order was delivered).
    Sold,
}

impl ReservationState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Reserved => "reserved",
            ReservationState::Released => "released",
            ReservationState::Sold => "sold",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reserved" => Some(ReservationState::Reserved),
            "released" => Some(ReservationState::Released),
            "sold" => Some(ReservationState::Sold),
            _ => None,
        }
    }
}

/// What a reservation call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// This call reserved the stock-controlled lines.
    New,
    /// The key had a reservation already (a repeated create); nothing changed.
    Already(ReservationState),
    /// None of the lines is stock-controlled: nothing to reserve, nothing recorded.
    Uncontrolled,
}

/// How a reservation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The order was cancelled or returned: the units go back to `available`.
    Release,
    /// The order was delivered: the units move from `reserved` to `sold`.
    Sell,
    /// The order was never written: the units go back and the record goes,
    /// so a retried create reserves anew.
    Forget,
}

/// A reservation still open, for the sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReservation {
    /// Whose.
    pub key: ReservationKey,
    /// When it was made, Unix ms.
    pub at: i64,
}

/// Why a stock call failed.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// A stock-controlled SKU has fewer units available than asked; nothing was reserved.
    #[error("out of stock: `{sku}`")]
    OutOfStock {
        /// The first SKU found short.
        sku: String,
    },
    /// A value out of bounds (a negative level, a quantity of zero, a SKU too long).
    #[error("{0}")]
    Invalid(String),
    /// The backend could not be reached or failed; the call may be retried.
    #[error("stock unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

impl From<sqlx::Error> for StockError {
    fn from(e: sqlx::Error) -> Self {
        StockError::Unavailable(e.into())
    }
}

/// Checks a SKU as every stock call takes it: 1..=64 printable bytes.
pub fn check_sku(sku: &str) -> Result<(), StockError> {
    if sku.is_empty() || sku.len() > MAX_CODE || sku.chars().any(char::is_control) {
        return Err(StockError::Invalid(format!(
            "`sku` must be 1..={MAX_CODE} bytes without control characters"
        )));
    }
    Ok(())
}

/// Checks lines and sorts them by SKU (so concurrent reservations lock rows
/// in one order); a SKU given twice is refused.
pub fn sorted_lines(lines: &[StockLine]) -> Result<Vec<StockLine>, StockError> {
    let mut out = lines.to_vec();
    out.sort_by(|a, b| a.sku.cmp(&b.sku));
    for (i, l) in out.iter().enumerate() {
        check_sku(&l.sku)?;
        if !(1..=MAX_STOCK).contains(&l.qty) {
            return Err(StockError::Invalid(format!(
                "quantity of `{}` must be 1..={MAX_STOCK}",
                l.sku
            )));
        }
        if i > 0 && out[i - 1].sku == l.sku {
            return Err(StockError::Invalid(format!("`{}` appears twice", l.sku)));
        }
    }
    Ok(out)
}

/// Checks a level that `PUT /v1/stock/{sku}` sets.
pub fn check_level(available: i64) -> Result<(), StockError> {
    if !(0..=MAX_STOCK).contains(&available) {
        return Err(StockError::Invalid(format!(
            "`available` must be 0..={MAX_STOCK}"
        )));
    }
    Ok(())
}

/// Stock levels and reservations, shared by every process.
#[async_trait]
pub trait Stock: Send + Sync + 'static {
    /// Sets the SKU's `available` units (what is reserved or sold stays);
    /// from now on the SKU is stock-controlled. Answers the level.
    async fn set(&self, sku: &str, available: i64, now: i64) -> Result<StockLevel, StockError>;

    /// The SKU's level, or `None` when it is not stock-controlled.
    async fn get(&self, sku: &str) -> Result<Option<StockLevel>, StockError>;

    /// Reserves every stock-controlled line for `key` at once, or nothing
    /// ([`StockError::OutOfStock`] names a short SKU). A key that has a
    /// reservation already changes nothing. Any number of concurrent calls
    /// never take more than is available.
    async fn reserve(
        &self,
        key: &ReservationKey,
        lines: &[StockLine],
        now: i64,
    ) -> Result<Reserved, StockError>;

    /// Ends `key`'s reservation as `how` says if it is still open; true when
    /// this call did it (false: there is none, or it was settled already).
    async fn settle(&self, key: &ReservationKey, how: Settle, now: i64)
    -> Result<bool, StockError>;

    /// Up to `limit` reservations still open that were made before `before`
    /// (Unix ms), oldest first.
    async fn open_reservations(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<OpenReservation>, StockError>;
    /// Up to `limit` stock-controlled SKUs first set at or after `since`
    /// (Unix ms), in the order they were first set, the first `skip` of
    /// them left out: the hub's filter of known SKUs loads from here. A SKU
    /// set again keeps its place.
    async fn skus(&self, since: i64, skip: usize, limit: usize) -> Result<Vec<String>, StockError>;
}
