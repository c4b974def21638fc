//! Ground truth for the trip watcher: trips through a city whose streets
//! have speeds that vary by area and hour, with stops at crossings, and
//! injected anomalies (a stall, a detour off the planned route, a phone gone
//! silent, an offline batch), each recorded with when it truly started and
//! ended, and the rider's true arrival times.
//!
//! A trip is made up front as a timeline: every fix with when it was taken
//! and when (if ever) the phone sent it. The real-time riders of a run and
//! the accuracy replay of `accuracy.rs` both play such timelines.

use crate::route::{BLOCK_M, LatLon, Route};
use rand::Rng;

/// A city's streets: free-flow speeds by area (1 km squares) and hour.
#[derive(Debug, Clone, Copy)]
pub struct City {
    /// The centre; areas are counted from it.
    pub center: LatLon,
    /// Makes the areas' speeds differ between cities.
    pub seed: u64,
}

impl City {
    /// Speed on the streets at `at` at the hour (UTC) of `ts`, m/s: 7 m/s
    /// times an area factor (0.55–1.3) times rush hours (×0.6 at 7–9 and
    /// 17–19) or the night (×1.25 at 0–5).
    pub fn speed(&self, at: LatLon, ts: i64) -> f64 {
        let (n, e) = self.center.delta(at);
        let cell = ((n / 1000.0).floor() as i64, (e / 1000.0).floor() as i64);
        let mut h = self.seed ^ 0x9e37_79b9_7f4a_7c15;
        for v in [cell.0, cell.1] {
            h ^= v as u64;
            h = h.wrapping_mul(0x0100_0000_01b3).rotate_left(23);
        }
        let area = 0.55 + 0.75 * ((h >> 11) as f64 / (1u64 << 53) as f64);
        let hour = ts.div_euclid(3_600_000).rem_euclid(24);
        let time = match hour {
            7..=9 | 17..=19 => 0.6,
            0..=5 => 1.25,
            _ => 1.0,
        };
        7.0 * area * time
    }
}

/// An anomaly injected into the way to the customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Anomaly {
    /// The rider stands still this long.
    Stall {
        /// Seconds.
        secs: i64,
    },
    /// The rider leaves the planned route by this much, for a while.
    Detour {
        /// Metres off the route.
        off_m: f64,
    },
    /// The phone takes fixes but sends none for this long (they are lost).
    Silence {
        /// Seconds.
        secs: i64,
    },
    /// The phone keeps its fixes this long and sends them as one batch
    /// after; the rider stands still for `stall_secs` of it.
    OfflineBatch {
        /// Seconds offline.
        secs: i64,
        /// Seconds of it standing still (0: riding on).
        stall_secs: i64,
    },
}

/// One fix of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueFix {
    /// When it was taken, Unix ms.
    pub ts: i64,
    /// Where, with GPS noise.
    pub at: LatLon,
    /// Ground speed the phone reports, m/s.
    pub speed: f64,
    /// When the phone sent it (`None`: never).
    pub sent_at: Option<i64>,
}

/// An episode that truly happened: `kind` as the alerts name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueEpisode {
    /// `stalled`, `off_route` or `rider_offline`.
    pub kind: &'static str,
    /// When it started, Unix ms (clock time for `rider_offline`).
    pub start: i64,
    /// When it ended.
    pub end: i64,
}

/// A whole trip and what truly happened on it.
#[derive(Debug, Clone)]
pub struct TrueTrip {
    /// The store.
    pub pickup: LatLon,
    /// The customer.
    pub dropoff: LatLon,
    /// The planned route, pick-up to drop-off (what the order carries).
    pub planned: Vec<LatLon>,
    /// The order was assigned (the rider sets off), Unix ms.
    pub assigned_at: i64,
    /// The rider reached the store.
    pub at_pickup: i64,
    /// The goods were picked up (after a wait at the store).
    pub picked_up_at: i64,
    /// The rider reached the customer: the truth an ETA is judged against.
    pub at_dropoff: i64,
    /// The delivery was confirmed.
    pub delivered_at: i64,
    /// Every fix, in the order taken.
    pub fixes: Vec<TrueFix>,
    /// The injected anomaly, if any.
    pub anomaly: Option<Anomaly>,
    /// What truly happened, for the alerts to be judged against.
    pub episodes: Vec<TrueEpisode>,
}

/// How trips are made.
#[derive(Debug, Clone, Copy)]
pub struct TripShape {
    /// A fix every this many ms.
    pub interval_ms: i64,
    /// Chance of stopping at each crossing (one per block), and the longest stop, s.
    pub crossing_stop: (f64, i64),
    /// GPS noise, metres (uniform in a square this wide each way).
    pub gps_noise_m: f64,
}

impl Default for TripShape {
    fn default() -> Self {
        TripShape {
            interval_ms: 5000,
            crossing_stop: (0.3, 45),
            gps_noise_m: 5.0,
        }
    }
}

/// Moves a rider along routes second by second and records the timeline.
struct Mover<'a> {
    city: &'a City,
    shape: TripShape,
    t: i64,
    next_fix: i64,
    fixes: Vec<TrueFix>,
    /// Positions without noise, one a second: the truth of where the rider was.
    track: Vec<(i64, LatLon)>,
}

impl Mover<'_> {
    fn second(&mut self, at: LatLon, speed: f64, rng: &mut impl Rng) {
        self.t += 1000;
        self.track.push((self.t, at));
        if self.t >= self.next_fix {
            self.next_fix += self.shape.interval_ms;
            let n = self.shape.gps_noise_m;
            let noisy = at.offset(rng.random_range(-n..=n), rng.random_range(-n..=n));
            self.fixes.push(TrueFix {
                ts: self.t,
                at: noisy,
                speed,
                sent_at: Some(self.t),
            });
        }
    }

    fn stand(&mut self, at: LatLon, secs: i64, rng: &mut impl Rng) {
        for _ in 0..secs {
            self.second(at, 0.0, rng);
        }
    }

    /// Rides `route`; `hold(d)` may ask for a stop of some seconds once, at distance `d`.
    fn ride(
        &mut self,
        route: &Route,
        mut hold: impl FnMut(f64) -> Option<i64>,
        rng: &mut impl Rng,
    ) {
        let mut d = 0.0;
        let mut next_crossing = BLOCK_M;
        // Each leg of the way has its own pace around the street's speed.
        let mut pace = rng.random_range(0.85..1.15);
        while d < route.length() {
            let (at, _) = route.walk(d);
            if let Some(secs) = hold(d) {
                self.stand(at, secs, rng);
            }
            if d >= next_crossing {
                next_crossing += BLOCK_M;
                pace = rng.random_range(0.85..1.15);
                let (p, longest) = self.shape.crossing_stop;
                if rng.random::<f64>() < p {
                    let secs = rng.random_range(5..=longest);
                    self.stand(at, secs, rng);
                }
            }
            let v = self.city.speed(at, self.t) * pace;
            d = (d + v).min(route.length());
            let (next, _) = route.walk(d);
            self.second(next, v, rng);
        }
    }
}

/// A route like `planned` that leaves it by `off_m` for about 600 m of the
/// way, starting at `from_m` along it.
fn detoured(planned: &Route, from_m: f64, off_m: f64) -> Route {
    let to_m = (from_m + 600.0).min(planned.length());
    let (p, heading) = planned.walk(from_m);
    let (q, _) = planned.walk(to_m);
    // Perpendicular to the way at the start (to the left).
    let (dn, de) = {
        let h = (heading + 90.0).to_radians();
        (h.cos() * off_m, h.sin() * off_m)
    };
    let mut points: Vec<LatLon> = planned.points_until(from_m);
    points.extend([p, p.offset(dn, de), q.offset(dn, de), q]);
    points.extend(planned.points_after(to_m));
    Route::through(points)
}

/// Where a trip's rider starts, and its two points.
#[derive(Debug, Clone, Copy)]
pub struct Places {
    /// Where the rider is when the order is assigned.
    pub rider: LatLon,
    /// The store.
    pub pickup: LatLon,
    /// The customer.
    pub dropoff: LatLon,
}

/// Makes one trip that starts (the rider assigned) at `start` ms.
pub fn trip(
    city: &City,
    shape: TripShape,
    places: Places,
    start: i64,
    anomaly: Option<Anomaly>,
    rng: &mut impl Rng,
) -> TrueTrip {
    let Places {
        rider: at,
        pickup,
        dropoff,
    } = places;
    let mut m = Mover {
        city,
        shape,
        t: start,
        next_fix: start + shape.interval_ms,
        fixes: Vec::new(),
        track: Vec::new(),
    };
    let to_store = Route::streets(at, pickup, rng);
    m.ride(&to_store, |_| None, rng);
    let at_pickup = m.t;
    m.stand(pickup, rng.random_range(60..=180), rng);
    let picked_up_at = m.t;
    let planned = Route::streets(pickup, dropoff, rng);
    let len = planned.length();
    let mid = rng.random_range(0.3..0.6) * len;
    let mut episodes = Vec::new();
    let first_fix = m.fixes.len();
    let way = match anomaly {
        Some(Anomaly::Detour { off_m }) => detoured(&planned, mid, off_m),
        _ => planned.clone(),
    };
    let mut stall_at = match anomaly {
        Some(Anomaly::Stall { secs }) => Some(secs),
        Some(Anomaly::OfflineBatch { stall_secs, .. }) if stall_secs > 0 => Some(stall_secs),
        _ => None,
    };
    let track_from = m.track.len();
    let mut stall_window = None;
    m.ride(&way, |d| if d >= mid { stall_at.take() } else { None }, rng);
    // Find the stall in the track: the long run of identical positions after `mid`.
    if matches!(
        anomaly,
        Some(Anomaly::Stall { .. })
            | Some(Anomaly::OfflineBatch {
                stall_secs: 1..,
                ..
            })
    ) {
        let track = &m.track[track_from..];
        let mut best = (0usize, 0usize);
        let mut run_start = 0;
        for i in 1..track.len() {
            if track[i].1 != track[i - 1].1 {
                if i - run_start > best.1 - best.0 {
                    best = (run_start, i);
                }
                run_start = i;
            }
        }
        if track.len() - run_start > best.1 - best.0 {
            best = (run_start, track.len());
        }
        let (s, e) = (track[best.0].0, track[best.1 - 1].0);
        stall_window = Some((s, e));
        episodes.push(TrueEpisode {
            kind: "stalled",
            start: s,
            end: e,
        });
    }
    if let Some(Anomaly::Detour { .. }) = anomaly {
        let line = crate::truth::polyline(&planned);
        let mut open: Option<i64> = None;
        for &(t, p) in &m.track[track_from..] {
            let off = line.project(point(p), None).off_m > 250.0;
            match (off, open) {
                (true, None) => open = Some(t),
                (false, Some(s)) => {
                    episodes.push(TrueEpisode {
                        kind: "off_route",
                        start: s,
                        end: t,
                    });
                    open = None;
                }
                _ => {}
            }
        }
    }
    let at_dropoff = m.t;
    m.stand(dropoff, rng.random_range(20..=90), rng);
    let delivered_at = m.t;
    // The phone's part: fixes it never sent, or sent late.
    let quiet = match anomaly {
        Some(Anomaly::Silence { secs }) => Some((secs, false)),
        Some(Anomaly::OfflineBatch { secs, .. }) => Some((secs, true)),
        _ => None,
    };
    let mut anomaly = anomaly;
    if let Some((secs, keeps)) = quiet {
        // Around the stall when there is one, else from the middle of the
        // way; always inside the way to the customer, or not at all.
        let wanted = match stall_window {
            Some((s, e)) => s - ((secs * 1000 - (e - s)) / 2).max(0),
            None => {
                let i = first_fix + (m.fixes.len() - first_fix) / 2;
                m.fixes[i].ts
            }
        };
        let (lo, hi) = (picked_up_at + 30_000, at_dropoff - secs * 1000 - 30_000);
        if lo <= hi {
            let from = wanted.clamp(lo, hi);
            let until = from + secs * 1000;
            let last_sent = m
                .fixes
                .iter()
                .rev()
                .find(|f| f.ts < from)
                .map_or(from, |f| f.ts);
            for f in m.fixes.iter_mut().filter(|f| f.ts >= from && f.ts < until) {
                f.sent_at = keeps.then_some(until);
            }
            let back = m
                .fixes
                .iter()
                .filter_map(|f| f.sent_at)
                .find(|&s| s >= until)
                .unwrap_or(until);
            episodes.push(TrueEpisode {
                kind: "rider_offline",
                start: last_sent,
                end: back,
            });
        } else if stall_window.is_none() {
            // The way is too short for it: a trip without an anomaly.
            anomaly = None;
        }
    }
    merge_close(&mut episodes, 20_000);
    TrueTrip {
        pickup,
        dropoff,
        planned: planned.points_until(f64::INFINITY),
        assigned_at: start,
        at_pickup,
        picked_up_at,
        at_dropoff,
        delivered_at,
        fixes: m.fixes,
        anomaly,
        episodes,
    }
}

/// Joins episodes of one kind less than `gap` ms apart: a detour that
/// brushes the route for a moment is one detour.
fn merge_close(eps: &mut Vec<TrueEpisode>, gap: i64) {
    eps.sort_by_key(|e| (e.kind, e.start));
    let mut out: Vec<TrueEpisode> = Vec::new();
    for e in eps.drain(..) {
        match out.last_mut() {
            Some(last) if last.kind == e.kind && e.start - last.end < gap => {
                last.end = last.end.max(e.end)
            }
            _ => out.push(e),
        }
    }
    *eps = out;
}

/// The trips crate's polyline of a route.
pub fn polyline(r: &Route) -> tracker_trips::geo::Polyline {
    tracker_trips::geo::Polyline::new(
        r.points_until(f64::INFINITY)
            .into_iter()
            .map(point)
            .collect(),
    )
}

/// A simulator point as the domain's.
pub fn point(p: LatLon) -> tracker_domain::Point {
    tracker_domain::Point {
        lat: p.lat,
        lon: p.lon,
    }
}
