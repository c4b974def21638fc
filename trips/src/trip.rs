//! One order's trip as the watcher follows it: every event of its log, in
//! `seq` order, through the ETA estimate and the detectors, on fix time.
//!
//! A trip decides; it never writes. Its decisions name the log event they
//! were made on (`basis`), so the order row can tell a new transition from
//! one already written by another process or before a restart.

use crate::geo::{Polyline, Projection, dist};
use crate::model::{Lesson, Model};
use crate::settings::TripSettings;
use serde_json::json;
use tracker_domain::{EventBody, Order, Point, Status, Stop};

/// Time constant of the rider's recent speed, seconds of fix time.
const SPEED_TAU_SECS: f64 = 180.0;
/// A longer gap between two fixes breaks a stall: nobody saw the rider in between.
const MAX_FIX_GAP_MS: i64 = 60_000;
/// How many seconds of the rider's own speed a well-learned typical speed is worth.
const PRIOR_SECS: f64 = 300.0;
/// Seconds at the pick-up counted in the estimate while it is ahead.
const PICKUP_DWELL_SECS: f64 = 120.0;

/// What a trip decided on one event (or on the clock).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start an episode of `kind`.
    Raise {
        /// The alert kind.
        kind: &'static str,
        /// When it started, Unix ms.
        ts: i64,
        /// The facts.
        detail: serde_json::Value,
        /// The log event it was decided on.
        basis: u64,
    },
    /// End the open episode of `kind`.
    Clear {
        /// The alert kind.
        kind: &'static str,
        /// When it ended, Unix ms.
        ts: i64,
        /// The facts.
        detail: serde_json::Value,
        /// The log event it was decided on.
        basis: u64,
    },
    /// The rider reached `stop` for the first time.
    Arrive {
        /// Which point.
        stop: Stop,
        /// The fix time, Unix ms.
        ts: i64,
    },
    /// A new estimate to append (already past the 30 s step).
    Eta(EventBody),
    /// The order's row changed in a way the trip must re-read (its route).
    Reload,
}

/// A fix as the detectors keep it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    at: Point,
    ts: i64,
}

/// The state of one order's trip.
#[derive(Debug, Clone)]
pub struct Trip {
    /// The order row as last read or written by the watcher.
    pub order: Order,
    /// The last log `seq` taken in.
    pub cursor: u64,
    path: Polyline,
    status: Status,
    rider: Option<String>,
    /// Fix time from which the rider's silence counts.
    heard_at: Option<i64>,
    last: Option<Seen>,
    /// Fix time between the last two fixes, ms.
    last_gap_ms: i64,
    speed: Option<f64>,
    observed_secs: f64,
    along_m: Option<f64>,
    ridden_m: f64,
    pickup_at: Option<Point>,
    stall_anchor: Option<Seen>,
    off_streak: u32,
    on_streak: u32,
    lesson: Lesson,
    last_eta: Option<i64>,
}

impl Trip {
    /// A trip of `order` whose log has been taken in up to `cursor`, with
    /// `last_eta` the estimate the log last holds.
    pub fn new(order: Order, cursor: u64, last_eta: Option<i64>) -> Self {
        let path = path_of(&order);
        Trip {
            status: order.status,
            rider: order.rider_id.clone(),
            heard_at: None,
            order,
            cursor,
            path,
            last: None,
            last_gap_ms: 0,
            speed: None,
            observed_secs: 0.0,
            along_m: None,
            ridden_m: 0.0,
            pickup_at: None,
            stall_anchor: None,
            off_streak: 0,
            on_streak: 0,
            lesson: Lesson::default(),
            last_eta,
        }
    }

    /// Takes a re-read row (a new route, a transition written elsewhere).
    pub fn reload(&mut self, order: Order) {
        self.path = path_of(&order);
        self.order = order;
    }

    /// The status the log last showed.
    pub fn status(&self) -> Status {
        self.status
    }

    /// True once the order ended: the trip can be dropped.
    pub fn ended(&self) -> bool {
        self.status.is_terminal()
    }

    /// What the finished trip teaches the model, once it was delivered.
    pub fn lesson(&self) -> Option<Lesson> {
        (self.status == Status::Delivered && self.ridden_m > 0.0).then(|| Lesson {
            ridden_m: self.ridden_m,
            straight_m: dist(self.order.pickup, self.order.dropoff),
            ..self.lesson.clone()
        })
    }

    fn open(&self, kind: &str) -> bool {
        self.order.alerts.get(kind).is_some_and(|e| e.open)
    }

    fn holding(&self) -> bool {
        self.rider.is_some() && matches!(self.status, Status::Assigned | Status::PickedUp)
    }

    /// Takes in the event numbered `seq`; `now` is the clock (for ending a
    /// `rider_offline`), `quiet` leaves out the estimate (a replay of history).
    pub fn on_event(
        &mut self,
        seq: u64,
        body: &EventBody,
        now: i64,
        quiet: bool,
        s: &TripSettings,
        model: &Model,
    ) -> Vec<Decision> {
        self.cursor = self.cursor.max(seq);
        let mut out = Vec::new();
        match body {
            EventBody::Status { status, ts, .. } => {
                if *status == Status::PickedUp && self.status != Status::PickedUp {
                    self.pickup_at = self.last.map(|l| l.at).or(Some(self.order.pickup));
                    self.stall_anchor = None;
                    self.off_streak = 0;
                }
                if *status == Status::Assigned {
                    self.heard_at = Some(*ts);
                }
                self.status = *status;
            }
            EventBody::Assignment { rider_id, ts, .. } => {
                if *rider_id != self.rider {
                    self.rider = rider_id.clone();
                    self.heard_at = Some(*ts);
                    self.last = None;
                    self.speed = None;
                    self.observed_secs = 0.0;
                    self.stall_anchor = None;
                    self.off_streak = 0;
                    self.on_streak = 0;
                }
            }
            EventBody::Route { .. } => out.push(Decision::Reload),
            EventBody::Eta { eta, .. } => self.last_eta = Some(*eta),
            EventBody::Pos(p) => {
                if self.holding() && !p.backfill && self.last.is_none_or(|l| p.ts > l.ts) {
                    let at = Point {
                        lat: p.lat,
                        lon: p.lon,
                    };
                    self.on_fix(seq, Seen { at, ts: p.ts }, now, quiet, s, model, &mut out);
                }
            }
            EventBody::Alert { .. }
            | EventBody::Arrival { .. }
            | EventBody::ShareRevoked { .. }
            | EventBody::Package { .. }
            | EventBody::Refund { .. } => {}
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn on_fix(
        &mut self,
        seq: u64,
        fix: Seen,
        now: i64,
        quiet: bool,
        s: &TripSettings,
        model: &Model,
        out: &mut Vec<Decision>,
    ) {
        let picked = self.status == Status::PickedUp;
        self.last_gap_ms = self.last.map_or(0, |l| fix.ts - l.ts);
        if let Some(last) = self.last {
            let d = dist(last.at, fix.at);
            let dt = (fix.ts - last.ts) as f64 / 1000.0;
            let inst = (d / dt).min(40.0);
            let v = self.speed.unwrap_or(inst);
            let alpha = 1.0 - (-dt / SPEED_TAU_SECS).exp();
            self.speed = Some(v + alpha * (inst - v));
            self.observed_secs += dt;
            if picked {
                self.ridden_m += d;
                let r = self
                    .lesson
                    .riding
                    .entry(Model::area_of(last.at, last.ts))
                    .or_default();
                r.metres += d;
                r.secs += dt;
            }
        }
        self.last = Some(fix);
        self.heard_at = Some(fix.ts);

        if self.open("rider_offline") {
            out.push(Decision::Clear {
                kind: "rider_offline",
                ts: now.max(fix.ts),
                detail: json!({ "fix_ts": fix.ts }),
                basis: seq,
            });
        }
        if self.order.arrived_pickup_at.is_none() && dist(fix.at, self.order.pickup) <= s.arrival_m
        {
            out.push(Decision::Arrive {
                stop: Stop::Pickup,
                ts: fix.ts,
            });
        }
        let near_door = dist(fix.at, self.order.dropoff) <= s.arrival_m;
        if picked && near_door && self.order.arrived_dropoff_at.is_none() {
            out.push(Decision::Arrive {
                stop: Stop::Dropoff,
                ts: fix.ts,
            });
        }
        // Where the fix falls on the planned route: once per fix, for the
        // detector and the estimate alike.
        let on_route =
            (picked && self.order.route.is_some()).then(|| self.path.project(fix.at, self.along_m));
        if picked {
            self.stall(seq, fix, near_door, s, out);
            self.off_route(seq, fix, on_route, s, out);
        }
        if !quiet && let Some(eta) = self.estimate(fix, on_route, model) {
            let moved = self
                .last_eta
                .is_none_or(|prev| (eta.0 - prev).abs() >= s.eta_step.as_millis() as i64);
            if moved {
                self.last_eta = Some(eta.0);
                out.push(Decision::Eta(EventBody::Eta {
                    eta: eta.0,
                    ts: fix.ts,
                    remaining_m: Some(eta.1.round().max(0.0) as u64),
                    pickup_eta: eta.2,
                }));
            }
        }
    }

    fn stall(
        &mut self,
        seq: u64,
        fix: Seen,
        near_door: bool,
        s: &TripSettings,
        out: &mut Vec<Decision>,
    ) {
        // Across a silence nobody knows whether the rider stood still.
        let anchor = match self.stall_anchor {
            Some(a)
                if dist(a.at, fix.at) <= s.stall_radius_m
                    && !near_door
                    && self.last_gap_ms <= MAX_FIX_GAP_MS =>
            {
                a
            }
            _ => {
                if self.open("stalled") {
                    out.push(Decision::Clear {
                        kind: "stalled",
                        ts: fix.ts,
                        detail: json!({ "lat": fix.at.lat, "lon": fix.at.lon }),
                        basis: seq,
                    });
                }
                self.stall_anchor = Some(fix);
                return;
            }
        };
        let limit = s.stall.as_millis() as i64;
        if fix.ts - anchor.ts >= limit && !self.open("stalled") {
            out.push(Decision::Raise {
                kind: "stalled",
                ts: anchor.ts + limit,
                detail: json!({
                    "since": anchor.ts,
                    "lat": anchor.at.lat,
                    "lon": anchor.at.lon,
                    "radius_m": s.stall_radius_m,
                    "secs": s.stall.as_secs(),
                }),
                basis: seq,
            });
        }
    }

    /// How far a fix without a planned route is outside the rectangle
    /// (north–south by east–west) that pick-up and drop-off span, metres:
    /// every street-grid path between them that never turns back stays in it.
    fn outside_corridor(&self, fix: Seen) -> f64 {
        let (a, b) = (self.order.pickup, self.order.dropoff);
        let clamp = |v: f64, x: f64, y: f64| v.clamp(x.min(y), x.max(y));
        let inside = Point {
            lat: clamp(fix.at.lat, a.lat, b.lat),
            lon: clamp(fix.at.lon, a.lon, b.lon),
        };
        dist(fix.at, inside)
    }

    /// `off_route`: judged on `on_route`, the fix's place on the planned
    /// route, or without one on the corridor.
    fn off_route(
        &mut self,
        seq: u64,
        fix: Seen,
        on_route: Option<Projection>,
        s: &TripSettings,
        out: &mut Vec<Decision>,
    ) {
        let off_m = on_route.map_or_else(|| self.outside_corridor(fix), |pr| pr.off_m);
        let pr = Projection {
            along_m: on_route.map_or(0.0, |pr| pr.along_m),
            off_m,
        };
        if pr.off_m > s.off_route_m {
            self.off_streak += 1;
            self.on_streak = 0;
            if self.off_streak >= 2 && !self.open("off_route") {
                out.push(Decision::Raise {
                    kind: "off_route",
                    ts: fix.ts,
                    detail: json!({
                        "off_m": pr.off_m.round(),
                        "limit_m": s.off_route_m,
                        "lat": fix.at.lat,
                        "lon": fix.at.lon,
                        "planned": self.order.route.is_some(),
                    }),
                    basis: seq,
                });
            }
        } else {
            if on_route.is_some() {
                self.along_m = Some(pr.along_m);
            }
            self.on_streak += 1;
            self.off_streak = 0;
            if self.on_streak >= 2 && self.open("off_route") {
                out.push(Decision::Clear {
                    kind: "off_route",
                    ts: fix.ts,
                    detail: json!({ "off_m": pr.off_m.round() }),
                    basis: seq,
                });
            }
        }
    }

    /// The speed to count on from here: the rider's recent speed, trusted
    /// more the longer it has been watched, blended with the typical speed.
    fn speed_at(&self, fix: Seen, model: &Model) -> f64 {
        let (typical, trust) = model.typical(fix.at, fix.ts);
        let Some(recent) = self.speed else {
            return typical;
        };
        // A learned figure counts as up to PRIOR_SECS of watching this rider.
        let prior = 30.0 + PRIOR_SECS * trust;
        let w = (self.observed_secs / (self.observed_secs + prior)).min(0.95);
        (w * recent + (1.0 - w) * typical).max(0.5)
    }

    /// `(eta, metres left, pickup eta)` from a fix and, after pick-up on a
    /// planned route, its place on it.
    fn estimate(
        &self,
        fix: Seen,
        on_route: Option<Projection>,
        model: &Model,
    ) -> Option<(i64, f64, Option<i64>)> {
        let v = self.speed_at(fix, model);
        let learned = model.detour();
        let ms = |m: f64, v: f64| (m / v * 1000.0) as i64;
        match self.status {
            Status::PickedUp => {
                let left = if let Some(pr) = on_route {
                    (self.path.length_m() - pr.along_m).max(0.0) + pr.off_m
                } else {
                    dist(fix.at, self.order.dropoff) * self.detour_so_far(fix, learned)
                };
                Some((fix.ts + ms(left, v), left, None))
            }
            Status::Assigned => {
                let first = dist(fix.at, self.order.pickup) * learned;
                let second = if self.order.route.is_some() {
                    self.path.length_m()
                } else {
                    dist(self.order.pickup, self.order.dropoff) * learned
                };
                let typical = model.typical_speed(self.order.pickup, fix.ts);
                let at_pickup = fix.ts + ms(first, v);
                let eta = at_pickup + (PICKUP_DWELL_SECS * 1000.0) as i64 + ms(second, typical);
                Some((eta, first + second, Some(at_pickup)))
            }
            _ => None,
        }
    }

    /// The detour factor this trip has shown so far (metres ridden over the
    /// straight-line progress), trusted more as the trip goes, blended with
    /// the learned one.
    fn detour_so_far(&self, fix: Seen, learned: f64) -> f64 {
        let Some(start) = self.pickup_at else {
            return learned;
        };
        let progress = dist(start, self.order.dropoff) - dist(fix.at, self.order.dropoff);
        if progress < 100.0 || self.ridden_m <= 0.0 {
            return learned;
        }
        let seen = (self.ridden_m / progress).clamp(1.0, 3.0);
        let w = progress / (progress + 150.0);
        w * seen + (1.0 - w) * learned
    }

    /// `rider_offline`, on the clock: the rider holding the order has sent
    /// no fix for the setting's time.
    pub fn check_offline(&self, now: i64, s: &TripSettings) -> Option<Decision> {
        let heard = self.heard_at?;
        let limit = s.offline.as_millis() as i64;
        if !self.holding() || self.open("rider_offline") || now - heard < limit {
            return None;
        }
        Some(Decision::Raise {
            kind: "rider_offline",
            ts: now,
            detail: json!({
                "last_fix_ts": self.last.map(|l| l.ts),
                "silent_secs": (now - heard) / 1000,
                "limit_secs": s.offline.as_secs(),
            }),
            basis: self.cursor,
        })
    }
}

/// The path a trip is judged against: the planned route, else the straight
/// pick-up → drop-off corridor.
fn path_of(order: &Order) -> Polyline {
    Polyline::new(
        order
            .route
            .clone()
            .unwrap_or_else(|| vec![order.pickup, order.dropoff]),
    )
}
