//! Chooses each seam's implementation from a URL: the one place that knows the schemes.
//!
//! Event log: unset or `memory://` → in process; `redis://…` → Redis streams
//! (one server, or a comma-separated list of a Redis Cluster's seed nodes).
//! Store: `sqlite://path` → SQLite file; `postgres://…` → PostgreSQL.
//! Stock: in the store's database beside the in-process log, in Redis beside Redis.
//! An unknown scheme, or a backend that cannot be reached, is a clear error at start-up.

use crate::background::Background;
use crate::dispatch::Dispatch;
use crate::dispatch::memory::MemoryDispatch;
use crate::dispatch::redis::RedisDispatch;
use crate::feed::memory::MemoryFeed;
use crate::feed::redis::RedisFeed;
use crate::feed::{FEED_PARTITIONS, Feed};
use crate::log::memory::{MemoryLog, MemoryLogConfig};
use crate::log::redis::{RedisLog, RedisLogConfig};
use crate::stock::Stock;
use crate::stock::redis::RedisStock;
use crate::stock::sql::SqlStock;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::timers::DelayQueue;
use crate::timers::memory::MemoryDelayQueue;
use crate::timers::redis::RedisDelayQueue;
use crate::track::TrackQueue;
use crate::track::memory::MemoryTrackQueue;
use crate::track::redis::{RedisTrackQueue, TrackWorker, TrackWorkerConfig};
use crate::webhooks::WebhookQueue;
use crate::webhooks::redis::RedisWebhooks;
use crate::{EventLog, Store};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why a backend could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The URL's scheme names no backend we have.
    #[error("unsupported {what} URL scheme in `{url}` (expected {expected})")]
    UnknownScheme {
        /// Which seam.
        what: &'static str,
        /// The URL, with any password redacted.
        url: String,
        /// The schemes that work.
        expected: &'static str,
    },
    /// Opening it failed.
    #[error("opening {what} `{url}`: {source}")]
    Open {
        /// Which seam.
        what: &'static str,
        /// The URL, with any password redacted.
        url: String,
        /// What went wrong.
        #[source]
        source: crate::BoxError,
    },
}

/// Maps a failure to open `what` at `url` into [`BackendError::Open`].
fn open_error<E: Into<crate::BoxError>>(
    what: &'static str,
    url: &str,
) -> impl FnOnce(E) -> BackendError {
    let url = redact(url);
    move |e| BackendError::Open {
        what,
        url,
        source: e.into(),
    }
}

/// `url` with the password part (`user:pass@`) replaced by `***`, for logs
/// and errors; in a comma-separated list of URLs (a cluster's seeds), in each.
pub fn redact(url: &str) -> String {
    if url.contains(',') {
        return url.split(',').map(redact).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// True when `url` selects the in-process log (unset, empty or `memory://`).
pub fn log_is_in_process(url: Option<&str>) -> bool {
    url.is_none_or(|u| u.is_empty() || u.starts_with("memory:"))
}

/// Bounds of the event log, whichever backend holds it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// Entries kept per order.
    pub history: usize,
    /// How long an ended order's log is kept.
    pub retention: std::time::Duration,
    /// Entries older than this are dropped (zero: no age cap).
    pub max_age: std::time::Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            history: 1000,
            retention: std::time::Duration::from_secs(3600),
            max_age: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// Opens the event log that `url` names; Redis keys and channels start with
/// `redis_prefix`. Its own loops (tail subscription, sweeper) run on `bg`.
pub async fn open_log(
    url: Option<&str>,
    redis_prefix: &str,
    set: LogSettings,
    bg: &Background,
) -> Result<Arc<dyn EventLog>, BackendError> {
    Ok(open_log_with_webhooks(url, redis_prefix, set, None, bg)
        .await?
        .0)
}

/// [`open_log`], and with `webhook_hold` (webhooks on: how long one call may
/// take) the webhook queue the log fills as it appends: in process beside
/// the in-process log, on Redis beside the Redis log
/// (`backend/src/webhooks/`).
pub async fn open_log_with_webhooks(
    url: Option<&str>,
    redis_prefix: &str,
    set: LogSettings,
    webhook_hold: Option<std::time::Duration>,
    bg: &Background,
) -> Result<(Arc<dyn EventLog>, Option<Arc<dyn WebhookQueue>>), BackendError> {
    match url {
        u if log_is_in_process(u) => {
            let log = MemoryLog::start(
                MemoryLogConfig {
                    history: set.history,
                    retention: set.retention,
                    max_age: set.max_age,
                    ..Default::default()
                },
                bg,
            );
            let hooks = webhook_hold.map(|_| log.webhooks() as Arc<dyn WebhookQueue>);
            Ok((log, hooks))
        }
        Some(u) if crate::redis_conn::is_redis_url(u) => {
            let cfg = RedisLogConfig {
                prefix: redis_prefix.to_owned(),
                history: set.history,
                retention: set.retention,
                max_age: set.max_age,
                webhooks: webhook_hold.is_some(),
                ..Default::default()
            };
            let log = RedisLog::connect_on(u, cfg, bg)
                .await
                .map_err(open_error("event log", u))?;
            let mode = if log.on_cluster() {
                "a Redis Cluster"
            } else {
                "one Redis server"
            };
            tracing::info!(url = %redact(u), "event log on {mode}");
            let hooks = match webhook_hold {
                Some(hold) => Some(Arc::new(
                    RedisWebhooks::connect(u, redis_prefix, hold)
                        .await
                        .map_err(open_error("webhook queue", u))?,
                ) as Arc<dyn WebhookQueue>),
                None => None,
            };
            Ok((Arc::new(log), hooks))
        }
        Some(u) => Err(BackendError::UnknownScheme {
            what: "event log",
            url: redact(u),
            expected: "memory://, redis:// or a comma-separated list of redis:// cluster seeds",
        }),
        None => unreachable!("None is in-process"),
    }
}

/// The track queue that goes with the log at `url`, and the task that stores
/// its points: the in-process writer, or a Redis consumer-group worker. The task
/// ends (the in-process one after draining) when `stop` is cancelled.
///
/// On Redis, `through_redis` false keeps the in-process writer (the points
/// skip a trip through Redis and back; acks wait for the store's commit),
/// and a worker still drains the stream of processes that do send them
/// through it (or of an older version).
pub async fn open_track(
    url: Option<&str>,
    redis_prefix: &str,
    through_redis: bool,
    store: Arc<dyn Store>,
    stop: CancellationToken,
) -> Result<(Arc<dyn TrackQueue>, JoinHandle<()>), BackendError> {
    match url {
        u if log_is_in_process(u) => {
            let (queue, writer) = MemoryTrackQueue::start(store, stop);
            Ok((Arc::new(queue), writer))
        }
        Some(u) => {
            let worker =
                TrackWorker::connect(u, redis_prefix, store.clone(), TrackWorkerConfig::default())
                    .await
                    .map_err(open_error("track queue", u))?;
            if !through_redis {
                let (queue, mut writer) = MemoryTrackQueue::start(store, stop.clone());
                // The writer's panic ends the task at once (the process's
                // services stop on it), not when the worker next stops.
                let both = async move {
                    let run = worker.run(stop);
                    tokio::pin!(run);
                    let ended = tokio::select! {
                        w = &mut writer => { let e = w.err(); run.await; e }
                        () = &mut run => writer.await.err(),
                    };
                    if let Some(e) = ended
                        && e.is_panic()
                    {
                        std::panic::resume_unwind(e.into_panic());
                    }
                };
                return Ok((Arc::new(queue), tokio::spawn(both)));
            }
            // Kept near a million points: hours of backlog if every worker is down.
            let queue = RedisTrackQueue::connect(u, redis_prefix, 1_000_000)
                .await
                .map_err(open_error("track queue", u))?;
            Ok((Arc::new(queue), tokio::spawn(worker.run(stop))))
        }
        None => unreachable!("None is in-process"),
    }
}

/// The trip watcher's feed that goes with the log at `url`: the in-process
/// log's own tail, or the Redis feed's partitions.
pub async fn open_feed(
    url: Option<&str>,
    redis_prefix: &str,
    log: &dyn EventLog,
) -> Result<Arc<dyn Feed>, BackendError> {
    match url {
        u if log_is_in_process(u) => Ok(Arc::new(MemoryFeed::new(log))),
        Some(u) => {
            let feed = RedisFeed::connect(u, redis_prefix, FEED_PARTITIONS)
                .await
                .map_err(open_error("trip feed", u))?;
            Ok(Arc::new(feed))
        }
        None => unreachable!("None is in-process"),
    }
}

/// How long a grab's claim record names its winner.
const CLAIM_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The dispatch index and the delay queue that go with the log at `url`: in
/// process beside the in-process log, on Redis beside the Redis log.
pub async fn open_dispatch(
    url: Option<&str>,
    redis_prefix: &str,
) -> Result<(Arc<dyn Dispatch>, Arc<dyn DelayQueue>), BackendError> {
    match url {
        u if log_is_in_process(u) => Ok((
            Arc::new(MemoryDispatch::new(CLAIM_TTL)),
            Arc::new(MemoryDelayQueue::default()),
        )),
        Some(u) => {
            let dispatch = RedisDispatch::connect(u, redis_prefix, CLAIM_TTL)
                .await
                .map_err(open_error("dispatch index", u))?;
            let timers = RedisDelayQueue::connect(u, redis_prefix)
                .await
                .map_err(open_error("delay queue", u))?;
            Ok((Arc::new(dispatch), Arc::new(timers)))
        }
        None => unreachable!("None is in-process"),
    }
}

/// Opens the store that `url` names.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, BackendError> {
    Ok(open_store_with_stock(url).await?.0)
}

/// Opens the store that `url` names, and the stock kept in its database.
pub async fn open_store_with_stock(url: &str) -> Result<(Arc<dyn Store>, SqlStock), BackendError> {
    if url.starts_with("sqlite:") {
        let store = SqliteStore::open(url)
            .await
            .map_err(open_error("store", url))?;
        let stock = store.stock();
        Ok((Arc::new(store), stock))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::open(url)
            .await
            .map_err(open_error("store", url))?;
        let stock = store.stock();
        Ok((Arc::new(store), stock))
    } else {
        Err(BackendError::UnknownScheme {
            what: "store",
            url: redact(url),
            expected: "sqlite:// or postgres://",
        })
    }
}

/// The stock that goes with the log at `url`: in the store's database
/// (`in_store`) beside the in-process log, in Redis beside the Redis log.
pub async fn open_stock(
    url: Option<&str>,
    redis_prefix: &str,
    in_store: SqlStock,
) -> Result<Arc<dyn Stock>, BackendError> {
    match url {
        u if log_is_in_process(u) => Ok(Arc::new(in_store)),
        Some(u) => {
            let stock = RedisStock::connect(u, redis_prefix)
                .await
                .map_err(open_error("stock", u))?;
            Ok(Arc::new(stock))
        }
        None => unreachable!("None is in-process"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(
            redact("redis://:pw@a:1,redis://u:pw@b:2"),
            "redis://:***@a:1,redis://u:***@b:2"
        );
    }

    #[tokio::test]
    async fn unknown_schemes_are_clear_errors() {
        let e = open_store("mysql://x").await.err().unwrap().to_string();
        assert!(e.contains("mysql://x") && e.contains("sqlite://"), "{e}");
        assert!(
            open_log(
                Some("kafka://x"),
                "tracker",
                LogSettings::default(),
                &Background::detached()
            )
            .await
            .is_err()
        );
        assert!(
            open_log(
                None,
                "tracker",
                LogSettings::default(),
                &Background::detached()
            )
            .await
            .is_ok()
        );
        let e = open_log(
            Some("redis://127.0.0.1:1"),
            "tracker",
            LogSettings::default(),
            &Background::detached(),
        )
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("redis://127.0.0.1:1"), "{e}");
    }

    /// The track queue on Redis, both ways: by default the point is in the
    /// store once its push resolves and the stream holds nothing; through
    /// Redis it lands in the stream and a worker stores it.
    #[tokio::test]
    async fn track_points_on_redis_go_direct_or_through_the_stream() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(&format!(
                "sqlite://{}/t.db",
                dir.path().display()
            ))
            .await
            .unwrap(),
        );
        let point = |order: &str| crate::TrackPoint {
            order_id: order.into(),
            rider_id: "r1".into(),
            ts: 1,
            lat: 1.0,
            lon: 2.0,
            speed: None,
            heading: None,
            acc: None,
        };
        let mut conn = crate::redis_conn::connect(&url).await.unwrap();
        for through_redis in [false, true] {
            let prefix = format!("test-{:x}", rand::random::<u64>());
            let stop = CancellationToken::new();
            let (queue, writer) = open_track(
                Some(&url),
                &prefix,
                through_redis,
                store.clone(),
                stop.clone(),
            )
            .await
            .unwrap();
            let order = format!("o-{through_redis}");
            let stored = queue.push(vec![point(&order)]).await.unwrap();
            assert!(stored.wait().await);
            let queued: usize =
                redis::AsyncCommands::xlen(&mut conn, crate::track::redis::stream_key(&prefix))
                    .await
                    .unwrap();
            if through_redis {
                assert_eq!(queued, 1, "through Redis: in the stream");
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
                while store.track_of(&order).await.unwrap().is_empty() {
                    assert!(tokio::time::Instant::now() < deadline, "a worker stores it");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            } else {
                assert_eq!(queued, 0, "direct: nothing goes through Redis");
                assert_eq!(
                    store.track_of(&order).await.unwrap().len(),
                    1,
                    "stored before the push resolved"
                );
            }
            stop.cancel();
            writer.await.unwrap();
            let _: () =
                redis::AsyncCommands::del(&mut conn, crate::track::redis::stream_key(&prefix))
                    .await
                    .unwrap();
        }
    }
}
