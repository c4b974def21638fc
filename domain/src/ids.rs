//! Snowflake-style ids: generated before the row is written, unique and rising per node.
//!
//! Layout of the 63 used bits: 41 bits of milliseconds since [`ID_EPOCH_MS`],
//! 10 bits of node id (the shard key embedded in the id), 12 bits of sequence.
//! When the wall clock steps back, the generator keeps counting from the last
//! time it issued (borrowing from the sequence, then from the next
//! millisecond), so ids never repeat and never go down.

use crate::clock::Clock;
use parking_lot::Mutex;
use std::sync::Arc;

/// 2025-01-01T00:00:00Z: ids count milliseconds from here, which lasts until 2094.
pub const ID_EPOCH_MS: i64 = 1_735_689_600_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
/// Largest node id that fits the id layout.
pub const MAX_NODE: u16 = (1 << NODE_BITS) - 1;

/// Issues ids for one node; cheap to share behind an `Arc`.
pub struct IdGenerator {
    node: u64,
    clock: Arc<dyn Clock>,
    /// (last millisecond issued, last sequence within it)
    state: Mutex<(u64, u64)>,
}

impl IdGenerator {
    /// A generator for `node` (0..=1023) reading time from `clock`.
    pub fn new(node: u16, clock: Arc<dyn Clock>) -> Self {
        assert!(
            node <= MAX_NODE,
            "node id {node} does not fit in {NODE_BITS} bits"
        );
        Self {
            node: u64::from(node),
            clock,
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id: greater than every id this generator issued before.
    pub fn next_id(&self) -> u64 {
        let now = (self.clock.now_ms() - ID_EPOCH_MS).max(0) as u64;
        let mut st = self.state.lock();
        let (last_ms, last_seq) = *st;
        let (ms, seq) = if now > last_ms {
            (now, 0)
        } else if last_seq < MAX_SEQ {
            // Same millisecond, or the clock stepped back: keep counting where we were.
            (last_ms, last_seq + 1)
        } else {
            (last_ms + 1, 0)
        };
        *st = (ms, seq);
        (ms << (NODE_BITS + SEQ_BITS)) | (self.node << SEQ_BITS) | seq
    }
}

/// The node (shard key) embedded in an id made by [`IdGenerator`].
pub fn node_of(id: u64) -> u16 {
    ((id >> SEQ_BITS) & u64::from(MAX_NODE)) as u16
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
            let id = ids.next_id();
            assert!(id > prev, "id {id} not above {prev} at step {step}");
            assert!(all.insert(id));
            assert_eq!(node_of(id), 7);
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
        assert!(last >> (NODE_BITS + SEQ_BITS) > first >> (NODE_BITS + SEQ_BITS));
    }
}
