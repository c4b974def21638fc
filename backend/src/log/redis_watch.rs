//! The Redis log's per-order subscriptions: a process hears only the orders
//! its watchers hold.
//!
//! Every append publishes its entries on the order's own channel
//! `{prefix}:{<order>}:ev` (same hash tag as its keys: `SPUBLISH` to that
//! slot's node on a cluster, `PUBLISH` on one server). [`Watching`] keeps a
//! count per order; the first watch subscribes the channel (`SSUBSCRIBE` on
//! a cluster, `SUBSCRIBE` on one server, over RESP3 with the messages pushed
//! to this process), the last unwatch unsubscribes it. Requests queue to one
//! task that takes all that waited as one batch: a crowd of watchers
//! arriving together costs a few subscribe calls, not one each.
//!
//! Pub/sub is at-most-once: when the subscription's connection drops, the
//! tail gets [`TailEvent::Gap`] at once, and again once the client has
//! subscribed everything anew (it does so by itself, on the reconnect that a
//! `PING` every second brings about), so watchers catch up from the streams
//! after the subscriptions are back, not only before.

use super::{Entry, LogError, TailEvent};
use crate::redis_conn::{probe, seeds};
use futures_util::future::join_all;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How long the pushes must go quiet after a reconnect's resubscriptions
/// before the second gap is reported.
const SETTLE: Duration = Duration::from_millis(50);

/// How often the subscribing connection is checked (and so brought back
/// after an outage longer than its own reconnect attempts).
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// What a waiting [`Watching::watch`] is told: subscribed, or why not.
type Done = oneshot::Sender<Result<(), String>>;

/// One request to the subscription task: `order` changed its count (a
/// watch waits for the answer; an unwatch does not).
type Request = (Arc<str>, Option<Done>);

/// How many watches each order has in this process.
type Counts = Arc<Mutex<HashMap<Arc<str>, usize>>>;

/// The counted per-order subscriptions of one process.
pub(super) struct Watching {
    counts: Counts,
    requests: mpsc::UnboundedSender<Request>,
}

/// The subscribing connection: one server's or a cluster's, both RESP3 with
/// their pushes sent to this process.
enum SubConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl SubConn {
    /// Subscribes (`on`) or unsubscribes `channels`: one call on one server;
    /// on a cluster one call per channel, all at once (a shard channel's
    /// subscribe goes to its slot's node).
    async fn set(&mut self, channels: &[String], on: bool) -> RedisResult<()> {
        match self {
            SubConn::Single(c) if on => c.subscribe(channels).await,
            SubConn::Single(c) => c.unsubscribe(channels).await,
            SubConn::Cluster(c) => {
                let calls = channels.iter().map(|ch| {
                    let mut c = c.clone();
                    async move {
                        if on {
                            c.ssubscribe(ch).await
                        } else {
                            c.sunsubscribe(ch).await
                        }
                    }
                });
                join_all(calls).await.into_iter().collect()
            }
        }
    }

    /// A `PING` (to every node of a cluster): a connection that dropped and
    /// could not come back at once is tried again by it, and subscribes
    /// everything anew when it does.
    async fn ping(&mut self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match self {
            SubConn::Single(c) => ping.query_async(c).await,
            SubConn::Cluster(c) => ping.query_async(c).await,
        }
    }
}

/// `url` with `protocol=resp3` among its query parameters (before any `#`).
fn resp3(url: &str) -> String {
    let (base, frag) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}protocol=resp3{frag}")
}

/// The entries of one published message (the texts joined by newlines), or
/// `None` when any line is not an entry.
pub(super) fn entries_of(payload: &[u8]) -> Option<Vec<Arc<Entry>>> {
    let text = std::str::from_utf8(payload).ok()?;
    let e: Option<Vec<_>> = text
        .split('\n')
        .map(|t| super::redis::entry_of(t.to_owned()))
        .collect();
    e.filter(|e| !e.is_empty())
}

impl Watching {
    /// Connects the subscribing connection to `url` and starts its task
    /// (until `stop`); entries of watched orders go to `tail`.
    pub(super) async fn start(
        url: &str,
        prefix: &str,
        tail: broadcast::Sender<TailEvent>,
        stop: CancellationToken,
        bg: &crate::background::Background,
    ) -> Result<Watching, LogError> {
        let unavailable = |e: redis::RedisError| LogError::Unavailable(e.into());
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        // Messages are parsed where they arrive and go straight to the tail;
        // only what the task must see (drops, resubscriptions) is handed on.
        let tail_of_push = tail.clone();
        let on_push = move |p: PushInfo| -> Result<(), ()> {
            match p.kind {
                PushKind::Message | PushKind::SMessage => {
                    let payload = match p.data.get(1) {
                        Some(Value::BulkString(b)) => Some(b.as_slice()),
                        _ => None,
                    };
                    match payload.and_then(entries_of) {
                        Some(e) => {
                            let _ = tail_of_push.send(TailEvent::Entries(e.into()));
                        }
                        None => metrics::counter!("tracker_tail_malformed_total").increment(1),
                    }
                    Ok(())
                }
                _ => push_tx.send(p).map_err(drop),
            }
        };
        let (cluster, _) = probe(url).await.map_err(unavailable)?;
        let conn = if cluster {
            let nodes: Vec<String> = seeds(url).into_iter().map(resp3).collect();
            let c = ClusterClientBuilder::new(nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(on_push)
                .connection_timeout(Duration::from_secs(5))
                .response_timeout(Duration::from_secs(10))
                .build()
                .map_err(unavailable)?
                .get_async_connection()
                .await
                .map_err(unavailable)?;
            SubConn::Cluster(c)
        } else {
            let client = redis::Client::open(resp3(url).as_str()).map_err(unavailable)?;
            let cfg = ConnectionManagerConfig::new()
                .set_push_sender(on_push)
                .set_automatic_resubscription()
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(10)));
            let c = client
                .get_connection_manager_with_config(cfg)
                .await
                .map_err(unavailable)?;
            SubConn::Single(c)
        };
        let (requests, rx) = mpsc::unbounded_channel();
        let counts: Counts = Arc::default();
        let task = Task {
            conn,
            prefix: prefix.to_owned(),
            counts: counts.clone(),
            subscribed: HashSet::new(),
        };
        bg.spawn(task.run(rx, push_rx, tail, stop));
        Ok(Watching { counts, requests })
    }

    /// Counts one more watch of `order`, and returns once its entries come
    /// to the tail.
    pub(super) async fn watch(&self, order: &str) -> Result<(), LogError> {
        let key: Arc<str> = Arc::from(order);
        *self.counts.lock().entry(key.clone()).or_insert(0) += 1;
        let (done, answer) = oneshot::channel();
        if self.requests.send((key, Some(done))).is_err() {
            return Err(LogError::Unavailable("the subscription task ended".into()));
        }
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LogError::Unavailable(e.into())),
            Err(_) => Err(LogError::Unavailable("the subscription task ended".into())),
        }
    }

    /// Ends one watch of `order`; the last one unsubscribes it.
    pub(super) fn unwatch(&self, order: &str) {
        let mut counts = self.counts.lock();
        let Some(n) = counts.get_mut(order) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            let (key, _) = counts.remove_entry(order).expect("present");
            let _ = self.requests.send((key, None));
        }
    }
}

/// The channel of `order` under `prefix`.
pub(super) fn channel(prefix: &str, order: &str) -> String {
    format!("{prefix}:{{{order}}}:ev")
}

/// The subscription task's own state.
struct Task {
    conn: SubConn,
    prefix: String,
    counts: Counts,
    /// The orders whose channel is subscribed now.
    subscribed: HashSet<Arc<str>>,
}

impl Task {
    /// Applies batches of requests, and reports gaps, until `stop`.
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
        tail: broadcast::Sender<TailEvent>,
        stop: CancellationToken,
    ) {
        // After a drop: `lost` until the client's first resubscription is
        // confirmed, then `settling` until the confirmations go quiet.
        let (mut lost, mut settling) = (false, false);
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let settle = async {
                if settling {
                    tokio::time::sleep(SETTLE).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                r = requests.recv() => {
                    let Some(first) = r else { return };
                    let mut batch = vec![first];
                    while let Ok(more) = requests.try_recv() {
                        batch.push(more);
                    }
                    self.apply(batch).await;
                }
                p = pushes.recv() => {
                    let Some(p) = p else { return };
                    match p.kind {
                        PushKind::Disconnection => {
                            tracing::warn!("Redis per-order subscriptions lost; resubscribing");
                            metrics::counter!("tracker_tail_resubscribes_total").increment(1);
                            let _ = tail.send(TailEvent::Gap);
                            (lost, settling) = (true, false);
                        }
                        // The client subscribing everything anew: the second
                        // gap waits until all of it is confirmed.
                        PushKind::Subscribe | PushKind::SSubscribe if lost || settling => {
                            (lost, settling) = (false, true);
                        }
                        _ => {}
                    }
                }
                _ = settle => {
                    settling = false;
                    let _ = tail.send(TailEvent::Gap);
                }
                _ = health.tick() => {
                    if let Err(e) = self.conn.ping().await {
                        tracing::debug!(error = %e, "the subscriptions' connection does not answer yet");
                    }
                }
            }
        }
    }

    /// Brings the subscriptions of the orders in `batch` in line with their
    /// counts, in one subscribe and one unsubscribe call, then answers the
    /// batch's waiting watches.
    async fn apply(&mut self, batch: Vec<Request>) {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        {
            let counts = self.counts.lock();
            let mut seen = HashSet::new();
            for (order, _) in &batch {
                if !seen.insert(order.clone()) {
                    continue;
                }
                match (counts.contains_key(order), self.subscribed.contains(order)) {
                    (true, false) => on.push(order.clone()),
                    (false, true) => off.push(order.clone()),
                    _ => {}
                }
            }
        }
        let names = |orders: &[Arc<str>]| -> Vec<String> {
            orders.iter().map(|o| channel(&self.prefix, o)).collect()
        };
        let mut failed = None;
        if !on.is_empty() {
            match self.conn.set(&names(&on), true).await {
                Ok(()) => self.subscribed.extend(on.iter().cloned()),
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing orders' channels failed");
                    failed = Some(e.to_string());
                }
            }
        }
        if !off.is_empty() {
            // A failed unsubscribe costs only messages nobody wants; they are dropped.
            if let Err(e) = self.conn.set(&names(&off), false).await {
                tracing::warn!(error = %e, "unsubscribing orders' channels failed");
            }
            for o in &off {
                self.subscribed.remove(o);
            }
        }
        metrics::gauge!("tracker_tail_subscribed_orders").set(self.subscribed.len() as f64);
        for (order, done) in batch {
            let Some(done) = done else { continue };
            let r = match &failed {
                Some(e) if on.contains(&order) => Err(e.clone()),
                _ => Ok(()),
            };
            let _ = done.send(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_is_asked_for_in_the_query() {
        assert_eq!(resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(
            resp3("redis://h:1/0?x=1"),
            "redis://h:1/0?x=1&protocol=resp3"
        );
        assert_eq!(
            resp3("rediss://h:1#insecure"),
            "rediss://h:1?protocol=resp3#insecure"
        );
    }

    #[test]
    fn a_message_is_its_entries_or_nothing() {
        let good = br#"{"order":"O1","seq":1,"t":"eta","eta":1,"ts":1}"#;
        assert_eq!(entries_of(good).unwrap().len(), 1);
        let two = [&good[..], b"\n", &good[..]].concat();
        assert_eq!(entries_of(&two).unwrap().len(), 2);
        assert!(entries_of(b"not json").is_none());
        assert!(entries_of(&[&good[..], b"\nnot json"].concat()).is_none());
        assert!(entries_of(b"").is_none());
        assert!(entries_of(&[0xff, 0xfe]).is_none());
    }
}
