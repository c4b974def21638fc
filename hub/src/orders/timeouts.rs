//! Order timeouts: unpaid orders cancelled, grabbed orders not picked up put
//! back in the pool, late deliveries alerted, each exactly once; and the
//! retries of refunds that wait (`hub/src/orders/refunds.rs`).
//!
//! Every write that leaves an order in a waiting state schedules a timer in
//! the shared delay queue ([`schedule`]); each process polls the queue, and
//! each due timer is handed to one of them. Firing re-reads the order and
//! writes the change with the store's version check, so a timer whose moment
//! has passed (the order was paid, picked up, delivered) is a no-op, and a
//! payment racing the timeout either wins (the timer is a no-op) or loses (the
//! payment finds the order cancelled and is reported as `refund_required`).
//! A periodic sweep over the store fires whatever the queue lost (a restart
//! between claim and write, a schedule that failed).

use super::{DispatchConfig, OrderError, Orders};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracker_backend::StoreError;
use tracker_backend::timers::{Timer, TimerKind};
use tracker_domain::order::{Change, PAYMENT_TIMEOUT, PICKUP_TIMEOUT};
use tracker_domain::{Expected, Order, Status};

/// Most timers claimed, or orders swept per kind, in one round.
const BATCH: usize = 200;
/// Who the timeouts say did it.
const SYSTEM: &str = "system";

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The timers `order`, as just written, should have.
pub fn timers_for(order: &Order, cfg: &DispatchConfig) -> Vec<Timer> {
    let mut out = Vec::new();
    let timer = |kind, due| Timer {
        kind,
        order: order.id.clone(),
        status_version: order.status_version,
        due,
    };
    match order.status {
        Status::PendingPayment => {
            out.push(timer(
                TimerKind::Payment,
                order.created_at + ms(cfg.payment_timeout),
            ));
        }
        Status::Assigned => {
            out.push(timer(
                TimerKind::Pickup,
                order.updated_at + ms(cfg.pickup_timeout),
            ));
        }
        _ => {}
    }
    if let Some(promised) = order.promised_at
        && order.late_alert_at.is_none()
        && !order.status.is_terminal()
    {
        // One late timer per order whatever its status: status version 0.
        out.push(Timer {
            status_version: 0,
            ..timer(TimerKind::Late, promised)
        });
    }
    out
}

/// Schedules the timers of `order` after a write; a failure is logged and
/// left to the sweep.
pub async fn schedule(orders: &Orders, order: &Order) {
    for t in timers_for(order, &orders.cfg) {
        if let Err(e) = orders.timers.schedule(&t).await {
            tracing::warn!(error = %e, order = %order.id, kind = %t.kind, "scheduling a timeout failed; the sweep covers it");
        }
    }
}

/// What firing a timer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// The order changed.
    Changed,
    /// Nothing to do: the order moved on, or another process acted first.
    Noop,
}

/// Fires one timer: re-reads the order and writes the timeout's change with a
/// version check.
pub async fn fire(orders: &Orders, t: &Timer) -> Result<Fired, StoreError> {
    if t.kind == TimerKind::Refund {
        let applied = orders.retry_refund(&t.order, t.status_version).await?;
        return Ok(if applied { Fired::Changed } else { Fired::Noop });
    }
    let now = orders.clock.now_ms();
    let order = match orders.store.get_order(&t.order).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Ok(Fired::Noop),
        Err(e) => return Err(e),
    };
    let exp = Expected {
        version: Some(order.version),
        status_version: None,
    };
    let still = |s: Status| order.status == s && order.status_version == t.status_version;
    let by_system = |to: Status, reason: &str| {
        order.change_status(to, exp, Some(reason.into()), Some(SYSTEM.into()), now)
    };
    let change = match t.kind {
        TimerKind::Payment if still(Status::PendingPayment) => {
            by_system(Status::Cancelled, PAYMENT_TIMEOUT)
        }
        TimerKind::Pickup if still(Status::Assigned) => by_system(Status::Ready, PICKUP_TIMEOUT),
        TimerKind::Late => Ok(order.late_alert(now)),
        _ => Ok(Change::Unchanged),
    };
    let Ok(Change::Changed {
        order: next,
        mut events,
    }) = change
    else {
        return Ok(Fired::Noop);
    };
    let packages = match orders.follow_packages(&order, &next, &mut events).await {
        Ok(p) => p,
        Err(OrderError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
        Err(OrderError::Internal(e)) => return Err(StoreError::Corrupt(e)),
        // The packages refuse it (one is on its way): the order stays as it is.
        Err(_) => return Ok(Fired::Noop),
    };
    match orders
        .write_with(&next, order.version, &packages, &events)
        .await
    {
        Ok(()) => Ok(Fired::Changed),
        Err(StoreError::Conflict) => Ok(Fired::Noop),
        Err(e) => Err(e),
    }
}

async fn fire_counted(orders: &Orders, t: &Timer, via: &'static str) {
    let outcome = match fire(orders, t).await {
        Ok(Fired::Changed) => "fired",
        Ok(Fired::Noop) => "noop",
        Err(e) => {
            tracing::warn!(error = %e, order = %t.order, kind = %t.kind, "a timeout failed; the sweep retries it");
            "failed"
        }
    };
    metrics::counter!("tracker_timeouts_total", "kind" => t.kind.as_str(), "outcome" => outcome, "via" => via)
        .increment(1);
}

/// Fires every due timer of the queue; returns how many were claimed.
pub async fn poll_once(orders: &Orders) -> usize {
    let now = orders.clock.now_ms();
    let due = match orders.timers.claim_due(now, BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "delay queue poll failed");
            return 0;
        }
    };
    for t in &due {
        fire_counted(orders, t, "queue").await;
    }
    due.len()
}

/// Looks in the store for timeouts that are due but were not fired (the
/// queue lost them), fires them, repairs the pool and the stock, and forgets
/// long-silent riders.
pub async fn sweep(orders: &Orders) {
    let cfg = &orders.cfg;
    let now = orders.clock.now_ms();
    let store = &orders.store;
    let timer = |kind, o: &Order| Timer {
        kind,
        order: o.id.clone(),
        status_version: o.status_version,
        due: now,
    };
    let mut due = Vec::new();
    match store
        .orders_in(Status::PendingPayment, now - ms(cfg.payment_timeout), BATCH)
        .await
    {
        Ok(os) => due.extend(
            os.iter()
                .filter(|o| o.created_at + ms(cfg.payment_timeout) <= now)
                .map(|o| timer(TimerKind::Payment, o)),
        ),
        Err(e) => tracing::warn!(error = %e, "sweep: unpaid orders"),
    }
    match store
        .orders_in(Status::Assigned, now - ms(cfg.pickup_timeout), BATCH)
        .await
    {
        Ok(os) => due.extend(os.iter().map(|o| timer(TimerKind::Pickup, o))),
        Err(e) => tracing::warn!(error = %e, "sweep: unpicked orders"),
    }
    match store.overdue_orders(now, BATCH).await {
        Ok(os) => due.extend(os.iter().map(|o| timer(TimerKind::Late, o))),
        Err(e) => tracing::warn!(error = %e, "sweep: overdue orders"),
    }
    for t in &due {
        fire_counted(orders, t, "sweep").await;
    }
    super::pool::repair(orders).await;
    orders.repair_stock().await;
    orders.sweep_refunds(BATCH).await;
    let forget_before = now - 10 * ms(cfg.rider_stale);
    if let Err(e) = orders.dispatch.forget_riders(forget_before).await {
        tracing::warn!(error = %e, "sweep: forgetting silent riders");
    }
    if let Ok(n) = orders.timers.waiting().await {
        metrics::gauge!("tracker_timers_waiting").set(n as f64);
    }
}

/// Polls the delay queue and sweeps the store until `stop`.
pub async fn run(orders: Orders, stop: CancellationToken) {
    let cfg = orders.cfg.clone();
    let mut poll = tokio::time::interval(cfg.poll_every);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep_tick = tokio::time::interval(cfg.sweep_every);
    sweep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = poll.tick() => {
                // A full batch means more may be due: go again at once.
                while poll_once(&orders).await == BATCH && !stop.is_cancelled() {}
            }
            _ = sweep_tick.tick() => sweep(&orders).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_domain::{NewOrder, Point};

    #[test]
    fn waiting_states_get_their_timers() {
        let cfg = DispatchConfig {
            payment_timeout: Duration::from_secs(60),
            pickup_timeout: Duration::from_secs(30),
            ..Default::default()
        };
        let p = Point { lat: 1.0, lon: 1.0 };
        let new = NewOrder {
            biz_order_no: "S".into(),
            biz_type: "t".into(),
            customer_id: "c".into(),
            pickup: p,
            dropoff: p,
            promised_at: Some(500_000),
            route: None,
            ..Default::default()
        };
        let mut o = Order::new("7".into(), new, 1_000);
        let kinds: Vec<(TimerKind, i64)> = timers_for(&o, &cfg)
            .iter()
            .map(|t| (t.kind, t.due))
            .collect();
        assert_eq!(
            kinds,
            [(TimerKind::Payment, 61_000), (TimerKind::Late, 500_000)]
        );
        o.status = Status::Assigned;
        o.updated_at = 2_000;
        o.late_alert_at = Some(1);
        let kinds: Vec<(TimerKind, i64)> = timers_for(&o, &cfg)
            .iter()
            .map(|t| (t.kind, t.due))
            .collect();
        assert_eq!(
            kinds,
            [(TimerKind::Pickup, 32_000)],
            "late alert already raised"
        );
        o.status = Status::Delivered;
        assert!(timers_for(&o, &cfg).is_empty());
    }
}
