//! Distances on the globe and the in-process spatial set behind the embedded
//! dispatch index (an R*-tree from `rstar`, queried by a bounding box and then
//! filtered by great-circle distance).

use rstar::primitives::GeomWithData;
use rstar::{AABB, RTree};
use std::collections::HashMap;
use tracker_domain::Point;

/// Mean Earth radius, metres (the one Redis GEO uses too).
const EARTH_RADIUS_M: f64 = 6_372_797.560_856;

/// Great-circle (haversine) distance between two points, metres.
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

type Item = GeomWithData<[f64; 2], String>;

/// Named points with a value each, found by distance from a point.
#[derive(Debug)]
pub struct GeoSet<V> {
    tree: RTree<Item>,
    items: HashMap<String, (Point, V)>,
}

impl<V> Default for GeoSet<V> {
    fn default() -> Self {
        GeoSet {
            tree: RTree::new(),
            items: HashMap::new(),
        }
    }
}

impl<V> GeoSet<V> {
    /// Puts `id` at `at` with `value`, replacing where it was.
    pub fn insert(&mut self, id: &str, at: Point, value: V) {
        self.remove(id);
        self.tree
            .insert(GeomWithData::new([at.lon, at.lat], id.to_owned()));
        self.items.insert(id.to_owned(), (at, value));
    }

    /// Takes `id` out; its point and value, when it was in.
    pub fn remove(&mut self, id: &str) -> Option<(Point, V)> {
        let (at, v) = self.items.remove(id)?;
        self.tree
            .remove(&GeomWithData::new([at.lon, at.lat], id.to_owned()));
        Some((at, v))
    }

    /// True when `id` is in.
    pub fn contains(&self, id: &str) -> bool {
        self.items.contains_key(id)
    }

    /// The point and value of `id`.
    pub fn get(&self, id: &str) -> Option<&(Point, V)> {
        self.items.get(id)
    }

    /// Every id in the set.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// Ids, values and distances of everything within `radius_m` of `at`
    /// that `keep` accepts, nearest first, at most `limit`.
    pub fn within(
        &self,
        at: Point,
        radius_m: f64,
        limit: usize,
        keep: impl Fn(&V) -> bool,
    ) -> Vec<(&str, &V, Point, f64)> {
        let dlat = (radius_m / EARTH_RADIUS_M).to_degrees();
        let cos = at.lat.to_radians().cos();
        // Near the poles or across the antimeridian the box spans every longitude.
        let dlon = if cos < 1e-6 { 360.0 } else { dlat / cos };
        let (lo_lon, hi_lon) = if at.lon - dlon < -180.0 || at.lon + dlon > 180.0 {
            (-180.0, 180.0)
        } else {
            (at.lon - dlon, at.lon + dlon)
        };
        let bbox = AABB::from_corners([lo_lon, at.lat - dlat], [hi_lon, at.lat + dlat]);
        let mut found: Vec<_> = self
            .tree
            .locate_in_envelope(&bbox)
            .filter_map(|item| {
                let (p, v) = self.items.get(&item.data)?;
                let d = distance_m(at, *p);
                (d <= radius_m && keep(v)).then_some((item.data.as_str(), v, *p, d))
            })
            .collect();
        found.sort_by(|a, b| a.3.total_cmp(&b.3));
        found.truncate(limit);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    #[test]
    fn distances_match_known_figures() {
        // One degree of latitude is ~111.2 km on this sphere.
        let d = distance_m(p(23.0, 113.0), p(24.0, 113.0));
        assert!((d - 111_226.0).abs() < 50.0, "{d}");
        assert_eq!(distance_m(p(1.0, 2.0), p(1.0, 2.0)), 0.0);
    }

    #[test]
    fn within_filters_by_distance_and_sorts_nearest_first() {
        let mut s = GeoSet::default();
        let c = p(23.1291, 113.2644);
        s.insert("far", p(23.1291, 113.2644 + 0.06), 1); // ~6.1 km east
        s.insert("near", p(23.1291 + 0.01, 113.2644), 2); // ~1.1 km north
        s.insert("mid", p(23.1291 - 0.03, 113.2644), 3); // ~3.3 km south
        let got: Vec<&str> = s
            .within(c, 5000.0, 10, |_| true)
            .iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(got, ["near", "mid"]);
        let odd: Vec<&str> = s
            .within(c, 5000.0, 10, |v| v % 2 == 1)
            .iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(odd, ["mid"]);
        assert_eq!(s.within(c, 10_000.0, 1, |_| true).len(), 1);
        s.insert("near", p(50.0, 10.0), 2); // moved away
        assert_eq!(s.within(c, 5000.0, 10, |_| true).len(), 1);
        assert!(s.remove("mid").is_some());
        assert!(s.within(c, 5000.0, 10, |_| true).is_empty());
        assert!(s.remove("mid").is_none());
    }

    #[test]
    fn the_antimeridian_does_not_hide_neighbours() {
        let mut s = GeoSet::default();
        s.insert("east", p(0.0, 179.99), ());
        let found = s.within(p(0.0, -179.99), 5000.0, 10, |_| true);
        assert_eq!(found.len(), 1, "2.2 km apart across ±180");
    }
}
