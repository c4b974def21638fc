//! The trip's decisions on fixes with known timestamps, written through the
//! domain's episode rules as the worker writes them.

use crate::geo::offset;
use crate::model::Model;
use crate::replay::Replay;
use crate::settings::TripSettings;
use std::time::Duration;
use tracker_domain::{EventBody, NewOrder, Order, Point, Status};

const START: Point = Point {
    lat: 23.1,
    lon: 113.3,
};
const T0: i64 = 1_780_000_000_000;

/// A replay of an order picked up at [`START`] towards a drop-off 4 km east.
struct Drive {
    r: Replay,
    model: Model,
}

fn order(route: Option<Vec<Point>>) -> Order {
    let new = NewOrder {
        biz_order_no: "T-1".into(),
        biz_type: "food".into(),
        customer_id: "c1".into(),
        pickup: START,
        dropoff: offset(START, 0.0, 4000.0),
        promised_at: None,
        route,
        ..Default::default()
    };
    let mut o = Order::new("1".into(), new, T0);
    o.status = Status::Assigned;
    o.rider_id = Some("r1".into());
    o
}

impl Drive {
    fn new(route: Option<Vec<Point>>) -> Self {
        let mut d = Drive {
            r: Replay::new(order(route), TripSettings::default()),
            model: Model::default(),
        };
        d.event(EventBody::Assignment {
            rider_id: Some("r1".into()),
            rider_name: None,
            ts: T0,
        });
        d
    }

    fn event(&mut self, body: EventBody) {
        let now = body.ts();
        self.r.event(body, now, &self.model);
    }

    fn picked_up(&mut self, ts: i64) {
        self.event(EventBody::Status {
            from: None,
            status: Status::PickedUp,
            version: 3,
            ts,
            reason: None,
            by: None,
        });
    }

    /// A fix taken at `ts`, arriving at `now`.
    fn fix_at(&mut self, at: Point, ts: i64, now: i64) {
        self.r.fix(at, ts, None, now, &self.model);
    }

    fn fix(&mut self, at: Point, ts: i64) {
        self.fix_at(at, ts, ts);
    }

    /// Rides east from `east_m` at `speed` m/s for `secs`, a fix every 5 s; where and when it ended.
    fn ride(&mut self, east_m: f64, north_m: f64, ts: i64, secs: i64, speed: f64) -> (f64, i64) {
        let (mut e, mut t) = (east_m, ts);
        for _ in 0..secs / 5 {
            t += 5000;
            e += speed * 5.0;
            self.fix(offset(START, north_m, e), t);
        }
        (e, t)
    }

    /// Stands at `east_m` for `secs` from `ts`, a fix every 5 s, each arriving at `now` (or at its time).
    fn stand(&mut self, east_m: f64, ts: i64, secs: i64, now: Option<i64>) -> i64 {
        let mut t = ts;
        for i in 0..secs / 5 {
            t += 5000;
            let jitter = (i % 3) as f64 * 4.0;
            self.fix_at(offset(START, jitter, east_m), t, now.unwrap_or(t));
        }
        t
    }

    fn kinds(&self) -> Vec<(&str, bool)> {
        self.r
            .written
            .alerts
            .iter()
            .map(|a| (a.kind.as_str(), a.cleared))
            .collect()
    }

    fn ts(&self, i: usize) -> i64 {
        self.r.written.alerts[i].ts
    }
}

#[test]
fn a_normal_trip_raises_nothing_and_arrives_twice() {
    let mut d = Drive::new(None);
    d.fix(START, T0 + 1000);
    d.picked_up(T0 + 2000);
    d.ride(0.0, 0.0, T0 + 2000, 600, 7.0);
    assert!(d.r.written.alerts.is_empty(), "{:?}", d.r.written.alerts);
    let at: Vec<&str> =
        d.r.written
            .arrivals
            .iter()
            .map(|(a, _)| a.as_str())
            .collect();
    assert_eq!(at, ["pickup", "dropoff"]);
}

#[test]
fn a_stall_longer_than_the_setting_is_raised_once_and_cleared_once() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    let t2 = d.stand(e, t, 400, None);
    d.ride(e, 0.0, t2, 60, 7.0);
    assert_eq!(d.kinds(), [("stalled", false), ("stalled", true)]);
    // The rider stopped at `t`; the last 35 m step before it is within the radius too.
    let raised = d.ts(0);
    assert!(
        (t + 295_000..=t + 300_000).contains(&raised),
        "raised on fix time, when the 300 s were up: {}",
        raised - t
    );
    assert_eq!(d.ts(1), t2 + 5000, "cleared at the first fix away");
}

#[test]
fn a_shorter_stop_raises_nothing() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    let t2 = d.stand(e, t, 250, None);
    d.ride(e, 0.0, t2, 60, 7.0);
    assert!(d.r.written.alerts.is_empty());
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
    let (e, t_back) = d.ride(e, 500.0, t, 100, 7.0);
    d.ride(e, 0.0, t_back, 100, 7.0);
    assert_eq!(d.kinds(), [("off_route", false), ("off_route", true)]);
    assert_eq!(d.ts(0), t + 10_000, "the second fix away");
    assert_eq!(d.ts(1), t_back + 10_000, "the second fix back");
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
fn without_a_route_a_street_staircase_stays_in_the_corridor() {
    // North first, then east, to a drop-off north-east: the far corner of
    // the rectangle, 1.4 km from the straight line, is still in it.
    let mut d = Drive::new(None);
    d.r.trip.order.dropoff = offset(START, 2000.0, 2000.0);
    d.picked_up(T0);
    let mut t = T0;
    for i in 1..=80 {
        t += 5000;
        d.fix(offset(START, 25.0 * i as f64, 0.0), t);
    }
    for i in 1..=80 {
        t += 5000;
        d.fix(offset(START, 2000.0, 25.0 * i as f64), t);
    }
    assert!(d.r.written.alerts.is_empty(), "{:?}", d.r.written.alerts);
}

#[test]
fn one_stray_fix_is_not_a_detour() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 100, 7.0);
    d.fix(offset(START, 800.0, e), t + 5000);
    d.ride(e, 0.0, t + 5000, 100, 7.0);
    assert!(d.r.written.alerts.is_empty());
}

#[test]
fn silence_raises_rider_offline_after_the_setting_and_a_fix_clears_it() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    d.r.tick(t + 119_000);
    assert!(d.r.written.alerts.is_empty());
    d.r.tick(t + 120_000);
    d.r.tick(t + 200_000);
    assert_eq!(d.kinds(), [("rider_offline", false)], "once");
    d.fix_at(offset(START, 0.0, e + 10.0), t + 300_000, t + 301_000);
    assert_eq!(
        d.kinds(),
        [("rider_offline", false), ("rider_offline", true)]
    );
    assert_eq!(d.ts(0), t + 120_000, "on the clock");
    d.r.tick(t + 430_000);
    assert_eq!(
        d.r.written.alerts.len(),
        3,
        "a second silence is a new episode"
    );
}

#[test]
fn an_offline_batch_with_a_stall_raises_it_on_the_fixes_own_times() {
    let mut d = Drive::new(None);
    d.picked_up(T0);
    let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
    // The phone kept its fixes for eight minutes and sends them at once,
    // later: the worker takes them in with the clock far ahead.
    let arrive_at = t + 20 * 60_000;
    let t2 = d.stand(e, t, 360, Some(arrive_at));
    let mut tt = t2;
    for i in 1..=24 {
        tt += 5000;
        d.fix_at(offset(START, 0.0, e + 35.0 * i as f64), tt, arrive_at);
    }
    assert_eq!(d.kinds(), [("stalled", false), ("stalled", true)]);
    let raised = d.ts(0);
    assert!(
        (t + 295_000..=t + 305_000).contains(&raised),
        "{}",
        raised - t
    );
    assert!(d.ts(1) < arrive_at, "cleared on fix time too");
}

#[test]
fn a_replay_after_a_restart_writes_nothing_again() {
    let trip = |d: &mut Drive| {
        d.picked_up(T0);
        let (e, t) = d.ride(0.0, 0.0, T0, 60, 7.0);
        let t2 = d.stand(e, t, 400, None);
        d.ride(e, 0.0, t2, 60, 7.0);
    };
    let mut first = Drive::new(None);
    trip(&mut first);
    assert_eq!(first.r.written.alerts.len(), 2);
    // A new process: the row as stored, the same events again from seq 1.
    let mut again = Drive::new(None);
    again.r = Replay::new(first.r.trip.order.clone(), TripSettings::default());
    again.event(EventBody::Assignment {
        rider_id: Some("r1".into()),
        rider_name: None,
        ts: T0,
    });
    trip(&mut again);
    assert!(
        again.r.written.alerts.is_empty(),
        "{:?}",
        again.r.written.alerts
    );
    assert!(again.r.written.arrivals.is_empty());
}

#[test]
fn a_straight_trip_at_constant_speed_is_estimated_within_ten_percent_from_half_way() {
    for speed in [3.0, 5.0, 7.0] {
        let mut d = Drive::new(None);
        d.r.settings.eta_step = Duration::ZERO;
        d.picked_up(T0);
        let (_, end) = d.ride(0.0, 0.0, T0, (4000.0 / speed) as i64, speed);
        let duration = end - T0;
        for &(ts, eta) in &d.r.written.etas {
            if ts - T0 >= duration / 2 {
                let left = end - ts;
                let err = (eta - end).abs() as f64;
                assert!(
                    err <= 0.1 * left as f64 + 5000.0,
                    "at {speed} m/s, {} s in: eta off by {} s of {} s left",
                    (ts - T0) / 1000,
                    err / 1000.0,
                    left / 1000
                );
            }
        }
    }
}

#[test]
fn before_pick_up_the_estimate_adds_the_leg_to_the_pick_up() {
    let mut d = Drive::new(None);
    d.fix(offset(START, 0.0, -1000.0), T0 + 1000);
    d.fix(offset(START, 0.0, -970.0), T0 + 6000);
    let &(ts, eta) = d.r.written.etas.last().expect("an estimate");
    // 1 km to the pick-up and 4 km on, at about 4.5 m/s, plus the stop.
    let secs = (eta - ts) / 1000;
    assert!((900..1700).contains(&secs), "{secs} s");
}
