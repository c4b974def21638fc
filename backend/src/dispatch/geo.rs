//! Distances on the globe and the in-process spatial set behind the embedded
//! dispatch index: points bucketed in a grid of 0.01° cells (about 1.1 km),
//! queried cell by cell over the bounding box and then filtered by
//! great-circle distance.
//!
//! A grid rather than a tree because riders move all the time: a move within
//! its cell only rewrites the point, and a move to another cell is two hash
//! set operations, where an R-tree removes and reinserts (measured: an R*-tree
//! cost ~2 % of the hub's CPU in the fan-out benchmark, every rider writing
//! every 2 s; see docs/benchmarks.md).

use std::collections::{HashMap, HashSet};
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

/// Size of a grid cell, degrees.
const CELL_DEG: f64 = 0.01;
/// Longitude cells around the globe.
const LON_CELLS: i64 = (360.0 / CELL_DEG) as i64;

type Cell = (i64, i64);

fn lat_cell(lat: f64) -> i64 {
    (lat / CELL_DEG).floor() as i64
}

/// The longitude cell of `lon`, wrapped into `[0, LON_CELLS)`.
fn lon_cell(lon: f64) -> i64 {
    ((lon / CELL_DEG).floor() as i64).rem_euclid(LON_CELLS)
}

fn cell_of(p: Point) -> Cell {
    (lat_cell(p.lat), lon_cell(p.lon))
}

/// Named points with a value each, found by distance from a point.
#[derive(Debug)]
pub struct GeoSet<V> {
    cells: HashMap<Cell, HashSet<String>>,
    items: HashMap<String, (Point, V)>,
}

impl<V> Default for GeoSet<V> {
    fn default() -> Self {
        GeoSet {
            cells: HashMap::new(),
            items: HashMap::new(),
        }
    }
}

impl<V> GeoSet<V> {
    /// Puts `id` at `at` with `value`, replacing where it was.
    pub fn insert(&mut self, id: &str, at: Point, value: V) {
        let cell = cell_of(at);
        if let Some((old, v)) = self.items.get_mut(id) {
            let was = cell_of(*old);
            (*old, *v) = (at, value);
            if was != cell {
                self.leave(was, id);
                self.cells.entry(cell).or_default().insert(id.to_owned());
            }
            return;
        }
        self.cells.entry(cell).or_default().insert(id.to_owned());
        self.items.insert(id.to_owned(), (at, value));
    }

    fn leave(&mut self, cell: Cell, id: &str) {
        if let Some(set) = self.cells.get_mut(&cell) {
            set.remove(id);
            if set.is_empty() {
                self.cells.remove(&cell);
            }
        }
    }

    /// Takes `id` out; its point and value, when it was in.
    pub fn remove(&mut self, id: &str) -> Option<(Point, V)> {
        let (at, v) = self.items.remove(id)?;
        self.leave(cell_of(at), id);
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
        // Near the poles the box spans every longitude.
        let dlon = if cos < 1e-6 {
            360.0
        } else {
            (dlat / cos).min(360.0)
        };
        let lats = lat_cell((at.lat - dlat).max(-90.0))..=lat_cell((at.lat + dlat).min(90.0));
        let lon_lo = ((at.lon - dlon) / CELL_DEG).floor() as i64;
        let lon_hi = ((at.lon + dlon) / CELL_DEG).floor() as i64;
        let lon_span = (lon_hi - lon_lo + 1).min(LON_CELLS);
        let lat_span = lats.end() - lats.start() + 1;
        let found = |cell: &Cell| self.cells.get(cell).into_iter().flatten();
        // Walk the box's cells, or the occupied cells when there are fewer.
        let candidates: Vec<&String> = if lat_span.saturating_mul(lon_span)
            <= self.cells.len() as i64
        {
            lats.flat_map(|la| {
                (0..lon_span).flat_map(move |i| found(&(la, (lon_lo + i).rem_euclid(LON_CELLS))))
            })
            .collect()
        } else {
            self.cells.values().flatten().collect()
        };
        let mut out: Vec<_> = candidates
            .into_iter()
            .filter_map(|id| {
                let (p, v) = self.items.get(id)?;
                let d = distance_m(at, *p);
                (d <= radius_m && keep(v)).then_some((id.as_str(), v, *p, d))
            })
            .collect();
        out.sort_by(|a, b| a.3.total_cmp(&b.3));
        out.truncate(limit);
        out
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
    fn moves_within_and_across_cells_keep_one_entry() {
        let mut s = GeoSet::default();
        let c = p(23.1291, 113.2644);
        s.insert("r", c, 1);
        s.insert("r", p(23.1292, 113.2645), 2); // same cell
        s.insert("r", p(23.2, 113.2644), 3); // ~7.9 km north, another cell
        assert!(s.within(c, 5000.0, 10, |_| true).is_empty());
        let far = s.within(c, 10_000.0, 10, |_| true);
        assert_eq!((far.len(), *far[0].1), (1, 3));
        assert_eq!(s.cells.values().map(HashSet::len).sum::<usize>(), 1);
        // A wide query over few occupied cells scans those cells instead.
        assert_eq!(s.within(p(0.0, 0.0), 20_000_000.0, 10, |_| true).len(), 1);
    }

    #[test]
    fn the_antimeridian_does_not_hide_neighbours() {
        let mut s = GeoSet::default();
        s.insert("east", p(0.0, 179.99), ());
        let found = s.within(p(0.0, -179.99), 5000.0, 10, |_| true);
        assert_eq!(found.len(), 1, "2.2 km apart across ±180");
    }
}
