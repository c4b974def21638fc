//! Snowflake-style ids: generated before the row is written, unique and rising per node.
//!
//! Layout of the 63 used bits, high to low: 41 bits of milliseconds since
//! [`ID_EPOCH_MS`], 10 bits of node id, 7 bits of sequence, 5 bits of shard
//! key (derived from the customer, [`shard_of_customer`], so a lookup by
//! customer can be routed to one partition: `docs/scaling.md`).
//!
//! When the wall clock steps back, the generator keeps counting from the last
//! time it issued (borrowing from the sequence, then from the next
//! millisecond), so ids never repeat and never go down. Across restarts the
//! same holds through a high-water mark kept outside the process: the
//! generator issues no millisecond past its `ceiling` (reserved ahead in the
//! store, see `backend/src/ids.rs`), and a restarted one starts above the
//! last reservation ([`IdGenerator::raise_floor`]).

use crate::clock::Clock;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// 2025-01-01T00:00:00Z: ids count milliseconds from here, which lasts until 2094.
pub const ID_EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 7;
/// Bits of the shard key at the bottom of an id.
pub const SHARD_BITS: u32 = 5;
/// How many shards the key spreads customers over.
pub const SHARDS: u32 = 1 << SHARD_BITS;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
const LOW_BITS: u32 = SEQ_BITS + SHARD_BITS;
/// Largest node id that fits the id layout.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;

/// The shard key of a customer: FNV-1a of the id, folded to [`SHARDS`].
pub fn shard_of_customer(customer_id: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in customer_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % SHARDS
}

/// Issues ids for one node; cheap to share behind an `Arc`.
pub struct IdGenerator {
    node: AtomicU64,
    clock: Arc<dyn Clock>,
    /// (last millisecond issued, last sequence within it, ceiling: the last
    /// millisecond the generator may issue without spilling past its reservation)
    state: Mutex<State>,
}

struct State {
    ms: u64,
    seq: u64,
    ceiling: u64,
}

impl IdGenerator {
    /// A generator for `node` (0..=1023) reading time from `clock`, with no
    /// reservation: it issues at any time (tests, and a process that keeps
    /// no high-water mark).
    pub fn new(node: u16, clock: Arc<dyn Clock>) -> Self {
        assert!(
            node <= MAX_NODE,
            "node id {node} does not fit in {NODE_BITS} bits"
        );
        Self {
            node: AtomicU64::new(u64::from(node)),
            clock,
            state: Mutex::new(State {
                ms: 0,
                seq: 0,
                ceiling: u64::MAX,
            }),
        }
    }

    /// The node id it issues under.
    pub fn node(&self) -> u16 {
        self.node.load(Ordering::Relaxed) as u16
    }

    /// Moves the generator to another node (its lease on the old one ended).
    pub fn set_node(&self, node: u16) {
        assert!(node <= MAX_NODE);
        self.node.store(u64::from(node), Ordering::Relaxed);
    }

    /// Every id from now on is above every id with a time up to `mark`
    /// (Unix ms): the high-water mark a restarted process reads back.
    pub fn raise_floor(&self, mark: i64) {
        let mark = (mark - ID_EPOCH_MS).max(0) as u64;
        let mut st = self.state.lock();
        if mark >= st.ms {
            st.ms = mark;
            st.seq = MAX_SEQ;
        }
    }

    /// The latest time (Unix ms) it may issue at, as reserved in the store.
    pub fn set_ceiling(&self, until: i64) {
        self.state.lock().ceiling = (until - ID_EPOCH_MS).max(0) as u64;
    }

    /// The time (Unix ms) of the last id issued, or of the floor.
    pub fn last_ms(&self) -> i64 {
        self.state.lock().ms as i64 + ID_EPOCH_MS
    }

    /// The next id, with shard key 0.
    pub fn next_id(&self) -> u64 {
        self.next_id_in(0)
    }

    /// The next id carrying `shard` (below [`SHARDS`]): greater than every id
    /// this generator issued before.
    pub fn next_id_in(&self, shard: u32) -> u64 {
        let now = (self.clock.now_ms() - ID_EPOCH_MS).max(0) as u64;
        let mut st = self.state.lock();
        // Never past the reservation while the sequence lasts: a restart
        // starts above the reservation, so it stays above these ids.
        let now = now.min(st.ceiling.max(st.ms));
        let (ms, seq) = if now > st.ms {
            (now, 0)
        } else if st.seq < MAX_SEQ {
            // Same millisecond, or the clock stepped back: keep counting where we were.
            (st.ms, st.seq + 1)
        } else {
            (st.ms + 1, 0)
        };
        if ms > st.ceiling {
            metrics_spill();
        }
        st.ms = ms;
        st.seq = seq;
        let node = self.node.load(Ordering::Relaxed);
        (ms << (NODE_BITS + LOW_BITS))
            | (node << LOW_BITS)
            | (seq << SHARD_BITS)
            | u64::from(shard % SHARDS)
    }
}

/// Counted where the process records metrics: an id issued past the
/// reservation (the store could not be reached to extend it).
fn metrics_spill() {
    SPILLED.fetch_add(1, Ordering::Relaxed);
}

static SPILLED: AtomicU64 = AtomicU64::new(0);

/// Ids issued past their generator's reservation since the process started.
pub fn spilled() -> u64 {
    SPILLED.load(Ordering::Relaxed)
}

/// The node embedded in an id made by [`IdGenerator`].
pub fn node_of(id: u64) -> u16 {
    ((id >> LOW_BITS) & u64::from(MAX_NODE)) as u16
}

/// The shard key embedded in an id made by [`IdGenerator`].
pub fn shard_of(id: u64) -> u32 {
    (id & u64::from(SHARDS - 1)) as u32
}

/// The time (Unix ms) embedded in an id made by [`IdGenerator`].
pub fn time_of(id: u64) -> i64 {
    (id >> (NODE_BITS + LOW_BITS)) as i64 + ID_EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn ids_rise_and_stay_unique_when_the_clock_steps_back() {
        let clock = ManualClock::new(ID_EPOCH_MS + 10_000);
        let ids = IdGenerator::new(7, Arc::new(clock.clone()));
        let mut prev = 0;
        let mut all = std::collections::HashSet::new();
        for step in 0..20_000 {
            // Every 1000 ids the clock jumps back five seconds, then creeps forward.
            if step % 1000 == 0 {
                clock.set(ID_EPOCH_MS + 10_000 - 5_000 + step / 10);
            }
            let id = ids.next_id_in((step % 40) as u32);
            assert!(id > prev, "id {id} not above {prev} at step {step}");
            assert!(all.insert(id));
            assert_eq!(node_of(id), 7);
            assert_eq!(shard_of(id), (step % 40) as u32 % SHARDS);
            prev = id;
        }
    }

    #[test]
    fn sequence_overflow_moves_to_the_next_millisecond() {
        let clock = ManualClock::new(ID_EPOCH_MS + 1);
        let ids = IdGenerator::new(1, Arc::new(clock));
        let first = ids.next_id();
        let mut last = first;
        for _ in 0..(MAX_SEQ + 10) {
            let id = ids.next_id();
            assert!(id > last);
            last = id;
        }
        assert!(time_of(last) > time_of(first));
    }

    #[test]
    fn a_floor_and_a_ceiling_bound_the_time_issued() {
        let t = ID_EPOCH_MS + 1_000_000;
        let clock = ManualClock::new(t);
        let before = IdGenerator::new(2, Arc::new(clock.clone()));
        before.set_ceiling(t + 50);
        clock.set(t + 10_000);
        let early = before.next_id();
        assert_eq!(time_of(early), t + 50, "held at the reservation");
        // A restart with the clock an hour back, from the mark the first one reserved.
        clock.set(t - 3_600_000);
        let after = IdGenerator::new(2, Arc::new(clock.clone()));
        after.raise_floor(t + 50);
        let id = after.next_id();
        assert!(id > early, "{} after {}", time_of(id), time_of(early));
    }

    #[test]
    fn the_shard_key_spreads_customers_and_is_stable() {
        assert_eq!(shard_of_customer("c1"), shard_of_customer("c1"));
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| shard_of_customer(&format!("c{i}")))
            .collect();
        assert_eq!(used.len(), SHARDS as usize);
    }
}
