//! An order's live state: the fold of its events, served to a new watcher as a snapshot.
//!
//! Every log backend folds each appended event with [`LiveState::apply`] in the
//! same atomic step as the append, so a snapshot at `seq` N is exactly the state
//! after event N. The fold is also where an offline backlog is told apart from
//! live movement: only a fix newer than the live position moves it.

use crate::event::{EventBody, PosEvent, Stop};
use crate::status::Status;
use serde::{Deserialize, Serialize};

/// The current state of one order as its log knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// The last `seq` folded in; 0 before any event.
    pub seq: u64,
    /// Last status, if the log has seen one.
    pub status: Option<Status>,
    /// The order's version with that status.
    pub version: Option<i64>,
    /// The newest fix (by the phone's `ts`), not the last one received.
    pub pos: Option<PosEvent>,
    /// Last arrival estimate, Unix ms.
    pub eta: Option<i64>,
    /// The rider holding the order, as the last assignment event said.
    pub rider_id: Option<String>,
    /// That rider's display name, when the assignment gave one.
    pub rider_name: Option<String>,
    /// When the first status from pick-up on was folded in, Unix ms. A fix is
    /// shown to customers only when it is at least this new.
    pub picked_up_at: Option<i64>,
    /// The last point the rider arrived at.
    #[serde(default)]
    pub arrival: Option<Stop>,
}

impl LiveState {
    /// Folds the event numbered `seq` in; marks a stale fix as `backfill` and a
    /// fix from before pick-up as `before_pickup`.
    pub fn apply(&mut self, seq: u64, body: &mut EventBody) {
        self.seq = seq;
        match body {
            EventBody::Pos(p) => {
                p.before_pickup = !self.shows_fix_to_customers(p.ts);
                if self.pos.is_some_and(|cur| p.ts <= cur.ts) {
                    p.backfill = true;
                } else {
                    p.backfill = false;
                    self.pos = Some(*p);
                }
            }
            EventBody::Status {
                status,
                version,
                ts,
                ..
            } => {
                self.status = Some(*status);
                self.version = Some(*version);
                if status.picked_up_or_later() && self.picked_up_at.is_none() {
                    self.picked_up_at = Some(*ts);
                }
            }
            EventBody::Eta { eta, .. } => self.eta = Some(*eta),
            EventBody::Arrival { at, .. } => self.arrival = Some(*at),
            EventBody::Alert { .. }
            | EventBody::ShareRevoked { .. }
            | EventBody::Route { .. }
            | EventBody::Package { .. }
            | EventBody::Refund { .. } => {}
            EventBody::Assignment {
                rider_id,
                rider_name,
                ..
            } => {
                self.rider_id = rider_id.clone();
                self.rider_name = rider_name.clone();
            }
        }
    }

    /// True when a fix taken at `ts` may be shown to the order's customer: the
    /// log has seen the pick-up and the fix is not older than it. A log that
    /// knows nothing of the order's status shows nothing (the safe side).
    pub fn shows_fix_to_customers(&self, ts: i64) -> bool {
        self.picked_up_at.is_some_and(|at| ts >= at)
    }

    /// The state as the order's customer may see it: the rider's position only
    /// from pick-up on, the rider's first name and not their id.
    pub fn for_customer(&self) -> LiveState {
        LiveState {
            pos: self.pos.filter(|p| self.shows_fix_to_customers(p.ts)),
            rider_id: None,
            rider_name: self
                .rider_name
                .as_deref()
                .map(|n| crate::view::first_name(n).to_owned()),
            arrival: self.arrival.filter(|a| *a == Stop::Dropoff),
            ..self.clone()
        }
    }

    /// Encodes the snapshot frame of `docs/protocol.md`.
    ///
    /// `recovered` is `None` for a plain subscribe, `Some(true)` after a replay
    /// that reached back to the client's `since`, `Some(false)` when it could not.
    pub fn snapshot_json(&self, order: &str, epoch: &str, recovered: Option<bool>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Pos {
            lat: f64,
            lon: f64,
            ts: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            speed: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            heading: Option<f64>,
        }
        #[derive(Serialize)]
        struct Snapshot<'a> {
            t: &'static str,
            order: &'a str,
            seq: u64,
            epoch: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            status: Option<Status>,
            #[serde(skip_serializing_if = "Option::is_none")]
            version: Option<i64>,
            pos: Option<Pos>,
            eta: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rider_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rider_name: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            arrival: Option<Stop>,
            #[serde(skip_serializing_if = "Option::is_none")]
            recovered: Option<bool>,
        }
        let snap = Snapshot {
            t: "snapshot",
            order,
            seq: self.seq,
            epoch,
            status: self.status,
            version: self.version,
            pos: self.pos.map(|p| Pos {
                lat: p.lat,
                lon: p.lon,
                ts: p.ts,
                speed: p.speed,
                heading: p.heading,
            }),
            eta: self.eta,
            rider_id: self.rider_id.as_deref(),
            rider_name: self.rider_name.as_deref(),
            arrival: self.arrival,
            recovered,
        };
        serde_json::to_vec(&snap).expect("snapshots always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(ts: i64) -> EventBody {
        EventBody::Pos(PosEvent {
            lat: 1.0,
            lon: 2.0,
            ts,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup: false,
        })
    }

    #[test]
    fn only_a_newer_fix_moves_the_live_position() {
        let mut s = LiveState::default();
        let mut a = pos(100);
        s.apply(1, &mut a);
        let mut old = pos(50);
        s.apply(2, &mut old);
        assert!(matches!(
            old,
            EventBody::Pos(PosEvent { backfill: true, .. })
        ));
        assert_eq!(s.pos.unwrap().ts, 100);
        assert_eq!(s.seq, 2);
        let mut newer = pos(150);
        s.apply(3, &mut newer);
        assert_eq!(s.pos.unwrap().ts, 150);
    }

    fn status(status: Status, ts: i64) -> EventBody {
        EventBody::Status {
            from: None,
            status,
            version: 1,
            ts,
            reason: None,
            by: None,
        }
    }

    fn hidden(body: &EventBody) -> bool {
        matches!(
            body,
            EventBody::Pos(PosEvent {
                before_pickup: true,
                ..
            })
        )
    }

    #[test]
    fn fixes_before_pick_up_are_flagged_and_kept_from_the_customer_snapshot() {
        let mut s = LiveState::default();
        let mut unknown = pos(5);
        s.apply(1, &mut unknown);
        assert!(hidden(&unknown), "a log that knows no status hides fixes");
        s.apply(2, &mut status(Status::Assigned, 10));
        s.apply(
            3,
            &mut EventBody::Assignment {
                rider_id: Some("r1".into()),
                rider_name: Some("Li Wei".into()),
                ts: 10,
            },
        );
        let mut to_store = pos(20);
        s.apply(4, &mut to_store);
        assert!(hidden(&to_store));
        let c = s.for_customer();
        assert_eq!(c.pos, None);
        assert_eq!(c.rider_id, None);
        assert_eq!(c.rider_name.as_deref(), Some("Li"));
        assert_eq!(s.pos.unwrap().ts, 20, "operators still see it");

        s.apply(5, &mut status(Status::PickedUp, 30));
        assert_eq!(s.for_customer().pos, None, "the live fix predates pick-up");
        let mut late_backlog = pos(25);
        s.apply(6, &mut late_backlog);
        assert!(hidden(&late_backlog), "an old fix uploaded after pick-up");
        let mut after = pos(40);
        s.apply(7, &mut after);
        assert!(!hidden(&after));
        assert_eq!(s.for_customer().pos.unwrap().ts, 40);
        s.apply(8, &mut status(Status::Delivered, 50));
        assert_eq!(s.picked_up_at, Some(30), "the first pick-up counts");
    }

    #[test]
    fn snapshot_carries_status_pos_eta_and_recovery_flag() {
        let mut s = LiveState::default();
        s.apply(
            1,
            &mut EventBody::Status {
                from: None,
                status: Status::PickedUp,
                version: 3,
                ts: 1,
                reason: None,
                by: None,
            },
        );
        s.apply(2, &mut pos(10));
        s.apply(3, &mut EventBody::eta(99, 2));
        s.apply(
            4,
            &mut EventBody::Arrival {
                at: Stop::Pickup,
                ts: 3,
            },
        );
        assert_eq!(s.for_customer().arrival, None, "the pick-up is not theirs");
        let v: serde_json::Value =
            serde_json::from_slice(&s.snapshot_json("O1", "e1", Some(false))).unwrap();
        assert_eq!(v["t"], "snapshot");
        assert_eq!(v["seq"], 4);
        assert_eq!(v["arrival"], "pickup");
        assert_eq!(v["status"], "picked_up");
        assert_eq!(v["pos"]["ts"], 10);
        assert_eq!(v["eta"], 99);
        assert_eq!(v["recovered"], false);
    }
}
