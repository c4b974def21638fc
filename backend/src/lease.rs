//! Partition leases on Redis: which process follows which partition of a
//! structure that several processes work through (the trip feed, the webhook
//! queue).
//!
//! Each partition is held by the one process whose lease (`SET NX PX`,
//! renewed about once a second) names it; processes announce themselves in a
//! sorted set and each takes about its share, so the partitions of a process
//! that stops move to the others once its leases run out (at once after a
//! clean [`Leases::release`]). A structure whose work may still be under way
//! when its holder lets go (a webhook call) sets a linger: a partition given
//! back stays taken for that long, and nobody else starts on it meanwhile.

use crate::LogError;
use crate::redis_conn::RedisConn;
use parking_lot::Mutex;
use redis::{AsyncCommands, Script};
use std::collections::BTreeSet;
use std::time::Duration;
use tracker_domain::clock::now_ms;

/// How long a partition's lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);

fn unavailable(e: impl Into<crate::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

/// What one [`Leases::maintain`] call changed.
#[derive(Debug, Default)]
pub struct Changed {
    /// Partitions this process took (its work there starts now).
    pub taken: Vec<usize>,
    /// Partitions it lost or gave back.
    pub lost: Vec<usize>,
}

impl Changed {
    /// True when the set of owned partitions moved.
    pub fn any(&self) -> bool {
        !self.taken.is_empty() || !self.lost.is_empty()
    }
}

/// This process's share of `partitions` partitions named `name`.
pub struct Leases {
    ctl: RedisConn,
    prefix: String,
    name: &'static str,
    partitions: usize,
    me: String,
    owned: Mutex<BTreeSet<usize>>,
    linger: Duration,
    renew: Script,
    unlease: Script,
}

impl Leases {
    /// Leases of the partitions of `name` under `prefix`, held over `ctl`.
    pub fn new(ctl: RedisConn, prefix: &str, name: &'static str, partitions: usize) -> Self {
        Leases {
            ctl,
            prefix: prefix.to_owned(),
            name,
            partitions: partitions.max(1),
            me: format!("{name}-{:016x}", rand::random::<u64>()),
            owned: Mutex::new(BTreeSet::new()),
            linger: Duration::ZERO,
            renew: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
            ),
            unlease: Script::new(
                "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
                 if tonumber(ARGV[2]) > 0 then \
                 return redis.call('SET', KEYS[1], 'leaving', 'PX', ARGV[2]) end \
                 return redis.call('DEL', KEYS[1])",
            ),
        }
    }

    /// Partitions given back stay taken for `linger` (by nobody), so work
    /// their last holder started has ended before another starts on them.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// This process's name among the holders (a consumer name, for instance).
    pub fn me(&self) -> &str {
        &self.me
    }

    /// How many partitions there are.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// The partitions this process holds now.
    pub fn owned(&self) -> Vec<usize> {
        self.owned.lock().iter().copied().collect()
    }

    /// True while this process holds partition `k`.
    pub fn holds(&self, k: usize) -> bool {
        self.owned.lock().contains(&k)
    }

    /// True while this process holds the partition of `id`.
    pub fn owns(&self, id: &str) -> bool {
        self.holds(crate::shard::partition(id, self.partitions))
    }

    fn lease_key(&self, k: usize) -> String {
        format!("{}:{}:lease:{k}", self.prefix, self.name)
    }

    fn members_key(&self) -> String {
        format!("{}:{}:members", self.prefix, self.name)
    }

    /// Stops holding partition `k` (first: no new work starts on it from
    /// here), then lets its lease go if it is still ours: deleted, or left to
    /// linger. If that fails the lease runs out by itself.
    pub(crate) async fn give_back(&self, k: usize) -> Result<(), LogError> {
        self.owned.lock().remove(&k);
        let mut conn = self.ctl.clone();
        self.unlease
            .key(self.lease_key(k))
            .arg(&self.me)
            .arg(self.linger.as_millis() as u64)
            .invoke_async::<redis::Value>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Renews what this process holds, takes free partitions up to its share
    /// and gives back what is above it. Called about once a second.
    pub async fn maintain(&self) -> Result<Changed, LogError> {
        let mut conn = self.ctl.clone();
        let members = self.members_key();
        let now = now_ms();
        let lease_ms = LEASE.as_millis() as i64;
        let (_, _, live): ((), (), usize) = redis::pipe()
            .zadd(&members, &self.me, now)
            .zrembyscore(&members, "-inf", now - lease_ms)
            .zcard(&members)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let share = self.partitions.div_ceil(live.max(1));
        let mut changed = Changed::default();
        for k in self.owned() {
            let kept: i64 = self
                .renew
                .key(self.lease_key(k))
                .arg(&self.me)
                .arg(lease_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if kept == 0 {
                tracing::warn!(
                    partition = k,
                    what = self.name,
                    "lost the lease of a partition"
                );
                self.owned.lock().remove(&k);
                changed.lost.push(k);
            }
        }
        let owned = self.owned();
        if owned.len() < share {
            let mut free: Vec<usize> = (0..self.partitions)
                .filter(|k| !owned.contains(k))
                .collect();
            // Start at a different place in every process, so they do not race for the same ones.
            let shift = rand::random::<u64>() as usize % free.len().max(1);
            free.rotate_left(shift);
            let mut held = owned.len();
            for k in free {
                if held >= share {
                    break;
                }
                let took: redis::RedisResult<Option<String>> = redis::cmd("SET")
                    .arg(self.lease_key(k))
                    .arg(&self.me)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async(&mut conn)
                    .await;
                // What was taken before a failure is reported: its caller
                // sets those up (or gives them back) before using them.
                let took = match took {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, what = self.name, "could not take a partition");
                        break;
                    }
                };
                if took.is_some() {
                    self.owned.lock().insert(k);
                    changed.taken.push(k);
                    held += 1;
                }
            }
        } else if owned.len() > share {
            for &k in owned.iter().rev().take(owned.len() - share) {
                if let Err(e) = self.give_back(k).await {
                    tracing::warn!(error = %e, what = self.name, "a partition's lease is left to run out");
                }
                changed.lost.push(k);
            }
        }
        Ok(changed)
    }

    /// Gives back every partition at once (a clean stop) and leaves the members.
    pub async fn release(&self) {
        for k in self.owned() {
            // Stopping anyway: a lease not given back runs out by itself.
            let _ = self.give_back(k).await;
        }
        let mut conn = self.ctl.clone();
        let _: redis::RedisResult<()> = conn.zrem(self.members_key(), &self.me).await;
    }

    /// Drops every lease and the members set of `name` (tests: a process that died).
    #[cfg(test)]
    pub(crate) async fn forget_all(&self) {
        let mut conn = self.ctl.clone();
        for k in 0..self.partitions {
            let _: redis::RedisResult<()> = conn.del(self.lease_key(k)).await;
        }
        let _: redis::RedisResult<()> = conn.del(self.members_key()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn partitions_given_back_linger_before_another_takes_them() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let prefix = format!("t{:x}", rand::random::<u32>());
        let conn = || async { crate::redis_conn::connect(&url).await.unwrap() };
        let linger = Duration::from_millis(400);
        let a = Leases::new(conn().await, &prefix, "hooks", 16).with_linger(linger);
        let b = Leases::new(conn().await, &prefix, "hooks", 16);
        assert_eq!(a.maintain().await.unwrap().taken.len(), 16, "alone, all");
        b.maintain().await.unwrap();
        let given = a.maintain().await.unwrap();
        assert_eq!(
            (given.lost.len(), a.owned().len()),
            (8, 8),
            "its share is half now"
        );
        assert!(
            b.maintain().await.unwrap().taken.is_empty(),
            "given back, they stay closed for the linger"
        );
        tokio::time::sleep(linger + Duration::from_millis(100)).await;
        assert_eq!(b.maintain().await.unwrap().taken.len(), 8);
        assert!(a.owned().iter().all(|k| !b.holds(*k)));
        a.release().await;
        b.release().await;
        a.forget_all().await;
    }
}
