//! Alert episodes and arrivals as changes of the order row.
//!
//! The trip watcher decides from fixes; these functions decide whether its
//! decision is new. An episode of one kind is raised once and cleared once,
//! and a decision made on an older event of the order's log than the last
//! one applied is dropped, so any number of watcher processes, or one that
//! replays after a restart, write each transition exactly once: the store's
//! compare-and-set on `version` lets only one writer of a transition win,
//! and the loser re-reads and finds it already done.

use crate::event::{EventBody, Stop};
use crate::order::{Change, ChangeError, Order, Point};
use serde::{Deserialize, Serialize};

/// The state of one kind of alert on an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// True between the raise and the clear.
    pub open: bool,
    /// When the last transition happened, Unix ms (fix time where fixes decide).
    pub ts: i64,
    /// The facts given with the raise.
    #[serde(default)]
    pub detail: serde_json::Value,
    /// The `seq` of the log event the last transition was decided on.
    pub basis: u64,
}

impl Order {
    /// Opens an episode of `kind` decided on log event `basis`: unchanged when
    /// one is open, when the last transition was decided on a later event, or
    /// when the order has ended. (An equal `basis` is a new episode: the clock
    /// decides `rider_offline` on the last event seen, which may be the fix
    /// that ended the previous one.)
    pub fn raise_alert(
        &self,
        kind: &str,
        ts: i64,
        detail: serde_json::Value,
        basis: u64,
        now: i64,
    ) -> Change {
        let stale = self
            .alerts
            .get(kind)
            .is_some_and(|e| e.open || e.basis > basis);
        if stale || self.status.is_terminal() {
            return Change::Unchanged;
        }
        self.episode(kind, true, ts, detail, basis, now)
    }

    /// Closes the open episode of `kind`, decided on log event `basis`.
    pub fn clear_alert(
        &self,
        kind: &str,
        ts: i64,
        detail: serde_json::Value,
        basis: u64,
        now: i64,
    ) -> Change {
        match self.alerts.get(kind) {
            Some(e) if e.open && e.basis < basis => {
                self.episode(kind, false, ts, detail, basis, now)
            }
            _ => Change::Unchanged,
        }
    }

    fn episode(
        &self,
        kind: &str,
        open: bool,
        ts: i64,
        detail: serde_json::Value,
        basis: u64,
        now: i64,
    ) -> Change {
        let mut next = self.clone();
        next.alerts.insert(
            kind.to_owned(),
            Episode {
                open,
                ts,
                detail: detail.clone(),
                basis,
            },
        );
        next.version += 1;
        next.updated_at = now;
        Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::Alert {
                kind: kind.to_owned(),
                ts,
                detail,
                cleared: !open,
            }],
        }
    }

    /// Ends every open episode whose kind `which` picks, with a cleared alert
    /// whose detail gives `reason` (an order that ended, a rider who left it).
    pub(crate) fn close_episodes(
        &mut self,
        which: impl Fn(&str) -> bool,
        reason: &str,
        now: i64,
        events: &mut Vec<EventBody>,
    ) {
        for (kind, e) in self.alerts.iter_mut() {
            if e.open && which(kind) {
                e.open = false;
                e.ts = now;
                events.push(EventBody::Alert {
                    kind: kind.clone(),
                    ts: now,
                    detail: serde_json::json!({ "reason": reason }),
                    cleared: true,
                });
            }
        }
    }

    /// The open episodes, by kind.
    pub fn open_alerts(&self) -> impl Iterator<Item = (&str, &Episode)> {
        self.alerts
            .iter()
            .filter(|(_, e)| e.open)
            .map(|(k, e)| (k.as_str(), e))
    }

    /// The rider's first arrival at `stop`, seen on a fix taken at `ts`.
    pub fn arrive(&self, stop: Stop, ts: i64, now: i64) -> Change {
        let slot = match stop {
            Stop::Pickup => self.arrived_pickup_at,
            Stop::Dropoff => self.arrived_dropoff_at,
        };
        if slot.is_some() || self.status.is_terminal() {
            return Change::Unchanged;
        }
        let mut next = self.clone();
        match stop {
            Stop::Pickup => next.arrived_pickup_at = Some(ts),
            Stop::Dropoff => next.arrived_dropoff_at = Some(ts),
        }
        next.version += 1;
        next.updated_at = now;
        Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::Arrival { at: stop, ts }],
        }
    }

    /// Sets (or with `None` removes) the planned route; refused once the order ended.
    pub fn set_route(&self, route: Option<Vec<Point>>, now: i64) -> Result<Change, ChangeError> {
        if let Some(r) = &route {
            crate::route::check_route(r).map_err(ChangeError::Invalid)?;
        }
        if self.status.is_terminal() {
            return Err(ChangeError::Invalid(format!(
                "the order is {} and its route can no longer change",
                self.status
            )));
        }
        if route == self.route {
            return Ok(Change::Unchanged);
        }
        let mut next = self.clone();
        let points = route.as_ref().map_or(0, Vec::len);
        next.route = route;
        next.version += 1;
        next.updated_at = now;
        Ok(Change::Changed {
            order: Box::new(next),
            events: vec![EventBody::Route { points, ts: now }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::NewOrder;
    use crate::status::Status;
    use serde_json::json;

    fn order() -> Order {
        let p = Point { lat: 1.0, lon: 2.0 };
        let new = NewOrder {
            biz_order_no: "S-1".into(),
            biz_type: "food".into(),
            customer_id: "c1".into(),
            pickup: p,
            dropoff: p,
            promised_at: None,
            route: None,
            ..Default::default()
        };
        let mut o = Order::new("1".into(), new, 0);
        o.status = Status::PickedUp;
        o
    }

    fn applied(c: Change) -> Order {
        match c {
            Change::Changed { order, .. } => *order,
            Change::Unchanged => panic!("expected a change"),
        }
    }

    #[test]
    fn an_episode_is_raised_once_and_cleared_once() {
        let o = order();
        let raised = applied(o.raise_alert("stalled", 10, json!({"secs": 300}), 5, 11));
        assert_eq!(raised.open_alerts().count(), 1);
        assert_eq!(
            raised.raise_alert("stalled", 12, json!({}), 6, 13),
            Change::Unchanged,
            "already open"
        );
        let cleared = applied(raised.clear_alert("stalled", 20, json!({}), 9, 21));
        assert_eq!(cleared.open_alerts().count(), 0);
        assert_eq!(
            cleared.clear_alert("stalled", 20, json!({}), 9, 21),
            Change::Unchanged
        );
        assert_eq!(
            cleared.raise_alert("stalled", 15, json!({}), 8, 22),
            Change::Unchanged,
            "a decision on an event before the clear is late news"
        );
        assert!(matches!(
            cleared.raise_alert("stalled", 30, json!({}), 10, 31),
            Change::Changed { .. }
        ));
    }

    #[test]
    fn an_ended_order_closes_its_episodes() {
        let o = applied(order().raise_alert("off_route", 10, json!({}), 5, 11));
        let Change::Changed { order, events } = o
            .change_status(Status::Delivered, Default::default(), None, None, 20)
            .unwrap()
        else {
            panic!("delivery changes the order")
        };
        assert_eq!(order.open_alerts().count(), 0);
        assert!(matches!(
            &events[..],
            [EventBody::Status { .. }, EventBody::Alert { kind, cleared: true, .. }] if kind == "off_route"
        ));
    }

    #[test]
    fn arrival_is_kept_once_per_point() {
        let o = applied(order().arrive(Stop::Dropoff, 7, 8));
        assert_eq!(o.arrived_dropoff_at, Some(7));
        assert_eq!(o.arrive(Stop::Dropoff, 9, 10), Change::Unchanged);
        assert!(matches!(
            o.arrive(Stop::Pickup, 9, 10),
            Change::Changed { .. }
        ));
    }

    #[test]
    fn a_route_is_checked_and_refused_after_the_end() {
        let o = order();
        let p = Point { lat: 1.0, lon: 2.0 };
        assert!(o.set_route(Some(vec![p]), 1).is_err());
        let routed = applied(o.set_route(Some(vec![p, p]), 1).unwrap());
        assert_eq!(
            routed.set_route(Some(vec![p, p]), 2).unwrap(),
            Change::Unchanged
        );
        let mut done = routed;
        done.status = Status::Delivered;
        assert!(done.set_route(None, 3).is_err());
    }
}
