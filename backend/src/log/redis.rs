//! The event log on Redis streams, shared by every hub and ingest process.
//!
//! Per order, two keys with one hash tag (one Redis Cluster slot):
//! `{prefix}:{<order>}:state` (a hash: `seq`, `epoch`, last `origin`, and the
//! live state) and `{prefix}:{<order>}:log` (a stream whose entry ids are
//! `<seq>-0`, capped at `history` entries and at `max_age`, expiring
//! `retention` after the order ended). Appends run one Lua script, so seq allocation, the fold, the stream
//! add and the publication are one atomic step however many processes append.
//!
//! Tails: every append is also published on the order's own channel, as one
//! message of its entries' texts joined by newlines (JSON texts hold none),
//! and a process subscribes the channels of the orders its watchers hold
//! (`backend/src/log/redis_watch.rs`), so N hubs share the fan-out instead
//! of each hearing everything. The status and assignment entries also go to
//! `{prefix}:events`, which every process follows for [`EventLog::changes`]
//! (the riders' orders cache).
//! Pub/sub is at-most-once, so a dropped subscription is reported as
//! [`TailEvent::Gap`] once it is back, and watchers catch up from the streams.

use super::{Entry, EventLog, LogError, OrderKey, ReadResult, TailEvent};
use crate::background::Background;
use crate::redis_conn::RedisConn;
use crate::retry::Backoff;
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::{Client, Script};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tracker_domain::{EventBody, LiveState, PosEvent};

/// Bounds and names of the Redis log.
#[derive(Debug, Clone)]
pub struct RedisLogConfig {
    /// Prefix of every key and of the channel; lets tests and tenants share a server.
    pub prefix: String,
    /// Entries a resume reaches back per order (the stream is trimmed near it, `MAXLEN ~`).
    pub history: usize,
    /// How long an order's keys live after its terminal status.
    pub retention: Duration,
    /// Entries added longer ago than this are dropped (zero: no age cap).
    pub max_age: Duration,
    /// Entries a local tail receiver may fall behind before `Lagged`.
    pub tail_capacity: usize,
    /// Partitions of the trip watcher's feed (`backend/src/feed/redis.rs`); 0: no feed.
    pub feed_partitions: usize,
    /// Items kept per feed partition (approximate `MAXLEN`).
    pub feed_max_len: usize,
    /// Queue every event but fixes for the webhook (`backend/src/webhooks/redis.rs`),
    /// registering its order as due before the append.
    pub webhooks: bool,
}

impl Default for RedisLogConfig {
    fn default() -> Self {
        RedisLogConfig {
            prefix: "tracker".into(),
            history: 1000,
            retention: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
            tail_capacity: 65_536,
            feed_partitions: crate::feed::FEED_PARTITIONS,
            feed_max_len: 100_000,
            webhooks: false,
        }
    }
}

/// The Redis [`EventLog`].
pub struct RedisLog {
    conn: RedisConn,
    cfg: RedisLogConfig,
    channel: String,
    append: Script,
    read: Script,
    /// Registers an order as due for the webhook sender (`webhooks` on).
    register: Script,
    tail: broadcast::Sender<TailEvent>,
    changes: broadcast::Sender<TailEvent>,
    watching: super::redis_watch::Watching,
    _stop_tail: DropGuard,
}

fn unavailable(e: impl Into<crate::BoxError>) -> LogError {
    LogError::Unavailable(e.into())
}

impl RedisLog {
    /// Connects to `url` and returns once the tail subscription is live, so no
    /// append made after this returns can be missed by [`EventLog::tail`].
    pub async fn connect(url: &str, cfg: RedisLogConfig) -> Result<Self, LogError> {
        Self::connect_on(url, cfg, &Background::detached()).await
    }

    /// [`RedisLog::connect`] with the tail subscription's loop on `bg`: it
    /// ends when the log is dropped or `bg` stops.
    pub async fn connect_on(
        url: &str,
        cfg: RedisLogConfig,
        bg: &Background,
    ) -> Result<Self, LogError> {
        if cfg.prefix.is_empty() || cfg.prefix.contains(['{', '}']) {
            return Err(LogError::Unavailable(
                format!("bad key prefix `{}`", cfg.prefix).into(),
            ));
        }
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        let clients = crate::redis_conn::pubsub_clients(url).map_err(unavailable)?;
        let channel = format!("{}:events", cfg.prefix);
        let (tail, _) = broadcast::channel(cfg.tail_capacity.max(16));
        let (changes, _) = broadcast::channel(cfg.tail_capacity.max(16));
        let stop = bg.stop().child_token();
        let watching =
            super::redis_watch::Watching::start(url, &cfg.prefix, tail.clone(), stop.clone(), bg)
                .await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        bg.spawn(tail_loop(
            clients,
            channel.clone(),
            changes.clone(),
            stop.clone(),
            ready_tx,
        ));
        ready_rx
            .await
            .map_err(|_| unavailable("the tail subscription ended before it started"))?
            .map_err(unavailable)?;
        Ok(RedisLog {
            conn,
            cfg,
            channel,
            append: Script::new(include_str!("redis_append.lua")),
            read: Script::new(include_str!("redis_read.lua")),
            register: crate::webhooks::redis::register_script(),
            tail,
            changes,
            watching,
            _stop_tail: stop.drop_guard(),
        })
    }

    /// True when the log runs on a Redis Cluster (found from the server at connect).
    pub fn on_cluster(&self) -> bool {
        self.conn.is_cluster()
    }

    /// One run of the append script for `order`, and the key that places it.
    fn append_call(
        &self,
        order: &str,
        events: &[EventBody],
        origin: Option<u64>,
    ) -> Result<(String, redis::Cmd), LogError> {
        let (state, stream) = self.keys(order);
        let hooks = crate::webhooks::redis::queue_key(&self.cfg.prefix, order);
        let mut call = if self.cfg.webhooks {
            crate::redis_conn::eval(&self.append, &[&state, &stream, &hooks])
        } else {
            crate::redis_conn::eval(&self.append, &[&state, &stream])
        };
        call.arg(origin.unwrap_or(0))
            .arg(format!("redis-{:016x}", rand::random::<u64>()))
            .arg(self.cfg.history.max(1))
            .arg(self.cfg.retention.as_secs().max(1))
            .arg(order)
            .arg(&self.channel)
            .arg(self.cfg.max_age.as_millis() as u64)
            .arg(super::redis_watch::channel(&self.cfg.prefix, order))
            .arg(if self.conn.is_cluster() {
                "SPUBLISH"
            } else {
                "PUBLISH"
            })
            .arg(events.len())
            .arg(crate::webhooks::redis::queue_ttl_secs());
        for e in events {
            for a in script_args(e)? {
                call.arg(a);
            }
        }
        Ok((state, call))
    }

    /// Registers each order whose events go to the webhook as due, before
    /// they are appended (`backend/src/webhooks/mod.rs` says why before).
    async fn register_webhooks<'a>(
        &self,
        appends: impl Iterator<Item = (&'a str, &'a [EventBody])>,
    ) -> Result<(), LogError> {
        if !self.cfg.webhooks {
            return Ok(());
        }
        for (order, events) in appends {
            if !events.iter().any(|e| crate::webhooks::hooked(e.kind())) {
                continue;
            }
            let k = crate::feed::partition(order, crate::webhooks::PARTITIONS);
            let keys = crate::webhooks::redis::schedule_keys(&self.cfg.prefix, k);
            let mut call = crate::redis_conn::eval(&self.register, &[&keys[0], &keys[1], &keys[2]]);
            call.arg(order);
            self.conn
                .run_script::<i64>(&self.register, &call)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// The webhook registration of `order`, and the key that places it.
    fn register_call(&self, order: &str) -> (String, redis::Cmd) {
        let k = crate::feed::partition(order, crate::webhooks::PARTITIONS);
        let keys = crate::webhooks::redis::schedule_keys(&self.cfg.prefix, k);
        let mut call = crate::redis_conn::eval(&self.register, &[&keys[0], &keys[1], &keys[2]]);
        call.arg(order);
        let [due, ..] = keys;
        (due, call)
    }

    /// The feed notice of `order` (and its key) when `events` change a trip.
    fn feed_notice(&self, order: &str, events: &[EventBody]) -> Option<(String, redis::Cmd)> {
        let n = self.cfg.feed_partitions;
        if n == 0 || !events.iter().any(|e| crate::feed::fed(e.kind())) {
            return None;
        }
        let key =
            crate::feed::redis::stream_key(&self.cfg.prefix, crate::feed::partition(order, n));
        let mut c = redis::cmd("XADD");
        c.arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.cfg.feed_max_len.max(1))
            .arg("*")
            .arg("o")
            .arg(order);
        Some((key, c))
    }

    fn keys(&self, order: &str) -> (String, String) {
        let p = &self.cfg.prefix;
        (
            format!("{p}:{{{order}}}:state"),
            format!("{p}:{{{order}}}:log"),
        )
    }
}

/// The fragment of an event's JSON between its braces, and the script's per-event fields.
fn script_args(body: &EventBody) -> Result<[String; 6], LogError> {
    // The script adds a fix's `backfill` and `before_pickup` itself, from the fold.
    let body = &match body {
        EventBody::Pos(p) => EventBody::Pos(PosEvent {
            backfill: false,
            before_pickup: false,
            ..*p
        }),
        other => other.clone(),
    };
    let json = serde_json::to_string(body).map_err(unavailable)?;
    let frag = json[1..json.len() - 1].to_owned();
    let none = String::new;
    Ok(match body {
        EventBody::Pos(p) => {
            let a = serde_json::to_string(p).map_err(unavailable)?;
            ["pos".into(), p.ts.to_string(), frag, a, none(), none()]
        }
        EventBody::Status {
            status,
            version,
            ts,
            ..
        } => {
            let mut flags = String::new();
            if status.is_terminal() {
                flags.push('e');
            }
            if status.picked_up_or_later() {
                flags.push('p');
            }
            [
                "status".into(),
                ts.to_string(),
                frag,
                status.as_str().into(),
                version.to_string(),
                flags,
            ]
        }
        EventBody::Eta { eta, ts, .. } => [
            "eta".into(),
            ts.to_string(),
            frag,
            eta.to_string(),
            none(),
            none(),
        ],
        EventBody::Alert { ts, .. } => {
            ["alert".into(), ts.to_string(), frag, none(), none(), none()]
        }
        EventBody::Refund { ts, .. } => [
            "refund".into(),
            ts.to_string(),
            frag,
            none(),
            none(),
            none(),
        ],
        EventBody::Package { ts, .. } => [
            "package".into(),
            ts.to_string(),
            frag,
            none(),
            none(),
            none(),
        ],
        EventBody::Arrival { at, ts } => [
            "arrival".into(),
            ts.to_string(),
            frag,
            at.as_str().into(),
            none(),
            none(),
        ],
        EventBody::Route { ts, .. } => {
            ["route".into(), ts.to_string(), frag, none(), none(), none()]
        }
        EventBody::ShareRevoked { ts } => [
            "share_revoked".into(),
            ts.to_string(),
            frag,
            none(),
            none(),
            none(),
        ],
        EventBody::Assignment {
            rider_id,
            rider_name,
            ts,
        } => {
            let a = rider_id.clone().unwrap_or_default();
            let b = rider_name.clone().unwrap_or_default();
            ["assignment".into(), ts.to_string(), frag, a, b, none()]
        }
    })
}

/// `order`, `seq` and `ts` of an entry's JSON text.
pub(super) fn entry_of(json: String) -> Option<Arc<Entry>> {
    #[derive(serde::Deserialize)]
    struct Head {
        order: String,
        seq: u64,
        #[serde(default)]
        ts: i64,
    }
    let head: Head = serde_json::from_str(&json).ok()?;
    Some(Arc::new(Entry {
        order: OrderKey::from(head.order),
        seq: head.seq,
        ts: head.ts,
        json: json.into(),
    }))
}

fn state_of(flat: Vec<String>) -> (LiveState, Option<String>) {
    let mut m: HashMap<String, String> = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        m.insert(k, v);
    }
    let num = |k: &str| m.get(k).and_then(|v| v.parse::<i64>().ok());
    let state = LiveState {
        seq: num("seq").unwrap_or(0).max(0) as u64,
        status: m.get("status").and_then(|s| s.parse().ok()),
        version: num("version"),
        pos: m.get("pos").and_then(|p| serde_json::from_str(p).ok()),
        eta: num("eta"),
        rider_id: m.get("rider_id").cloned(),
        rider_name: m.get("rider_name").cloned(),
        picked_up_at: num("picked_up_at"),
        arrival: m
            .get("arrival")
            .and_then(|a| serde_json::from_value(serde_json::Value::String(a.clone())).ok()),
    };
    (state, m.remove("epoch"))
}

#[async_trait]
impl EventLog for RedisLog {
    async fn ping(&self) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn append(
        &self,
        order: &str,
        events: Vec<EventBody>,
        origin: Option<u64>,
    ) -> Result<Vec<Arc<Entry>>, LogError> {
        let hooked = self.cfg.webhooks && events.iter().any(|e| crate::webhooks::hooked(e.kind()));
        let (key, call) = self.append_call(order, &events, origin)?;
        let texts: Vec<String> = if hooked && !self.conn.is_cluster() {
            // One round trip on one server: on its one connection the
            // registration runs before the append.
            let mut replies = self
                .conn
                .pipelined(
                    vec![self.register_call(order), (key, call)],
                    &[&self.register, &self.append],
                )
                .await
                .map_err(unavailable)?;
            let appended = replies.pop().expect("two replies");
            let registered = replies.pop().expect("two replies");
            let texts = crate::redis_conn::parse(appended).map_err(unavailable)?;
            if registered.is_err() {
                // Appended but not registered: register now, or fail the call.
                self.register_webhooks(std::iter::once((order, events.as_slice())))
                    .await?;
            }
            texts
        } else {
            self.register_webhooks(std::iter::once((order, events.as_slice())))
                .await?;
            let texts: Vec<String> = self
                .conn
                .run_script(&self.append, &call)
                .await
                .map_err(unavailable)?;
            if hooked && !texts.is_empty() {
                // On a cluster the append may land long after the first
                // registration (the client retries through a failover),
                // later than a sender's grace: registered again after it.
                self.register_webhooks(std::iter::once((order, events.as_slice())))
                    .await?;
            }
            texts
        };
        if !texts.is_empty()
            && let Some((_, notice)) = self.feed_notice(order, &events)
        {
            let mut conn = self.conn.clone();
            notice
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        texts
            .into_iter()
            .map(|t| {
                entry_of(t)
                    .ok_or_else(|| unavailable("the append script returned a malformed entry"))
            })
            .collect()
    }

    async fn append_many(&self, batch: Vec<(OrderKey, Vec<EventBody>)>) -> Result<usize, LogError> {
        if batch.is_empty() {
            return Ok(0);
        }
        // On one server the feed notices ride in the appends' pipeline, after
        // them (one connection keeps the order); on a cluster they go once
        // the appends have answered, since slots' pipelines run side by side.
        // Either way a worker that reads the order on a notice finds the change.
        self.register_webhooks(batch.iter().map(|(o, e)| (&**o, e.as_slice())))
            .await?;
        let one_server = !self.conn.is_cluster();
        let mut todo: Vec<usize> = (0..batch.len()).collect();
        let mut appended = 0;
        let mut notices = Vec::new();
        let mut failed = None;
        for first in [true, false] {
            let mut cmds = todo
                .iter()
                .map(|&i| self.append_call(&batch[i].0, &batch[i].1, None))
                .collect::<Result<Vec<_>, _>>()?;
            let calls = cmds.len();
            if one_server {
                cmds.extend(
                    todo.iter()
                        .filter_map(|&i| self.feed_notice(&batch[i].0, &batch[i].1)),
                );
            }
            let replies = self.conn.pipelined(cmds, &[]).await.map_err(unavailable)?;
            let mut again = Vec::new();
            for (k, r) in replies.into_iter().enumerate() {
                if k >= calls {
                    if let Err(e) = r {
                        failed = Some(e);
                    }
                    continue;
                }
                let i = todo[k];
                match r {
                    // The server lost the script (it restarted or flushed
                    // them): nothing of that call ran; it runs once more,
                    // with its notice after it.
                    ref r if first && crate::redis_conn::no_script(r) => again.push(i),
                    Ok(redis::Value::Array(texts)) if !texts.is_empty() => {
                        appended += texts.len();
                        if !one_server {
                            notices.extend(self.feed_notice(&batch[i].0, &batch[i].1));
                        }
                    }
                    Ok(_) => {}
                    Err(e) => failed = Some(e),
                }
            }
            if again.is_empty() {
                break;
            }
            let mut conn = self.conn.clone();
            self.append
                .load_async(&mut conn)
                .await
                .map_err(unavailable)?;
            todo = again;
        }
        if !notices.is_empty() {
            for r in self
                .conn
                .pipelined(notices, &[])
                .await
                .map_err(unavailable)?
            {
                r.map_err(unavailable)?;
            }
        }
        if !one_server {
            // As in `append`: on a cluster the appends may land late.
            self.register_webhooks(batch.iter().map(|(o, e)| (&**o, e.as_slice())))
                .await?;
        }
        if let Some(e) = failed {
            return Err(unavailable(e));
        }
        Ok(appended)
    }

    async fn read(
        &self,
        order: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<ReadResult, LogError> {
        let (state_key, stream) = self.keys(order);
        let since_arg: i64 = since.map_or(-1, |s| s.min(i64::MAX as u64) as i64);
        let mut conn = self.conn.clone();
        let (flat, raw): (Vec<String>, Vec<(String, Vec<String>)>) = self
            .read
            .key(&state_key)
            .key(&stream)
            .arg(since_arg)
            .arg(limit.saturating_add(1))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let (state, epoch) = state_of(flat);
        let epoch: Arc<str> = epoch
            .unwrap_or_else(|| super::EPOCH_BEFORE_HISTORY.into())
            .into();
        let top = state.seq;
        let missed = since.and_then(|since| {
            if since > top {
                return None;
            }
            let want = (top - since) as usize;
            // The stream may keep a few more than `history` (it is trimmed a
            // node at a time); resume reaches back `history` entries exactly.
            if want > limit || want > self.cfg.history.max(1) {
                return None;
            }
            let entries: Vec<Arc<Entry>> = raw
                .into_iter()
                .filter_map(|(_, fields)| fields.into_iter().nth(1).and_then(entry_of))
                .filter(|e| e.seq <= top)
                .collect();
            // History reaches back only if nothing between since and top was trimmed.
            let complete =
                entries.len() == want && entries.first().is_none_or(|e| e.seq == since + 1);
            complete.then_some(entries)
        });
        Ok(ReadResult {
            state,
            epoch,
            missed,
        })
    }

    fn tail(&self) -> broadcast::Receiver<TailEvent> {
        self.tail.subscribe()
    }

    async fn watch(&self, order: &str) -> Result<(), LogError> {
        self.watching.watch(order).await
    }

    fn unwatch(&self, order: &str) {
        self.watching.unwatch(order)
    }

    fn changes(&self) -> broadcast::Receiver<TailEvent> {
        self.changes.subscribe()
    }
}

/// Holds the subscription to the changes channel, reconnecting with backoff
/// (to the next of `clients` each time: the seeds of a cluster, any of which
/// hears every publication); reports [`TailEvent::Gap`] after every reconnect.
async fn tail_loop(
    clients: Vec<Client>,
    channel: String,
    tx: broadcast::Sender<TailEvent>,
    stop: CancellationToken,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut next = 0;
    loop {
        let client = &clients[next % clients.len()];
        next += 1;
        let subscribed = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = tokio::select! {
            r = subscribed => r,
            _ = stop.cancelled() => return,
        };
        let mut ps = match ps {
            Ok(ps) => ps,
            Err(e) => {
                // At start-up every seed gets one try before the error stands.
                if ready.is_some() && next < clients.len() {
                    continue;
                }
                if let Some(r) = ready.take() {
                    let _ = r.send(Err(e.to_string()));
                    return;
                }
                tracing::warn!(error = %e, "Redis tail subscription failed; retrying");
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        match ready.take() {
            Some(r) => {
                let _ = r.send(Ok(()));
            }
            None => {
                let _ = tx.send(TailEvent::Gap);
            }
        }
        let mut messages = ps.on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return,
            };
            let Some(msg) = msg else { break };
            let entries: Option<Vec<Arc<Entry>>> = msg
                .get_payload::<String>()
                .ok()
                .and_then(|text| text.split('\n').map(|t| entry_of(t.to_owned())).collect());
            match entries {
                Some(e) if !e.is_empty() => {
                    let _ = tx.send(TailEvent::Entries(e.into()));
                }
                _ => metrics::counter!("tracker_tail_malformed_total").increment(1),
            }
        }
        tracing::warn!("Redis tail subscription lost; reconnecting");
    }
}

/// Reads `TRACKER_TEST_REDIS_URL` for the contract test; see cli/tests for the policy.
#[cfg(test)]
pub(crate) fn test_url() -> Option<String> {
    match std::env::var("TRACKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(u) => Some(u),
        None if std::env::var("TRACKER_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
            panic!("TRACKER_TEST_REDIS_URL is not set but TRACKER_TEST_REQUIRE_BACKENDS=1")
        }
        None => {
            eprintln!("skipped: TRACKER_TEST_REDIS_URL is not set");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::contract;

    fn cfg() -> RedisLogConfig {
        RedisLogConfig {
            prefix: format!("test-{:x}", rand::random::<u64>()),
            history: 50,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn redis_log_meets_the_contract() {
        let Some(url) = test_url() else { return };
        // One log per clause, each under its own prefix, all on the shared server.
        let mut logs = Vec::new();
        for _ in 0..contract::CLAUSES {
            logs.push(Arc::new(RedisLog::connect(&url, cfg()).await.unwrap()));
        }
        let logs = std::sync::Mutex::new(logs);
        contract::run(|| logs.lock().unwrap().pop().expect("one log per clause")).await;
    }

    #[tokio::test]
    async fn the_tail_loop_runs_on_the_process_tracker_and_ends_with_it() {
        let Some(url) = test_url() else { return };
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = CancellationToken::new();
        let log = RedisLog::connect_on(&url, cfg(), &Background::new(tasks.clone(), stop.clone()))
            .await
            .unwrap();
        tasks.close();
        assert_eq!(
            tasks.len(),
            2,
            "the changes subscription's loop and the per-order subscriptions' task"
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("the tail loop stopped with the process");
        drop(log);
    }

    #[tokio::test]
    async fn redis_log_caps_history_by_age() {
        let Some(url) = test_url() else { return };
        let c = RedisLogConfig {
            max_age: contract::AGE_CAP,
            ..cfg()
        };
        contract::history_is_capped_by_age(&RedisLog::connect(&url, c).await.unwrap()).await;
    }

    #[tokio::test]
    async fn malformed_tail_messages_are_dropped_and_the_tail_goes_on() {
        let Some(url) = test_url() else { return };
        let c = cfg();
        let (changes, order_channel) = (
            format!("{}:events", c.prefix),
            super::super::redis_watch::channel(&c.prefix, "O1"),
        );
        let log = RedisLog::connect(&url, c).await.unwrap();
        let (mut tail, mut changed) = (log.tail(), log.changes());
        log.watch("O1").await.unwrap();
        let mut conn = crate::redis_conn::connect(&url).await.unwrap();
        let publish = if conn.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        let good = r#"{"order":"O9","seq":1,"t":"eta","eta":1,"ts":1}"#;
        for garbage in ["not json", &format!("{good}\nnot json"), "", "\n\n"] {
            for (cmd, ch) in [(publish, &order_channel), ("PUBLISH", &changes)] {
                let _: () = redis::cmd(cmd)
                    .arg(ch)
                    .arg(garbage)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
        let unassigned = EventBody::Assignment {
            rider_id: None,
            rider_name: None,
            ts: 1,
        };
        log.append("O1", vec![unassigned], None).await.unwrap();
        for rx in [&mut tail, &mut changed] {
            let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(&first, TailEvent::Entries(e) if e.len() == 1 && &*e[0].order == "O1"),
                "a message with any bad line is dropped whole; the next append comes through: {first:?}"
            );
        }
    }

    #[tokio::test]
    async fn two_processes_share_one_log() {
        let Some(url) = test_url() else { return };
        let c = cfg();
        let a = RedisLog::connect(&url, c.clone()).await.unwrap();
        let b = RedisLog::connect(&url, c).await.unwrap();
        let mut tail_b = b.tail();
        b.watch("O1").await.unwrap();
        a.append("O1", vec![EventBody::eta(5, 1)], None)
            .await
            .unwrap();
        let e = b
            .append("O1", vec![EventBody::eta(6, 2)], None)
            .await
            .unwrap();
        assert_eq!(e[0].seq, 2, "b continues a's numbering");
        let first = tokio::time::timeout(Duration::from_secs(5), tail_b.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(first, TailEvent::Entries(e) if e[0].seq == 1),
            "b's tail sees a's append"
        );
        let r = a.read("O1", Some(0), 10).await.unwrap();
        assert_eq!(r.missed.unwrap().len(), 2);
        assert_eq!(r.state.eta, Some(6));
    }

    #[tokio::test]
    async fn an_ended_orders_keys_expire_and_keep_expiring_until_it_reopens() {
        use redis::AsyncCommands;
        use tracker_domain::Status as OrderStatus;
        let Some(url) = test_url() else { return };
        let c = cfg();
        let log = RedisLog::connect(&url, c.clone()).await.unwrap();
        let mut conn = crate::redis_conn::connect(&url).await.unwrap();
        let (state, stream) = log.keys("O1");
        let status = |status, ts| EventBody::Status {
            from: None,
            status,
            version: ts,
            ts,
            reason: None,
            by: None,
        };
        let mut ttls = async |what: &str| {
            let a: i64 = conn.ttl(&state).await.unwrap();
            let b: i64 = conn.ttl(&stream).await.unwrap();
            assert_eq!(a > 0, b > 0, "{what}: the state and the stream go together");
            a
        };
        log.append("O1", vec![EventBody::eta(5, 1)], None)
            .await
            .unwrap();
        assert_eq!(ttls("live").await, -1);
        log.append("O1", vec![status(OrderStatus::Delivered, 2)], None)
            .await
            .unwrap();
        assert!(ttls("ended").await > 0);
        log.append("O1", vec![EventBody::eta(6, 3)], None)
            .await
            .unwrap();
        assert!(ttls("an event after the end").await > 0);
        log.append("O1", vec![status(OrderStatus::PickedUp, 4)], None)
            .await
            .unwrap();
        assert_eq!(ttls("reopened").await, -1);
        log.append("O1", vec![EventBody::eta(7, 5)], None)
            .await
            .unwrap();
        assert_eq!(ttls("live again").await, -1);
        let r = log.read("O1", Some(0), 10).await.unwrap();
        assert_eq!(r.missed.unwrap().len(), 5);
        assert_eq!(r.state.eta, Some(7));
    }

    /// The entries `rx` gets within `wait`, as (order, seq).
    async fn heard(rx: &mut broadcast::Receiver<TailEvent>, wait: Duration) -> Vec<(String, u64)> {
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Ok(TailEvent::Entries(e))) = tokio::time::timeout_at(deadline, rx.recv()).await
        {
            got.extend(e.iter().map(|e| (e.order.to_string(), e.seq)));
        }
        got
    }

    #[tokio::test]
    async fn a_process_hears_only_the_orders_it_watches_and_every_change() {
        let Some(url) = test_url() else { return };
        let c = cfg();
        let a = RedisLog::connect(&url, c.clone()).await.unwrap();
        let b = RedisLog::connect(&url, c).await.unwrap();
        let (mut tail, mut changes) = (b.tail(), b.changes());
        // Counted: two watches and one unwatch leave "W" watched.
        b.watch("W").await.unwrap();
        b.watch("W").await.unwrap();
        b.unwatch("W");
        b.watch("gone").await.unwrap();
        b.unwatch("gone");
        let assigned = EventBody::Assignment {
            rider_id: Some("r1".into()),
            rider_name: None,
            ts: 2,
        };
        for o in ["W", "U", "gone"] {
            a.append(o, vec![EventBody::eta(5, 1), assigned.clone()], None)
                .await
                .unwrap();
        }
        let wait = Duration::from_millis(500);
        assert_eq!(
            heard(&mut tail, wait).await,
            [("W".to_owned(), 1), ("W".to_owned(), 2)],
            "only the watched order, every entry"
        );
        let mut changed = heard(&mut changes, wait).await;
        changed.sort();
        assert_eq!(
            changed,
            [
                ("U".to_owned(), 2),
                ("W".to_owned(), 2),
                ("gone".to_owned(), 2)
            ],
            "every order's assignment, no estimate"
        );
        b.unwatch("W");
        // Requests are applied in order: once this watch is answered, the
        // unwatch before it has unsubscribed.
        b.watch("barrier").await.unwrap();
        a.append("W", vec![EventBody::eta(6, 3)], None)
            .await
            .unwrap();
        assert!(heard(&mut tail, wait).await.is_empty(), "unwatched: silent");
    }

    #[tokio::test]
    async fn watched_orders_come_back_after_the_subscribing_connection_is_killed() {
        let Some(url) = test_url() else { return };
        if crate::redis_conn::probe(&url).await.unwrap().0 {
            return; // CLIENT KILL reaches one node; the single-server run covers it
        }
        // A server of this test's own, so killing its pub/sub clients harms no other test.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        /// Kills the private server however the test ends.
        struct Server(std::process::Child);
        impl Drop for Server {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _server = Server(
            std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is installed where the Redis suite runs"),
        );
        let url = format!("redis://127.0.0.1:{port}");
        let mut admin = None;
        for _ in 0..200 {
            if let Ok(c) = crate::redis_conn::connect(&url).await {
                admin = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut admin = admin.expect("the private server answers");
        let log = RedisLog::connect(&url, cfg()).await.unwrap();
        let writer = RedisLog::connect(&url, log.cfg.clone()).await.unwrap();
        let mut tail = log.tail();
        log.watch("W").await.unwrap();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query_async(&mut admin)
            .await
            .unwrap();
        assert!(killed >= 1, "the subscribing connections were killed");
        // A gap at once, and another once the order is subscribed again.
        let mut gaps = 0;
        while gaps < 2 {
            match tokio::time::timeout(Duration::from_secs(10), tail.recv()).await {
                Ok(Ok(TailEvent::Gap)) => gaps += 1,
                Ok(Ok(TailEvent::Entries(_))) => {}
                other => panic!("a gap, then another once back: {other:?}"),
            }
        }
        writer
            .append("W", vec![EventBody::eta(7, 1)], None)
            .await
            .unwrap();
        let got = heard(&mut tail, Duration::from_secs(2)).await;
        assert_eq!(got, [("W".to_owned(), 1)], "the order's entries come again");
    }

    #[tokio::test]
    async fn append_many_loads_its_script_after_a_flush() {
        let Some(url) = test_url() else { return };
        let log = RedisLog::connect(&url, cfg()).await.unwrap();
        let mut conn = log.conn.clone();
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let batch = vec![("O1".into(), vec![EventBody::eta(5, 1)])];
        assert_eq!(log.append_many(batch).await.unwrap(), 1);
        assert_eq!(log.read("O1", None, 0).await.unwrap().state.eta, Some(5));
    }

    #[tokio::test]
    async fn unreachable_redis_is_an_error_not_a_hang() {
        let r = RedisLog::connect("redis://127.0.0.1:1", RedisLogConfig::default()).await;
        assert!(r.is_err());
    }
}
