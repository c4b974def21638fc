//! Track points through a Redis stream and a consumer group.
//!
//! `push` adds each point to `{prefix}:track` (capped, approximately, at
//! `max_len` entries). [`TrackWorker`]s in group `writers` read new entries,
//! store them in one transaction and acknowledge them. Each round a worker
//! first claims entries another worker read but never acknowledged for longer
//! than `min_idle` (it died mid-batch), so no point is lost; storing is
//! idempotent, so a point claimed twice is stored once.

use super::{Stored, TrackQueue};
use crate::redis_conn::RedisConn;
use crate::retry::Backoff;
use crate::{LogError, Store, TrackPoint};
use async_trait::async_trait;
use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const GROUP: &str = "writers";

fn unavailable(e: impl Into<crate::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

/// The stream key for `prefix`.
pub fn stream_key(prefix: &str) -> String {
    format!("{prefix}:track")
}

async fn connect(url: &str) -> Result<RedisConn, LogError> {
    crate::redis_conn::connect(url).await.map_err(unavailable)
}

/// The Redis [`TrackQueue`].
pub struct RedisTrackQueue {
    conn: RedisConn,
    key: String,
    max_len: usize,
}

impl RedisTrackQueue {
    /// Connects to `url`; points go to `{prefix}:track`, capped near `max_len` entries.
    pub async fn connect(url: &str, prefix: &str, max_len: usize) -> Result<Self, LogError> {
        Ok(RedisTrackQueue {
            conn: connect(url).await?,
            key: stream_key(prefix),
            max_len,
        })
    }
}

#[async_trait]
impl TrackQueue for RedisTrackQueue {
    async fn push(&self, points: Vec<TrackPoint>) -> Result<Stored, LogError> {
        let mut pipe = redis::pipe();
        for p in &points {
            let json = serde_json::to_string(p).map_err(unavailable)?;
            pipe.cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("p")
                .arg(json)
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        // In the stream: any worker stores them, whatever happens to this process.
        Ok(Stored::now())
    }
}

/// Tunables of a [`TrackWorker`].
#[derive(Debug, Clone)]
pub struct TrackWorkerConfig {
    /// This worker's consumer name; unique per process.
    pub consumer: String,
    /// Entries read (and stored) per round.
    pub batch: usize,
    /// How long another worker's unacknowledged entry waits before it is claimed.
    pub min_idle: Duration,
    /// How long a read waits for new entries.
    pub block: Duration,
}

impl Default for TrackWorkerConfig {
    fn default() -> Self {
        TrackWorkerConfig {
            consumer: format!("worker-{:x}", rand::random::<u32>()),
            batch: 500,
            min_idle: Duration::from_secs(30),
            block: Duration::from_secs(1),
        }
    }
}

/// Moves track points from the stream into the store.
pub struct TrackWorker {
    conn: RedisConn,
    key: String,
    store: Arc<dyn Store>,
    cfg: TrackWorkerConfig,
    /// When this worker last looked for abandoned entries: every `min_idle / 2`
    /// is soon enough (none can be claimed younger), and `XAUTOCLAIM` each
    /// round was a third of the worker's Redis calls.
    last_claim: std::sync::Mutex<Option<std::time::Instant>>,
}

impl TrackWorker {
    /// Connects and makes sure the consumer group exists (reading from the
    /// stream's start, so points queued before the first worker are kept).
    pub async fn connect(
        url: &str,
        prefix: &str,
        store: Arc<dyn Store>,
        cfg: TrackWorkerConfig,
    ) -> Result<Self, LogError> {
        let conn = connect(url).await?;
        let key = stream_key(prefix);
        let worker = TrackWorker {
            conn,
            key,
            store,
            cfg,
            last_claim: std::sync::Mutex::new(None),
        };
        worker.make_group().await?;
        Ok(worker)
    }

    /// Creates the consumer group (and the stream) unless it exists, reading
    /// from the stream's start so nothing queued before it is skipped.
    async fn make_group(&self) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        let made: redis::RedisResult<()> = conn.xgroup_create_mkstream(&self.key, GROUP, "0").await;
        match made {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(unavailable(e)),
            _ => Ok(()),
        }
    }

    /// [`TrackWorker::step`], and the group made again when Redis lost it (it
    /// restarted empty or failed over without the stream): the points queued
    /// since are read from the new stream's start, none skipped.
    async fn step_or_regroup(&self) -> Result<usize, LogError> {
        match self.step().await {
            Err(LogError::Unavailable(e))
                if e.downcast_ref::<redis::RedisError>()
                    .is_some_and(|r| r.code() == Some("NOGROUP")) =>
            {
                tracing::warn!(
                    "the track queue's consumer group is gone (Redis lost its data); making it again"
                );
                metrics::counter!("tracker_track_group_recreated_total").increment(1);
                self.make_group().await?;
                self.step().await
            }
            r => r,
        }
    }

    /// One round: claim entries abandoned by dead workers, read new ones, store
    /// both, acknowledge them. Returns how many entries were stored.
    pub async fn step(&self) -> Result<usize, LogError> {
        let mut conn = self.conn.clone();
        let idle_ms = self.cfg.min_idle.as_millis() as u64;
        let mut entries = Vec::new();
        let due = {
            let last = self.last_claim.lock().expect("not poisoned");
            last.is_none_or(|t| t.elapsed() >= self.cfg.min_idle / 2)
        };
        if due {
            let opts = StreamAutoClaimOptions::default().count(self.cfg.batch);
            let claimed: StreamAutoClaimReply = conn
                .xautoclaim_options(&self.key, GROUP, &self.cfg.consumer, idle_ms, "0-0", opts)
                .await
                .map_err(unavailable)?;
            entries = claimed.claimed;
            // Looked again soon while it finds work (a backlog of the dead).
            if entries.len() < self.cfg.batch {
                *self.last_claim.lock().expect("not poisoned") = Some(std::time::Instant::now());
            }
        }
        if !entries.is_empty() {
            metrics::counter!("tracker_track_points_reclaimed_total")
                .increment(entries.len() as u64);
        }
        if entries.len() < self.cfg.batch {
            let opts = StreamReadOptions::default()
                .group(GROUP, &self.cfg.consumer)
                .count(self.cfg.batch - entries.len())
                .block(self.cfg.block.as_millis() as usize);
            let read: Option<StreamReadReply> = conn
                .xread_options(&[&self.key], &[">"], &opts)
                .await
                .map_err(unavailable)?;
            entries.extend(read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids));
        }
        self.store_and_ack(entries).await
    }

    async fn store_and_ack(&self, entries: Vec<StreamId>) -> Result<usize, LogError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let points: Vec<TrackPoint> = entries
            .iter()
            .filter_map(|e| {
                let json: String = e.get("p")?;
                match serde_json::from_str(&json) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        metrics::counter!("tracker_track_points_malformed_total").increment(1);
                        None
                    }
                }
            })
            .collect();
        self.store
            .insert_track_points(&points)
            .await
            .map_err(|e| LogError::Unavailable(e.into()))?;
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        let mut conn = self.conn.clone();
        let _: usize = conn
            .xack(&self.key, GROUP, &ids)
            .await
            .map_err(unavailable)?;
        metrics::counter!("tracker_track_points_stored_total").increment(points.len() as u64);
        Ok(entries.len())
    }

    /// Reports the group's lag (entries not yet read by any worker) and pending
    /// count (read, not yet acknowledged) as gauges.
    pub async fn report_lag(&self) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        let info: redis::streams::StreamInfoGroupsReply =
            conn.xinfo_groups(&self.key).await.map_err(unavailable)?;
        if let Some(g) = info.groups.iter().find(|g| g.name == GROUP) {
            metrics::gauge!("tracker_track_lag").set(g.lag.unwrap_or(0) as f64);
            metrics::gauge!("tracker_track_pending").set(g.pending as f64);
        }
        Ok(())
    }

    /// Runs rounds until `stop`, backing off while Redis or the store fails;
    /// the lag gauges are read at most once a second.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut lag_read: Option<std::time::Instant> = None;
        loop {
            let round = tokio::select! {
                r = self.step_or_regroup() => r,
                _ = stop.cancelled() => return,
            };
            match round {
                Ok(_) => {
                    backoff.reset();
                    if lag_read.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                        continue;
                    }
                    lag_read = Some(std::time::Instant::now());
                    if let Err(e) = self.report_lag().await {
                        tracing::debug!(error = %e, "could not read the track group's lag");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "track worker round failed; retrying");
                    if !backoff.wait(&stop).await {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    fn url() -> Option<String> {
        crate::log::redis::test_url()
    }

    fn point(order: &str, ts: i64) -> TrackPoint {
        TrackPoint {
            order_id: order.into(),
            rider_id: "r1".into(),
            ts,
            lat: 1.0,
            lon: 2.0,
            speed: None,
            heading: None,
            acc: None,
        }
    }

    #[tokio::test]
    async fn a_dead_workers_pending_points_are_claimed_by_another() {
        let Some(url) = url() else { return };
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&format!("sqlite://{}/t.db", dir.path().display()))
                .await
                .unwrap(),
        );
        let prefix = format!("test-{:x}", rand::random::<u64>());
        let cfg = |name: &str| TrackWorkerConfig {
            consumer: name.into(),
            batch: 100,
            min_idle: Duration::from_millis(100),
            block: Duration::from_millis(50),
        };
        let survivor = TrackWorker::connect(&url, &prefix, store.clone(), cfg("survivor"))
            .await
            .unwrap();
        let queue = RedisTrackQueue::connect(&url, &prefix, 10_000)
            .await
            .unwrap();
        queue
            .push((0..30).map(|ts| point("O1", ts)).collect())
            .await
            .unwrap();

        // A worker reads every entry, then dies before storing or acking them.
        let mut conn = connect(&url).await.unwrap();
        let opts = StreamReadOptions::default()
            .group(GROUP, "doomed")
            .count(100);
        let taken: StreamReadReply = conn
            .xread_options(&[stream_key(&prefix)], &[">"], &opts)
            .await
            .unwrap();
        assert_eq!(taken.keys[0].ids.len(), 30);
        assert_eq!(
            survivor.step().await.unwrap(),
            0,
            "nothing new, and not idle long enough to claim"
        );

        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            survivor.step().await.unwrap(),
            30,
            "claimed from the dead worker"
        );
        assert_eq!(store.track_of("O1").await.unwrap().len(), 30);
        let pending: redis::streams::StreamPendingReply =
            conn.xpending(stream_key(&prefix), GROUP).await.unwrap();
        assert_eq!(pending.count(), 0, "all acknowledged");

        survivor.report_lag().await.unwrap();
        // New points flow through the survivor as usual.
        queue.push(vec![point("O1", 100)]).await.unwrap();
        assert_eq!(survivor.step().await.unwrap(), 1);
        let _: () = conn.del(stream_key(&prefix)).await.unwrap();
    }
}
