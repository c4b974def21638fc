//! Refunds: one per order, keyed by the payment system's `biz_refund_no`,
//! `pending` until the order's earlier changes have reached its log, then
//! `done` (before pick-up the order is cancelled with reason `refunded`; an
//! order already cancelled, by its payment timeout or anyone, has the refund
//! recorded) or `refused` (the rider picked the goods up in the meantime).

use crate::event::EventBody;
use crate::order::{Change, Expected, Order};
use crate::status::Status;
use serde::{Deserialize, Serialize};

/// The cancel reason of an order that a refund cancelled.
pub const REFUNDED: &str = "refunded";
/// Longest `biz_refund_no`, bytes.
pub const MAX_REFUND_NO: usize = 128;
/// Longest `reason`, bytes.
pub const MAX_REASON: usize = 1024;

/// `POST /v1/orders/{id}/refund`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The payment system's refund key: the same key again is the same refund.
    pub biz_refund_no: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// How much, in the currency's minor unit (cents), when the caller says.
    #[serde(default)]
    pub amount: Option<i64>,
}

impl RefundRequest {
    /// Checks the request's bounds; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let no = &self.biz_refund_no;
        if no.is_empty() || no.len() > MAX_REFUND_NO || no.chars().any(char::is_control) {
            return Err(format!(
                "`biz_refund_no` must be 1..={MAX_REFUND_NO} bytes without control characters"
            ));
        }
        if self.reason.as_ref().is_some_and(|r| r.len() > MAX_REASON) {
            return Err(format!("`reason` is longer than {MAX_REASON} bytes"));
        }
        if self.amount.is_some_and(|a| a < 0) {
            return Err("`amount` must not be negative".into());
        }
        Ok(())
    }
}

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// Waiting for the order's earlier changes to reach its log.
    Pending,
    /// Applied: the order cancelled, or the refund recorded on a cancelled one.
    Done,
    /// Could not apply: the goods were picked up while it waited.
    Refused,
}

/// An order's refund, as `GET /v1/orders/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    /// The payment system's key.
    pub biz_refund_no: String,
    /// Where it stands.
    pub state: RefundState,
    /// Why, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How much, as given (minor units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    /// What it did: `cancelled` (the order), `recorded` (it was cancelled
    /// already), or why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// When it was asked for, Unix ms.
    pub requested_at: i64,
    /// When it was done or refused, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled_at: Option<i64>,
}

/// Why a refund was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefundError {
    /// The order has a refund under another key.
    #[error("the order has a refund already, `{0}`")]
    Exists(String),
    /// The order is past the point where a refund cancels it.
    #[error("an order that is {0} cannot be refunded here")]
    NotRefundable(Status),
}

/// True for the statuses a refund may be asked for in: before pick-up, or cancelled.
fn refundable(s: Status) -> bool {
    s.before_pickup() || s == Status::Cancelled
}

impl Order {
    /// Takes a refund as `pending`; the same key again changes nothing.
    pub fn request_refund(&self, req: &RefundRequest, now: i64) -> Result<Change, RefundError> {
        if let Some(r) = &self.refund {
            if r.biz_refund_no == req.biz_refund_no {
                return Ok(Change::Unchanged);
            }
            return Err(RefundError::Exists(r.biz_refund_no.clone()));
        }
        if !refundable(self.status) {
            return Err(RefundError::NotRefundable(self.status));
        }
        let mut next = self.clone();
        next.refund = Some(Refund {
            biz_refund_no: req.biz_refund_no.clone(),
            state: RefundState::Pending,
            reason: req.reason.clone(),
            amount: req.amount,
            outcome: None,
            requested_at: now,
            settled_at: None,
        });
        next.version += 1;
        next.updated_at = now;
        Ok(Change::Changed {
            order: Box::new(next),
            events: Vec::new(),
        })
    }

    /// Applies a pending refund: cancels the order before pick-up, records it
    /// on a cancelled one, refuses it otherwise; a `refund` event says which.
    pub fn apply_refund(&self, now: i64) -> Change {
        let Some(refund) = self
            .refund
            .as_ref()
            .filter(|r| r.state == RefundState::Pending)
        else {
            return Change::Unchanged;
        };
        let (mut next, mut events, state, outcome) = if self.status.before_pickup() {
            let exp = Expected {
                version: Some(self.version),
                status_version: None,
            };
            let reason = Some(REFUNDED.to_owned());
            match self.change_status(Status::Cancelled, exp, reason, Some("system".into()), now) {
                Ok(Change::Changed { order, events }) => {
                    (*order, events, RefundState::Done, "cancelled".to_owned())
                }
                // A cancel before pick-up is always an edge; keep the order as it is.
                _ => return Change::Unchanged,
            }
        } else {
            let mut next = self.clone();
            next.version += 1;
            next.updated_at = now;
            if self.status == Status::Cancelled {
                (next, Vec::new(), RefundState::Done, "recorded".to_owned())
            } else {
                let why = format!("the order was {} before the refund applied", self.status);
                (next, Vec::new(), RefundState::Refused, why)
            }
        };
        settle(refund, &mut next, &mut events, state, outcome, now);
        Change::Changed {
            order: Box::new(next),
            events,
        }
    }

    /// Refuses a pending refund whose cancel the order would not take (a
    /// package on its way): `why` says so; the order stays as it is.
    pub fn refuse_refund(&self, why: String, now: i64) -> Change {
        let Some(refund) = self
            .refund
            .as_ref()
            .filter(|r| r.state == RefundState::Pending)
        else {
            return Change::Unchanged;
        };
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        let mut events = Vec::new();
        settle(
            refund,
            &mut next,
            &mut events,
            RefundState::Refused,
            why,
            now,
        );
        Change::Changed {
            order: Box::new(next),
            events,
        }
    }
}

/// Ends `refund` on `next` as `state` and adds its `refund` event.
fn settle(
    refund: &Refund,
    next: &mut Order,
    events: &mut Vec<EventBody>,
    state: RefundState,
    outcome: String,
    now: i64,
) {
    next.refund = Some(Refund {
        state,
        outcome: Some(outcome),
        settled_at: Some(now),
        ..refund.clone()
    });
    events.push(EventBody::Refund {
        state,
        biz_refund_no: refund.biz_refund_no.clone(),
        ts: now,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewOrder, Point};

    fn order() -> Order {
        let p = Point { lat: 1.0, lon: 1.0 };
        let new = NewOrder {
            biz_order_no: "R-1".into(),
            biz_type: "shop".into(),
            customer_id: "c".into(),
            pickup: p,
            dropoff: p,
            ..Default::default()
        };
        Order::new("9".into(), new, 1)
    }

    fn req(no: &str) -> RefundRequest {
        RefundRequest {
            biz_refund_no: no.into(),
            reason: None,
            amount: Some(990),
        }
    }

    fn changed(c: Change) -> (Order, Vec<EventBody>) {
        match c {
            Change::Changed { order, events } => (*order, events),
            Change::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn a_refund_before_pick_up_cancels_the_order_once() {
        let (pending, evs) = changed(order().request_refund(&req("RF-1"), 5).unwrap());
        assert!(evs.is_empty());
        assert_eq!(pending.refund.as_ref().unwrap().state, RefundState::Pending);
        assert_eq!(
            pending.request_refund(&req("RF-1"), 6).unwrap(),
            Change::Unchanged
        );
        assert_eq!(
            pending.request_refund(&req("RF-2"), 6),
            Err(RefundError::Exists("RF-1".into()))
        );
        let (done, evs) = changed(pending.apply_refund(7));
        assert_eq!(done.status, Status::Cancelled);
        assert_eq!(done.cancel_reason.as_deref(), Some(REFUNDED));
        let r = done.refund.as_ref().unwrap();
        assert_eq!(
            (r.state, r.outcome.as_deref()),
            (RefundState::Done, Some("cancelled"))
        );
        assert!(matches!(
            evs.last(),
            Some(EventBody::Refund {
                state: RefundState::Done,
                ..
            })
        ));
        assert_eq!(done.apply_refund(8), Change::Unchanged, "once");
    }

    #[test]
    fn a_cancelled_order_records_it_and_a_picked_up_one_refuses() {
        let mut o = order();
        o.status = Status::Cancelled;
        let (p, _) = changed(o.request_refund(&req("RF-3"), 5).unwrap());
        let (done, evs) = changed(p.apply_refund(6));
        assert_eq!(done.status, Status::Cancelled);
        assert_eq!(done.refund.unwrap().outcome.as_deref(), Some("recorded"));
        assert_eq!(evs.len(), 1);

        let mut o = order();
        o.status = Status::Delivered;
        assert_eq!(
            o.request_refund(&req("RF-4"), 5),
            Err(RefundError::NotRefundable(Status::Delivered))
        );
        let (mut p, _) = changed(order().request_refund(&req("RF-5"), 5).unwrap());
        p.status = Status::PickedUp;
        let (refused, _) = changed(p.apply_refund(6));
        assert_eq!(refused.status, Status::PickedUp);
        assert_eq!(refused.refund.unwrap().state, RefundState::Refused);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let long = RefundRequest {
            biz_refund_no: "x".repeat(200),
            ..req("a")
        };
        assert!(long.validate().unwrap_err().contains("biz_refund_no"));
        let neg = RefundRequest {
            amount: Some(-1),
            ..req("a")
        };
        assert!(neg.validate().unwrap_err().contains("amount"));
    }
}
