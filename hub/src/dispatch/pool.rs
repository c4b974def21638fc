//! Keeps the pool of open orders in step with the orders' logs.
//!
//! Every hub process follows the log's tail: a `status` event to `ready` puts
//! the order in the pool at its pickup (after checking the store, so a late
//! tail never reopens an order that moved on), any other status takes it out.
//! Several processes doing this at once is harmless: each step is idempotent,
//! and the grab itself checks the store. A gap in the tail, and the periodic
//! sweep, repair the pool from the store.

use crate::AppState;
use std::collections::HashSet;
use tokio::sync::broadcast;
use tracker_backend::TailEvent;
use tracker_backend::dispatch::OpenOrder;
use tracker_domain::event::{EventFrame, kind_of};
use tracker_domain::{EventBody, Status};

/// Most ready orders one repair looks at.
const REPAIR_LIMIT: usize = 10_000;

/// The new status carried by `json`, when it is a `status` event.
fn status_of(json: &[u8]) -> Option<Status> {
    // Most entries are fixes: skip them without parsing.
    if !matches!(kind_of(json), Some(b"status")) {
        return None;
    }
    match serde_json::from_slice::<EventFrame>(json).ok()?.body {
        EventBody::Status { status, .. } => Some(status),
        _ => None,
    }
}

/// Follows `tail` until `stop`, opening and closing pool entries.
pub async fn follow(st: AppState, mut tail: broadcast::Receiver<TailEvent>) {
    loop {
        let ev = tokio::select! {
            r = tail.recv() => r,
            _ = st.stop.cancelled() => return,
        };
        match ev {
            Ok(TailEvent::Entry(e)) => {
                if let Some(status) = status_of(&e.json) {
                    on_status(&st, &e.order, status).await;
                }
            }
            Ok(TailEvent::Gap) | Err(broadcast::error::RecvError::Lagged(_)) => {
                repair(&st).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn on_status(st: &AppState, order: &str, status: Status) {
    let d = &st.deps.dispatch;
    let r = if status == Status::Ready {
        match st.deps.store.get_order(order).await {
            Ok(o) if o.status == Status::Ready => d.open(&OpenOrder::from(&o)).await,
            Ok(_) => Ok(()), // moved on already; its own event will close it
            Err(e) => {
                tracing::warn!(error = %e, order, "store read for the pool failed");
                return;
            }
        }
    } else {
        d.close(order).await
    };
    match r {
        Ok(()) => metrics::counter!("tracker_pool_updates_total").increment(1),
        Err(e) => tracing::warn!(error = %e, order, "pool update failed; the sweep repairs it"),
    }
}

/// Makes the pool match the store: every ready order in (unless a grab holds
/// a claim on it), everything else out. Returns (added or kept, removed).
pub async fn repair(st: &AppState) -> (usize, usize) {
    let (store, d) = (&st.deps.store, &st.deps.dispatch);
    let ready = match store.orders_in(Status::Ready, i64::MAX, REPAIR_LIMIT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "pool repair: store read failed");
            return (0, 0);
        }
    };
    let mut kept = 0;
    for o in &ready {
        if d.ensure_open(&OpenOrder::from(o)).await.is_ok() {
            kept += 1;
        }
    }
    let ready: HashSet<&str> = ready.iter().map(|o| o.id.as_str()).collect();
    let mut removed = 0;
    let open = d.open_ids().await.unwrap_or_default();
    for id in open.iter().filter(|id| !ready.contains(id.as_str())) {
        // Not in the list: confirm one by one (the list may be capped or stale).
        let gone = match store.get_order(id).await {
            Ok(o) => o.status != Status::Ready,
            Err(tracker_backend::StoreError::NotFound) => true,
            Err(_) => false,
        };
        if gone && d.close(id).await.is_ok() {
            removed += 1;
        }
    }
    metrics::counter!("tracker_pool_repairs_total").increment(1);
    (kept, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_status_events_are_read() {
        assert_eq!(
            status_of(br#"{"order":"1","seq":3,"t":"status","status":"ready","version":4,"ts":1}"#),
            Some(Status::Ready)
        );
        assert_eq!(
            status_of(br#"{"order":"1","seq":4,"t":"pos","lat":1,"lon":2,"ts":1}"#),
            None
        );
        assert_eq!(status_of(br#"{"t":"status","status":"nonsense"}"#), None);
        assert_eq!(status_of(b"not json \"t\":\"status\""), None);
    }
}
