//! The feed on Redis: one stream per partition, a consumer group, leases.
//!
//! The Redis log adds the order id of every append that changes a trip to
//! `{prefix}:feed:{feed}:<k>` (capped, approximately, at `max_len`), right
//! after the append script has answered (one more round trip; for a burst
//! of fixes one pipeline per slot); a process that dies between the
//! two loses that notice, and the order is read again with its
//! next change or the worker's periodic sweep. Each partition is followed
//! by the one process holding its lease (`backend/src/lease.rs`). Progress is the consumer group `trips`: a process that takes a
//! partition over first claims what the last owner read and never
//! acknowledged, then reads on, so a restart resumes where the group was.

use super::{Feed, FeedBatch};
use crate::LogError;
use crate::lease::Leases;
use crate::redis_conn::RedisConn;
use async_trait::async_trait;
use parking_lot::Mutex;
use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use std::collections::BTreeSet;
use std::time::Duration;

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

/// The consuming side of the Redis feed.
pub struct RedisFeed {
    /// For the blocking group reads only (a blocked read holds its connection).
    reads: RedisConn,
    /// Acks, claims, groups.
    ctl: RedisConn,
    prefix: String,
    leases: Leases,
    /// Partitions taken over whose unacknowledged items are still to claim.
    fresh: Mutex<BTreeSet<usize>>,
}

impl RedisFeed {
    /// Connects to `url` as a new consumer of the `partitions` streams under `prefix`.
    pub async fn connect(url: &str, prefix: &str, partitions: usize) -> Result<Self, LogError> {
        let ctl = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        Ok(RedisFeed {
            reads: crate::redis_conn::connect(url).await.map_err(unavailable)?,
            leases: Leases::new(ctl.clone(), prefix, "trips", partitions),
            ctl,
            prefix: prefix.to_owned(),
            fresh: Mutex::new(BTreeSet::new()),
        })
    }

    /// The partitions this process follows now.
    pub fn owned(&self) -> Vec<usize> {
        self.leases.owned()
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
                    self.leases.me(),
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
            .group(GROUP, self.leases.me())
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
        for k in 0..self.leases.partitions() {
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
        self.leases.owns(order)
    }

    async fn maintain(&self) -> Result<bool, LogError> {
        let changed = self.leases.maintain().await?;
        for &k in &changed.lost {
            self.fresh.lock().remove(&k);
        }
        let mut failed = None;
        for &k in &changed.taken {
            let mut conn = self.ctl.clone();
            let created: redis::RedisResult<()> = conn
                .xgroup_create_mkstream(stream_key(&self.prefix, k), GROUP, "$")
                .await;
            match created {
                Err(e) if e.code() != Some("BUSYGROUP") => {
                    // Not followed without its group: given back, taken again later.
                    let _ = self.leases.give_back(k).await;
                    failed = Some(e);
                }
                _ => {
                    self.fresh.lock().insert(k);
                }
            }
        }
        if let Some(e) = failed {
            return Err(unavailable(e));
        }
        if changed.any() {
            metrics::gauge!("tracker_trips_partitions_owned").set(self.owned().len() as f64);
        }
        Ok(changed.any())
    }

    async fn release(&self) {
        self.leases.release().await;
        self.fresh.lock().clear();
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
        let _ = ob;
        a.leases.forget_all().await;
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
