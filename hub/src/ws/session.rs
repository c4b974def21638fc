//! One watcher connection: subscriptions, resume by `seq`, catch-up after lag, keep-alive.
//!
//! The task owns the socket and a map `order → last seq sent`. Every frame it
//! sends for an order moves that seq forward by exactly one; a delivery that
//! would skip ahead (its queue overflowed, or the log tail lagged) makes the
//! task read the gap from the log instead, and where history no longer reaches
//! it sends a fresh snapshot with `"recovered":false`. Deliveries at or below
//! the last seq sent are duplicates and dropped. So a watcher sees each event of
//! an order once, in order, or an honest snapshot.
//!
//! Resume (`sub` with `since`): the missed events are replayed in order, then a
//! snapshot with `"recovered":true` and the same `seq` as the last event marks
//! the catch-up as complete; live events follow.

use super::frames::{self, ClientOp, FrameError};
use super::{CLOSE_IDLE, CLOSE_RESTART, CLOSE_SLOW, CLOSE_TOO_BIG};
use crate::AppState;
use crate::auth::{Claims, can_watch};
use crate::fanout::{ConnSignal, Delivery, Subscriber};
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracker_backend::log::OrderKey;
use tracker_domain::order::MAX_KEY_LEN;
use tracker_domain::{LiveState, Order};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Deliveries taken from the queue before the socket is flushed once.
const BATCH: usize = 64;

struct Session {
    conn: u64,
    claims: Claims,
    st: AppState,
    tx: mpsc::Sender<Arc<Delivery>>,
    signal: Arc<ConnSignal>,
    /// Watched orders → the last seq sent for each.
    subs: HashMap<OrderKey, u64>,
    /// Frames waiting for the next flush.
    out: Vec<Message>,
    /// Event times of the events among them, for the latency histogram.
    out_ts: Vec<i64>,
}

/// Serves one upgraded socket until the client leaves, it goes idle or slow, or the hub stops.
pub async fn run<S, E>(socket: S, claims: Claims, st: AppState)
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin + Send,
    E: Display,
{
    let (tx, rx) = mpsc::channel(st.cfg.ws.queue.max(1));
    let mut s = Session {
        conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
        claims,
        st,
        tx,
        signal: Arc::new(ConnSignal::default()),
        subs: HashMap::new(),
        out: Vec::new(),
        out_ts: Vec::new(),
    };
    metrics::gauge!("tracker_ws_connections").increment(1.0);
    s.serve(socket, rx).await;
    for order in s.subs.keys() {
        s.st.fanout.remove(order, s.conn);
    }
    metrics::gauge!("tracker_ws_connections").decrement(1.0);
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

impl Session {
    async fn serve<S, E>(&mut self, mut socket: S, mut rx: mpsc::Receiver<Arc<Delivery>>)
    where
        S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin + Send,
        E: Display,
    {
        let cfg = self.st.cfg.ws.clone();
        let stop = self.st.stop.clone();
        let signal = self.signal.clone();
        let mut ping = tokio::time::interval_at(Instant::now() + cfg.ping_every, cfg.ping_every);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.out.push(close(CLOSE_RESTART, "server restarting; reconnect with since"));
                    self.flush(&mut socket).await;
                    return;
                }
                msg = socket.next() => {
                    last_heard = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(t))) => self.on_text(&t).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.reject(FrameError::Unsupported, "binary frames are not part of the protocol")
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) | None => return,
                        Some(Err(e)) => {
                            // Tungstenite refuses over-long messages before reading them; the
                            // stream cannot be resynchronised after that, so we say why and close.
                            tracing::debug!(conn = self.conn, error = %e, "socket read failed");
                            metrics::counter!("tracker_ws_frames_rejected_total", "reason" => "read_error").increment(1);
                            self.out.push(close(CLOSE_TOO_BIG, "frame too large or malformed"));
                            self.flush(&mut socket).await;
                            return;
                        }
                    }
                }
                Some(d) = rx.recv() => {
                    self.on_delivery(d).await;
                    while self.out.len() < BATCH {
                        match rx.try_recv() {
                            Ok(d) => self.on_delivery(d).await,
                            Err(_) => break,
                        }
                    }
                }
                _ = signal.woken() => {
                    if signal.take_lagged() {
                        self.catch_up_all().await;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > cfg.idle_timeout {
                        self.out.push(close(CLOSE_IDLE, "idle"));
                        self.flush(&mut socket).await;
                        return;
                    }
                    self.out.push(Message::Ping(Default::default()));
                }
            }
            if !self.flush(&mut socket).await {
                return;
            }
        }
    }

    /// Sends queued frames with one flush; false when the socket is gone or too slow.
    async fn flush<S, E>(&mut self, socket: &mut S) -> bool
    where
        S: Sink<Message, Error = E> + Unpin,
        E: Display,
    {
        if self.out.is_empty() {
            return true;
        }
        let n = self.out.len() as u64;
        let frames = std::mem::take(&mut self.out);
        let send = async {
            for m in frames {
                socket.feed(m).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.st.cfg.ws.write_timeout, send).await {
            Ok(Ok(())) => {
                metrics::counter!("tracker_ws_frames_sent_total").increment(n);
                let now = tracker_domain::clock::now_ms();
                metrics::counter!("tracker_events_delivered_total")
                    .increment(self.out_ts.len() as u64);
                let latency = metrics::histogram!("tracker_delivery_latency_ms");
                for ts in self.out_ts.drain(..) {
                    latency.record((now - ts).max(0) as f64);
                }
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(conn = self.conn, error = %e, "socket write failed");
                false
            }
            Err(_) => {
                metrics::counter!("tracker_ws_closed_slow_total").increment(1);
                let bye = socket.send(close(CLOSE_SLOW, "too slow; reconnect with since"));
                let _ = tokio::time::timeout(std::time::Duration::from_millis(100), bye).await;
                false
            }
        }
    }

    fn reject(&mut self, why: FrameError, msg: &str) {
        metrics::counter!("tracker_ws_frames_rejected_total", "reason" => why.code()).increment(1);
        self.out.push(frames::error(why.code(), None, msg));
    }

    async fn on_text(&mut self, text: &str) {
        match frames::parse(text, self.st.cfg.ws.max_text) {
            Ok(ClientOp::Ping) => self.out.push(frames::pong()),
            Ok(ClientOp::Sub {
                order,
                since,
                epoch,
            }) => self.subscribe(order, since, epoch).await,
            Ok(ClientOp::Unsub { order }) => {
                if let Some((key, _)) = self.subs.remove_entry(order.as_str()) {
                    self.st.fanout.remove(&key, self.conn);
                }
            }
            Err((why, msg)) => self.reject(why, &msg),
        }
    }

    async fn subscribe(&mut self, order: String, since: Option<u64>, epoch: Option<String>) {
        if order.is_empty() || order.len() > MAX_KEY_LEN {
            return self.reject(
                FrameError::BadRequest,
                "order id must be 1..=128 characters",
            );
        }
        if !self.subs.contains_key(order.as_str()) && self.subs.len() >= self.st.cfg.ws.max_subs {
            let msg = format!("at most {} orders per connection", self.st.cfg.ws.max_subs);
            self.out
                .push(frames::error("too_many_subscriptions", Some(&order), &msg));
            return;
        }
        let row = match self.st.deps.store.get_order(&order).await {
            Ok(row) => row,
            Err(tracker_backend::StoreError::NotFound) => {
                self.out
                    .push(frames::error("not_found", Some(&order), "no such order"));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "store read failed on subscribe");
                self.out
                    .push(frames::error("unavailable", Some(&order), "try again"));
                return;
            }
        };
        if !can_watch(&self.claims, &row) {
            metrics::counter!("tracker_ws_forbidden_total").increment(1);
            self.out.push(frames::error(
                "forbidden",
                Some(&order),
                "you may not watch this order",
            ));
            return;
        }
        // Register before reading the log, so nothing appended in between is missed;
        // anything read twice is dropped by seq.
        let key: OrderKey = Arc::from(order.as_str());
        let resubscribe = self.subs.contains_key(&key);
        self.st.fanout.add(
            key.clone(),
            Subscriber {
                conn: self.conn,
                tx: self.tx.clone(),
                signal: self.signal.clone(),
            },
        );
        let read = match self
            .st
            .deps
            .log
            .read(&order, since, self.st.cfg.ws.resume_limit)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "log read failed on subscribe");
                if !resubscribe {
                    self.st.fanout.remove(&key, self.conn);
                }
                self.out
                    .push(frames::error("unavailable", Some(&order), "try again"));
                return;
            }
        };
        let same_epoch = epoch.is_none_or(|e| *e == *read.epoch);
        let recovered = match (since, read.missed) {
            (Some(_), Some(missed)) if same_epoch => {
                metrics::counter!("tracker_ws_resumes_total", "recovered" => "true").increment(1);
                metrics::counter!("tracker_events_replayed_total").increment(missed.len() as u64);
                self.out
                    .extend(missed.iter().filter_map(|e| text_of(&e.json)));
                Some(true)
            }
            (Some(_), _) => {
                metrics::counter!("tracker_ws_resumes_total", "recovered" => "false").increment(1);
                Some(false)
            }
            (None, _) => None,
        };
        let seq = self.push_snapshot(&key, read.state, &read.epoch, recovered, Some(&row));
        self.subs.insert(key, seq);
    }

    /// Queues a snapshot frame; returns its seq.
    fn push_snapshot(
        &mut self,
        order: &str,
        mut state: LiveState,
        epoch: &str,
        recovered: Option<bool>,
        row: Option<&Order>,
    ) -> u64 {
        // A log that lost its history (new epoch) knows nothing of the status: the store does.
        if let (None, Some(row)) = (state.status, row) {
            state.status = Some(row.status);
            state.version = Some(row.version);
            state.rider_id = row.rider_id.clone();
        }
        self.out
            .push(frames::text(state.snapshot_json(order, epoch, recovered)));
        state.seq
    }

    /// A live event: sent if it is the next one, dropped if already sent, a gap otherwise.
    async fn on_delivery(&mut self, d: Arc<Delivery>) {
        let Some(&last) = self.subs.get(&d.order) else {
            return; // unsubscribed meanwhile
        };
        if d.seq <= last {
            return;
        }
        if d.seq == last + 1 {
            self.out.push(Message::Text(d.text.clone()));
            self.out_ts.push(d.ts);
            self.subs.insert(d.order.clone(), d.seq);
            return;
        }
        self.catch_up(&d.order).await;
    }

    async fn catch_up_all(&mut self) {
        let orders: Vec<OrderKey> = self.subs.keys().cloned().collect();
        for order in orders {
            self.catch_up(&order).await;
        }
    }

    /// Sends whatever `order`'s log holds past the last seq sent, or a fresh snapshot
    /// when history no longer reaches back.
    async fn catch_up(&mut self, order: &OrderKey) {
        let Some(&last) = self.subs.get(order) else {
            return;
        };
        let read = match self
            .st
            .deps
            .log
            .read(order, Some(last), self.st.cfg.ws.resume_limit)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Left as is: the next delivery or lag signal tries again.
                tracing::warn!(error = %e, "log read failed on catch-up");
                return;
            }
        };
        metrics::counter!("tracker_ws_catch_ups_total").increment(1);
        let top = match read.missed {
            Some(missed) => {
                let mut top = last;
                for e in missed.iter().filter(|e| e.seq > last) {
                    if let Some(m) = text_of(&e.json) {
                        self.out.push(m);
                        // Live events that came late: their delay is real delivery latency.
                        self.out_ts.push(e.ts);
                        top = e.seq;
                    }
                }
                top
            }
            None => {
                let row = match read.state.status {
                    Some(_) => None,
                    None => self.st.deps.store.get_order(order).await.ok(),
                };
                self.push_snapshot(order, read.state, &read.epoch, Some(false), row.as_ref())
            }
        };
        self.subs.insert(order.clone(), top);
    }
}

fn text_of(json: &bytes::Bytes) -> Option<Message> {
    axum::extract::ws::Utf8Bytes::try_from(json.clone())
        .ok()
        .map(Message::Text)
}
