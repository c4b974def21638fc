//! One client's subscriptions, whatever carries them (WebSocket or SSE).
//!
//! A [`Watcher`] keeps `order → last seq sent` and turns subscribes, live
//! deliveries and lag signals into outgoing text frames. Every frame it emits
//! for an order moves that seq forward by exactly one; a delivery that would skip
//! ahead (its queue overflowed, or the log tail lagged) makes it read the gap
//! from the log instead, and where history no longer reaches it emits a fresh
//! snapshot with `"recovered":false`. Deliveries at or below the last seq sent
//! are duplicates and dropped. So a client sees each event of an order once, in
//! order, or an honest snapshot.
//!
//! Seqs count within one epoch of the log. A Redis that restarted empty (or
//! failed over without its data) begins a new epoch at seq 1, so a catch-up
//! that finds another epoch than the one last sent emits a `recovered:false`
//! snapshot, never the new history's tail as if it followed the old. While a
//! catch-up is owed and could not be read (the backend still down), the order
//! is marked stale: its next delivery, whatever its seq, catches up first.
//!
//! Resume (`since`): the missed events are replayed in order, then a snapshot
//! with `"recovered":true` and the same `seq` as the last event marks the
//! catch-up as complete; live events follow.

use super::Watchers;
use super::access::{AccessChange, Verdict, access_change, verdict};
use super::fanout::{ConnSignal, Delivery, LiveEvent, Subscriber};
use super::frames;
use crate::auth::{AuthError, Claims};
use crate::orders::OrderError;
use crate::orders::check_id;
use crate::orders::queries::watchable;
use axum::extract::ws::Utf8Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tracker_backend::log::{EPOCH_BEFORE_HISTORY, OrderKey};
use tracker_domain::view::{View, customer_frame};
use tracker_domain::{LiveState, Order};

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// How soon a catch-up whose log read failed is tried again.
const CATCH_UP_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// A new client id, unique in the process (fan-out registrations are keyed by it).
pub fn next_conn_id() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// Whether a client's `since` (of `epoch`, when it named one) belongs to the
/// history the log now holds (`current`). At since 0 the client holds nothing
/// another history could contradict; without an epoch it is taken at its word.
pub fn same_history(since: Option<u64>, epoch: Option<&str>, current: &str) -> bool {
    since == Some(0) || epoch.is_none_or(|e| e == current)
}

/// The snapshot frame of `order` as `view` may see it, and its seq; a log that
/// lost its history (new epoch) knows nothing of the status, so the store's
/// `row` fills it in.
pub fn snapshot_text(
    order: &str,
    mut state: LiveState,
    epoch: &str,
    recovered: Option<bool>,
    row: Option<&Order>,
    view: View,
) -> (Utf8Bytes, u64) {
    if let (None, Some(row)) = (state.status, row) {
        state.status = Some(row.status);
        state.version = Some(row.version);
        state.rider_id = row.rider_id.clone();
        state.rider_name = row.rider_name.clone();
        state.picked_up_at = row.picked_up_at;
    }
    if view == View::Customer {
        state = state.for_customer();
    }
    (
        frames::text(state.snapshot_json(order, epoch, recovered)),
        state.seq,
    )
}

/// The frame of a logged event as `view` may see it; `None` for a text that is
/// not UTF-8 (never written by the log backends).
pub fn event_text(view: View, json: &bytes::Bytes) -> Option<Utf8Bytes> {
    if view == View::Customer
        && let Some(text) = customer_frame(json)
    {
        return Some(frames::text(text));
    }
    Utf8Bytes::try_from(json.clone()).ok()
}

/// A frame on its way to the client.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The JSON text.
    pub text: Utf8Bytes,
    /// The order seq it carries (events and snapshots), for SSE ids.
    pub seq: Option<u64>,
    /// The event's own time, for live events only: feeds the latency histogram.
    pub ts: Option<i64>,
}

impl Outgoing {
    fn plain(text: Utf8Bytes) -> Self {
        Outgoing {
            text,
            seq: None,
            ts: None,
        }
    }
}

/// Why a subscribe was refused; also the `code` of the error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubError {
    /// Bad order id.
    BadRequest,
    /// No such order.
    NotFound,
    /// Not the caller's order.
    Forbidden,
    /// Too many subscriptions on this client.
    TooMany,
    /// A backend failed; try again.
    Unavailable,
}

impl SubError {
    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            SubError::BadRequest => "bad_request",
            SubError::NotFound => "not_found",
            SubError::Forbidden => "forbidden",
            SubError::TooMany => "too_many_subscriptions",
            SubError::Unavailable => "unavailable",
        }
    }
}

/// Why a refresh op was refused; also the `code` of its error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshError {
    /// Not a valid, unexpired token.
    Unauthorized,
    /// A valid token of someone else (or another role or order).
    Forbidden,
    /// It expires before the token it would replace.
    Sooner,
}

impl RefreshError {
    /// The wire code.
    pub fn code(self) -> &'static str {
        match self {
            RefreshError::Unauthorized => "unauthorized",
            RefreshError::Forbidden => "forbidden",
            RefreshError::Sooner => "bad_request",
        }
    }
}

/// Where the client stands on one order.
struct Sent {
    /// The last seq sent.
    seq: u64,
    /// The epoch of the log that seq belongs to.
    epoch: Arc<str>,
    /// A catch-up is owed and could not be read yet.
    stale: bool,
}

impl Sent {
    fn new(seq: u64, epoch: Arc<str>) -> Self {
        Sent {
            seq,
            epoch,
            stale: false,
        }
    }
}

/// The subscriptions of one client and the frames they produce.
pub struct Watcher {
    conn: u64,
    claims: Claims,
    /// Set when the client's token stopped holding (its share link was revoked).
    revoked: bool,
    hub: Watchers,
    tx: mpsc::Sender<Arc<Delivery>>,
    signal: Arc<ConnSignal>,
    /// Watched orders → where each stands.
    subs: HashMap<OrderKey, Sent>,
    /// Frames waiting to be sent, in order.
    out: Vec<Outgoing>,
    /// A lag signal is due soon, to retry a catch-up whose read failed.
    retry_armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    /// A watcher for the holder of `claims`, and the queue its deliveries arrive on
    /// (bounded by the WebSocket queue setting).
    pub fn new(claims: Claims, hub: Watchers) -> (Self, mpsc::Receiver<Arc<Delivery>>) {
        let (tx, rx) = mpsc::channel(hub.cfg.queue.max(1));
        let w = Watcher {
            conn: next_conn_id(),
            claims,
            revoked: false,
            hub,
            tx,
            signal: Arc::new(ConnSignal::default()),
            subs: HashMap::new(),
            out: Vec::new(),
            retry_armed: Arc::default(),
        };
        (w, rx)
    }

    /// The watcher side this client is served from.
    pub fn hub(&self) -> &Watchers {
        &self.hub
    }

    /// The id of this client, unique in the process.
    pub fn conn(&self) -> u64 {
        self.conn
    }

    /// When the client's token expires, Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.claims.exp
    }

    /// True once the client's token was revoked: its transport ends the
    /// connection (WebSocket close 4001, the end of an SSE stream).
    pub fn revoked(&self) -> bool {
        self.revoked
    }

    /// Replaces the client's token with `token` if it is valid, of the same
    /// holder, and expires no sooner; answers with a `refreshed` frame, or an
    /// error frame and the reason (the old token stays).
    pub fn refresh(&mut self, token: &str) -> Result<u64, RefreshError> {
        let r = match self.hub.auth.verify(token) {
            Err(AuthError::Missing | AuthError::Invalid(_)) => Err(RefreshError::Unauthorized),
            Ok(c) if !c.same_holder(&self.claims) => Err(RefreshError::Forbidden),
            Ok(c) if c.exp < self.claims.exp => Err(RefreshError::Sooner),
            Ok(c) => Ok(c),
        };
        match r {
            Ok(c) => {
                let exp = c.exp;
                self.claims = c;
                metrics::counter!("tracker_ws_refreshes_total", "result" => "ok").increment(1);
                self.push_text(frames::refreshed(exp));
                Ok(exp)
            }
            Err(e) => {
                metrics::counter!("tracker_ws_refreshes_total", "result" => e.code()).increment(1);
                let msg = match e {
                    RefreshError::Unauthorized => "not a valid token; the old one stays",
                    RefreshError::Forbidden => "a token of someone else; the old one stays",
                    RefreshError::Sooner => "the new token expires before the old one",
                };
                self.push_text(frames::error(e.code(), None, msg));
                Err(e)
            }
        }
    }

    /// Applies an access change carried by an event of `order`; false when
    /// the event must not reach this client (its subscription or connection
    /// ended here).
    fn keeps_access(&mut self, order: &OrderKey, change: &AccessChange) -> bool {
        match verdict(&self.claims, change) {
            Verdict::Keep => true,
            Verdict::Unsubscribe => {
                metrics::counter!("tracker_ws_access_ended_total", "reason" => "reassigned")
                    .increment(1);
                self.unsubscribe(order);
                self.push_text(frames::error(
                    "forbidden",
                    Some(order),
                    "the order is no longer yours to watch",
                ));
                false
            }
            Verdict::Revoked => {
                metrics::counter!("tracker_ws_access_ended_total", "reason" => "share_revoked")
                    .increment(1);
                self.revoked = true;
                let orders: Vec<OrderKey> = self.subs.keys().cloned().collect();
                for o in orders {
                    self.unsubscribe(&o);
                }
                false
            }
        }
    }

    /// Raised by the fan-out when this client missed deliveries.
    pub fn signal(&self) -> Arc<ConnSignal> {
        self.signal.clone()
    }

    /// How many orders this client watches now.
    pub fn watching(&self) -> usize {
        self.subs.len()
    }

    /// Frames queued so far.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Takes the frames queued so far, in order.
    pub fn take(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.out)
    }

    /// Queues a frame that carries no event (pong, error).
    pub fn push_text(&mut self, text: Utf8Bytes) {
        self.out.push(Outgoing::plain(text));
    }

    /// Counts `sent` as delivered and records the latency of its live events.
    pub fn record_sent(sent: &[Outgoing]) {
        let now = tracker_domain::clock::now_ms();
        let latency = metrics::histogram!("tracker_delivery_latency_seconds");
        let mut live = 0u64;
        for ts in sent.iter().filter_map(|o| o.ts) {
            latency.record((now - ts).max(0) as f64 / 1000.0);
            live += 1;
        }
        metrics::counter!("tracker_events_delivered_total").increment(live);
    }

    /// Subscribes to `order`, queueing the snapshot (and the replay, with
    /// `since`); on refusal an error frame is queued and the reason returned.
    pub async fn subscribe(
        &mut self,
        order: &str,
        since: Option<u64>,
        epoch: Option<&str>,
    ) -> Result<(), SubError> {
        let r = self.try_subscribe(order, since, epoch).await;
        if let Err(e) = r {
            let msg = match e {
                SubError::BadRequest => "order id must be 1..=128 characters".to_owned(),
                SubError::NotFound => "no such order".to_owned(),
                SubError::Forbidden => "you may not watch this order".to_owned(),
                SubError::TooMany => {
                    format!("at most {} orders per connection", self.hub.cfg.max_subs)
                }
                SubError::Unavailable => "try again".to_owned(),
            };
            let order = (e != SubError::BadRequest).then_some(order);
            self.push_text(frames::error(e.code(), order, &msg));
        }
        r
    }

    async fn try_subscribe(
        &mut self,
        order: &str,
        since: Option<u64>,
        epoch: Option<&str>,
    ) -> Result<(), SubError> {
        check_id(order).map_err(|_| SubError::BadRequest)?;
        if !self.subs.contains_key(order) && self.subs.len() >= self.hub.cfg.max_subs {
            return Err(SubError::TooMany);
        }
        let row = match watchable(&self.hub.reads, &self.claims, order).await {
            Ok(row) => row,
            Err(OrderError::BadRequest(_)) => return Err(SubError::BadRequest),
            Err(OrderError::NotFound) => return Err(SubError::NotFound),
            Err(OrderError::Forbidden(_)) => {
                metrics::counter!("tracker_ws_forbidden_total").increment(1);
                return Err(SubError::Forbidden);
            }
            Err(e) => {
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "store read failed on subscribe");
                return Err(SubError::Unavailable);
            }
        };
        // Register before reading the log, so nothing appended in between is missed;
        // anything read twice is dropped by seq.
        let key: OrderKey = Arc::from(order);
        let resubscribe = self.subs.contains_key(&key);
        // Until the order is in `subs` (which the drop of the watcher
        // unregisters), this undoes the registration if the call ends early:
        // an error, or the connection gone mid-await (the future dropped).
        let mut undo = Unregister {
            fanout: (!resubscribe).then(|| self.hub.fanout.clone()),
            order: key.clone(),
            conn: self.conn,
        };
        let joined = self
            .hub
            .fanout
            .add(
                key.clone(),
                Subscriber {
                    conn: self.conn,
                    tx: self.tx.clone(),
                    signal: self.signal.clone(),
                    view: self.claims.view(),
                },
            )
            .await;
        if let Err(e) = joined {
            tracing::warn!(error = %e, "the log could not send the order here");
            return Err(SubError::Unavailable);
        }
        let limit = self.hub.cfg.resume_limit;
        let read = match self.hub.log.read(order, since, limit).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "log read failed on subscribe");
                return Err(SubError::Unavailable);
            }
        };
        let same_epoch = same_history(since, epoch, &read.epoch);
        let recovered = match (since, read.missed) {
            (Some(_), Some(missed)) if same_epoch => {
                metrics::counter!("tracker_ws_resumes_total", "recovered" => "true").increment(1);
                metrics::counter!("tracker_events_replayed_total").increment(missed.len() as u64);
                for e in &missed {
                    if let Some(text) = event_text(self.claims.view(), &e.json) {
                        self.out.push(Outgoing {
                            text,
                            seq: Some(e.seq),
                            ts: None,
                        });
                    }
                }
                Some(true)
            }
            (Some(_), _) => {
                metrics::counter!("tracker_ws_resumes_total", "recovered" => "false").increment(1);
                Some(false)
            }
            (None, _) => None,
        };
        let seq = self.push_snapshot(&key, read.state, &read.epoch, recovered, Some(&row));
        self.subs.insert(key, Sent::new(seq, read.epoch));
        undo.fanout = None;
        Ok(())
    }

    /// Stops watching `order`.
    pub fn unsubscribe(&mut self, order: &str) {
        if let Some((key, _)) = self.subs.remove_entry(order) {
            self.hub.fanout.remove(&key, self.conn);
        }
    }

    /// Queues a snapshot frame; returns its seq.
    fn push_snapshot(
        &mut self,
        order: &str,
        state: LiveState,
        epoch: &str,
        recovered: Option<bool>,
        row: Option<&Order>,
    ) -> u64 {
        let view = self.claims.view();
        let (text, seq) = snapshot_text(order, state, epoch, recovered, row, view);
        self.out.push(Outgoing {
            text,
            seq: Some(seq),
            ts: None,
        });
        seq
    }

    /// Live events of one order, each queued if it is the next one, dropped
    /// if already sent, a catch-up otherwise (and always while the order is stale).
    ///
    /// A pending lag signal is taken first: the tail raises it (a gap, Redis
    /// back from a restart) before it hands on anything that came after, so
    /// an event of a new history is never taken for the next of the old.
    pub async fn on_delivery(&mut self, d: Arc<Delivery>) {
        if self.signal.take_lagged() {
            self.catch_up_all().await;
        }
        for e in d.events.iter() {
            if !self.on_event(&d.order, e).await {
                // Caught up from the log, which was read after this append:
                // it covers the rest of the run (or the order is stale or gone).
                break;
            }
        }
    }

    /// One live event; false when it ended the run's handling (a catch-up,
    /// or the subscription ended).
    async fn on_event(&mut self, order: &OrderKey, e: &LiveEvent) -> bool {
        let Some(sent) = self.subs.get(order) else {
            return false; // unsubscribed meanwhile
        };
        // Subscribed before the order's first event, the watcher holds no
        // epoch: its first live event is read from the log instead, which
        // names the history's epoch, so a later catch-up can tell a Redis
        // that lost its data from one that did not.
        if sent.stale || e.seq > sent.seq + 1 || *sent.epoch == *EPOCH_BEFORE_HISTORY {
            self.catch_up(order).await;
            return false;
        }
        if e.seq <= sent.seq {
            return true;
        }
        if let Some(change) = &e.access
            && !self.keeps_access(order, change)
        {
            return false;
        }
        self.out.push(Outgoing {
            text: e.text_for(self.claims.view()).clone(),
            seq: Some(e.seq),
            ts: Some(e.ts),
        });
        if let Some(sent) = self.subs.get_mut(order) {
            sent.seq = e.seq;
        }
        true
    }

    /// After a lag signal: every watched order catches up from the log.
    pub async fn catch_up_all(&mut self) {
        let orders: Vec<OrderKey> = self.subs.keys().cloned().collect();
        for order in orders {
            self.catch_up(&order).await;
        }
    }

    /// Queues whatever `order`'s log holds past the last seq sent, or a fresh
    /// snapshot when history no longer reaches back or belongs to another epoch.
    async fn catch_up(&mut self, order: &OrderKey) {
        let Some(sent) = self.subs.get_mut(order) else {
            return;
        };
        let last = sent.seq;
        let limit = self.hub.cfg.resume_limit;
        let read = match self.hub.log.read(order, Some(last), limit).await {
            Ok(r) => r,
            Err(e) => {
                // Stale until read: the next delivery tries again, and so does
                // a lag signal raised a moment from now (the order's last
                // event may have been this one: nothing else would come).
                sent.stale = true;
                if !self.retry_armed.swap(true, Ordering::AcqRel) {
                    let (signal, armed) = (self.signal.clone(), self.retry_armed.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(CATCH_UP_RETRY).await;
                        armed.store(false, Ordering::Release);
                        signal.lag();
                    });
                }
                tracing::warn!(error = %e, "log read failed on catch-up");
                return;
            }
        };
        // At seq 0 nothing was sent that another history could contradict.
        let same_epoch = last == 0 || *sent.epoch == *read.epoch;
        metrics::counter!("tracker_ws_catch_ups_total").increment(1);
        let top = match read.missed {
            Some(missed) if same_epoch => {
                let mut top = last;
                for e in missed.iter().filter(|e| e.seq > last) {
                    if let Some(change) = access_change(&e.json)
                        && !self.keeps_access(order, &change)
                    {
                        return;
                    }
                    if let Some(text) = event_text(self.claims.view(), &e.json) {
                        // Live events that came late: their delay is real delivery latency.
                        self.out.push(Outgoing {
                            text,
                            seq: Some(e.seq),
                            ts: Some(e.ts),
                        });
                        top = e.seq;
                    }
                }
                top
            }
            _ => {
                if !same_epoch {
                    metrics::counter!("tracker_ws_epoch_changes_total").increment(1);
                }
                let row = match read.state.status {
                    Some(_) => None,
                    None => self.hub.reads.store.get_order(order).await.ok(),
                };
                self.push_snapshot(order, read.state, &read.epoch, Some(false), row.as_ref())
            }
        };
        self.subs.insert(order.clone(), Sent::new(top, read.epoch));
    }
}

/// Removes a fan-out registration on drop, unless disarmed (`fanout: None`).
struct Unregister {
    fanout: Option<Arc<super::Fanout>>,
    order: OrderKey,
    conn: u64,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        if let Some(f) = &self.fanout {
            f.remove(&self.order, self.conn);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for order in self.subs.keys() {
            self.hub.fanout.remove(order, self.conn);
        }
    }
}
