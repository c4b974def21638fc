//! The delay queue on a Redis sorted set (`{p}:timers`, score = due time),
//! shared by every process. Claiming reads and removes the due members in one
//! Lua script, so each timer goes to exactly one claimer.

use super::{DelayQueue, Timer, TimerError};
use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

/// The Redis [`DelayQueue`].
pub struct RedisDelayQueue {
    conn: ConnectionManager,
    key: String,
    claim: Script,
}

fn unavailable(e: impl Into<crate::BoxError>) -> TimerError {
    TimerError::Unavailable(e.into())
}

impl RedisDelayQueue {
    /// Connects to `url`; the queue's key goes under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, TimerError> {
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        Ok(RedisDelayQueue {
            conn,
            key: format!("{prefix}:timers"),
            claim: Script::new(
                r"
                local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
                for i = 1, #due, 2 do redis.call('ZREM', KEYS[1], due[i]) end
                return due",
            ),
        })
    }
}

#[async_trait]
impl DelayQueue for RedisDelayQueue {
    async fn schedule(&self, timer: &Timer) -> Result<(), TimerError> {
        let mut c = self.conn.clone();
        redis::cmd("ZADD")
            .arg(&self.key)
            .arg(timer.due)
            .arg(timer.member())
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn claim_due(&self, now: i64, limit: usize) -> Result<Vec<Timer>, TimerError> {
        let mut c = self.conn.clone();
        let due: Vec<(String, f64)> = self
            .claim
            .key(&self.key)
            .arg(now)
            .arg(limit.max(1))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(due.len());
        for (member, score) in due {
            match Timer::from_member(&member, score as i64) {
                Some(t) => out.push(t),
                None => {
                    tracing::warn!(member, "dropped a malformed timer");
                    metrics::counter!("tracker_timers_malformed_total").increment(1);
                }
            }
        }
        Ok(out)
    }

    async fn waiting(&self) -> Result<usize, TimerError> {
        let mut c = self.conn.clone();
        redis::cmd("ZCARD")
            .arg(&self.key)
            .query_async(&mut c)
            .await
            .map_err(unavailable)
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
}
