//! The events of an order's log and their wire encoding (`docs/protocol.md`, server → client).
//!
//! An event is encoded once, when it is appended, into the exact JSON text that
//! every watcher receives: `{"order":"…","seq":N,"t":"pos",…}`.

use crate::status::Status;
use serde::{Deserialize, Serialize};

/// A rider position in an order's log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PosEvent {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// The rider's own fix time, Unix ms.
    pub ts: i64,
    /// Ground speed, m/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Course, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Set when the fix is older than the live position (an offline backlog):
    /// it belongs to the trail, but the marker must not jump back to it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub backfill: bool,
    /// Set when the fix was taken before the order was picked up: customers
    /// are not shown it (the hub sends them a `skip` frame in its place).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub before_pickup: bool,
}

/// What happened to an order: one entry of its log, without `order` and `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum EventBody {
    /// The assigned rider moved.
    Pos(PosEvent),
    /// The order changed status.
    Status {
        /// The new status.
        status: Status,
        /// The status before the change; absent on the order's first one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Status>,
        /// The order's `version` after the change.
        version: i64,
        /// When the change was accepted, Unix ms.
        ts: i64,
        /// Why (cancels, returns, rejections).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Who made the change (`admin:<sub>`, `rider:<id>`, `system`, or the
        /// party a cancel names: `customer`, `shop`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// One of the order's packages changed status.
    Package {
        /// Its package number.
        package: String,
        /// Its new status.
        status: crate::package::PackageStatus,
        /// Its status before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<crate::package::PackageStatus>,
        /// The package's own version after the change.
        version: i64,
        /// When, Unix ms.
        ts: i64,
        /// Why, when a reason was given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Who made the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A new arrival estimate.
    Eta {
        /// Estimated arrival at the drop-off, Unix ms.
        eta: i64,
        /// When it was computed (the fix time it was computed from), Unix ms.
        ts: i64,
        /// Metres left to the drop-off (through the pick-up while not picked up).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remaining_m: Option<u64>,
        /// Estimated arrival at the pick-up, while the rider has not picked up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pickup_eta: Option<i64>,
    },
    /// Something an operator should look at (stalled, off route, late): an
    /// episode is raised once and, for the kinds that end, cleared once.
    Alert {
        /// `stalled`, `off_route`, `rider_offline`, `late`, …
        kind: String,
        /// When it was raised (or cleared), Unix ms: fix time where fixes decide.
        ts: i64,
        /// Kind-specific facts.
        #[serde(default)]
        detail: serde_json::Value,
        /// Set on the event that ends the episode.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cleared: bool,
    },
    /// The rider holding the order came near one of its points, for the first time.
    Arrival {
        /// Which point.
        at: Stop,
        /// The fix time it was seen at, Unix ms.
        ts: i64,
    },
    /// The order's planned route was set or replaced; `GET /v1/orders/{id}`
    /// has the points.
    Route {
        /// How many points it has (0: removed).
        points: usize,
        /// When, Unix ms.
        ts: i64,
    },
    /// A rider took the order, or it went back to the pool (`rider_id` null).
    Assignment {
        /// The rider now holding the order.
        rider_id: Option<String>,
        /// Their display name, when the assigner gave one (customers see the first word only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rider_name: Option<String>,
        /// When, Unix ms.
        ts: i64,
    },
    /// The order's refund was applied (`done`) or could not be (`refused`).
    Refund {
        /// Where the refund now stands.
        state: crate::refund::RefundState,
        /// The payment system's refund key.
        biz_refund_no: String,
        /// When, Unix ms.
        ts: i64,
    },
    /// Every share link of the order made up to `ts` was revoked: their
    /// watchers are closed (`docs/protocol.md`).
    ShareRevoked {
        /// The revocation time, Unix ms.
        ts: i64,
    },
}

impl EventBody {
    /// The event's own time, Unix ms: a fix's phone time, otherwise when it happened.
    pub fn ts(&self) -> i64 {
        match self {
            EventBody::Pos(p) => p.ts,
            EventBody::Status { ts, .. }
            | EventBody::Package { ts, .. }
            | EventBody::Refund { ts, .. }
            | EventBody::Eta { ts, .. }
            | EventBody::Alert { ts, .. }
            | EventBody::Assignment { ts, .. }
            | EventBody::Arrival { ts, .. }
            | EventBody::Route { ts, .. }
            | EventBody::ShareRevoked { ts } => *ts,
        }
    }

    /// The `t` of this event on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::Pos(_) => "pos",
            EventBody::Status { .. } => "status",
            EventBody::Package { .. } => "package",
            EventBody::Refund { .. } => "refund",
            EventBody::Eta { .. } => "eta",
            EventBody::Alert { .. } => "alert",
            EventBody::Assignment { .. } => "assignment",
            EventBody::ShareRevoked { .. } => "share_revoked",
            EventBody::Arrival { .. } => "arrival",
            EventBody::Route { .. } => "route",
        }
    }

    /// An `eta` event with nothing but the estimate and its time.
    pub fn eta(eta: i64, ts: i64) -> EventBody {
        EventBody::Eta {
            eta,
            ts,
            remaining_m: None,
            pickup_eta: None,
        }
    }

    /// An alert that starts an episode of `kind` (or stands alone, like `late`).
    pub fn alert(kind: &str, ts: i64, detail: serde_json::Value) -> EventBody {
        EventBody::Alert {
            kind: kind.into(),
            ts,
            detail,
            cleared: false,
        }
    }
}

/// The two points of an order a rider arrives at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Where the goods are collected.
    Pickup,
    /// Where they are delivered.
    Dropoff,
}

impl Stop {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Pickup => "pickup",
            Stop::Dropoff => "dropoff",
        }
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    order: &'a str,
    seq: u64,
    #[serde(flatten)]
    body: &'a EventBody,
}

/// Encodes `body` as the JSON text a watcher receives for `order` at `seq`.
pub fn encode(order: &str, seq: u64, body: &EventBody) -> Vec<u8> {
    serde_json::to_vec(&WireRef { order, seq, body }).expect("events always serialize")
}

/// The `t` of an event's JSON text as the log stores it, without parsing it.
///
/// The log's texts put the event's own `"t":"…"` right after `order` and `seq`,
/// whose values cannot hold an unescaped quote, so the first match is the
/// kind and never a nested field (an alert's `detail`, say).
pub fn kind_of(json: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = br#""t":""#;
    let start = json.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = json[start..].iter().position(|&c| c == b'"')?;
    Some(&json[start..start + len])
}

/// An event as read back from the wire (clients, tests, log backends that store JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    /// The order's id.
    pub order: String,
    /// Position in the order's log.
    pub seq: u64,
    /// The event itself.
    #[serde(flatten)]
    pub body: EventBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_encodes_as_protocol_says_and_reads_back() {
        let body = EventBody::Pos(PosEvent {
            lat: 23.1,
            lon: 113.2,
            ts: 1_763_700_000_000,
            speed: Some(4.2),
            heading: None,
            backfill: false,
            before_pickup: false,
        });
        let text = encode("O1", 58, &body);
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["t"], "pos");
        assert_eq!(v["order"], "O1");
        assert_eq!(v["seq"], 58);
        assert_eq!(v["ts"], 1_763_700_000_000_i64);
        assert!(v.get("heading").is_none() && v.get("backfill").is_none());
        let back: EventFrame = serde_json::from_slice(&text).unwrap();
        assert_eq!(back.body, body);
    }

    #[test]
    fn status_and_assignment_round_trip() {
        for body in [
            EventBody::Status {
                status: Status::Delivered,
                from: Some(Status::PickedUp),
                version: 6,
                ts: 5,
                reason: None,
                by: None,
            },
            EventBody::Assignment {
                rider_id: Some("r1".into()),
                rider_name: Some("Li Wei".into()),
                ts: 1,
            },
            EventBody::Alert {
                kind: "stalled".into(),
                ts: 1,
                detail: serde_json::json!({"secs": 300}),
                cleared: true,
            },
            EventBody::eta(10, 1),
            EventBody::Eta {
                eta: 10,
                ts: 1,
                remaining_m: Some(1200),
                pickup_eta: Some(5),
            },
            EventBody::Arrival {
                at: Stop::Dropoff,
                ts: 3,
            },
            EventBody::Route { points: 12, ts: 4 },
            EventBody::Package {
                package: "P1".into(),
                status: crate::package::PackageStatus::InTransit,
                from: Some(crate::package::PackageStatus::Shipped),
                version: 3,
                ts: 5,
                reason: None,
                by: Some("admin:ops".into()),
            },
        ] {
            let text = encode("O1", 1, &body);
            let back: EventFrame = serde_json::from_slice(&text).unwrap();
            assert_eq!(back.body, body);
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&text).unwrap()["t"],
                body.kind()
            );
        }
    }
}
