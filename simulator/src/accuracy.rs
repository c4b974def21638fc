//! How well the trip watcher predicts and warns: its own code (the trips
//! crate's `Replay`, which writes decisions by the same rules the worker's
//! store writes use) played on ground-truth trips of `truth.rs` in
//! simulated time, the model learning from each trip once it was delivered.
//!
//! ETA: absolute error at half-way and at 75 % of the way from pick-up to
//! the true arrival, for the watcher's estimate as it stood then and for the
//! baseline "straight-line distance left ÷ current speed". Alerts: precision
//! and recall per kind against the injected episodes, and the delay after
//! the definition was met (for `stalled` the stall time, for `rider_offline`
//! the silence time, for `off_route` at once).

use crate::route::LatLon;
use crate::truth::{Anomaly, City, TripShape, TrueTrip, point};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tracker_domain::{EventBody, NewOrder, Order, Status};
use tracker_trips::TripSettings;
use tracker_trips::model::{Lesson, Model};
use tracker_trips::replay::Replay;

/// What to replay.
#[derive(Debug, Clone)]
pub struct AccuracyConfig {
    /// Trips in all.
    pub trips: usize,
    /// Seed of the city and the trips: a run is reproducible.
    pub seed: u64,
    /// Share of trips with an injected anomaly.
    pub anomaly_share: f64,
    /// Share of orders that carry their planned route.
    pub routed_share: f64,
    /// A new trip starts this often, ms (so a run covers every hour of the day).
    pub gap_ms: i64,
    /// The watcher's thresholds.
    pub settings: TripSettings,
    /// How trips are made.
    pub shape: TripShape,
    /// The model learns from delivered trips (off: the defaults throughout,
    /// to see what learning is worth).
    pub learn: bool,
}

impl Default for AccuracyConfig {
    fn default() -> Self {
        AccuracyConfig {
            trips: 600,
            seed: 1,
            anomaly_share: 0.5,
            routed_share: 0.8,
            gap_ms: 150_000,
            settings: TripSettings::default(),
            shape: TripShape::default(),
            learn: true,
        }
    }
}

/// p50 and p90 of some seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// How many values.
    pub n: usize,
    /// Median, s.
    pub p50: f64,
    /// 90th percentile, s.
    pub p90: f64,
}

fn spread(mut v: Vec<f64>) -> Spread {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Spread {
        n: v.len(),
        p50: at(0.5),
        p90: at(0.9),
    }
}

/// The score of one alert kind.
#[derive(Debug, Clone, Serialize)]
pub struct KindScore {
    /// The kind.
    pub kind: &'static str,
    /// Episodes injected.
    pub truth: usize,
    /// Episodes raised.
    pub raised: usize,
    /// Raised episodes that match an injected one.
    pub true_positives: usize,
    /// Matched ÷ raised.
    pub precision: f64,
    /// Injected episodes found ÷ injected.
    pub recall: f64,
    /// Delay from when the definition was met to the write, s.
    pub delay: Spread,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyReport {
    /// Trips replayed.
    pub trips: usize,
    /// ETA error at half-way: the watcher's, the baseline's.
    pub eta_half: (Spread, Spread),
    /// ETA error at 75 % of the way.
    pub eta_75: (Spread, Spread),
    /// The same two on the trips without an injected anomaly.
    pub clean: [(Spread, Spread); 2],
    /// Alerts by kind.
    pub alerts: Vec<KindScore>,
}

impl AccuracyReport {
    /// The summary table.
    pub fn table(&self) -> String {
        let mut s = format!("trips replayed            {}\n", self.trips);
        for (name, (ours, base)) in [
            ("half-way", &self.eta_half),
            ("75 % of the way", &self.eta_75),
            ("half-way, clean", &self.clean[0]),
            ("75 %, clean", &self.clean[1]),
        ] {
            s += &format!(
                "ETA error at {name:<16} p50 {:>6.0} s  p90 {:>6.0} s   baseline p50 {:>6.0} s  p90 {:>6.0} s  ({} trips)\n",
                ours.p50, ours.p90, base.p50, base.p90, ours.n
            );
        }
        for k in &self.alerts {
            s += &format!(
                "{:<14} injected {:>4}  raised {:>4}  precision {:.3}  recall {:.3}  delay p50 {:>5.0} s  p90 {:>5.0} s\n",
                k.kind, k.truth, k.raised, k.precision, k.recall, k.delay.p50, k.delay.p90
            );
        }
        s
    }
}

/// What each replayed trip left for the score.
struct Scored {
    truth: TrueTrip,
    alerts: Vec<tracker_trips::replay::Edge>,
    etas: Vec<(i64, i64, i64)>,
}

fn order_of(t: &TrueTrip, routed: bool, id: usize) -> Order {
    let new = NewOrder {
        biz_order_no: format!("ACC-{id}"),
        biz_type: "food".into(),
        customer_id: "c".into(),
        pickup: point(t.pickup),
        dropoff: point(t.dropoff),
        promised_at: None,
        route: routed.then(|| t.planned.iter().copied().map(point).collect()),
        ..Default::default()
    };
    let mut o = Order::new(id.to_string(), new, t.assigned_at);
    o.status = Status::Assigned;
    o.rider_id = Some("r".into());
    o
}

fn status(s: Status, ts: i64) -> EventBody {
    EventBody::Status {
        from: None,
        status: s,
        version: 0,
        ts,
        reason: None,
        by: None,
    }
}

/// Plays one trip through a replay; returns what it wrote and the lesson.
fn play(
    t: &TrueTrip,
    order: Order,
    settings: &TripSettings,
    model: &Model,
) -> (Scored, Option<Lesson>) {
    let mut r = Replay::new(order, settings.clone());
    enum Ev {
        Fix(usize),
        PickedUp,
        Delivered,
    }
    let mut evs: Vec<(i64, usize, Ev)> = t
        .fixes
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.sent_at.map(|s| (s, i, Ev::Fix(i))))
        .collect();
    evs.push((t.picked_up_at, usize::MAX - 1, Ev::PickedUp));
    evs.push((t.delivered_at, usize::MAX, Ev::Delivered));
    evs.sort_by_key(|(at, i, _)| (*at, *i));
    r.event(
        EventBody::Assignment {
            rider_id: Some("r".into()),
            rider_name: None,
            ts: t.assigned_at,
        },
        t.assigned_at,
        model,
    );
    let mut clock = t.assigned_at;
    let mut etas = Vec::new();
    for (at, _, ev) in evs {
        while clock + 1000 <= at {
            clock += 1000;
            r.tick(clock);
        }
        let before = r.written.etas.len();
        match ev {
            Ev::Fix(i) => {
                let f = t.fixes[i];
                r.fix(point(f.at), f.ts, Some(f.speed), at, model);
            }
            Ev::PickedUp => r.event(status(Status::PickedUp, at), at, model),
            Ev::Delivered => r.event(status(Status::Delivered, at), at, model),
        }
        for &(ts, eta) in &r.written.etas[before..] {
            etas.push((ts, eta, at));
        }
    }
    let lesson = r.trip.lesson();
    (
        Scored {
            truth: t.clone(),
            alerts: r.written.alerts.clone(),
            etas,
        },
        lesson,
    )
}

fn anomaly(rng: &mut StdRng, routed: bool) -> Anomaly {
    loop {
        match rng.random_range(0..4) {
            0 => {
                return Anomaly::Stall {
                    secs: rng.random_range(360..=900),
                };
            }
            1 if routed => return Anomaly::Detour { off_m: 500.0 },
            2 => {
                return Anomaly::Silence {
                    secs: rng.random_range(180..=420),
                };
            }
            3 => {
                let secs = rng.random_range(420..=600);
                let stall_secs = if rng.random::<bool>() {
                    rng.random_range(330..=secs - 60)
                } else {
                    0
                };
                return Anomaly::OfflineBatch { secs, stall_secs };
            }
            _ => {}
        }
    }
}

/// Replays `cfg.trips` trips and scores them.
pub fn run(cfg: &AccuracyConfig) -> AccuracyReport {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let center = LatLon {
        lat: 23.1291,
        lon: 113.2644,
    };
    let city = City {
        center,
        seed: cfg.seed,
    };
    // Midnight UTC of a fixed day, so runs are the same whenever they are made.
    let day0 = 1_780_000_000_000 / 86_400_000 * 86_400_000;
    let mut model = Model::default();
    let mut pending: Vec<(i64, Lesson)> = Vec::new();
    let mut scored = Vec::new();
    for i in 0..cfg.trips {
        let start = day0 + i as i64 * cfg.gap_ms;
        pending.retain(|(done, lesson)| {
            if *done <= start {
                if cfg.learn {
                    model.learn_trip(lesson);
                }
                false
            } else {
                true
            }
        });
        let at = center.random_corner(3000.0, &mut rng);
        let pickup = at.random_corner(1000.0, &mut rng);
        // A delivery worth watching: at least 800 m from the store.
        let dropoff = loop {
            let d = pickup.random_corner(2500.0, &mut rng);
            let (n, e) = pickup.delta(d);
            if n.hypot(e) >= 800.0 {
                break d;
            }
        };
        let routed = rng.random::<f64>() < cfg.routed_share;
        let anomaly = (rng.random::<f64>() < cfg.anomaly_share).then(|| anomaly(&mut rng, routed));
        let places = crate::truth::Places {
            rider: at,
            pickup,
            dropoff,
        };
        let t = crate::truth::trip(&city, cfg.shape, places, start, anomaly, &mut rng);
        let (s, lesson) = play(&t, order_of(&t, routed, i), &cfg.settings, &model);
        if let Some(l) = lesson {
            pending.push((t.delivered_at, l));
        }
        scored.push(s);
    }
    score(cfg, &scored)
}

fn score(cfg: &AccuracyConfig, trips: &[Scored]) -> AccuracyReport {
    let mut eta = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    let mut clean = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for s in trips {
        let t = &s.truth;
        if t.at_dropoff - t.picked_up_at < 120_000 {
            continue;
        }
        for (k, q) in [0.5, 0.75].into_iter().enumerate() {
            let tq = t.picked_up_at + ((t.at_dropoff - t.picked_up_at) as f64 * q) as i64;
            let ours = s
                .etas
                .iter()
                .rfind(|(ts, _, at)| *ts >= t.picked_up_at && *at <= tq)
                .map(|&(_, e, _)| e);
            let last_fix = t
                .fixes
                .iter()
                .rfind(|f| f.ts >= t.picked_up_at && f.sent_at.is_some_and(|s| s <= tq));
            if let (Some(ours), Some(f)) = (ours, last_fix) {
                let left = tracker_trips::geo::dist(point(f.at), point(t.dropoff));
                let base = f.ts + (left / f.speed.max(0.5) * 1000.0) as i64;
                let (o, b) = (
                    (ours - t.at_dropoff).abs() as f64 / 1000.0,
                    (base - t.at_dropoff).abs() as f64 / 1000.0,
                );
                eta[k].0.push(o);
                eta[k].1.push(b);
                if t.anomaly.is_none() {
                    clean[k].0.push(o);
                    clean[k].1.push(b);
                }
            }
        }
    }
    let grace = 60_000;
    let alerts = ["stalled", "off_route", "rider_offline"]
        .into_iter()
        .map(|kind| {
            let lag = match kind {
                "stalled" => cfg.settings.stall.as_millis() as i64,
                "rider_offline" => cfg.settings.offline.as_millis() as i64,
                _ => 0,
            };
            let (mut truth, mut raised, mut tp, mut found) = (0, 0, 0, 0);
            let mut delays = Vec::new();
            for s in trips {
                let eps: Vec<_> = s.truth.episodes.iter().filter(|e| e.kind == kind).collect();
                truth += eps.len();
                let mut used = vec![false; eps.len()];
                for a in s.alerts.iter().filter(|a| a.kind == kind && !a.cleared) {
                    raised += 1;
                    let hit = eps
                        .iter()
                        .enumerate()
                        .find(|(i, e)| !used[*i] && a.ts >= e.start && a.ts <= e.end + grace);
                    if let Some((i, e)) = hit {
                        used[i] = true;
                        tp += 1;
                        found += 1;
                        delays.push((a.written_at - (e.start + lag)).max(0) as f64 / 1000.0);
                    }
                }
            }
            KindScore {
                kind,
                truth,
                raised,
                true_positives: tp,
                precision: if raised == 0 {
                    1.0
                } else {
                    tp as f64 / raised as f64
                },
                recall: if truth == 0 {
                    1.0
                } else {
                    found as f64 / truth as f64
                },
                delay: spread(delays),
            }
        })
        .collect();
    let [(h_ours, h_base), (q_ours, q_base)] = eta;
    let clean = clean.map(|(o, b)| (spread(o), spread(b)));
    AccuracyReport {
        trips: trips.len(),
        clean,
        eta_half: (spread(h_ours), spread(h_base)),
        eta_75: (spread(q_ours), spread(q_base)),
        alerts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_scores_every_kind_and_both_estimates() {
        let r = run(&AccuracyConfig {
            trips: 60,
            anomaly_share: 0.8,
            ..AccuracyConfig::default()
        });
        assert_eq!(r.trips, 60);
        assert!(r.eta_half.0.n > 30, "{r:?}");
        for k in &r.alerts {
            assert!(k.truth > 0, "{} injected: {r:?}", k.kind);
        }
    }
}
