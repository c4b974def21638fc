//! The webhook queue on Redis: any process can continue another's work.
//!
//! Per order, `{prefix}:{<order>}:hooks` is a list of `<at_ms> <frame>`
//! texts, filled by the log's append script in the same atomic step as the
//! append (one hash tag with the order's log: one cluster slot), expiring
//! [`KEEP`] plus an hour after its last event. Per partition `k`, in the
//! slot `{hooks-k}`, the schedule: `:due` (a sorted set of orders by the
//! Redis time of their next attempt), `:gen` (each order's registration
//! count) and `:state` (`r<n>`: the head failed n times; `i`: found empty
//! once). Registering (before each append) bumps the count and makes the
//! order due now unless it is waiting out a retry; the sender's changes are
//! conditional on the count it saw, so a registration is never lost to a
//! sender that was just finishing. Partitions are held with leases
//! (`backend/src/lease.rs`), so one process sends an order's events at a
//! time; one given back stays closed for a call's timeout (a linger), so a
//! call its last holder made has ended before the next holder sends.

use super::{Due, IDLE_GRACE, KEEP, Queued, WebhookQueue};
use crate::LogError;
use crate::lease::Leases;
use crate::redis_conn::RedisConn;
use async_trait::async_trait;
use redis::Script;
use std::time::Duration;

fn unavailable(e: impl Into<crate::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

/// The key of `order`'s queue (the log's append script fills it).
pub fn queue_key(prefix: &str, order: &str) -> String {
    format!("{prefix}:{{{order}}}:hooks")
}

/// Seconds an order's queue is kept after its last event.
pub fn queue_ttl_secs() -> u64 {
    KEEP.as_secs() + 3600
}

/// The keys of partition `k`'s schedule: due, gen, state (one slot).
pub fn schedule_keys(prefix: &str, k: usize) -> [String; 3] {
    let base = format!("{prefix}:hooks:{{hooks-{k}}}");
    [
        format!("{base}:due"),
        format!("{base}:gen"),
        format!("{base}:state"),
    ]
}

const NOW: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ";

/// Registers ARGV[1] as due now (unless it is waiting out a retry), and
/// bumps its registration count. KEYS: due, gen, state.
pub fn register_script() -> Script {
    Script::new(&format!(
        "{NOW}
        redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
        local st = redis.call('HGET', KEYS[3], ARGV[1])
        if st and string.sub(st, 1, 1) == 'r' then return 0 end
        if st then redis.call('HDEL', KEYS[3], ARGV[1]) end
        local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if not s or tonumber(s) > now then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
        return 1"
    ))
}

/// The sending side of the Redis queue.
pub struct RedisWebhooks {
    conn: RedisConn,
    prefix: String,
    leases: Leases,
    /// Which partition [`WebhookQueue::due`] asks first (it turns).
    turn: std::sync::atomic::AtomicUsize,
    due: Script,
    retry: Script,
    settle: Script,
    recovered: Script,
    pop: Script,
}

impl RedisWebhooks {
    /// Connects to `url` as a new sender of the queues under `prefix`, whose
    /// calls take at most `hold`: a partition it gives back stays closed that
    /// long, so a call it had under way has ended before another process
    /// sends from it.
    pub async fn connect(url: &str, prefix: &str, hold: Duration) -> Result<Self, LogError> {
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        Ok(RedisWebhooks {
            turn: std::sync::atomic::AtomicUsize::new(0),
            leases: Leases::new(conn.clone(), prefix, "hooks", super::PARTITIONS)
                .with_linger(hold),
            conn,
            prefix: prefix.to_owned(),
            due: Script::new(&format!(
                "{NOW}
                local got = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
                local out = {{}}
                for _, o in ipairs(got) do
                  out[#out + 1] = o
                  out[#out + 1] = redis.call('HGET', KEYS[2], o) or '0'
                  out[#out + 1] = redis.call('HGET', KEYS[3], o) or ''
                end
                return out"
            )),
            retry: Script::new(&format!(
                "{NOW}
                redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
                redis.call('HSET', KEYS[3], ARGV[1], 'r' .. ARGV[3])
                return 1"
            )),
            settle: Script::new(&format!(
                "local g = redis.call('HGET', KEYS[2], ARGV[1]) or '0'
                local st = redis.call('HGET', KEYS[3], ARGV[1])
                if g ~= ARGV[2] then
                  if st then redis.call('HDEL', KEYS[3], ARGV[1]) end
                  return 0
                end
                if st == 'i' then
                  redis.call('ZREM', KEYS[1], ARGV[1])
                  redis.call('HDEL', KEYS[2], ARGV[1])
                  redis.call('HDEL', KEYS[3], ARGV[1])
                  return 2
                end
                {NOW}
                redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
                redis.call('HSET', KEYS[3], ARGV[1], 'i')
                return 1"
            )),
            recovered: Script::new(
                "local st = redis.call('HGET', KEYS[1], ARGV[1]) \
                 if st and string.sub(st, 1, 1) == 'r' then \
                 return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
            ),
            pop: Script::new(
                "if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then \
                 redis.call('LPOP', KEYS[1]) return 1 end return 0",
            ),
        })
    }

    fn keys_of(&self, order: &str) -> [String; 3] {
        schedule_keys(
            &self.prefix,
            crate::shard::partition(order, self.leases.partitions()),
        )
    }

    /// The partitions this process sends now.
    pub fn owned(&self) -> Vec<usize> {
        self.leases.owned()
    }
}

#[async_trait]
impl WebhookQueue for RedisWebhooks {
    async fn due(&self, limit: usize) -> Result<Vec<Due>, LogError> {
        let mut out = Vec::new();
        let (mut failed, mut answered) = (None, false);
        // A different partition first each time, so a backlog in one does
        // not keep the others waiting.
        let mut owned = self.leases.owned();
        let turn = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let first = turn % owned.len().max(1);
        owned.rotate_left(first);
        for k in owned {
            if out.len() >= limit {
                break;
            }
            let keys = schedule_keys(&self.prefix, k);
            let mut call = crate::redis_conn::eval(&self.due, &[&keys[0], &keys[1], &keys[2]]);
            call.arg(limit - out.len());
            // One partition's node failing (a cluster failover) holds back
            // only that partition: the others are still sent.
            let flat: Vec<String> = match self.conn.run_script(&self.due, &call).await {
                Ok(f) => {
                    answered = true;
                    f
                }
                Err(e) => {
                    tracing::warn!(error = %e, partition = k, "could not read a webhook partition's schedule");
                    failed = Some(e);
                    continue;
                }
            };
            for d in flat.chunks_exact(3) {
                let state = d[2].as_str();
                out.push(Due {
                    order: d[0].as_str().into(),
                    generation: d[1].parse().unwrap_or(0),
                    tries: state
                        .strip_prefix('r')
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    idle: state == "i",
                });
            }
        }
        match failed {
            // Every partition failed: the caller counts and retries.
            Some(e) if !answered => Err(unavailable(e)),
            Some(_) => {
                metrics::counter!("tracker_webhooks_errors_total").increment(1);
                Ok(out)
            }
            None => Ok(out),
        }
    }

    async fn head(&self, order: &str, n: usize) -> Result<Vec<Queued>, LogError> {
        let mut conn = self.conn.clone();
        let raw: Vec<String> = redis::cmd("LRANGE")
            .arg(queue_key(&self.prefix, order))
            .arg(0)
            .arg(n.max(1) as i64 - 1)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(raw.into_iter().filter_map(Queued::parse).collect())
    }

    async fn delivered(&self, order: &str, item: &Queued) -> Result<(), LogError> {
        let key = queue_key(&self.prefix, order);
        let mut call = crate::redis_conn::eval(&self.pop, &[&key]);
        call.arg(&item.raw);
        self.conn
            .run_script::<i64>(&self.pop, &call)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn retry(&self, due: &Due, delay: Duration, tries: u32) -> Result<(), LogError> {
        let keys = self.keys_of(&due.order);
        let mut call = crate::redis_conn::eval(&self.retry, &[&keys[0], &keys[1], &keys[2]]);
        call.arg(&*due.order)
            .arg(delay.as_millis() as u64)
            .arg(tries);
        self.conn
            .run_script::<i64>(&self.retry, &call)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn recovered(&self, due: &Due) -> Result<(), LogError> {
        let keys = self.keys_of(&due.order);
        let mut call = crate::redis_conn::eval(&self.recovered, &[&keys[2]]);
        call.arg(&*due.order);
        self.conn
            .run_script::<i64>(&self.recovered, &call)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn settle(&self, due: &Due) -> Result<(), LogError> {
        let keys = self.keys_of(&due.order);
        let mut call = crate::redis_conn::eval(&self.settle, &[&keys[0], &keys[1], &keys[2]]);
        call.arg(&*due.order)
            .arg(due.generation)
            .arg(IDLE_GRACE.as_millis() as u64);
        self.conn
            .run_script::<i64>(&self.settle, &call)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn owns(&self, order: &str) -> bool {
        self.leases.owns(order)
    }

    async fn maintain(&self) -> Result<bool, LogError> {
        let changed = self.leases.maintain().await?;
        if changed.any() {
            metrics::gauge!("tracker_webhooks_partitions_owned").set(self.owned().len() as f64);
        }
        Ok(changed.any())
    }

    async fn release(&self) {
        self.leases.release().await;
    }
}
