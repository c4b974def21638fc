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
//! Pub/sub is at-most-once, so the task keeps the subscriptions itself
//! rather than trusting the client to restore them: when the connection
//! drops (a disconnection push, or a `PING` each second that fails or takes
//! over [`PING_PATIENCE`]: then the connection is made anew), or the server
//! drops a channel on its own (its slot moved to another node), the tail
//! gets [`TailEvent::Gap`] at once, the orders are marked lost and
//! subscribed again one by one, and each time some come back the tail gets
//! another gap, so their watchers catch up from the streams after the
//! subscriptions are back, not only before.

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

/// How long a health `PING` may take before the connection counts as lost.
const PING_PATIENCE: Duration = Duration::from_secs(2);

/// How often the subscribing connection is checked, and lost orders are
/// subscribed again.
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
    /// Subscribes (`on`) or unsubscribes `channels`, each one's own result:
    /// one call on one server; on a cluster one call per channel, all at
    /// once (a shard channel's subscribe goes to its slot's node).
    async fn set(&mut self, channels: &[String], on: bool) -> Vec<RedisResult<()>> {
        match self {
            SubConn::Single(c) => {
                let r = if on {
                    c.subscribe(channels).await
                } else {
                    c.unsubscribe(channels).await
                };
                channels.iter().map(|_| r.clone()).collect()
            }
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
                join_all(calls).await
            }
        }
    }

    /// A `PING` (to every node of a cluster), within [`PING_PATIENCE`].
    async fn ping(&mut self) -> Result<(), String> {
        let ping = redis::cmd("PING");
        let r = match self {
            SubConn::Single(c) => {
                tokio::time::timeout(PING_PATIENCE, ping.query_async::<()>(c)).await
            }
            SubConn::Cluster(c) => {
                tokio::time::timeout(PING_PATIENCE, ping.query_async::<()>(c)).await
            }
        };
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {PING_PATIENCE:?}")),
        }
    }
}

/// How to make the subscribing connection (again).
struct Target {
    url: String,
    cluster: bool,
    on_push: Arc<dyn Fn(PushInfo) -> Result<(), ()> + Send + Sync>,
}

impl Target {
    /// A new RESP3 connection whose pushes go to `on_push`. No automatic
    /// resubscription: the task restores its subscriptions itself.
    async fn connect(&self) -> RedisResult<SubConn> {
        let on_push = self.on_push.clone();
        let sender = move |p: PushInfo| on_push(p);
        if self.cluster {
            let nodes: Vec<String> = seeds(&self.url).into_iter().map(resp3).collect();
            let c = ClusterClientBuilder::new(nodes)
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(sender)
                .connection_timeout(Duration::from_secs(5))
                .response_timeout(Duration::from_secs(10))
                .build()?
                .get_async_connection()
                .await?;
            Ok(SubConn::Cluster(c))
        } else {
            let client = redis::Client::open(resp3(&self.url).as_str())?;
            let cfg = ConnectionManagerConfig::new()
                .set_push_sender(sender)
                .set_connection_timeout(Some(Duration::from_secs(5)))
                .set_response_timeout(Some(Duration::from_secs(10)));
            Ok(SubConn::Single(
                client.get_connection_manager_with_config(cfg).await?,
            ))
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
        let target = Target {
            url: url.to_owned(),
            cluster,
            on_push: Arc::new(on_push),
        };
        let conn = target.connect().await.map_err(unavailable)?;
        let (requests, rx) = mpsc::unbounded_channel();
        let counts: Counts = Arc::default();
        let task = Task {
            conn,
            target,
            prefix: prefix.to_owned(),
            counts: counts.clone(),
            subscribed: HashSet::new(),
            lost: HashSet::new(),
            leaving: HashSet::new(),
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
    target: Target,
    prefix: String,
    counts: Counts,
    /// The orders whose channel is subscribed now (confirmed).
    subscribed: HashSet<Arc<str>>,
    /// Orders that were subscribed until the connection or the server
    /// dropped them: to subscribe again.
    lost: HashSet<Arc<str>>,
    /// Channels this task asked to leave, whose confirmation may still come.
    leaving: HashSet<String>,
}

impl Task {
    /// Applies batches of requests, keeps the subscriptions, and reports
    /// gaps, until `stop`.
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut pushes: mpsc::UnboundedReceiver<PushInfo>,
        tail: broadcast::Sender<TailEvent>,
        stop: CancellationToken,
    ) {
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
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
                    self.pushed(p, &tail);
                }
                _ = health.tick() => {
                    if !self.lost.is_empty() {
                        self.restore(&tail).await;
                    } else if let Err(e) = self.conn.ping().await {
                        tracing::warn!(error = %e, "the subscriptions' connection is lost; making it anew");
                        self.all_lost(&tail);
                        match self.target.connect().await {
                            Ok(c) => self.conn = c,
                            Err(e) => tracing::warn!(error = %e, "no new subscriptions' connection yet"),
                        }
                    }
                }
            }
        }
    }

    /// Every subscription is gone with the connection: a gap now, and the
    /// orders to subscribe again.
    fn all_lost(&mut self, tail: &broadcast::Sender<TailEvent>) {
        metrics::counter!("tracker_tail_resubscribes_total").increment(1);
        let _ = tail.send(TailEvent::Gap);
        self.lost.extend(self.subscribed.drain());
        self.leaving.clear();
    }

    /// What a push other than a message means for the subscriptions.
    fn pushed(&mut self, p: PushInfo, tail: &broadcast::Sender<TailEvent>) {
        match p.kind {
            PushKind::Disconnection => {
                tracing::warn!("Redis per-order subscriptions lost; subscribing again");
                self.all_lost(tail);
            }
            // The server left a channel: as asked, or on its own (its slot
            // moved to another node), and then the order is lost.
            PushKind::Unsubscribe | PushKind::SUnsubscribe => {
                let Some(Value::BulkString(ch)) = p.data.first() else {
                    return;
                };
                let ch = String::from_utf8_lossy(ch).into_owned();
                if self.leaving.remove(&ch) {
                    return;
                }
                if let Some(order) = order_of(&self.prefix, &ch)
                    && let Some(order) = self.subscribed.take(order)
                {
                    tracing::warn!(channel = %ch, "the server dropped an order's channel; subscribing again");
                    let _ = tail.send(TailEvent::Gap);
                    self.lost.insert(order);
                }
            }
            _ => {}
        }
    }

    /// Subscribes the lost orders that are still watched again; a gap once
    /// some are back, so their watchers catch up past the outage.
    async fn restore(&mut self, tail: &broadcast::Sender<TailEvent>) {
        let wanted: Vec<Arc<str>> = {
            let counts = self.counts.lock();
            self.lost.retain(|o| counts.contains_key(o));
            self.lost.iter().cloned().collect()
        };
        if wanted.is_empty() {
            return;
        }
        let back = self.subscribe(&wanted).await;
        if back > 0 {
            tracing::info!(orders = back, "per-order subscriptions restored");
            let _ = tail.send(TailEvent::Gap);
        }
    }

    /// Subscribes `orders`' channels; those confirmed move to `subscribed`
    /// (and out of `lost`). Returns how many.
    async fn subscribe(&mut self, orders: &[Arc<str>]) -> usize {
        let channels: Vec<String> = orders.iter().map(|o| channel(&self.prefix, o)).collect();
        let mut ok = 0;
        for (order, r) in orders.iter().zip(self.conn.set(&channels, true).await) {
            match r {
                Ok(()) => {
                    self.lost.remove(order);
                    self.subscribed.insert(order.clone());
                    ok += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, order = %order, "subscribing an order's channel failed")
                }
            }
        }
        ok
    }

    /// Brings the subscriptions of the orders in `batch` in line with their
    /// counts (one subscribe and one unsubscribe call, per channel on a
    /// cluster), then answers the batch's waiting watches: subscribed, or not.
    async fn apply(&mut self, batch: Vec<Request>) {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        {
            let counts = self.counts.lock();
            let mut seen = HashSet::new();
            for (order, _) in &batch {
                if !seen.insert(order.clone()) {
                    continue;
                }
                let wanted = counts.contains_key(order);
                if wanted && !self.subscribed.contains(order) {
                    on.push(order.clone());
                } else if !wanted {
                    self.lost.remove(order);
                    if self.subscribed.remove(order) {
                        off.push(order.clone());
                    }
                }
            }
        }
        if !on.is_empty() {
            self.subscribe(&on).await;
        }
        if !off.is_empty() {
            let channels: Vec<String> = off.iter().map(|o| channel(&self.prefix, o)).collect();
            self.leaving.extend(channels.iter().cloned());
            // A failed unsubscribe costs only messages nobody wants; they are dropped.
            for (ch, r) in channels.iter().zip(self.conn.set(&channels, false).await) {
                if let Err(e) = r {
                    self.leaving.remove(ch);
                    tracing::warn!(error = %e, channel = %ch, "unsubscribing an order's channel failed");
                }
            }
        }
        metrics::gauge!("tracker_tail_subscribed_orders").set(self.subscribed.len() as f64);
        for (order, done) in batch {
            if let Some(done) = done {
                let r = if self.subscribed.contains(&order) {
                    Ok(())
                } else {
                    Err(format!(
                        "the channel of order {order} could not be subscribed"
                    ))
                };
                let _ = done.send(r);
            }
        }
    }
}

/// The order whose channel is `ch` under `prefix`.
fn order_of<'a>(prefix: &str, ch: &'a str) -> Option<&'a str> {
    ch.strip_prefix(prefix)?
        .strip_prefix(":{")?
        .strip_suffix("}:ev")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_names_its_order() {
        let ch = channel("p", "123{x}");
        assert_eq!(order_of("p", &ch), Some("123{x}"));
        assert_eq!(order_of("q", &ch), None);
        assert_eq!(order_of("p", "p:events"), None);
    }

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
