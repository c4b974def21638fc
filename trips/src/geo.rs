//! Where a rider is along a path: distances, and the projection of a fix onto
//! a polyline (the planned route, or the straight pick-up → drop-off corridor).
//!
//! Segments are projected on a local flat map (equirectangular around the
//! segment's start), exact to well under a metre at city scale.

use tracker_backend::dispatch::geo::distance_m;
use tracker_domain::Point;

/// Metres per degree of latitude (mean Earth radius of `distance_m`).
const M_PER_DEG: f64 = 6_372_797.560_856 * std::f64::consts::PI / 180.0;

/// Great-circle distance, metres.
pub fn dist(a: Point, b: Point) -> f64 {
    distance_m(a, b)
}

/// A path with its running length, for projections.
#[derive(Debug, Clone)]
pub struct Polyline {
    points: Vec<Point>,
    /// `cum[i]`: metres from the first point to point `i`.
    cum: Vec<f64>,
}

/// Where a point falls on a [`Polyline`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    /// Metres along the path to the nearest point on it.
    pub along_m: f64,
    /// Metres from the point to the path.
    pub off_m: f64,
}

impl Polyline {
    /// The path through `points` (at least one).
    pub fn new(points: Vec<Point>) -> Self {
        let mut cum = Vec::with_capacity(points.len());
        let mut total = 0.0;
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                total += dist(points[i - 1], *p);
            }
            cum.push(total);
        }
        Polyline { points, cum }
    }

    /// Its length, metres.
    pub fn length_m(&self) -> f64 {
        self.cum.last().copied().unwrap_or(0.0)
    }

    /// The nearest point of the path to `p`. With `from_m`, parts of the path
    /// more than a little behind it are left out, so a route that passes a
    /// place twice projects onto the pass the rider is on.
    pub fn project(&self, p: Point, from_m: Option<f64>) -> Projection {
        if self.points.len() < 2 {
            let at = self.points.first().copied().unwrap_or(p);
            return Projection {
                along_m: 0.0,
                off_m: dist(p, at),
            };
        }
        let floor = from_m.map_or(f64::NEG_INFINITY, |m| m - 300.0);
        let mut found: Vec<Projection> = Vec::new();
        for i in 0..self.points.len() - 1 {
            if self.cum[i + 1] < floor {
                continue;
            }
            let (a, b) = (self.points[i], self.points[i + 1]);
            let (t, off) = onto_segment(p, a, b);
            found.push(Projection {
                along_m: self.cum[i] + t * (self.cum[i + 1] - self.cum[i]),
                off_m: off,
            });
        }
        let nearest = found.iter().map(|f| f.off_m).fold(f64::INFINITY, f64::min);
        // Of the passes about as near as the nearest, the first one ahead.
        found
            .into_iter()
            .filter(|f| f.off_m <= nearest + 25.0)
            .min_by(|a, b| a.along_m.total_cmp(&b.along_m))
            .unwrap_or(Projection {
                along_m: 0.0,
                off_m: nearest,
            })
    }
}

/// The fraction `t` in [0, 1] of segment `a → b` nearest to `p`, and the distance to it.
fn onto_segment(p: Point, a: Point, b: Point) -> (f64, f64) {
    let k = a.lat.to_radians().cos();
    let (bx, by) = ((b.lon - a.lon) * k * M_PER_DEG, (b.lat - a.lat) * M_PER_DEG);
    let (px, py) = ((p.lon - a.lon) * k * M_PER_DEG, (p.lat - a.lat) * M_PER_DEG);
    let len2 = bx * bx + by * by;
    let t = if len2 > 0.0 {
        ((px * bx + py * by) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (px - t * bx, py - t * by);
    (t, (dx * dx + dy * dy).sqrt())
}

/// The point `m` metres north and `e` metres east of `p` (for tests and the simulator).
pub fn offset(p: Point, north_m: f64, east_m: f64) -> Point {
    Point {
        lat: p.lat + north_m / M_PER_DEG,
        lon: p.lon + east_m / (M_PER_DEG * p.lat.to_radians().cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: Point = Point {
        lat: 23.1,
        lon: 113.3,
    };

    #[test]
    fn a_point_beside_a_route_projects_onto_it() {
        let line = Polyline::new(vec![O, offset(O, 0.0, 1000.0), offset(O, 1000.0, 1000.0)]);
        assert!(
            (line.length_m() - 2000.0).abs() < 2.0,
            "{}",
            line.length_m()
        );
        let pr = line.project(offset(O, 30.0, 400.0), None);
        assert!((pr.along_m - 400.0).abs() < 2.0, "{pr:?}");
        assert!((pr.off_m - 30.0).abs() < 1.0, "{pr:?}");
        let pr = line.project(offset(O, 500.0, 1200.0), None);
        assert!((pr.along_m - 1500.0).abs() < 2.0, "{pr:?}");
        assert!((pr.off_m - 200.0).abs() < 1.5, "{pr:?}");
    }

    #[test]
    fn a_route_passing_twice_projects_onto_the_pass_ahead() {
        // Out 1 km east and back on the same street.
        let line = Polyline::new(vec![O, offset(O, 0.0, 1000.0), offset(O, 5.0, 0.0)]);
        let p = offset(O, 3.0, 200.0);
        assert!(line.project(p, Some(0.0)).along_m < 300.0);
        assert!(line.project(p, Some(1500.0)).along_m > 1700.0);
    }
}
