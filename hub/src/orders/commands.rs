//! The order commands of the API: create (idempotent by business key), change
//! status, assign. Each reads the order, computes the change in the domain and
//! writes it through [`Orders::write`](super::Orders::write).

use super::{OrderError, Orders, check_id};
use serde::Deserialize;
use tracker_domain::rider::{MAX_RIDER_ID, is_valid_rider_id};
use tracker_domain::{Expected, NewOrder, Order, Status};

/// Longest `reason` or `by` of a status change, bytes.
const MAX_TEXT: usize = 1024;

/// `POST /v1/orders/{id}/status`: one transition.
#[derive(Debug, Deserialize)]
pub struct StatusChange {
    /// The requested status.
    pub to: String,
    /// Expected order version; at least one of the two versions is required.
    pub version: Option<i64>,
    /// Expected status version, for writers that only care about status.
    pub status_version: Option<i64>,
    /// Why (cancels, returns, rejections).
    pub reason: Option<String>,
    /// Who asked for a cancel (`customer`, `shop`, `system`, …).
    pub by: Option<String>,
}

/// `POST /v1/orders/{id}/assign`: `ready → assigned` to a rider.
#[derive(Debug, Deserialize)]
pub struct Assignment {
    /// The rider who gets the order.
    pub rider_id: String,
    /// Their display name; the order's customer sees its first word.
    pub rider_name: Option<String>,
    /// Expected order version.
    pub version: Option<i64>,
    /// Expected status version.
    pub status_version: Option<i64>,
}

fn expected(version: Option<i64>, status_version: Option<i64>) -> Result<Expected, OrderError> {
    if version.is_none() && status_version.is_none() {
        return Err(OrderError::BadRequest(
            "`version` (or `status_version`) is required".into(),
        ));
    }
    Ok(Expected {
        version,
        status_version,
    })
}

fn short_text(name: &str, v: &Option<String>) -> Result<(), OrderError> {
    match v {
        Some(s) if s.len() > MAX_TEXT => Err(OrderError::BadRequest(format!(
            "`{name}` is longer than {MAX_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

impl Orders {
    /// Creates an order; a repeated business key returns the existing one.
    /// The flag says whether this call created it.
    pub async fn create(&self, new: NewOrder) -> Result<(Order, bool), OrderError> {
        new.validate().map_err(OrderError::BadRequest)?;
        let order = Order::new(self.ids.next_id().to_string(), new, self.clock.now_ms());
        let (order, created) = self
            .store
            .create_order(&order, &[order.created_event()])
            .await?;
        if created {
            self.after_create(&order).await;
            metrics::counter!("tracker_orders_created_total").increment(1);
        }
        Ok((order, created))
    }

    /// One status transition: stale versions and illegal transitions are
    /// refused. A payment that lost the race with its timeout leaves the order
    /// cancelled, notes in its log that the money must go back, and is refused
    /// as `refund_required`.
    pub async fn change_status(&self, id: &str, req: StatusChange) -> Result<Order, OrderError> {
        check_id(id)?;
        let to: Status = req
            .to
            .parse()
            .map_err(|e: tracker_domain::status::UnknownStatus| {
                OrderError::BadRequest(e.to_string())
            })?;
        let exp = expected(req.version, req.status_version)?;
        short_text("reason", &req.reason)?;
        short_text("by", &req.by)?;
        let order = self.store.get_order(id).await?;
        let now = self.clock.now_ms();
        if to == Status::Paid && order.cancelled_for_payment_timeout() {
            let change = order.refund_required(now);
            let _noted = self.commit(order, change).await?;
            metrics::counter!("tracker_refunds_required_total").increment(1);
            return Err(OrderError::Conflict {
                code: "refund_required",
                message:
                    "the order was cancelled by the payment timeout; the payment must be refunded"
                        .into(),
            });
        }
        let change = order.change_status(to, exp, req.reason, req.by, now)?;
        self.commit(order, change).await
    }

    /// Gives a `ready` order to a rider (operators).
    pub async fn assign(&self, id: &str, req: Assignment) -> Result<Order, OrderError> {
        check_id(id)?;
        if !is_valid_rider_id(&req.rider_id) {
            return Err(OrderError::BadRequest(format!(
                "`rider_id` must be 1..={MAX_RIDER_ID} characters of A-Z, a-z, 0-9, `_`, `-`, `.`"
            )));
        }
        short_text("rider_name", &req.rider_name)?;
        let exp = expected(req.version, req.status_version)?;
        let order = self.store.get_order(id).await?;
        let now = self.clock.now_ms();
        let change = order.assign(&req.rider_id, req.rider_name.as_deref(), exp, now)?;
        self.commit(order, change).await
    }
}
