//! The delay queue on Redis sorted sets (score = due time), shared by every
//! process, split into [`REDIS_SHARDS`] shards by order id
//! (`{p}:{timers:k}`), each its own hash tag so a Redis Cluster spreads them
//! over its nodes. Claiming reads and removes the due members of a shard in
//! one Lua script, so each timer goes to exactly one claimer.
//!
//! A claim first looks at the earliest due members of every shard (one
//! pipeline per slot, sent together) to see how many each may give, so a
//! claim takes the earliest `limit` over all shards, as one set would. The
//! single set of earlier versions (`{p}:timers`) is drained like a shard and
//! never written, so timers scheduled before an upgrade still fire.

use super::{DelayQueue, Timer, TimerError};
use crate::redis_conn::{RedisConn, eval, parse};
use crate::shard::{REDIS_SHARDS, partition};
use async_trait::async_trait;
use redis::{Cmd, Script};

/// The Redis [`DelayQueue`].
pub struct RedisDelayQueue {
    conn: RedisConn,
    /// Every shard's key, then the legacy single set's.
    keys: Vec<String>,
    claim: Script,
}

fn unavailable(e: impl Into<crate::BoxError>) -> TimerError {
    TimerError::Unavailable(e.into())
}

impl RedisDelayQueue {
    /// Connects to `url`; the queue's keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, TimerError> {
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        let mut keys: Vec<String> = (0..REDIS_SHARDS)
            .map(|k| format!("{prefix}:{{timers:{k}}}"))
            .collect();
        keys.push(format!("{prefix}:timers"));
        Ok(RedisDelayQueue {
            conn,
            keys,
            claim: Script::new(
                r"
                local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
                for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
                return due",
            ),
        })
    }

    /// One command for each key at `which`, sent together; each answer as `T`.
    async fn each<T: redis::FromRedisValue>(
        &self,
        which: &[usize],
        cmd: impl Fn(&str) -> Cmd,
    ) -> Result<Vec<T>, TimerError> {
        let batch = which
            .iter()
            .map(|&i| (self.keys[i].clone(), cmd(&self.keys[i])))
            .collect();
        self.conn
            .pipelined(batch, &[&self.claim])
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|r| parse(r).map_err(unavailable))
            .collect()
    }
}

#[async_trait]
impl DelayQueue for RedisDelayQueue {
    async fn schedule(&self, timer: &Timer) -> Result<(), TimerError> {
        let mut c = self.conn.clone();
        redis::cmd("ZADD")
            .arg(&self.keys[partition(&timer.order, REDIS_SHARDS)])
            .arg(timer.due)
            .arg(timer.member())
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn claim_due(&self, now: i64, limit: usize) -> Result<Vec<Timer>, TimerError> {
        let limit = limit.max(1);
        let all: Vec<usize> = (0..self.keys.len()).collect();
        // How many of the earliest `limit` due timers each shard holds.
        let heads: Vec<Vec<(String, f64)>> = self
            .each(&all, |key| {
                let mut c = redis::cmd("ZRANGEBYSCORE");
                c.arg(key)
                    .arg("-inf")
                    .arg(now)
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit);
                c
            })
            .await?;
        let mut earliest: Vec<(f64, usize)> = heads
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.iter().map(move |(_, due)| (*due, i)))
            .collect();
        earliest.sort_by(|a, b| a.0.total_cmp(&b.0));
        earliest.truncate(limit);
        let mut take = vec![0usize; self.keys.len()];
        for (_, i) in &earliest {
            take[*i] += 1;
        }
        let which: Vec<usize> = all.into_iter().filter(|&i| take[i] > 0).collect();
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let batch = which
            .iter()
            .map(|&i| {
                let mut c = eval(&self.claim, &[&self.keys[i]]);
                c.arg(now).arg(take[i]);
                (self.keys[i].clone(), c)
            })
            .collect();
        let claimed = self
            .conn
            .pipelined(batch, &[&self.claim])
            .await
            .map_err(unavailable)?;
        // What the healthy shards gave is theirs to keep (their scripts ran
        // and removed it): a failed shard is an error only when nothing came.
        let mut out = Vec::with_capacity(limit);
        let mut failed = None;
        for r in claimed {
            let due: Vec<(String, f64)> = match parse(r) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "a delay queue shard failed its claim");
                    failed = Some(e);
                    continue;
                }
            };
            for (member, score) in due {
                match Timer::from_member(&member, score as i64) {
                    Some(t) => out.push(t),
                    None => {
                        tracing::warn!(member, "dropped a malformed timer");
                        metrics::counter!("tracker_timers_malformed_total").increment(1);
                    }
                }
            }
        }
        if let (true, Some(e)) = (out.is_empty(), failed) {
            return Err(unavailable(e));
        }
        out.sort_by_key(|t| t.due);
        Ok(out)
    }

    async fn waiting(&self) -> Result<usize, TimerError> {
        let all: Vec<usize> = (0..self.keys.len()).collect();
        let counts: Vec<usize> = self
            .each(&all, |key| {
                let mut c = redis::cmd("ZCARD");
                c.arg(key);
                c
            })
            .await?;
        Ok(counts.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn redis_queue_meets_the_contract() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let mut all = Vec::new();
        for _ in 0..super::super::contract::CLAUSES {
            let prefix = format!("test-{:x}", rand::random::<u64>());
            all.push(Arc::new(
                RedisDelayQueue::connect(&url, &prefix).await.unwrap(),
            ));
        }
        let all = std::sync::Mutex::new(all);
        super::super::contract::run(|| all.lock().unwrap().pop().expect("one per clause")).await;
    }

    #[tokio::test]
    async fn timers_of_the_single_set_before_sharding_still_fire() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let prefix = format!("test-{:x}", rand::random::<u64>());
        let q = RedisDelayQueue::connect(&url, &prefix).await.unwrap();
        let old = Timer {
            kind: super::super::TimerKind::Payment,
            order: "o-old".into(),
            status_version: 1,
            due: 50,
        };
        let mut c = q.conn.clone();
        redis::cmd("ZADD")
            .arg(format!("{prefix}:timers"))
            .arg(old.due)
            .arg(old.member())
            .query_async::<()>(&mut c)
            .await
            .unwrap();
        let new = Timer {
            order: "o-new".into(),
            due: 60,
            ..old.clone()
        };
        q.schedule(&new).await.unwrap();
        assert_eq!(q.waiting().await.unwrap(), 2);
        assert_eq!(
            q.claim_due(100, 1).await.unwrap(),
            [old],
            "the earliest first"
        );
        assert_eq!(q.claim_due(100, 10).await.unwrap(), [new]);
        assert_eq!(q.waiting().await.unwrap(), 0);
    }
}
