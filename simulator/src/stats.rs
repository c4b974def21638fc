//! What a run measured: live counters for the progress bar, and per-watcher
//! tallies (delivery delay in an HDR histogram, delivered / lost / duplicated
//! by seq) merged into the report at the end.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};

/// Now, Unix ms (fix times and delays are measured in it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters shared by every task of a run, read by the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    /// Fixes published over MQTT (batched ones included).
    pub fixes: AtomicU64,
    /// Fixes that could not be published (broker gone).
    pub publish_errors: AtomicU64,
    /// Orders created.
    pub orders_started: AtomicU64,
    /// Orders carried to `delivered`.
    pub orders_delivered: AtomicU64,
    /// Orders API calls that failed.
    pub api_errors: AtomicU64,
    /// Events received by watchers (each counted once per watcher).
    pub delivered: AtomicU64,
    /// Events watchers never saw (seq gaps).
    pub lost: AtomicU64,
    /// Events a watcher saw twice.
    pub duplicated: AtomicU64,
    /// Watcher connections made again after a drop.
    pub reconnects: AtomicU64,
    /// Watchers connected now.
    pub watching: AtomicU64,
    /// Delays count only for fixes taken at or after this time, Unix ms (0:
    /// all), so a load run can leave out its start-up.
    pub measure_from_ms: std::sync::atomic::AtomicI64,
}

impl Live {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// A new delay histogram: 1 ms to 10 min, 3 significant digits.
pub fn delay_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000, 3).expect("valid histogram bounds")
}

/// Most gaps a tally keeps by seq (the count goes on past them).
pub const GAPS_KEPT: usize = 16;

/// Events a watcher never saw, by seq: `from..=to`, found at `at_ms` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// The first seq missed.
    pub from: u64,
    /// The last seq missed.
    pub to: u64,
    /// When the watcher found out (the frame after the gap arrived), Unix ms.
    pub at_ms: i64,
    /// The hub said so: a snapshot (`recovered:false`) past them replaced
    /// the state; false for events silently skipped over.
    pub announced: bool,
}

/// One watcher's tally of one order.
#[derive(Debug)]
pub struct Tally {
    /// Fix time → receipt, ms, for live fixes.
    pub delay_ms: Histogram<u64>,
    /// Events seen once, in order.
    pub delivered: u64,
    /// Events skipped over (a seq gap, or a fresh snapshot past them).
    pub lost: u64,
    /// Events seen again.
    pub duplicated: u64,
    /// Reconnects after a drop.
    pub reconnects: u64,
    /// Reconnects whose replay reached back (`recovered:true`).
    pub resumed: u64,
    /// The seq of the first snapshot: where this watcher's count starts.
    pub first: Option<u64>,
    /// The last seq seen, once the first snapshot came.
    pub last: Option<u64>,
    /// The epoch of that seq (from snapshots and long-poll answers), sent on resume
    /// so that a hub whose log lost its history answers `recovered:false`.
    pub epoch: Option<String>,
    /// Drop → first answer of the connection that followed, ms, per reconnect.
    pub recover_ms: Histogram<u64>,
    /// When the connection dropped, while no new one has answered yet.
    pub dropped_at: Option<std::time::Instant>,
    /// The first [`GAPS_KEPT`] gaps, for telling which fault lost them.
    pub gaps: Vec<Gap>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            delay_ms: delay_histogram(),
            delivered: 0,
            lost: 0,
            duplicated: 0,
            reconnects: 0,
            resumed: 0,
            first: None,
            last: None,
            epoch: None,
            recover_ms: delay_histogram(),
            dropped_at: None,
            gaps: Vec::new(),
        }
    }
}

impl Tally {
    /// The connection dropped (the first drop of a run of failed attempts
    /// counts: recovery is measured from it).
    pub fn dropped(&mut self) {
        self.dropped_at.get_or_insert_with(std::time::Instant::now);
    }

    /// A connection answered: after a drop, records how long recovery took.
    pub fn answered(&mut self) {
        if let Some(at) = self.dropped_at.take() {
            let _ = self
                .recover_ms
                .record((at.elapsed().as_millis() as u64).max(1));
        }
    }

    fn missed(&mut self, live: &Live, from: u64, to: u64, announced: bool) {
        self.lost += to + 1 - from;
        Live::add(&live.lost, to + 1 - from);
        if self.gaps.len() < GAPS_KEPT {
            self.gaps.push(Gap {
                from,
                to,
                at_ms: now_ms(),
                announced,
            });
        }
    }

    /// Takes one frame's `t` and `seq` and updates the live counters too; true
    /// when it is an event seen for the first time, in order.
    pub fn frame(
        &mut self,
        live: &Live,
        kind: &str,
        seq: Option<u64>,
        recovered: Option<bool>,
    ) -> bool {
        self.answered();
        let Some(seq) = seq else { return false };
        if kind == "snapshot" {
            match self.last {
                None => {
                    self.first = Some(seq);
                    self.last = Some(seq);
                }
                Some(last) if seq > last => {
                    // A fresh snapshot past what we hold: the events between are lost to us.
                    self.missed(live, last + 1, seq, true);
                    self.last = Some(seq);
                }
                Some(_) => {}
            }
            if recovered == Some(true) {
                self.resumed += 1;
            }
            return false;
        }
        let Some(last) = self.last else {
            return false;
        };
        if seq <= last {
            self.duplicated += 1;
            Live::add(&live.duplicated, 1);
            return false;
        }
        if seq > last + 1 {
            self.missed(live, last + 1, seq - 1, false);
        }
        self.delivered += 1;
        Live::add(&live.delivered, 1);
        self.last = Some(seq);
        true
    }

    /// Records one live fix's delay.
    pub fn delay(&mut self, ms: i64) {
        let _ = self.delay_ms.record(ms.max(1) as u64);
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Tally) {
        let _ = self.delay_ms.add(&other.delay_ms);
        let _ = self.recover_ms.add(&other.recover_ms);
        self.delivered += other.delivered;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reconnects += other.reconnects;
        self.resumed += other.resumed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_lost_repeats_are_duplicates() {
        let live = Live::default();
        let mut t = Tally::default();
        t.frame(&live, "pos", Some(3), None); // before the snapshot: ignored
        t.frame(&live, "snapshot", Some(5), None);
        for seq in [6, 7, 7, 10, 11] {
            t.frame(&live, "pos", Some(seq), None);
        }
        assert_eq!((t.delivered, t.lost, t.duplicated), (4, 2, 1));
        t.frame(&live, "snapshot", Some(15), Some(false));
        assert_eq!(t.lost, 6, "a fresh snapshot past 11 loses 12..=15");
        t.frame(&live, "snapshot", Some(15), Some(true));
        assert_eq!(t.resumed, 1);
        assert_eq!(Live::get(&live.delivered), 4);
        let by_seq: Vec<(u64, u64, bool)> =
            t.gaps.iter().map(|g| (g.from, g.to, g.announced)).collect();
        assert_eq!(
            by_seq,
            [(8, 9, false), (12, 15, true)],
            "each gap by seq, and whether a snapshot announced it"
        );
    }

    #[test]
    fn recovery_runs_from_the_first_drop_to_the_next_answer() {
        let live = Live::default();
        let mut t = Tally::default();
        t.frame(&live, "snapshot", Some(1), None);
        assert_eq!(t.recover_ms.len(), 0, "no drop yet");
        t.dropped();
        std::thread::sleep(std::time::Duration::from_millis(30));
        t.dropped(); // a failed attempt: still the first drop's outage
        t.frame(&live, "snapshot", Some(1), Some(true));
        assert_eq!(t.recover_ms.len(), 1);
        assert!(t.recover_ms.max() >= 30, "{}", t.recover_ms.max());
        t.frame(&live, "pos", Some(2), None);
        assert_eq!(t.recover_ms.len(), 1, "counted once per drop");
    }
}
