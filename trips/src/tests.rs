//! The trip's decisions on fixes with known timestamps, written through the
//! domain's episode rules as the worker writes them.

use crate::geo::{dist, offset};
use crate::model::Model;
use crate::settings::TripSettings;
use crate::trip::{Decision, Trip};
use std::time::Duration;
use tracker_domain::order::Change;
use tracker_domain::{EventBody, NewOrder, Order, Point, PosEvent, Status};

pub(crate) const START: Point = Point {
    lat: 23.1,
    lon: 113.3,
};
const T0: i64 = 1_780_000_000_000;

/// What one trip wrote: alert edges `(kind, cleared, ts)`, arrivals, estimates.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub alerts: Vec<(String, bool, i64)>,
    pub arrivals: Vec<(String, i64)>,
    pub etas: Vec<(i64, i64)>,
}

/// A trip of an order picked up at [`START`] towards a drop-off 4 km east.
pub(crate) struct Drive {
    pub trip: Trip,
    pub seq: u64,
    pub written: Written,
    pub settings: TripSettings,
    pub model: Model,
}

pub(crate) fn order(route: Option<Vec<Point>>) -> Order {
    let new = NewOrder {
        biz_order_no: "T-1".into(),
        biz_type: "food".into(),
        customer_id: "c1".into(),
        pickup: START,
        dropoff: offset(START, 0.0, 4000.0),
        promised_at: None,
        route,
    };
    let mut o = Order::new("1".into(), new, T0);
    o.status = Status::Assigned;
    o.rider_id = Some("r1".into());
    o
}

impl Drive {
    pub(crate) fn new(route: Option<Vec<Point>>) -> Self {
        let mut d = Drive {
            trip: Trip::new(order(route), 0, None),
            seq: 0,
            written: Written::default(),
            settings: TripSettings::default(),
            model: Model::default(),
        };
        d.event(EventBody::Assignment {
            rider_id: Some("r1".into()),
            rider_name: None,
            ts: T0,
        });
        d
    }

    pub(crate) fn event(&mut self, body: EventBody) {
        self.seq += 1;
        let now = body.ts();
        let ds = self
            .trip
            .on_event(self.seq, &body, now, false, &self.settings, &self.model);
        for d in ds {
            self.apply(d, now);
        }
    }

    pub(crate) fn apply(&mut self, d: Decision, now: i64) {
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
            _ => return,
        };
        if let Change::Changed { order, events } = change {
            for e in events {
                match e {
                    EventBody::Alert {
                        kind, cleared, ts, ..
                    } => self.written.alerts.push((kind, cleared, ts)),
                    EventBody::Arrival { at, ts } => {
                        self.written.arrivals.push((at.as_str().into(), ts))
                    }
                    _ => {}
                }
            }
            self.trip.order = *order;
        }
    }

    pub(crate) fn picked_up(&mut self, ts: i64) {
        self.event(EventBody::Status {
            status: Status::PickedUp,
            version: 3,
            ts,
            reason: None,
            by: None,
        });
    }

    pub(crate) fn fix(&mut self, at: Point, ts: i64) {
        self.event(EventBody::Pos(PosEvent {
            lat: at.lat,
            lon: at.lon,
            ts,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup: false,
        }));
    }

    /// Rides east from `east_m` at `speed` m/s for `secs`, a fix every 5 s; returns where it ended.
    pub(crate) fn ride(
        &mut self,
        east_m: f64,
        north_m: f64,
        ts: i64,
        secs: i64,
        speed: f64,
    ) -> (f64, i64) {
        let mut e = east_m;
        let mut t = ts;
        for _ in 0..secs / 5 {
            t += 5000;
            e += speed * 5.0;
            self.fix(offset(START, north_m, e), t);
        }
        (e, t)
    }

    pub(crate) fn kinds(&self) -> Vec<(&str, bool)> {
        self.written
            .alerts
            .iter()
            .map(|(k, c, _)| (k.as_str(), *c))
            .collect()
    }
}

#[test]
fn a_normal_trip_raises_nothing_and_arrives_twice() {
    let mut d = Drive::new(None);
    d.fix(START, T0 + 1000);
    d.picked_up(T0 + 2000);
    d.ride(0.0, 0.0, T0 + 2000, 600, 7.0);
    assert!(d.written.alerts.is_empty(), "{:?}", d.written.alerts);
    let at: Vec<&str> = d.written.arrivals.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(at, ["pickup", "dropoff"]);
}

#[test]
fn a_stall_longer_than_the_setting_is_raised_once_and_cleared_once() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    // Still (a few metres of GPS jitter) for 400 s.
    let mut t2 = t;
    for i in 0..80 {
        t2 += 5000;
        d.fix(offset(START, (i % 3) as f64 * 4.0, e), t2);
    }
    d.ride(e, 0.0, t2, 60, 7.0);
    assert_eq!(d.kinds(), [("stalled", false), ("stalled", true)]);
    let (_, _, raised) = d.written.alerts[0];
    // The rider stopped at `t`; the last 35 m step before it is within the radius too.
    assert!(
        (t + 295_000..=t + 300_000).contains(&raised),
        "raised on fix time, when the 300 s were up: {}",
        raised - t
    );
    assert_eq!(
        d.written.alerts[1].2,
        t2 + 5000,
        "cleared at the first fix away"
    );
}

#[test]
fn a_shorter_stop_raises_nothing() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    let mut t2 = t;
    for _ in 0..50 {
        t2 += 5000;
        d.fix(offset(START, 0.0, e), t2);
    }
    d.ride(e, 0.0, t2, 60, 7.0);
    assert!(d.written.alerts.is_empty());
}

#[test]
fn a_detour_of_500_m_is_off_route_until_the_rider_rejoins() {
    let route = vec![
        START,
        offset(START, 0.0, 2000.0),
        offset(START, 0.0, 4000.0),
    ];
    let mut d = Drive::new(Some(route));
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 100, 7.0);
    let (e, t) = d.ride(e, 500.0, t, 100, 7.0);
    let (_, t_back) = (e, t);
    d.ride(e, 0.0, t, 100, 7.0);
    assert_eq!(d.kinds(), [("off_route", false), ("off_route", true)]);
    assert_eq!(
        d.written.alerts[0].2,
        T0 + 100_000 + 10_000,
        "the second fix away"
    );
    assert_eq!(
        d.written.alerts[1].2,
        t_back + 10_000,
        "the second fix back"
    );
}

#[test]
fn without_a_route_the_corridor_decides() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 100, 7.0);
    let (e, t) = d.ride(e, -600.0, t, 60, 7.0);
    d.ride(e, 0.0, t, 60, 7.0);
    assert_eq!(d.kinds(), [("off_route", false), ("off_route", true)]);
}

#[test]
fn one_stray_fix_is_not_a_detour() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 100, 7.0);
    d.fix(offset(START, 800.0, e), t + 5000);
    d.ride(e, 0.0, t + 5000, 100, 7.0);
    assert!(d.written.alerts.is_empty());
}

#[test]
fn silence_raises_rider_offline_after_the_setting_and_a_fix_clears_it() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    let s = d.settings.clone();
    assert_eq!(d.trip.check_offline(t + 119_000, &s), None);
    let raise = d
        .trip
        .check_offline(t + 120_000, &s)
        .expect("quiet for 120 s");
    d.apply(raise, t + 120_000);
    assert_eq!(d.trip.check_offline(t + 200_000, &s), None, "once");
    d.seq += 1;
    let back = EventBody::Pos(PosEvent {
        lat: START.lat,
        lon: offset(START, 0.0, e + 10.0).lon,
        ts: t + 300_000,
        speed: None,
        heading: None,
        backfill: false,
        before_pickup: false,
    });
    for dec in d
        .trip
        .on_event(d.seq, &back, t + 301_000, false, &s, &Model::default())
    {
        d.apply(dec, t + 301_000);
    }
    assert_eq!(
        d.kinds(),
        [("rider_offline", false), ("rider_offline", true)]
    );
    assert_eq!(d.written.alerts[0].2, t + 120_000, "on the clock");
    let again = d
        .trip
        .check_offline(t + 430_000, &s)
        .expect("a second silence");
    d.apply(again, t + 430_000);
    assert_eq!(d.written.alerts.len(), 3, "a new episode");
}

#[test]
fn an_offline_batch_with_a_stall_raises_it_on_the_fixes_own_times() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    // The phone kept its fixes for ten minutes and sends them at once, later:
    // the worker sees them one after another with the clock far ahead.
    let arrive_at = t + 20 * 60_000;
    let mut batch = Vec::new();
    let mut tt = t;
    for _ in 0..72 {
        tt += 5000;
        batch.push((offset(START, 0.0, e), tt));
    }
    for i in 1..=24 {
        tt += 5000;
        batch.push((offset(START, 0.0, e + 7.0 * 5.0 * i as f64), tt));
    }
    for (at, ts) in batch {
        d.seq += 1;
        let body = EventBody::Pos(PosEvent {
            lat: at.lat,
            lon: at.lon,
            ts,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup: false,
        });
        let s = d.settings.clone();
        for dec in d
            .trip
            .on_event(d.seq, &body, arrive_at, false, &s, &Model::default())
        {
            d.apply(dec, arrive_at);
        }
    }
    assert_eq!(d.kinds(), [("stalled", false), ("stalled", true)]);
    let raised = d.written.alerts[0].2;
    assert!(
        (t + 295_000..=t + 305_000).contains(&raised),
        "{}",
        raised - t
    );
    assert!(d.written.alerts[1].2 < arrive_at, "cleared on fix time too");
}

#[test]
fn a_replay_after_a_restart_writes_nothing_again() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    let mut t2 = t;
    for _ in 0..80 {
        t2 += 5000;
        d.fix(offset(START, 0.0, e), t2);
    }
    d.ride(e, 0.0, t2, 60, 7.0);
    let row = d.trip.order.clone();
    let before = d.written.alerts.len();
    // A new process: the row as stored, the same events again from seq 1.
    let mut again = Drive::new(None);
    again.trip = Trip::new(row, 0, None);
    again.seq = 0;
    again.event(EventBody::Assignment {
        rider_id: Some("r1".into()),
        rider_name: None,
        ts: T0,
    });
    again.picked_up(T0);
    let (e, t) = again.ride(0.0, 0.0, T0, 60, 7.0);
    let mut t2 = t;
    for _ in 0..80 {
        t2 += 5000;
        again.fix(offset(START, 0.0, e), t2);
    }
    again.ride(e, 0.0, t2, 60, 7.0);
    assert_eq!(before, 2);
    assert!(
        again.written.alerts.is_empty(),
        "{:?}",
        again.written.alerts
    );
    assert!(again.written.arrivals.is_empty());
}

#[test]
fn a_straight_trip_at_constant_speed_is_estimated_within_ten_percent_from_half_way() {
    for speed in [3.0, 5.0, 7.0] {
        let mut d = Drive::new(None);
        d.settings.eta_step = Duration::ZERO;
        d.picked_up(T0);
        let (_, end) = d.ride(0.0, 0.0, T0, (4000.0 / speed) as i64, speed);
        let duration = end - T0;
        for &(ts, eta) in &d.written.etas {
            if ts - T0 >= duration / 2 {
                let truth = end - ts;
                let err = (eta - end).abs() as f64;
                assert!(
                    err <= 0.1 * truth as f64 + 5000.0,
                    "at {speed} m/s, {} s in: eta off by {} s of {} s left",
                    (ts - T0) / 1000,
                    err / 1000.0,
                    truth / 1000
                );
            }
        }
        assert!(dist(START, offset(START, 0.0, 4000.0)) > 3990.0);
    }
}

#[test]
fn before_pick_up_the_estimate_adds_the_leg_to_the_pick_up() {
    let mut d = Drive::new(None);
    d.fix(offset(START, 0.0, -1000.0), T0 + 1000);
    d.fix(offset(START, 0.0, -970.0), T0 + 6000);
    let &(ts, eta) = d.written.etas.last().expect("an estimate");
    // 1 km to the pick-up and 4 km on, at about 4.5 m/s, plus the stop.
    let secs = (eta - ts) / 1000;
    assert!((900..1700).contains(&secs), "{secs} s");
}
