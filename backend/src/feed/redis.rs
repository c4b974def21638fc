//! The feed on Redis: one stream per partition, a consumer group, leases.
//!
//! The Redis log adds the order id of every append that changes a trip to
//! `{prefix}:feed:{feed}:<k>` (capped, approximately, at `max_len`), right
//! after the append script has answered (one more round trip; for a burst
//! of fixes one pipeline per slot); a process that dies between the
//! two loses that notice, and the order is read again with its
//! next change or the worker's periodic sweep. Each partition is followed
//! by the one process holding its lease (`SET NX PX`, renewed every second);
//! processes announce themselves in a sorted set and each takes about its
//! share. Progress is the consumer group `trips`: a process that takes a
//! partition over first claims what the last owner read and never
//! acknowledged, then reads on, so a restart resumes where the group was.

use super::{Feed, FeedBatch, LEASE};
use crate::LogError;
use crate::redis_conn::RedisConn;
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use std::collections::BTreeSet;
use std::time::Duration;
use tracker_domain::clock::now_ms;

const GROUP: &str = "trips";
/// Most items one read takes.
const BATCH: usize = 512;

fn unavailable(e: impl Into<crate::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

/// The key of partition `k`'s stream (one hash slot for all of them).
pub fn stream_key(prefix: &str, k: usize) -> String {
    format!("{prefix}:feed:{{feed}}:{k}")
}

fn lease_key(prefix: &str, k: usize) -> String {
    format!("{prefix}:trips:lease:{k}")
}

/// The consuming side of the Redis feed.
pub struct RedisFeed {
    /// For the blocking group reads only (a blocked read holds its connection).
    reads: RedisConn,
    /// Leases, acks, claims.
    ctl: RedisConn,
    prefix: String,
    partitions: usize,
    me: String,
    owned: Mutex<BTreeSet<usize>>,
    /// Partitions taken over whose unacknowledged items are still to claim.
    fresh: Mutex<BTreeSet<usize>>,
    renew: Script,
    unlease: Script,
}

impl RedisFeed {
    /// Connects to `url` as a new consumer of the `partitions` streams under `prefix`.
    pub async fn connect(url: &str, prefix: &str, partitions: usize) -> Result<Self, LogError> {
        Ok(RedisFeed {
            reads: crate::redis_conn::connect(url).await.map_err(unavailable)?,
            ctl: crate::redis_conn::connect(url).await.map_err(unavailable)?,
            prefix: prefix.to_owned(),
            partitions: partitions.max(1),
            me: format!("trips-{:016x}", rand::random::<u64>()),
            owned: Mutex::new(BTreeSet::new()),
            fresh: Mutex::new(BTreeSet::new()),
            renew: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
            ),
            unlease: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            ),
        })
    }

    /// The partitions this process follows now.
    pub fn owned(&self) -> Vec<usize> {
        self.owned.lock().iter().copied().collect()
    }

    /// Stops following partition `k` here.
    fn forget(&self, k: usize) {
        self.owned.lock().remove(&k);
        self.fresh.lock().remove(&k);
    }

    /// Deletes partition `k`'s lease if it is still ours, and stops following it.
    async fn give_back(&self, k: usize) -> Result<(), LogError> {
        let mut conn = self.ctl.clone();
        self.unlease
            .key(lease_key(&self.prefix, k))
            .arg(&self.me)
            .invoke_async::<i64>(&mut conn)
            .await
            .map_err(unavailable)?;
        self.forget(k);
        Ok(())
    }

    fn batch_of(&self, k: usize, ids: Vec<redis::streams::StreamId>, batch: &mut FeedBatch) {
        for id in ids {
            let added = id
                .id
                .split('-')
                .next()
                .and_then(|ms| ms.parse::<i64>().ok());
            if let Some(ms) = added {
                batch.oldest_ms = Some(batch.oldest_ms.map_or(ms, |o| o.min(ms)));
            }
            if let Some(order) = id.get::<String>("o") {
                let order: crate::log::OrderKey = order.into();
                if !batch.orders.contains(&order) {
                    batch.orders.push(order);
                }
            }
            batch.receipts.push((k, id.id));
        }
    }

    async fn claim(&self, k: usize, batch: &mut FeedBatch) -> Result<(), LogError> {
        let key = stream_key(&self.prefix, k);
        let mut conn = self.ctl.clone();
        let mut start = "0-0".to_owned();
        loop {
            let reply: StreamAutoClaimReply = conn
                .xautoclaim_options(
                    &key,
                    GROUP,
                    &self.me,
                    0,
                    &start,
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await
                .map_err(unavailable)?;
            self.batch_of(k, reply.claimed, batch);
            if reply.next_stream_id == "0-0" || batch.receipts.len() >= BATCH {
                return Ok(());
            }
            start = reply.next_stream_id;
        }
    }
}

#[async_trait]
impl Feed for RedisFeed {
    async fn next(&self, wait: Duration) -> Result<FeedBatch, LogError> {
        let mut batch = FeedBatch::default();
        let fresh: Vec<usize> = self.fresh.lock().iter().copied().collect();
        for k in fresh {
            self.claim(k, &mut batch).await?;
            self.fresh.lock().remove(&k);
        }
        if !batch.receipts.is_empty() {
            return Ok(batch);
        }
        let owned = self.owned();
        if owned.is_empty() {
            tokio::time::sleep(wait).await;
            return Ok(batch);
        }
        let keys: Vec<String> = owned.iter().map(|&k| stream_key(&self.prefix, k)).collect();
        let ids = vec![">"; keys.len()];
        let opts = StreamReadOptions::default()
            .group(GROUP, &self.me)
            .count(BATCH)
            .block(wait.as_millis().clamp(1, 5000) as usize);
        let mut conn = self.reads.clone();
        let reply: Option<StreamReadReply> = conn
            .xread_options(&keys, &ids, &opts)
            .await
            .map_err(unavailable)?;
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            if let Some(pos) = keys.iter().position(|k| *k == stream.key) {
                self.batch_of(owned[pos], stream.ids, &mut batch);
            }
        }
        Ok(batch)
    }

    async fn ack(&self, batch: &FeedBatch) -> Result<(), LogError> {
        if batch.receipts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for k in 0..self.partitions {
            let ids: Vec<&str> = batch
                .receipts
                .iter()
                .filter(|(p, _)| *p == k)
                .map(|(_, id)| id.as_str())
                .collect();
            if !ids.is_empty() {
                pipe.xack(stream_key(&self.prefix, k), GROUP, &ids).ignore();
            }
        }
        let mut conn = self.ctl.clone();
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    fn owns(&self, order: &str) -> bool {
        self.owned
            .lock()
            .contains(&super::partition(order, self.partitions))
    }

    async fn maintain(&self) -> Result<bool, LogError> {
        let mut conn = self.ctl.clone();
        let members = format!("{}:trips:members", self.prefix);
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
        let mut changed = false;
        for k in self.owned() {
            let kept: i64 = self
                .renew
                .key(lease_key(&self.prefix, k))
                .arg(&self.me)
                .arg(lease_ms)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if kept == 0 {
                tracing::warn!(partition = k, "lost the lease of a trip partition");
                self.forget(k);
                changed = true;
            }
        }
        let mut owned = self.owned();
        if owned.len() < share {
            let mut free: Vec<usize> = (0..self.partitions)
                .filter(|k| !owned.contains(k))
                .collect();
            // Start at a different place in every process, so they do not race for the same ones.
            let shift = rand::random::<u64>() as usize % free.len().max(1);
            free.rotate_left(shift);
            for k in free {
                if owned.len() >= share {
                    break;
                }
                let took: Option<String> = redis::cmd("SET")
                    .arg(lease_key(&self.prefix, k))
                    .arg(&self.me)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease_ms)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if took.is_none() {
                    continue;
                }
                let created: redis::RedisResult<()> = conn
                    .xgroup_create_mkstream(stream_key(&self.prefix, k), GROUP, "$")
                    .await;
                if let Err(e) = created
                    && e.code() != Some("BUSYGROUP")
                {
                    return Err(unavailable(e));
                }
                self.owned.lock().insert(k);
                self.fresh.lock().insert(k);
                owned.push(k);
                changed = true;
            }
        } else if owned.len() > share {
            for &k in owned.iter().rev().take(owned.len() - share) {
                self.give_back(k).await?;
                changed = true;
            }
        }
        if changed {
            metrics::gauge!("tracker_trips_partitions_owned").set(self.owned.lock().len() as f64);
        }
        Ok(changed)
    }

    async fn release(&self) {
        for k in self.owned() {
            // Stopping anyway: a lease not given back runs out by itself.
            let _ = self.give_back(k).await;
            self.forget(k);
        }
        let mut conn = self.ctl.clone();
        let _: redis::RedisResult<()> = conn
            .zrem(format!("{}:trips:members", self.prefix), &self.me)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventLog;
    use crate::log::redis::{RedisLog, RedisLogConfig};
    use tracker_domain::{EventBody, PosEvent};

    fn fix(ts: i64) -> EventBody {
        EventBody::Pos(PosEvent {
            lat: 1.0,
            lon: 2.0,
            ts,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup: false,
        })
    }

    #[tokio::test]
    async fn two_processes_share_the_partitions_and_a_dead_ones_items_move_on() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let prefix = format!("t{:x}", rand::random::<u32>());
        let log = RedisLog::connect(
            &url,
            RedisLogConfig {
                prefix: prefix.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let a = RedisFeed::connect(&url, &prefix, 16).await.unwrap();
        assert!(a.maintain().await.unwrap());
        assert_eq!(a.owned().len(), 16, "alone, it follows everything");
        let b = RedisFeed::connect(&url, &prefix, 16).await.unwrap();
        b.maintain().await.unwrap();
        a.maintain().await.unwrap();
        b.maintain().await.unwrap();
        let (oa, ob) = (a.owned(), b.owned());
        assert_eq!((oa.len(), ob.len()), (8, 8), "{oa:?} {ob:?}");
        assert!(oa.iter().all(|k| !ob.contains(k)));

        // An order in one of b's partitions: only b is fed it, once acked never again.
        let order = (0..).map(|i| format!("9{i}")).find(|o| b.owns(o)).unwrap();
        log.append(&order, vec![fix(1)], None).await.unwrap();
        log.append(&order, vec![EventBody::eta(5, 1)], None)
            .await
            .unwrap();
        let got = b.next(Duration::from_millis(500)).await.unwrap();
        assert_eq!(got.orders, vec![crate::log::OrderKey::from(order.as_str())]);
        assert_eq!(got.receipts.len(), 1, "an estimate is not fed");
        b.ack(&got).await.unwrap();
        assert!(
            a.next(Duration::from_millis(100))
                .await
                .unwrap()
                .orders
                .is_empty()
        );

        // b reads the next one and dies before acknowledging it: a takes
        // its partitions over once the leases run out, and gets it first.
        log.append(&order, vec![fix(2)], None).await.unwrap();
        let unacked = b.next(Duration::from_millis(500)).await.unwrap();
        assert_eq!(unacked.orders.len(), 1);
        drop(b);
        let mut conn = a.ctl.clone();
        for k in ob {
            let _: () = conn.del(lease_key(&prefix, k)).await.unwrap();
        }
        let _: () = conn.del(format!("{prefix}:trips:members")).await.unwrap();
        assert!(a.maintain().await.unwrap());
        assert_eq!(a.owned().len(), 16);
        let moved = a.next(Duration::from_millis(500)).await.unwrap();
        assert_eq!(
            moved.orders,
            vec![crate::log::OrderKey::from(order.as_str())]
        );
        a.ack(&moved).await.unwrap();
        assert!(
            a.next(Duration::from_millis(100))
                .await
                .unwrap()
                .orders
                .is_empty()
        );
        a.release().await;
        assert!(a.owned().is_empty());
    }
}
