//! A trip replayed without services: events in, decisions written to an
//! in-memory copy of the order row by the same episode rules the worker's
//! store writes use. The unit tests and the simulator's accuracy runs judge
//! the watcher's own code this way, in simulated time.

use crate::model::Model;
use crate::settings::TripSettings;
use crate::trip::{Decision, Trip};
use tracker_domain::order::Change;
use tracker_domain::{EventBody, Order, Point, PosEvent, Stop};

/// One alert transition as it would reach the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The alert kind.
    pub kind: String,
    /// True for the end of an episode.
    pub cleared: bool,
    /// The event's `ts`.
    pub ts: i64,
    /// When the clock said it was written.
    pub written_at: i64,
}

/// What a replayed trip wrote.
#[derive(Debug, Clone, Default)]
pub struct Written {
    /// Alert transitions, in order.
    pub alerts: Vec<Edge>,
    /// Arrivals: the point and the fix time.
    pub arrivals: Vec<(Stop, i64)>,
    /// Estimates: the fix time and the estimated arrival.
    pub etas: Vec<(i64, i64)>,
}

/// A trip fed by hand.
pub struct Replay {
    /// The trip, with its row.
    pub trip: Trip,
    /// The thresholds.
    pub settings: TripSettings,
    /// What it wrote.
    pub written: Written,
    seq: u64,
}

impl Replay {
    /// A replay of `order` from an empty log.
    pub fn new(order: Order, settings: TripSettings) -> Self {
        Replay {
            trip: Trip::new(order, 0, None),
            settings,
            written: Written::default(),
            seq: 0,
        }
    }

    /// The next event of the log, taken in when the clock says `now`.
    pub fn event(&mut self, body: EventBody, now: i64, model: &Model) {
        self.seq += 1;
        let ds = self
            .trip
            .on_event(self.seq, &body, now, false, &self.settings, model);
        for d in ds {
            self.apply(d, now);
        }
    }

    /// A fix taken at `ts` at `at`, arriving when the clock says `now`.
    pub fn fix(&mut self, at: Point, ts: i64, speed: Option<f64>, now: i64, model: &Model) {
        let body = EventBody::Pos(PosEvent {
            lat: at.lat,
            lon: at.lon,
            ts,
            speed,
            heading: None,
            backfill: false,
            before_pickup: false,
        });
        self.event(body, now, model);
    }

    /// The clock's work at `now` (`rider_offline`).
    pub fn tick(&mut self, now: i64) {
        if let Some(d) = self.trip.check_offline(now, &self.settings) {
            self.apply(d, now);
        }
    }

    /// Writes one decision as the worker would, to the in-memory row.
    pub fn apply(&mut self, d: Decision, now: i64) {
        let o = &self.trip.order;
        let change = match &d {
            Decision::Raise {
                kind,
                ts,
                detail,
                basis,
            } => o.raise_alert(kind, *ts, detail.clone(), *basis, now),
            Decision::Clear {
                kind,
                ts,
                detail,
                basis,
            } => o.clear_alert(kind, *ts, detail.clone(), *basis, now),
            Decision::Arrive { stop, ts } => o.arrive(*stop, *ts, now),
            Decision::Eta(EventBody::Eta { eta, ts, .. }) => {
                self.written.etas.push((*ts, *eta));
                return;
            }
            Decision::Eta(_) | Decision::Reload => return,
        };
        if let Change::Changed { order, events } = change {
            for e in events {
                match e {
                    EventBody::Alert {
                        kind, cleared, ts, ..
                    } => self.written.alerts.push(Edge {
                        kind,
                        cleared,
                        ts,
                        written_at: now,
                    }),
                    EventBody::Arrival { at, ts } => self.written.arrivals.push((at, ts)),
                    _ => {}
                }
            }
            self.trip.order = *order;
        }
    }
}
