//! An order, its optimistic versions, and the changes the orders API may make to it.
//!
//! Every change is computed here as a pure function of the current row: the API
//! reads the order, asks for the change, and writes the result with a
//! compare-and-set on the version it read. A change that changes nothing is
//! [`Change::Unchanged`] and never reaches storage.

use crate::episodes::Episode;
use crate::event::EventBody;
use crate::goods::{self, Item, NewPackage, Package, Party};
use crate::status::Status;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A WGS-84 point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Latitude, degrees in [-90, 90].
    pub lat: f64,
    /// Longitude, degrees in [-180, 180].
    pub lon: f64,
}

impl Point {
    /// True when both coordinates are finite and in range.
    pub fn is_valid(&self) -> bool {
        self.lat.is_finite()
            && self.lon.is_finite()
            && (-90.0..=90.0).contains(&self.lat)
            && (-180.0..=180.0).contains(&self.lon)
    }
}

/// The body of `POST /v1/orders`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewOrder {
    /// The upstream system's order number; with `biz_type` the idempotency key.
    pub biz_order_no: String,
    /// The upstream business line (`grocery`, `food`, …).
    pub biz_type: String,
    /// The customer who may watch this order.
    pub customer_id: String,
    /// Where the rider collects the goods.
    pub pickup: Point,
    /// Where the rider delivers them.
    pub dropoff: Point,
    /// When delivery was promised, Unix ms; late-delivery alerts use it.
    #[serde(default)]
    pub promised_at: Option<i64>,
    /// The planned route, pick-up to drop-off (2–5000 points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<Point>>,
    /// Who receives the goods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Party>,
    /// Who sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Party>,
    /// The goods, one line per SKU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// The parcels the goods travel in; when given, they hold every item exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<NewPackage>,
    /// Free text for the rider and the operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The upstream system's own fields, kept and returned as given (at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `reason` of a cancel by the payment timeout.
pub const PAYMENT_TIMEOUT: &str = "payment_timeout";

/// The `reason` of a return to the pool by the pick-up timeout.
pub const PICKUP_TIMEOUT: &str = "pickup_timeout";

/// Longest accepted id-like string (order numbers, customer and rider ids).
pub const MAX_KEY_LEN: usize = 128;

fn check_key(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_KEY_LEN || value.chars().any(char::is_control) {
        return Err(format!(
            "`{name}` must be 1..={MAX_KEY_LEN} printable characters"
        ));
    }
    Ok(())
}

impl NewOrder {
    /// Checks every field; the message names the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        check_key("biz_order_no", &self.biz_order_no)?;
        check_key("biz_type", &self.biz_type)?;
        check_key("customer_id", &self.customer_id)?;
        if !self.pickup.is_valid() {
            return Err("`pickup` is not a valid lat/lon".into());
        }
        if !self.dropoff.is_valid() {
            return Err("`dropoff` is not a valid lat/lon".into());
        }
        if let Some(route) = &self.route {
            crate::route::check_route(route)?;
        }
        if let Some(p) = &self.recipient {
            goods::check_party("recipient", p)?;
        }
        if let Some(p) = &self.sender {
            goods::check_party("sender", p)?;
        }
        goods::check_goods(&self.items, &self.packages)?;
        goods::check_extras(&self.notes, &self.metadata)
    }
}

/// An order as stored and as `GET /v1/orders/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Snowflake id, as a decimal string.
    pub id: String,
    /// Upstream order number.
    pub biz_order_no: String,
    /// Upstream business line.
    pub biz_type: String,
    /// Owner; the only customer who may watch it.
    pub customer_id: String,
    /// The rider holding it, while one does.
    pub rider_id: Option<String>,
    /// That rider's display name, when the assigner gave one.
    #[serde(default)]
    pub rider_name: Option<String>,
    /// Current state.
    pub status: Status,
    /// Rises by one on every change; writers compare-and-set on it.
    pub version: i64,
    /// Rises by one on every status change only, so status writers need not
    /// fight with writers of other fields.
    pub status_version: i64,
    /// Pickup point.
    pub pickup: Point,
    /// Drop-off point.
    pub dropoff: Point,
    /// Promised delivery time, Unix ms.
    pub promised_at: Option<i64>,
    /// The planned route, pick-up to drop-off, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Vec<Point>>,
    /// Why it was cancelled or returned, when it was.
    pub cancel_reason: Option<String>,
    /// Who cancelled it (`customer`, `shop`, `system`, …), when someone did.
    pub cancelled_by: Option<String>,
    /// When it was picked up, Unix ms: customers see the rider's trail from here on.
    #[serde(default)]
    pub picked_up_at: Option<i64>,
    /// When the late-delivery alert was raised, Unix ms: set once, so the
    /// timer and the sweep that back each other up never raise it twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_alert_at: Option<i64>,
    /// When the order's share links were last revoked, Unix ms: share tokens
    /// made at or before it are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares_revoked_at: Option<i64>,
    /// The alert episodes the trip watcher has raised, by kind: the open ones
    /// and the last transition of each, so no episode is raised or cleared twice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alerts: BTreeMap<String, Episode>,
    /// When the rider holding the order first came near the pick-up, Unix ms (fix time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_pickup_at: Option<i64>,
    /// When the rider holding the order first came near the drop-off, Unix ms (fix time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_dropoff_at: Option<i64>,
    /// Who receives the goods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<Party>,
    /// Who sends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Party>,
    /// Free text for the rider and the operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The upstream system's own fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// How many item lines the order holds (read with `include=items`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub item_count: i32,
    /// How many packages it is split into (read with `include=packages`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub package_count: i32,
    /// The goods; present only when they were asked for (or just created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
    /// The packages as they stand; present only when they were asked for (or just created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<Package>>,
    /// Its refund, once the payment system asked for one (`domain/src/refund.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<crate::refund::Refund>,
    /// Set when the order was read from the archive (the cold store of
    /// finished orders): it can no longer change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last change, Unix ms.
    pub updated_at: i64,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The versions a writer read; each one given must still be current.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Expected {
    /// Expected `version` of the whole order.
    pub version: Option<i64>,
    /// Expected `status_version`; lets status writers ignore other edits.
    pub status_version: Option<i64>,
}

/// What a requested change does to an order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Already so: answer without writing.
    Unchanged,
    /// The new row and the events to append with it, in order.
    Changed {
        /// The order after the change; its versions already raised.
        order: Box<Order>,
        /// The events of the change, for the order's log.
        events: Vec<EventBody>,
    },
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// The writer read an older version (HTTP 409).
    #[error("stale version: the order is at version {version}, status_version {status_version}")]
    Stale {
        /// Current `version`.
        version: i64,
        /// Current `status_version`.
        status_version: i64,
    },
    /// Not an edge of the state machine (HTTP 422).
    #[error("illegal transition {from} -> {to}")]
    Illegal {
        /// Current status.
        from: Status,
        /// Requested status.
        to: Status,
    },
    /// A request the state machine cannot take as asked (HTTP 422).
    #[error("{0}")]
    Invalid(String),
}

impl Order {
    /// A new order in `pending_payment`, version 1.
    pub fn new(id: String, new: NewOrder, now: i64) -> Self {
        Order {
            id,
            biz_order_no: new.biz_order_no,
            biz_type: new.biz_type,
            customer_id: new.customer_id,
            rider_id: None,
            rider_name: None,
            status: Status::PendingPayment,
            version: 1,
            status_version: 1,
            pickup: new.pickup,
            dropoff: new.dropoff,
            promised_at: new.promised_at,
            route: new.route,
            cancel_reason: None,
            cancelled_by: None,
            picked_up_at: None,
            late_alert_at: None,
            shares_revoked_at: None,
            alerts: BTreeMap::new(),
            arrived_pickup_at: None,
            arrived_dropoff_at: None,
            recipient: new.recipient,
            sender: new.sender,
            notes: new.notes,
            metadata: new.metadata,
            item_count: new.items.len() as i32,
            package_count: new.packages.len() as i32,
            items: (!new.items.is_empty()).then_some(new.items),
            packages: (!new.packages.is_empty()).then(|| {
                new.packages
                    .into_iter()
                    .map(|p| Package::new(p, now))
                    .collect()
            }),
            refund: None,
            archived: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// The event that announces a new order's first status.
    pub fn created_event(&self) -> EventBody {
        EventBody::Status {
            status: self.status,
            from: None,
            version: self.version,
            ts: self.created_at,
            reason: None,
            by: None,
        }
    }

    fn check(&self, expected: Expected) -> Result<(), ChangeError> {
        let stale = expected.version.is_some_and(|v| v != self.version)
            || expected
                .status_version
                .is_some_and(|v| v != self.status_version);
        if stale {
            return Err(ChangeError::Stale {
                version: self.version,
                status_version: self.status_version,
            });
        }
        Ok(())
    }

    /// A status transition; `reason` and `by` are kept for cancels and returns.
    ///
    /// Assignment goes through [`Order::assign`] because it needs a rider.
    pub fn change_status(
        &self,
        to: Status,
        expected: Expected,
        reason: Option<String>,
        by: Option<String>,
        now: i64,
    ) -> Result<Change, ChangeError> {
        if to == self.status {
            return Ok(Change::Unchanged);
        }
        if to == Status::Assigned {
            return Err(ChangeError::Invalid(
                "assignment needs a rider: use POST /v1/orders/{id}/assign".into(),
            ));
        }
        self.check(expected)?;
        let target = self.status.resolve(to).ok_or(ChangeError::Illegal {
            from: self.status,
            to,
        })?;
        let mut next = self.clone();
        next.status = target;
        next.version += 1;
        next.status_version += 1;
        next.updated_at = now;
        let mut events = Vec::with_capacity(2);
        if matches!(
            target,
            Status::Cancelled | Status::Returning | Status::Rejected
        ) {
            next.cancel_reason = reason.clone();
            next.cancelled_by = by.clone();
        }
        if target == Status::Ready && self.status == Status::Assigned {
            next.rider_id = None;
            next.rider_name = None;
        }
        if target.picked_up_or_later() && next.picked_up_at.is_none() {
            next.picked_up_at = Some(now);
        }
        events.push(EventBody::Status {
            status: target,
            from: Some(self.status),
            version: next.version,
            ts: now,
            reason,
            by,
        });
        if next.rider_id != self.rider_id {
            events.push(EventBody::Assignment {
                rider_id: next.rider_id.clone(),
                rider_name: next.rider_name.clone(),
                ts: now,
            });
        }
        if target.is_terminal() {
            next.close_episodes(|_| true, target.as_str(), now, &mut events);
        } else if next.rider_id != self.rider_id {
            next.close_episodes(|k| k != "late", "unassigned", now, &mut events);
        }
        Ok(Change::Changed {
            order: Box::new(next),
            events,
        })
    }

    /// The `late` alert, once: an order still under way past `promised_at`
    /// gets an `alert` event and `late_alert_at`, and stays in the open
    /// alerts until it ends; anything else is unchanged.
    pub fn late_alert(&self, now: i64) -> Change {
        let Some(promised) = self.promised_at else {
            return Change::Unchanged;
        };
        if self.status.is_terminal() || self.late_alert_at.is_some() || now < promised {
            return Change::Unchanged;
        }
        let mut next = self.clone();
        next.late_alert_at = Some(now);
        next.version += 1;
        next.updated_at = now;
        let detail = serde_json::json!({
            "promised_at": promised,
            "status": self.status,
            "late_by_ms": now - promised,
        });
        // Open until the order ends: the operators' list shows it meanwhile.
        next.alerts.insert(
            "late".into(),
            Episode {
                open: true,
                ts: now,
                detail: detail.clone(),
                basis: 0,
            },
        );
        Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::alert("late", now, detail)],
        }
    }

    /// Revokes every share link of the order made up to `now`: the time is
    /// kept on the row (later requests are refused) and a `share_revoked`
    /// event tells every hub node to close those links' sockets.
    pub fn revoke_shares(&self, now: i64) -> Change {
        let mut next = self.clone();
        // Strictly later than the last revocation, so repeated calls in one
        // millisecond still refuse links made in between.
        let at = now.max(self.shares_revoked_at.map_or(i64::MIN, |t| t + 1));
        next.shares_revoked_at = Some(at);
        next.version += 1;
        next.updated_at = now;
        Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::ShareRevoked { ts: at }],
        }
    }

    /// True when the order was cancelled because its payment never came.
    pub fn cancelled_for_payment_timeout(&self) -> bool {
        self.status == Status::Cancelled && self.cancel_reason.as_deref() == Some(PAYMENT_TIMEOUT)
    }

    /// A payment that arrived after the payment timeout cancelled the order:
    /// the order stays cancelled and a `refund_required` alert goes to its log.
    pub fn refund_required(&self, now: i64) -> Change {
        let mut next = self.clone();
        next.version += 1;
        next.updated_at = now;
        Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::alert(
                "refund_required",
                now,
                serde_json::json!({ "reason": PAYMENT_TIMEOUT }),
            )],
        }
    }

    /// `ready → assigned` to `rider_id`, who may be given a display name;
    /// `by` is who gave it (an operator, or the rider who grabbed it).
    pub fn assign(
        &self,
        rider_id: &str,
        rider_name: Option<&str>,
        expected: Expected,
        by: Option<String>,
        now: i64,
    ) -> Result<Change, ChangeError> {
        check_key("rider_id", rider_id).map_err(ChangeError::Invalid)?;
        if let Some(name) = rider_name {
            check_key("rider_name", name).map_err(ChangeError::Invalid)?;
        }
        if self.status == Status::Assigned && self.rider_id.as_deref() == Some(rider_id) {
            return Ok(Change::Unchanged);
        }
        self.check(expected)?;
        if self.status.resolve(Status::Assigned) != Some(Status::Assigned) {
            return Err(ChangeError::Illegal {
                from: self.status,
                to: Status::Assigned,
            });
        }
        let mut next = self.clone();
        next.status = Status::Assigned;
        next.rider_id = Some(rider_id.to_owned());
        next.rider_name = rider_name.map(str::to_owned);
        next.version += 1;
        next.status_version += 1;
        next.updated_at = now;
        let events = vec![
            EventBody::Status {
                status: Status::Assigned,
                from: Some(self.status),
                version: next.version,
                ts: now,
                reason: None,
                by,
            },
            EventBody::Assignment {
                rider_id: next.rider_id.clone(),
                rider_name: next.rider_name.clone(),
                ts: now,
            },
        ];
        Ok(Change::Changed {
            order: Box::new(next),
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        let new = NewOrder {
            biz_order_no: "S-1".into(),
            biz_type: "grocery".into(),
            customer_id: "c1".into(),
            pickup: Point {
                lat: 23.1,
                lon: 113.2,
            },
            dropoff: Point {
                lat: 23.2,
                lon: 113.3,
            },
            promised_at: None,
            route: None,
            ..Default::default()
        };
        Order::new("1".into(), new, 1000)
    }

    fn changed(c: Change) -> (Order, Vec<EventBody>) {
        match c {
            Change::Changed { order, events } => (*order, events),
            Change::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn transition_raises_both_versions_and_emits_status() {
        let o = order();
        let exp = Expected {
            version: Some(1),
            status_version: None,
        };
        let (next, ev) = changed(
            o.change_status(Status::Paid, exp, None, None, 2000)
                .unwrap(),
        );
        assert_eq!((next.version, next.status_version), (2, 2));
        assert_eq!(next.status, Status::Paid);
        assert!(matches!(
            ev.as_slice(),
            [EventBody::Status {
                status: Status::Paid,
                version: 2,
                ts: 2000,
                ..
            }]
        ));
    }

    #[test]
    fn stale_version_is_refused_before_legality() {
        let o = order();
        let exp = Expected {
            version: Some(0),
            status_version: None,
        };
        assert!(matches!(
            o.change_status(Status::Delivered, exp, None, None, 1),
            Err(ChangeError::Stale { version: 1, .. })
        ));
        let exp = Expected {
            version: None,
            status_version: Some(5),
        };
        assert!(matches!(
            o.change_status(Status::Paid, exp, None, None, 1),
            Err(ChangeError::Stale { .. })
        ));
    }

    #[test]
    fn same_status_is_unchanged_even_with_an_old_version() {
        let o = order();
        let exp = Expected {
            version: Some(0),
            status_version: None,
        };
        assert_eq!(
            o.change_status(Status::PendingPayment, exp, None, None, 1)
                .unwrap(),
            Change::Unchanged
        );
    }

    #[test]
    fn illegal_jump_is_refused() {
        let o = order();
        assert!(matches!(
            o.change_status(Status::Delivered, Expected::default(), None, None, 1),
            Err(ChangeError::Illegal {
                from: Status::PendingPayment,
                to: Status::Delivered
            })
        ));
    }

    #[test]
    fn assign_sets_rider_and_unassign_clears_it() {
        let mut o = order();
        o.status = Status::Ready;
        let (a, ev) = changed(
            o.assign("r1", Some("Li Wei"), Expected::default(), None, 5)
                .unwrap(),
        );
        assert_eq!(a.rider_id.as_deref(), Some("r1"));
        assert_eq!(a.rider_name.as_deref(), Some("Li Wei"));
        assert_eq!(ev.len(), 2);
        assert_eq!(
            a.assign(
                "r1",
                None,
                Expected {
                    version: Some(0),
                    status_version: None
                },
                None,
                6
            )
            .unwrap(),
            Change::Unchanged
        );
        let (back, ev) = changed(
            a.change_status(Status::Ready, Expected::default(), None, None, 7)
                .unwrap(),
        );
        assert_eq!(back.rider_id, None);
        assert_eq!(back.rider_name, None);
        assert!(matches!(
            ev.last(),
            Some(EventBody::Assignment { rider_id: None, .. })
        ));
    }

    #[test]
    fn late_alert_is_raised_once_and_only_when_late() {
        let mut o = order();
        assert_eq!(
            o.late_alert(5_000),
            Change::Unchanged,
            "no promise, no alert"
        );
        o.promised_at = Some(2_000);
        assert_eq!(o.late_alert(1_999), Change::Unchanged, "not late yet");
        let (late, events) = changed(o.late_alert(2_500));
        assert_eq!(late.late_alert_at, Some(2_500));
        assert_eq!(late.version, o.version + 1);
        assert_eq!(late.status_version, o.status_version, "status untouched");
        assert!(
            matches!(&events[..], [EventBody::Alert { kind, detail, .. }]
            if kind == "late" && detail["late_by_ms"] == 500)
        );
        assert_eq!(late.late_alert(9_000), Change::Unchanged, "only once");
        let mut done = o.clone();
        done.status = Status::Delivered;
        assert_eq!(
            done.late_alert(9_000),
            Change::Unchanged,
            "delivered is not late"
        );
    }

    #[test]
    fn a_payment_after_the_timeout_asks_for_a_refund() {
        let o = order();
        let (cancelled, _) = changed(
            o.change_status(
                Status::Cancelled,
                Expected::default(),
                Some(PAYMENT_TIMEOUT.into()),
                Some("system".into()),
                2_000,
            )
            .unwrap(),
        );
        assert!(cancelled.cancelled_for_payment_timeout());
        assert!(!o.cancelled_for_payment_timeout());
        let (after, events) = changed(cancelled.refund_required(3_000));
        assert_eq!(after.status, Status::Cancelled);
        assert!(
            matches!(&events[..], [EventBody::Alert { kind, .. }] if kind == "refund_required")
        );
    }

    #[test]
    fn pick_up_time_is_kept_once() {
        let mut o = order();
        o.status = Status::Assigned;
        let (p, _) = changed(
            o.change_status(Status::PickedUp, Expected::default(), None, None, 40)
                .unwrap(),
        );
        assert_eq!(p.picked_up_at, Some(40));
        let (d, _) = changed(
            p.change_status(Status::Delivered, Expected::default(), None, None, 90)
                .unwrap(),
        );
        assert_eq!(d.picked_up_at, Some(40));
    }

    #[test]
    fn cancel_after_pickup_becomes_return_with_reason() {
        let mut o = order();
        o.status = Status::PickedUp;
        let (r, _) = changed(
            o.change_status(
                Status::Cancelled,
                Expected::default(),
                Some("changed mind".into()),
                Some("customer".into()),
                9,
            )
            .unwrap(),
        );
        assert_eq!(r.status, Status::Returning);
        assert_eq!(r.cancel_reason.as_deref(), Some("changed mind"));
        assert_eq!(r.cancelled_by.as_deref(), Some("customer"));
    }

    #[test]
    fn assigned_status_needs_the_assign_call() {
        let mut o = order();
        o.status = Status::Ready;
        assert!(matches!(
            o.change_status(Status::Assigned, Expected::default(), None, None, 1),
            Err(ChangeError::Invalid(_))
        ));
    }

    #[test]
    fn new_order_validation_names_the_field() {
        let mut n = NewOrder {
            biz_order_no: "".into(),
            biz_type: "g".into(),
            customer_id: "c".into(),
            pickup: Point { lat: 0.0, lon: 0.0 },
            dropoff: Point { lat: 0.0, lon: 0.0 },
            promised_at: None,
            route: None,
            ..Default::default()
        };
        assert!(n.validate().unwrap_err().contains("biz_order_no"));
        n.biz_order_no = "x".into();
        n.dropoff.lat = 91.0;
        assert!(n.validate().unwrap_err().contains("dropoff"));
    }
}
