//! The outbox relay: moves events committed with order changes into the event log.
//!
//! Woken right after each write (and every `poll` as a backstop for writes made
//! by other processes or missed wake-ups), it reads outbox items oldest first,
//! appends each to its order's log with the item id as `origin`, and deletes the
//! items. A relay that dies between the append and the delete appends the same
//! items again on restart, and the log skips them by `origin`: nothing is lost,
//! nothing is shown twice.

use crate::retry::Backoff;
use crate::{EventLog, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Items moved per round.
const BATCH: usize = 256;

/// Handle to wake the relay after a write.
#[derive(Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    /// Asks the relay to look at the outbox now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Runs the relay until `stop` is cancelled.
pub async fn run(
    store: Arc<dyn Store>,
    log: Arc<dyn EventLog>,
    waker: RelayWaker,
    poll: Duration,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        match relay_once(&*store, &*log).await {
            Ok(moved) => {
                backoff.reset();
                if moved == BATCH {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay failed; retrying");
                metrics::counter!("tracker_outbox_relay_errors_total").increment(1);
                if !backoff.wait(&stop).await {
                    return;
                }
                continue;
            }
        }
        tokio::select! {
            _ = waker.0.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Moves one batch; returns how many items it moved.
pub async fn relay_once(store: &dyn Store, log: &dyn EventLog) -> Result<usize, String> {
    let items = store.outbox_fetch(BATCH).await.map_err(|e| e.to_string())?;
    // What the relay found waiting: the outbox backlog (a floor of it when a full batch).
    metrics::gauge!("tracker_outbox_backlog").set(items.len() as f64);
    let mut done = Vec::with_capacity(items.len());
    let mut appended = 0u64;
    for item in items {
        let origin = u64::try_from(item.id).ok();
        appended += log
            .append(&item.order_id, item.events, origin)
            .await
            .map_err(|e| e.to_string())?
            .len() as u64;
        done.push(item.id);
    }
    store.outbox_ack(&done).await.map_err(|e| e.to_string())?;
    metrics::counter!("tracker_outbox_relayed_total").increment(done.len() as u64);
    metrics::counter!("tracker_events_appended_total", "source" => "outbox").increment(appended);
    Ok(done.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::memory::{MemoryLog, MemoryLogConfig};
    use crate::store::sqlite::SqliteStore;
    use tracker_domain::order::Change;
    use tracker_domain::{Expected, NewOrder, Order, Point, Status};

    #[tokio::test]
    async fn relay_dying_between_append_and_ack_duplicates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap();
        let log = MemoryLog::new(MemoryLogConfig::default());
        let new = NewOrder {
            biz_order_no: "S-1".into(),
            biz_type: "g".into(),
            customer_id: "c".into(),
            pickup: Point { lat: 1.0, lon: 1.0 },
            dropoff: Point { lat: 1.0, lon: 1.0 },
            promised_at: None,
            route: None,
            ..Default::default()
        };
        let o = Order::new("42".into(), new, 1);
        store.create_order(&o, &[o.created_event()]).await.unwrap();
        let Change::Changed { order, events } = o
            .change_status(Status::Paid, Expected::default(), None, None, 2)
            .unwrap()
        else {
            panic!()
        };
        store.update_order(&order, 1, &events).await.unwrap();

        // A relay that appended but died before acking: the items are still queued.
        for item in store.outbox_fetch(10).await.unwrap() {
            log.append(&item.order_id, item.events, Some(item.id as u64))
                .await
                .unwrap();
        }
        // The next relay moves them again; the log must skip them by origin.
        assert_eq!(relay_once(&store, &*log).await.unwrap(), 2);
        let r = log.read("42", Some(0), 100).await.unwrap();
        assert_eq!(r.state.seq, 2, "created + paid, each once");
        assert_eq!(r.state.status, Some(Status::Paid));
        assert!(store.outbox_fetch(10).await.unwrap().is_empty());
    }
}
