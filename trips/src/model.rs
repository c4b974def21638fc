//! What ETA learns from finished trips: the typical speed of an area at an
//! hour of the day, and how much longer than the straight line trips are.
//!
//! Figures start from sane defaults, move towards what finished trips show
//! (weighted by how much riding each trip saw there, with the weight capped
//! so the model keeps adapting), and are stored (`trip_model`), so they
//! survive restarts and every watcher process reads what the others learned.

use std::collections::{HashMap, HashSet};
use tracker_backend::store::ModelEntry;
use tracker_domain::Point;

/// Speed of a courier in town before anything is learned, stops included, m/s (16 km/h).
pub const DEFAULT_SPEED: f64 = 4.5;
/// Ratio of the distance ridden to the straight line before anything is learned.
pub const DEFAULT_DETOUR: f64 = 1.3;
/// Size of an area, degrees (about 2 km).
const CELL_DEG: f64 = 0.02;
/// Most weight a figure keeps, so new trips still move it.
const MAX_WEIGHT: f64 = 20.0;
/// Riding time that counts as one unit of evidence for a speed, seconds.
const SECS_PER_WEIGHT: f64 = 600.0;

/// The hour of day (UTC) of a Unix-ms time.
pub fn hour_of(ts: i64) -> u32 {
    (ts.div_euclid(3_600_000).rem_euclid(24)) as u32
}

/// What a figure is about; stored as text (`speed:<lat cell>:<lon cell>:<hour>`,
/// `speed:all:<hour>`, `detour`), kept as this in memory so a lookup per fix
/// allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Area(i64, i64, u32),
    Hour(u32),
    Detour,
}

impl Key {
    fn text(self) -> String {
        match self {
            Key::Area(la, lo, h) => format!("speed:{la}:{lo}:{h}"),
            Key::Hour(h) => format!("speed:all:{h}"),
            Key::Detour => "detour".into(),
        }
    }

    fn parse(s: &str) -> Option<Key> {
        let parts: Vec<&str> = s.split(':').collect();
        match parts[..] {
            ["detour"] => Some(Key::Detour),
            ["speed", "all", h] => Some(Key::Hour(h.parse().ok()?)),
            ["speed", la, lo, h] => Some(Key::Area(
                la.parse().ok()?,
                lo.parse().ok()?,
                h.parse().ok()?,
            )),
            _ => None,
        }
    }
}

fn cell_key(p: Point, hour: u32) -> Key {
    let (la, lo, _) = Model::area_of(p, 0);
    Key::Area(la, lo, hour)
}

/// Riding seen in one area and hour during a trip.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Riding {
    /// Metres ridden.
    pub metres: f64,
    /// Seconds it took, stops included.
    pub secs: f64,
}

/// What a finished trip teaches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lesson {
    /// Riding by area key (see [`Model::area_of`]).
    pub riding: HashMap<(i64, i64, u32), Riding>,
    /// Metres ridden from pick-up to drop-off, and the straight line between them.
    pub ridden_m: f64,
    /// The straight pick-up → drop-off distance.
    pub straight_m: f64,
}

/// The learned figures.
#[derive(Debug, Clone, Default)]
pub struct Model {
    figures: HashMap<Key, (f64, f64)>,
    dirty: HashSet<Key>,
}

impl Model {
    /// The model of `entries` as the store holds them.
    pub fn from_entries(entries: Vec<ModelEntry>) -> Self {
        let figures = entries
            .into_iter()
            .filter(|e| e.value.is_finite() && e.value > 0.0 && e.weight.is_finite())
            .filter_map(|e| Some((Key::parse(&e.key)?, (e.value, e.weight))))
            .collect();
        Model {
            figures,
            dirty: HashSet::new(),
        }
    }

    /// Takes what another process stored, keeping figures changed here and not yet saved.
    pub fn merge_stored(&mut self, entries: Vec<ModelEntry>) {
        for e in entries {
            let Some(key) = Key::parse(&e.key) else {
                continue;
            };
            if !self.dirty.contains(&key) && e.value.is_finite() && e.value > 0.0 {
                self.figures.insert(key, (e.value, e.weight));
            }
        }
    }

    /// The area and hour a fix falls in.
    pub fn area_of(p: Point, ts: i64) -> (i64, i64, u32) {
        (
            (p.lat / CELL_DEG).floor() as i64,
            (p.lon / CELL_DEG).floor() as i64,
            hour_of(ts),
        )
    }

    /// Typical speed at `p` at the hour of `ts`: the area's, else the hour's
    /// over all areas, else the default.
    pub fn typical_speed(&self, p: Point, ts: i64) -> f64 {
        self.typical(p, ts).0
    }

    /// [`Model::typical_speed`] and how far to trust it, 0 (a default) to 1
    /// (an area and hour seen on many trips).
    pub fn typical(&self, p: Point, ts: i64) -> (f64, f64) {
        let hour = hour_of(ts);
        if let Some((v, w)) = self.figures.get(&cell_key(p, hour)) {
            return (*v, (w / MAX_WEIGHT).min(1.0));
        }
        if let Some((v, w)) = self.figures.get(&Key::Hour(hour)) {
            return (*v, 0.5 * (w / MAX_WEIGHT).min(1.0));
        }
        (DEFAULT_SPEED, 0.0)
    }

    /// How much longer than the straight line trips are.
    pub fn detour(&self) -> f64 {
        self.figures
            .get(&Key::Detour)
            .map_or(DEFAULT_DETOUR, |(v, _)| *v)
    }

    fn learn(&mut self, key: Key, sample: f64, weight: f64, default: f64) {
        let (v, w) = self.figures.get(&key).copied().unwrap_or((default, 1.0));
        let next = (v * w + sample * weight) / (w + weight);
        self.figures
            .insert(key, (next, (w + weight).min(MAX_WEIGHT)));
        self.dirty.insert(key);
    }

    /// Moves the figures towards what one finished trip showed.
    pub fn learn_trip(&mut self, lesson: &Lesson) {
        let mut by_hour: HashMap<u32, Riding> = HashMap::new();
        for (&(la, lo, hour), r) in &lesson.riding {
            if r.secs < 30.0 || r.metres <= 0.0 {
                continue;
            }
            let speed = (r.metres / r.secs).clamp(0.3, 40.0);
            let key = Key::Area(la, lo, hour);
            self.learn(key, speed, r.secs / SECS_PER_WEIGHT, DEFAULT_SPEED);
            let h = by_hour.entry(hour).or_default();
            h.metres += r.metres;
            h.secs += r.secs;
        }
        for (hour, r) in by_hour {
            let speed = (r.metres / r.secs).clamp(0.3, 40.0);
            self.learn(
                Key::Hour(hour),
                speed,
                r.secs / SECS_PER_WEIGHT,
                DEFAULT_SPEED,
            );
        }
        if lesson.straight_m >= 300.0 && lesson.ridden_m > 0.0 {
            let detour = (lesson.ridden_m / lesson.straight_m).clamp(1.0, 3.0);
            self.learn(Key::Detour, detour, 1.0, DEFAULT_DETOUR);
        }
    }

    /// The figures changed since the last call, to store.
    pub fn take_changed(&mut self, now: i64) -> Vec<ModelEntry> {
        self.dirty
            .drain()
            .filter_map(|k| {
                let (value, weight) = *self.figures.get(&k)?;
                Some(ModelEntry {
                    key: k.text(),
                    value,
                    weight,
                    updated_at: now,
                })
            })
            .collect()
    }

    /// Puts figures back as changed after a save failed.
    pub fn mark_changed(&mut self, keys: impl IntoIterator<Item = String>) {
        self.dirty
            .extend(keys.into_iter().filter_map(|k| Key::parse(&k)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_moves_the_figures_and_they_round_trip_through_the_store() {
        let mut m = Model::default();
        let p = Point {
            lat: 23.1,
            lon: 113.3,
        };
        let ts = 10 * 3_600_000;
        assert_eq!(m.typical_speed(p, ts), DEFAULT_SPEED);
        let mut lesson = Lesson {
            ridden_m: 3000.0,
            straight_m: 2000.0,
            ..Lesson::default()
        };
        lesson.riding.insert(
            Model::area_of(p, ts),
            Riding {
                metres: 3000.0,
                secs: 1200.0,
            },
        );
        for _ in 0..30 {
            m.learn_trip(&lesson);
        }
        assert!((m.typical_speed(p, ts) - 2.5).abs() < 0.1);
        assert!((m.detour() - 1.5).abs() < 0.05);
        let other_area = Point {
            lat: 30.0,
            lon: 100.0,
        };
        assert!(
            (m.typical_speed(other_area, ts) - 2.5).abs() < 0.1,
            "the hour's figure stands in for an area never seen"
        );
        assert_eq!(m.typical_speed(p, ts + 3 * 3_600_000), DEFAULT_SPEED);
        let stored = m.take_changed(1);
        assert_eq!(stored.len(), 3);
        let back = Model::from_entries(stored);
        assert_eq!(back.typical_speed(p, ts), m.typical_speed(p, ts));
        assert!(m.take_changed(2).is_empty());
    }
}
