//! A finished (or running) trip summed up from its stored track: distance,
//! time moving and stopped, where the rider stopped, average and top speed
//! (`docs/protocol.md`, "Trip reports").
//!
//! Phones' fixes are noisy, so the report first leaves out what cannot be
//! trusted: fixes whose reported accuracy is worse than [`MAX_ACC_M`], and
//! jumps: a fix that would need more than [`MAX_JUMP_SPEED`] to reach from
//! the fix before it and to get back to the fix after it, while those two
//! agree (at the ends of the track, the one neighbour and the next pair). A
//! jump is judged against its neighbours, not against the last fix kept, so
//! one bad first fix cannot make the good ones after it look like jumps. A
//! stop is a run of fixes that stays within [`STOP_RADIUS_M`]
//! of its first for at least [`MIN_STOP_MS`]; the jitter inside a stop is not
//! counted as distance.

use crate::geo::dist;
use serde::Serialize;
use tracker_backend::TrackPoint;
use tracker_domain::Point;

/// Fixes whose reported horizontal accuracy is worse than this are left out, metres.
pub const MAX_ACC_M: f64 = 50.0;
/// A fix that would need more than this speed from the last kept one is a jump, m/s (180 km/h).
pub const MAX_JUMP_SPEED: f64 = 50.0;
/// A stop stays within this distance of where it began, metres.
pub const STOP_RADIUS_M: f64 = 30.0;
/// A stop lasts at least this long, ms.
pub const MIN_STOP_MS: i64 = 60_000;

/// Where and when the rider stood still.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stop {
    /// The stop's place: the mean of its fixes.
    pub lat: f64,
    /// See `lat`.
    pub lon: f64,
    /// Its first fix's time, Unix ms.
    pub from: i64,
    /// Its last fix's time, Unix ms.
    pub to: i64,
}

/// The summary of one order's trip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TripReport {
    /// The order id.
    pub order: String,
    /// Metres travelled between the fixes kept, stops' jitter left out.
    pub distance_m: f64,
    /// First fix to last fix, ms.
    pub duration_ms: i64,
    /// `duration_ms` less `stopped_ms`.
    pub moving_ms: i64,
    /// Time in stops, ms.
    pub stopped_ms: i64,
    /// `distance_m` over the time moving, m/s (0 without movement).
    pub avg_speed: f64,
    /// The fastest stretch between two consecutive fixes kept outside stops, m/s.
    pub max_speed: f64,
    /// The stops, oldest first.
    pub stops: Vec<Stop>,
    /// Fixes the report was made from.
    pub points: usize,
    /// Fixes left out: too vague (`acc`) or jumps.
    pub dropped: usize,
}

/// The report of `order` from its `points` (any order; sorted here by time).
pub fn report(order: &str, points: &[TrackPoint]) -> TripReport {
    let (kept, dropped) = clean(points);
    let stops_at = find_stops(&kept);
    let mut distance_m = 0.0;
    let mut max_speed: f64 = 0.0;
    for i in 1..kept.len() {
        // Both ends in one stop: jitter, not travel.
        if stops_at.iter().any(|&(a, b)| a < i && i <= b) {
            continue;
        }
        let d = dist(at(kept[i - 1]), at(kept[i]));
        distance_m += d;
        // Over a second at least, as the jump filter judges: jitter between
        // fixes a few hundred ms apart is not speed.
        let dt = ((kept[i].ts - kept[i - 1].ts) as f64 / 1000.0).max(1.0);
        max_speed = max_speed.max(d / dt);
    }
    let stops: Vec<Stop> = stops_at
        .iter()
        .map(|&(a, b)| {
            let n = (b - a + 1) as f64;
            Stop {
                lat: kept[a..=b].iter().map(|p| p.lat).sum::<f64>() / n,
                lon: kept[a..=b].iter().map(|p| p.lon).sum::<f64>() / n,
                from: kept[a].ts,
                to: kept[b].ts,
            }
        })
        .collect();
    let duration_ms = match (kept.first(), kept.last()) {
        (Some(a), Some(b)) => b.ts - a.ts,
        _ => 0,
    };
    let stopped_ms: i64 = stops.iter().map(|s| s.to - s.from).sum();
    let moving_ms = duration_ms - stopped_ms;
    TripReport {
        order: order.to_owned(),
        distance_m,
        duration_ms,
        moving_ms,
        stopped_ms,
        avg_speed: if moving_ms > 0 {
            distance_m / (moving_ms as f64 / 1000.0)
        } else {
            0.0
        },
        max_speed,
        stops,
        points: kept.len(),
        dropped,
    }
}

fn at(p: &TrackPoint) -> Point {
    Point {
        lat: p.lat,
        lon: p.lon,
    }
}

/// The fixes to trust, by time, and how many were left out.
fn clean(points: &[TrackPoint]) -> (Vec<&TrackPoint>, usize) {
    let mut sorted: Vec<&TrackPoint> = points.iter().collect();
    sorted.sort_by_key(|p| p.ts);
    sorted.dedup_by_key(|p| p.ts);
    let trusted: Vec<&TrackPoint> = sorted
        .into_iter()
        .filter(|p| !p.acc.is_some_and(|a| a > MAX_ACC_M))
        .collect();
    let n = trusted.len();
    let jump = |a: usize, b: usize| is_jump(trusted[a], trusted[b]);
    let kept: Vec<&TrackPoint> = (0..n)
        .filter(|&i| {
            let spike = if i > 0 && i + 1 < n {
                jump(i - 1, i) && jump(i, i + 1) && !jump(i - 1, i + 1)
            } else if i == 0 && n > 2 {
                jump(0, 1) && !jump(1, 2)
            } else if i + 1 == n && n > 2 {
                jump(n - 2, n - 1) && !jump(n - 3, n - 2)
            } else {
                false
            };
            !spike
        })
        .map(|i| trusted[i])
        .collect();
    let dropped = points.len() - kept.len();
    (kept, dropped)
}

/// `b` is out of reach of `a` at [`MAX_JUMP_SPEED`] (over a second at least).
fn is_jump(a: &TrackPoint, b: &TrackPoint) -> bool {
    let dt = ((b.ts - a.ts).abs() as f64 / 1000.0).max(1.0);
    dist(at(a), at(b)) > MAX_JUMP_SPEED * dt
}

/// The stops as index ranges `(first, last)` of `kept`, inclusive.
fn find_stops(kept: &[&TrackPoint]) -> Vec<(usize, usize)> {
    let mut stops = Vec::new();
    let mut i = 0;
    while i < kept.len() {
        let mut j = i;
        while j + 1 < kept.len() && dist(at(kept[i]), at(kept[j + 1])) <= STOP_RADIUS_M {
            j += 1;
        }
        if kept[j].ts - kept[i].ts >= MIN_STOP_MS {
            stops.push((i, j));
            i = j + 1;
        } else {
            i += 1;
        }
    }
    stops
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metres per degree of latitude on the sphere `dist` uses.
    const M_PER_DEG: f64 = 6_372_797.560_856 * std::f64::consts::PI / 180.0;

    fn fix(ts: i64, north_m: f64, east_jitter_m: f64) -> TrackPoint {
        TrackPoint {
            order_id: "o".into(),
            rider_id: "r".into(),
            ts,
            lat: 23.0 + north_m / M_PER_DEG,
            lon: 113.0 + east_jitter_m / (M_PER_DEG * 23f64.to_radians().cos()),
            speed: None,
            heading: None,
            acc: Some(8.0),
        }
    }

    /// North at 10 m/s for 5 min, 3 min standing with ±5 m of jitter, north
    /// again for 5 min; a fix every 5 s, plus a jump of 5 km and a fix of
    /// 500 m accuracy that must both be left out.
    fn known_track() -> Vec<TrackPoint> {
        let mut pts = Vec::new();
        let mut t = 0;
        let mut north = 0.0;
        for _ in 0..60 {
            pts.push(fix(t, north, 0.0));
            t += 5_000;
            north += 50.0;
        }
        let stop_at = north;
        for k in 0..36 {
            pts.push(fix(t, stop_at, if k % 2 == 0 { 5.0 } else { -5.0 }));
            t += 5_000;
        }
        for _ in 0..=60 {
            pts.push(fix(t, north, 0.0));
            t += 5_000;
            north += 50.0;
        }
        let mut jump = fix(100_000 + 2_500, 5_000.0, 0.0);
        jump.acc = Some(5.0);
        pts.push(jump);
        let mut vague = fix(400_000 + 2_500, 1_000.0, 0.0);
        vague.acc = Some(500.0);
        pts.push(vague);
        pts
    }

    #[test]
    fn a_known_track_gives_its_distance_within_one_percent_and_its_stop() {
        let r = report("o", &known_track());
        let want = 6_000.0;
        assert!(
            (r.distance_m - want).abs() / want < 0.01,
            "distance {} m, want {want}",
            r.distance_m
        );
        assert_eq!(r.dropped, 2, "the jump and the vague fix");
        assert_eq!(r.stops.len(), 1, "{:?}", r.stops);
        let s = &r.stops[0];
        // From the first jittering fix to the first of the way on, taken
        // where the rider still stood: 3 min, within a fix.
        assert!(
            (s.to - s.from - 180_000).abs() <= 5_000,
            "{} ms",
            s.to - s.from
        );
        assert!(
            dist(
                at(&fix(0, 3_000.0, 0.0)),
                Point {
                    lat: s.lat,
                    lon: s.lon
                }
            ) < 10.0
        );
        assert_eq!(r.duration_ms, 156 * 5_000);
        assert_eq!(r.moving_ms + r.stopped_ms, r.duration_ms);
        assert!((r.avg_speed - 10.0).abs() < 0.2, "{}", r.avg_speed);
        assert!((r.max_speed - 10.0).abs() < 0.2, "{}", r.max_speed);
    }

    #[test]
    fn a_bad_first_fix_is_left_out_and_does_not_cost_the_good_ones() {
        let mut pts = known_track();
        // A cold start 2 km off, 5 s before the first good fix.
        let mut cold = fix(-5_000, -2_000.0, 0.0);
        cold.acc = Some(10.0);
        pts.push(cold);
        let r = report("o", &pts);
        assert_eq!(r.dropped, 3, "the cold start, the jump and the vague fix");
        assert!(
            (r.distance_m - 6_000.0).abs() / 6_000.0 < 0.01,
            "{}",
            r.distance_m
        );
        assert!(r.max_speed < 11.0, "{}", r.max_speed);
    }

    #[test]
    fn jitter_between_close_fixes_is_not_speed() {
        // Fixes 200 ms apart, 20 m of jitter each: not 100 m/s.
        let pts: Vec<TrackPoint> = (0..10)
            .map(|i| fix(i * 200, 0.0, if i % 2 == 0 { 10.0 } else { -10.0 }))
            .collect();
        let r = report("o", &pts);
        assert!(r.max_speed <= 21.0, "{}", r.max_speed);
        assert_eq!(r.dropped, 0);
    }

    #[test]
    fn no_points_or_one_point_reports_nothing_travelled() {
        let r = report("o", &[]);
        assert_eq!((r.distance_m, r.duration_ms, r.points), (0.0, 0, 0));
        let r = report("o", &[fix(0, 0.0, 0.0)]);
        assert_eq!((r.distance_m, r.avg_speed, r.stops.len()), (0.0, 0.0, 0));
    }

    #[test]
    fn fixes_out_of_order_or_repeated_are_sorted_and_counted_once() {
        let mut pts = known_track();
        pts.reverse();
        pts.push(pts[10].clone());
        let r = report("o", &pts);
        assert!((r.distance_m - 6_000.0).abs() < 60.0, "{}", r.distance_m);
        assert_eq!(r.dropped, 3);
    }
}
