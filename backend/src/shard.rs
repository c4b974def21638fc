//! Which of a fixed number of parts an id belongs to: the trip feed's
//! partitions, and the shards of the cross-order Redis structures (dispatch
//! pool, rider index, delay queue) that a Redis Cluster spreads over its nodes.

/// The partition of `id` among `n`: FNV-1a of its bytes, so every process
/// (and every language) computes the same one.
pub fn partition(id: &str, n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % n.max(1) as u64) as usize
}

/// Shards of each cross-order Redis structure: each is its own hash tag, so
/// on a cluster they land on different slots and, mostly, different nodes;
/// a query over all of them is one pipeline per slot, sent together.
pub const REDIS_SHARDS: usize = 8;
