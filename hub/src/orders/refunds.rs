//! Refunds (`POST /v1/orders/{id}/refund`): taken as `pending` on the order,
//! then applied once the order's own earlier changes have left the outbox
//! for the log, so the refund's cancel always follows them there.
//!
//! While events of the order wait in the outbox (the relay is behind, or its
//! log is down) the refund is retried from the delay queue with a capped
//! backoff; the timeouts sweep retries any pending refund whose timer was
//! lost. Applying it is a compare-and-set like every write: before pick-up
//! it cancels the order (reason `refunded`; the stock comes back through the
//! cancel), on an order already cancelled it is recorded, and an order that
//! was picked up meanwhile refuses it (`domain/src/refund.rs`).

use super::{OrderError, Orders, check_id};
use std::time::Duration;
use tracker_backend::StoreError;
use tracker_backend::timers::{Timer, TimerKind};
use tracker_domain::Order;
use tracker_domain::order::Change;
use tracker_domain::refund::{RefundError, RefundRequest, RefundState};

/// The first retry's delay; each next one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest delay between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The delay before try `attempt` (0 is the first retry).
fn backoff(attempt: i64) -> Duration {
    let shift = attempt.clamp(0, 16) as u32;
    FIRST_BACKOFF.saturating_mul(1u32 << shift).min(MAX_BACKOFF)
}

fn refused(e: RefundError) -> OrderError {
    let code = match e {
        RefundError::Exists(_) => "refund_exists",
        RefundError::NotRefundable(_) => "not_refundable",
    };
    OrderError::Conflict {
        code,
        message: e.to_string(),
    }
}

impl Orders {
    /// Takes a refund of order `id` and applies it now if nothing of the
    /// order waits in the outbox; answers the order as it stands (its
    /// `refund` pending or done). The same `biz_refund_no` again is the same refund.
    pub async fn refund(&self, id: &str, req: RefundRequest) -> Result<Order, OrderError> {
        check_id(id)?;
        req.validate().map_err(OrderError::BadRequest)?;
        let order = self.order(id).await?;
        let change = order
            .request_refund(&req, self.clock.now_ms())
            .map_err(refused)?;
        let order = self.commit(order, change).await?;
        metrics::counter!("tracker_refunds_total", "step" => "requested").increment(1);
        self.try_refund(order, 0).await
    }

    /// Applies `order`'s pending refund, or schedules try `attempt` when
    /// events of the order still wait in the outbox or another writer won.
    async fn try_refund(&self, order: Order, attempt: i64) -> Result<Order, OrderError> {
        if order.refund.as_ref().map(|r| r.state) != Some(RefundState::Pending) {
            return Ok(order);
        }
        if self.store.outbox_holds(&order.id).await? {
            metrics::counter!("tracker_refunds_total", "step" => "waited").increment(1);
            self.retry_refund_later(&order.id, attempt);
            return Ok(order);
        }
        let change = order.apply_refund(self.clock.now_ms());
        let step = match &change {
            Change::Unchanged => return Ok(order),
            Change::Changed { order: next, .. } => match next.refund.as_ref().map(|r| r.state) {
                Some(RefundState::Refused) => "refused",
                _ => "done",
            },
        };
        let id = order.id.clone();
        match self.commit(order, change).await {
            Ok(done) => {
                metrics::counter!("tracker_refunds_total", "step" => step).increment(1);
                Ok(done)
            }
            Err(OrderError::VersionConflict) => {
                // Another writer moved the order: try again from the queue.
                self.retry_refund_later(&id, attempt);
                Ok(self.store.get_order(&id).await?)
            }
            Err(OrderError::Change(why)) => {
                // The order will not take the cancel (a package is on its
                // way): the refund is refused rather than retried for ever.
                let fresh = self.store.get_order(&id).await?;
                let change = fresh.refuse_refund(why.to_string(), self.clock.now_ms());
                let refused = self.commit(fresh, change).await?;
                metrics::counter!("tracker_refunds_total", "step" => "refused").increment(1);
                Ok(refused)
            }
            Err(e) => Err(e),
        }
    }

    /// Schedules try `attempt` of order `id`'s refund; the answer does not
    /// wait for the delay queue (it may be the backend that is down), and a
    /// schedule that fails is left to the sweep.
    fn retry_refund_later(&self, id: &str, attempt: i64) {
        let timer = Timer {
            kind: TimerKind::Refund,
            order: id.to_owned(),
            status_version: attempt,
            due: self.clock.now_ms() + backoff(attempt).as_millis() as i64,
        };
        let timers = self.timers.clone();
        tokio::spawn(async move {
            if let Err(e) = timers.schedule(&timer).await {
                tracing::warn!(error = %e, order = %timer.order, "scheduling a refund retry failed; the sweep covers it");
            }
        });
    }

    /// A refund retry from the delay queue (or the sweep): re-reads the
    /// order and tries again; true when the refund was applied now.
    pub(crate) async fn retry_refund(&self, id: &str, attempt: i64) -> Result<bool, StoreError> {
        let order = match self.store.get_order(id).await {
            Ok(o) => o,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        match self.try_refund(order, attempt + 1).await {
            Ok(o) => Ok(o.refund.is_some_and(|r| r.state != RefundState::Pending)),
            Err(OrderError::Unavailable(e)) => Err(StoreError::Unavailable(e)),
            Err(OrderError::Internal(e)) => Err(StoreError::Corrupt(e)),
            Err(_) => Ok(false),
        }
    }

    /// The sweep's share: every refund still pending after a while is tried again.
    pub(crate) async fn sweep_refunds(&self, batch: usize) {
        let before = self.clock.now_ms() - FIRST_BACKOFF.as_millis() as i64 * 4;
        let pending = match self.store.pending_refunds(before, batch).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "sweep: pending refunds");
                return;
            }
        };
        for o in pending {
            if let Err(e) = self.retry_refund(&o.id, 0).await {
                tracing::warn!(error = %e, order = %o.id, "sweep: a refund retry failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_a_cap() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(40), MAX_BACKOFF);
        assert_eq!(backoff(-3), FIRST_BACKOFF);
    }
}
