//! Keeps the pool of open orders in step with the store.
//!
//! Every order write goes through one path ([`Orders::write`]),
//! which calls [`after_write`]: an order entering `ready` joins the pool at its
//! pickup, a status change to anything else takes it out. The periodic sweep
//! repairs the pool from the store ([`repair`]), for a process that died
//! between its write and the pool update; the grab itself checks the store.

use super::Orders;
use std::collections::HashSet;
use tracker_backend::dispatch::OpenOrder;
use tracker_domain::{EventBody, Order, Status};

/// Most ready orders one repair looks at.
const REPAIR_LIMIT: usize = 10_000;

/// Keeps the pool in step after `next` (with its `events`) was written: an
/// order now `ready` joins the pool at its pickup, an order whose status
/// changed to anything else leaves it. A writer that commits in between (the
/// order moves on while it is being opened) is caught by reading the order
/// back after opening it; a process that dies before this step is caught by
/// the sweep's [`repair`].
pub async fn after_write(orders: &Orders, next: &Order, events: &[EventBody]) {
    let d = &orders.dispatch;
    let r = if next.status == Status::Ready {
        match d.open(&OpenOrder::from(next)).await {
            Ok(()) => match orders.store.get_order(&next.id).await {
                Ok(now) if now.status != Status::Ready => d.close(&next.id).await,
                _ => Ok(()),
            },
            Err(e) => Err(e),
        }
    } else if events.iter().any(|e| matches!(e, EventBody::Status { .. })) {
        d.close(&next.id).await
    } else {
        return;
    };
    match r {
        Ok(()) => metrics::counter!("tracker_pool_updates_total").increment(1),
        Err(e) => {
            tracing::warn!(error = %e, order = %next.id, "pool update failed; the sweep repairs it")
        }
    }
}

/// Makes the pool match the store: every ready order in (unless a grab holds
/// a claim on it), everything else out. Returns (added or kept, removed).
pub async fn repair(orders: &Orders) -> (usize, usize) {
    let (store, d) = (&orders.store, &orders.dispatch);
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
