//! An order's live state: the fold of its events, served to a new watcher as a snapshot.
//!
//! Every log backend folds each appended event with [`LiveState::apply`] in the
//! same atomic step as the append, so a snapshot at `seq` N is exactly the state
//! after event N. The fold is also where an offline backlog is told apart from
//! live movement: only a fix newer than the live position moves it.

use crate::event::{EventBody, PosEvent};
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
}

impl LiveState {
    /// Folds the event numbered `seq` in; marks a stale fix as `backfill`.
    pub fn apply(&mut self, seq: u64, body: &mut EventBody) {
        self.seq = seq;
        match body {
            EventBody::Pos(p) => {
                if self.pos.is_some_and(|cur| p.ts <= cur.ts) {
                    p.backfill = true;
                } else {
                    p.backfill = false;
                    self.pos = Some(*p);
                }
            }
            EventBody::Status {
                status, version, ..
            } => {
                self.status = Some(*status);
                self.version = Some(*version);
            }
            EventBody::Eta { eta, .. } => self.eta = Some(*eta),
            EventBody::Alert { .. } => {}
            EventBody::Assignment { rider_id, .. } => self.rider_id = rider_id.clone(),
        }
    }

    /// Encodes the snapshot frame of PROTOCOL.md.
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

    #[test]
    fn snapshot_carries_status_pos_eta_and_recovery_flag() {
        let mut s = LiveState::default();
        s.apply(
            1,
            &mut EventBody::Status {
                status: Status::PickedUp,
                version: 3,
                ts: 1,
                reason: None,
                by: None,
            },
        );
        s.apply(2, &mut pos(10));
        s.apply(3, &mut EventBody::Eta { eta: 99, ts: 2 });
        let v: serde_json::Value =
            serde_json::from_slice(&s.snapshot_json("O1", "e1", Some(false))).unwrap();
        assert_eq!(v["t"], "snapshot");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["status"], "picked_up");
        assert_eq!(v["pos"]["ts"], 10);
        assert_eq!(v["eta"], 99);
        assert_eq!(v["recovered"], false);
    }
}
