//! Per-order fan-out: who watches which order, fed by one tail of the event log.
//!
//! Each entry is turned into a WebSocket text frame once and the same bytes are
//! handed to every watcher's bounded queue with `try_send`, the entries of one
//! append (a batch of fixes) as one item: a slow watcher never
//! blocks the tail or other watchers. A full queue drops the delivery and flags
//! the connection as lagged; its task then catches up from the log by `seq`
//! (see [`super::watcher`]), so nothing is lost and memory stays bounded.

use super::access::{AccessChange, access_change};
use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracker_backend::log::OrderKey;
use tracker_backend::{Entry, EventLog, LogError, TailEvent};
use tracker_domain::view::{View, customer_frame};

/// The events of one append of one order on their way to watchers: what a
/// watcher's queue holds, so a batch of 2000 fixes takes one place in it,
/// not 2000 (it would overflow the queue and force a catch-up).
#[derive(Debug)]
pub struct Delivery {
    /// The order they belong to.
    pub order: OrderKey,
    /// Consecutive events, in `seq` order.
    pub events: Box<[LiveEvent]>,
}

/// One event of a [`Delivery`]: the frame text plus what the session needs to order it.
#[derive(Debug)]
pub struct LiveEvent {
    /// Its `seq` in the order's log.
    pub seq: u64,
    /// The event's own time (a fix's phone time), for the delivery-latency histogram.
    pub ts: i64,
    /// The JSON text frame, shared by every watcher.
    pub text: Utf8Bytes,
    /// The customers' version where it differs (views by role), made once per event.
    pub customer: Option<Utf8Bytes>,
    /// Who may watch the order after this event, when it changes that.
    pub access: Option<AccessChange>,
}

impl LiveEvent {
    /// The frame a watcher with `view` gets.
    pub fn text_for(&self, view: View) -> &Utf8Bytes {
        match (view, &self.customer) {
            (View::Customer, Some(text)) => text,
            _ => &self.text,
        }
    }
}

/// Signals from the fan-out to one connection's task.
#[derive(Debug, Default)]
pub struct ConnSignal {
    lagged: AtomicBool,
    wake: Notify,
}

impl ConnSignal {
    /// Marks the connection as having missed deliveries and wakes its task.
    pub fn lag(&self) {
        self.lagged.store(true, Ordering::Release);
        self.wake.notify_one();
    }
    /// Waits until [`ConnSignal::lag`] is called.
    pub async fn woken(&self) {
        self.wake.notified().await
    }
    /// Clears the flag; true if it was set.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::AcqRel)
    }
}

/// A watcher of an order: one connection's queue.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection's id, unique in this process.
    pub conn: u64,
    /// Its bounded queue.
    pub tx: mpsc::Sender<Arc<Delivery>>,
    /// Its lag signal.
    pub signal: Arc<ConnSignal>,
    /// What it may see.
    pub view: View,
}

/// All watchers of all orders on this hub node.
#[derive(Default)]
pub struct Fanout {
    subs: DashMap<OrderKey, Vec<Subscriber>>,
    /// The log whose tail feeds this fan-out, told of every registration
    /// ([`EventLog::watch`]) so it sends the orders watched here and no others.
    log: Option<Arc<dyn EventLog>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("orders", &self.subs.len())
            .finish_non_exhaustive()
    }
}

impl Fanout {
    /// A fan-out fed by `log`'s tail, which hears of each registration.
    pub fn for_log(log: Arc<dyn EventLog>) -> Self {
        Fanout {
            subs: DashMap::new(),
            log: Some(log),
        }
    }

    /// Adds `sub` as a watcher of `order` (once per connection) and returns
    /// once the log sends that order's entries here, so a read made after
    /// this misses nothing. Failed: the watcher is not added.
    pub async fn add(&self, order: OrderKey, sub: Subscriber) -> Result<(), LogError> {
        let conn = sub.conn;
        let added = {
            let mut list = self.subs.entry(order.clone()).or_default();
            let added = !list.iter().any(|s| s.conn == sub.conn);
            if added {
                list.push(sub);
                metrics::gauge!("tracker_ws_subscriptions").increment(1.0);
            }
            added
        };
        // Counted in the log from here (no await before it), and ended by the
        // unwatch of `remove`, whatever happens to this call.
        if let (true, Some(log)) = (added, &self.log)
            && let Err(e) = log.watch(&order).await
        {
            self.remove(&order, conn);
            return Err(e);
        }
        Ok(())
    }

    /// Removes connection `conn` from `order`'s watchers.
    pub fn remove(&self, order: &str, conn: u64) {
        let mut removed = false;
        if let Some(mut list) = self.subs.get_mut(order) {
            let before = list.len();
            list.retain(|s| s.conn != conn);
            removed = list.len() < before;
        }
        // Checked again under the shard lock, so a watcher added meanwhile keeps the list.
        self.subs.remove_if(order, |_, list| list.is_empty());
        if removed {
            metrics::gauge!("tracker_ws_subscriptions").decrement(1.0);
            if let Some(log) = &self.log {
                log.unwatch(order);
            }
        }
    }

    /// How many connections watch `order`.
    pub fn watchers(&self, order: &str) -> usize {
        self.subs.get(order).map_or(0, |l| l.len())
    }

    /// Hands `run` (consecutive entries of one order, as one append made
    /// them) to every watcher of that order as one delivery, without waiting.
    pub fn deliver(&self, run: &[Arc<Entry>]) {
        let Some(first) = run.first() else { return };
        let Some(list) = self.subs.get(&*first.order) else {
            return;
        };
        let customers = list.iter().any(|s| s.view == View::Customer);
        let events: Box<[LiveEvent]> = run
            .iter()
            .filter_map(|entry| {
                let Ok(text) = Utf8Bytes::try_from(entry.json.clone()) else {
                    tracing::error!(order = %entry.order, seq = entry.seq, "event is not UTF-8; dropped");
                    return None;
                };
                let customer = customers
                    .then(|| customer_frame(&entry.json).map(super::frames::text))
                    .flatten();
                Some(LiveEvent {
                    seq: entry.seq,
                    ts: entry.ts,
                    text,
                    customer,
                    access: access_change(&entry.json),
                })
            })
            .collect();
        if events.is_empty() {
            return;
        }
        let d = Arc::new(Delivery {
            order: first.order.clone(),
            events,
        });
        let (mut queued, mut full) = (0u64, 0u64);
        for s in list.iter() {
            match s.tx.try_send(d.clone()) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    full += 1;
                    s.signal.lag();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        metrics::counter!("tracker_fanout_queued_total").increment(queued);
        if full > 0 {
            metrics::counter!("tracker_ws_queue_overflows_total").increment(full);
        }
    }

    /// Flags every connection as lagged: the tail itself fell behind, so any
    /// watcher may have missed anything.
    pub fn lag_everyone(&self) {
        for list in self.subs.iter() {
            for s in list.iter() {
                s.signal.lag();
            }
        }
    }
}

/// Feeds the fan-out from a tail of the event log until `stop`.
pub async fn run_tail(
    fanout: Arc<Fanout>,
    mut tail: broadcast::Receiver<TailEvent>,
    stop: CancellationToken,
) {
    let now_ms = tracker_domain::clock::now_ms;
    loop {
        let entry = tokio::select! {
            r = tail.recv() => r,
            _ = stop.cancelled() => return,
        };
        match entry {
            Ok(TailEvent::Gap) => {
                tracing::warn!("log tail reported a gap; resynchronising every watcher");
                metrics::counter!("tracker_tail_gaps_total").increment(1);
                fanout.lag_everyone();
            }
            Ok(TailEvent::Entries(run)) => {
                metrics::counter!("tracker_tail_entries_total").increment(run.len() as u64);
                metrics::gauge!("tracker_tail_backlog").set(tail.len() as f64);
                let ages = metrics::histogram!("tracker_event_age_at_fanout_seconds");
                let now = now_ms();
                for entry in run.iter() {
                    ages.record((now - entry.ts).max(0) as f64 / 1000.0);
                }
                fanout.deliver(&run);
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "log tail lagged; resynchronising every watcher");
                metrics::counter!("tracker_tail_lagged_total").increment(n);
                fanout.lag_everyone();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(order: &str, seq: u64) -> [Arc<Entry>; 1] {
        [Arc::new(Entry {
            order: order.into(),
            seq,
            ts: 0,
            json: format!("{{\"seq\":{seq}}}").into(),
        })]
    }

    #[tokio::test]
    async fn a_full_queue_flags_only_that_watcher() {
        let f = Fanout::default();
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let (fast_tx, mut fast_rx) = mpsc::channel(16);
        let slow = Arc::new(ConnSignal::default());
        let fast = Arc::new(ConnSignal::default());
        f.add(
            "O1".into(),
            Subscriber {
                conn: 1,
                tx: slow_tx,
                signal: slow.clone(),
                view: View::Full,
            },
        )
        .await
        .unwrap();
        f.add(
            "O1".into(),
            Subscriber {
                conn: 2,
                tx: fast_tx,
                signal: fast.clone(),
                view: View::Full,
            },
        )
        .await
        .unwrap();
        for seq in 1..=3 {
            f.deliver(&entry("O1", seq));
        }
        assert!(slow.take_lagged());
        assert!(!fast.take_lagged());
        for seq in 1..=3 {
            assert_eq!(fast_rx.recv().await.unwrap().events[0].seq, seq);
        }
        f.remove("O1", 1);
        f.remove("O1", 2);
        assert_eq!(f.watchers("O1"), 0);
    }
}
