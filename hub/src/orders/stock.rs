//! An order's stock: reserved when it is created, given back when it is
//! cancelled or returned, sold when it is delivered, each exactly once (the
//! stock seam settles a reservation only while it is open), and repaired by
//! the sweep when a process died between the order's write and the stock's.
//!
//! The reservation comes first and the order's row second: two backends
//! cannot share one transaction, and in this order a crash leaves goods held
//! for an order that does not exist (the sweep gives them back after
//! [`RESERVATION_GRACE`]) rather than an order holding goods it never got.

use super::{OrderError, Orders};
use std::time::Duration;
use tracker_backend::stock::{
    ReservationKey, Reserved, Settle, StockLevel, StockLine, check_level, check_sku,
};
use tracker_backend::store::Lookup;
use tracker_domain::{NewOrder, Order, Status};

/// How old an open reservation must be before the sweep asks whether its
/// order exists: longer than any create takes between its two steps.
pub const RESERVATION_GRACE: Duration = Duration::from_secs(60);

/// Most open reservations the sweep looks at in one round.
const BATCH: usize = 200;

/// `PUT /v1/stock/{sku}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetStock {
    /// Units that may be reserved from now on.
    pub available: i64,
}

/// The reservation key of an order: its business key.
pub fn key_of(biz_type: &str, biz_order_no: &str) -> ReservationKey {
    ReservationKey {
        biz_type: biz_type.to_owned(),
        biz_order_no: biz_order_no.to_owned(),
    }
}

/// What `order` reaching `status` does to its reservation.
fn settlement(status: Status) -> Option<Settle> {
    match status {
        Status::Delivered => Some(Settle::Sell),
        Status::Cancelled | Status::Returned => Some(Settle::Release),
        _ => None,
    }
}

impl Orders {
    /// `GET /v1/stock/{sku}` (admins): the level, or 404 when the SKU is not
    /// stock-controlled (without a read when the filter of known SKUs says so).
    pub async fn stock_level(&self, sku: &str) -> Result<StockLevel, OrderError> {
        check_sku(sku)?;
        if self.known_skus.check(sku).await == super::known::Verdict::Absent {
            return Err(OrderError::NotFound);
        }
        self.stock.get(sku).await?.ok_or(OrderError::NotFound)
    }

    /// `PUT /v1/stock/{sku}` (admins): sets the available units.
    pub async fn set_stock(&self, sku: &str, req: SetStock) -> Result<StockLevel, OrderError> {
        check_sku(sku)?;
        check_level(req.available)?;
        let level = self
            .stock
            .set(sku, req.available, self.clock.now_ms())
            .await?;
        self.known_skus.insert(sku);
        Ok(level)
    }

    /// Reserves the items of `new` before its row is written; a repeated
    /// create finds the reservation made and changes nothing.
    pub(crate) async fn reserve_for(&self, new: &NewOrder) -> Result<(), OrderError> {
        let lines: Vec<StockLine> = new
            .items
            .iter()
            .map(|it| StockLine {
                sku: it.sku.clone(),
                qty: i64::from(it.qty),
            })
            .collect();
        if lines.is_empty() {
            return Ok(());
        }
        let key = key_of(&new.biz_type, &new.biz_order_no);
        match self
            .stock
            .reserve(&key, &lines, self.clock.now_ms())
            .await?
        {
            Reserved::New => metrics::counter!("tracker_stock_reservations_total").increment(1),
            Reserved::Already(_) | Reserved::Uncontrolled => {}
        }
        Ok(())
    }

    /// After a committed change that ended `order`: its reservation is
    /// released or sold. A failure is left to the sweep.
    pub(crate) async fn settle_stock(&self, order: &Order) {
        let Some(how) = settlement(order.status) else {
            return;
        };
        if order.item_count == 0 {
            return;
        }
        self.settle_key(&key_of(&order.biz_type, &order.biz_order_no), how, "write")
            .await;
    }

    async fn settle_key(&self, key: &ReservationKey, how: Settle, via: &'static str) {
        let name = match how {
            Settle::Release => "released",
            Settle::Sell => "sold",
            Settle::Forget => "forgotten",
        };
        match self.stock.settle(key, how, self.clock.now_ms()).await {
            Ok(true) => {
                metrics::counter!("tracker_stock_settled_total", "how" => name, "via" => via)
                    .increment(1);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, biz_order_no = %key.biz_order_no, "settling a reservation failed; the sweep retries it");
            }
        }
    }

    /// The order with a business key, in the store or the archive.
    pub(crate) async fn order_by_key(
        &self,
        biz_type: &str,
        biz_order_no: &str,
    ) -> Result<Option<Order>, OrderError> {
        self.order_of(&key_of(biz_type, biz_order_no)).await
    }

    /// The order of a reservation, in the store or the archive.
    async fn order_of(&self, key: &ReservationKey) -> Result<Option<Order>, OrderError> {
        let lookup = Lookup::Business {
            no: key.biz_order_no.clone(),
            kind: Some(key.biz_type.clone()),
        };
        let (found, _) = self.store.lookup(&lookup, None, 1).await?;
        if let Some(o) = found.into_iter().next() {
            return Ok(Some(o));
        }
        match &self.archive {
            Some(a) => Ok(a.lookup(&lookup, None, 1).await?.0.into_iter().next()),
            None => Ok(None),
        }
    }

    /// The sweep's share: every reservation open for longer than the grace
    /// is checked against its order. No order: the create never finished, the
    /// goods go back. An ended order: settled as the write after it would have.
    pub async fn repair_stock(&self) {
        let before = self.clock.now_ms() - RESERVATION_GRACE.as_millis() as i64;
        let open = match self.stock.open_reservations(before, BATCH).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "sweep: open reservations");
                return;
            }
        };
        for r in open {
            let how = match self.order_of(&r.key).await {
                Ok(None) => Settle::Forget,
                Ok(Some(order)) => match settlement(order.status) {
                    Some(how) => how,
                    None => continue,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: the order of a reservation");
                    continue;
                }
            };
            self.settle_key(&r.key, how, "sweep").await;
        }
    }
}
