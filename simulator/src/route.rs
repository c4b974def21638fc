//! Street-like routes: a rider moves along a grid of streets (north–south and
//! east–west, one block ≈ 150 m) in a staircase from A to B, never flying
//! straight across blocks, and is sampled at a steady speed.

use rand::Rng;

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// Street spacing, metres.
pub const BLOCK_M: f64 = 150.0;

/// A WGS-84 point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

impl LatLon {
    fn metres_per_deg_lon(self) -> f64 {
        M_PER_DEG * self.lat.to_radians().cos()
    }

    /// The point `north` and `east` metres away.
    pub fn offset(self, north: f64, east: f64) -> LatLon {
        LatLon {
            lat: self.lat + north / M_PER_DEG,
            lon: self.lon + east / self.metres_per_deg_lon(),
        }
    }

    /// Metres north and east from `self` to `other` (flat-earth; fine within a city).
    pub fn delta(self, other: LatLon) -> (f64, f64) {
        (
            (other.lat - self.lat) * M_PER_DEG,
            (other.lon - self.lon) * self.metres_per_deg_lon(),
        )
    }

    /// A random street corner within `radius_m` of `self`.
    pub fn random_corner(self, radius_m: f64, rng: &mut impl Rng) -> LatLon {
        let blocks = (radius_m / BLOCK_M).max(1.0) as i64;
        let n = rng.random_range(-blocks..=blocks) as f64 * BLOCK_M;
        let e = rng.random_range(-blocks..=blocks) as f64 * BLOCK_M;
        self.offset(n, e)
    }
}

/// A path along streets, walked by distance.
#[derive(Debug, Clone)]
pub struct Route {
    points: Vec<LatLon>,
    /// Cumulative length at each point, metres.
    at: Vec<f64>,
}

impl Route {
    /// A staircase from `a` to `b`: legs along one axis then the other, 1–3 turns each way.
    pub fn streets(a: LatLon, b: LatLon, rng: &mut impl Rng) -> Route {
        // Split in degrees, so each leg keeps exactly one coordinate.
        let (dn, de) = (b.lat - a.lat, b.lon - a.lon);
        let turns = rng.random_range(1..=3usize);
        let split = |total: f64, rng: &mut dyn rand::RngCore| -> Vec<f64> {
            let mut cuts: Vec<f64> = (1..turns).map(|_| rng.random::<f64>()).collect();
            cuts.push(0.0);
            cuts.push(1.0);
            cuts.sort_by(f64::total_cmp);
            cuts.windows(2).map(|w| (w[1] - w[0]) * total).collect()
        };
        let (ns, es) = (split(dn, rng), split(de, rng));
        let north_first = rng.random::<bool>();
        let mut points = vec![a];
        let mut cur = a;
        for (n, e) in ns.into_iter().zip(es) {
            let legs = if north_first {
                [(n, 0.0), (0.0, e)]
            } else {
                [(0.0, e), (n, 0.0)]
            };
            for (dlat, dlon) in legs {
                if dlat != 0.0 || dlon != 0.0 {
                    cur = LatLon {
                        lat: cur.lat + dlat,
                        lon: cur.lon + dlon,
                    };
                    points.push(cur);
                }
            }
        }
        // Land exactly on b, whatever rounding did.
        *points.last_mut().expect("at least a") = b;
        Route::through(points)
    }

    /// A route through `points` in order.
    pub fn through(points: Vec<LatLon>) -> Route {
        let mut at = Vec::with_capacity(points.len());
        let mut total = 0.0;
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                let (n, e) = points[i - 1].delta(*p);
                total += n.hypot(e);
            }
            at.push(total);
        }
        Route { points, at }
    }

    /// The points before `d` metres along it (all of them for infinity).
    pub fn points_until(&self, d: f64) -> Vec<LatLon> {
        self.points
            .iter()
            .zip(&self.at)
            .filter(|(_, at)| **at < d || d.is_infinite())
            .map(|(p, _)| *p)
            .collect()
    }

    /// The points after `d` metres along it.
    pub fn points_after(&self, d: f64) -> Vec<LatLon> {
        self.points
            .iter()
            .zip(&self.at)
            .filter(|(_, at)| **at > d)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Its length, metres.
    pub fn length(&self) -> f64 {
        *self.at.last().unwrap_or(&0.0)
    }

    /// Where a rider is after `d` metres (clamped to the ends), and their heading in degrees.
    pub fn walk(&self, d: f64) -> (LatLon, f64) {
        let d = d.clamp(0.0, self.length());
        let i = self
            .at
            .partition_point(|&x| x < d)
            .clamp(1, self.points.len().max(2) - 1);
        if self.points.len() < 2 {
            return (self.points[0], 0.0);
        }
        let (a, b) = (self.points[i - 1], self.points[i]);
        let seg = self.at[i] - self.at[i - 1];
        let k = if seg > 0.0 {
            (d - self.at[i - 1]) / seg
        } else {
            1.0
        };
        let (n, e) = a.delta(b);
        let heading = e.atan2(n).to_degrees().rem_euclid(360.0);
        (
            LatLon {
                lat: a.lat + (b.lat - a.lat) * k,
                lon: a.lon + (b.lon - a.lon) * k,
            },
            heading,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CITY: LatLon = LatLon {
        lat: 23.1291,
        lon: 113.2644,
    };

    #[test]
    fn a_street_route_goes_from_a_to_b_along_axes() {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let a = CITY.random_corner(3000.0, &mut rng);
            let b = CITY.random_corner(3000.0, &mut rng);
            let r = Route::streets(a, b, &mut rng);
            assert_eq!(r.walk(0.0).0, a);
            assert_eq!(r.walk(r.length() + 10.0).0, b);
            let (dn, de) = a.delta(b);
            // A staircase is as long as the Manhattan distance (east legs are
            // measured at their own latitude: within a percent over a city).
            let manhattan = dn.abs() + de.abs();
            assert!((r.length() - manhattan).abs() <= manhattan * 0.01 + 1e-6);
            for w in r.points.windows(2) {
                let (n, e) = w[0].delta(w[1]);
                assert!(n.abs() < 1e-6 || e.abs() < 1e-6, "a leg along one street");
            }
        }
    }

    #[test]
    fn walking_moves_at_the_given_distance() {
        let b = CITY.offset(1000.0, 0.0);
        let r = Route::through(vec![CITY, b]);
        let (p, heading) = r.walk(250.0);
        let (n, e) = CITY.delta(p);
        assert!((n - 250.0).abs() < 0.01 && e.abs() < 0.01);
        assert!(heading.abs() < 1e-9, "due north");
    }
}
