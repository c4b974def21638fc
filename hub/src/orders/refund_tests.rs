//! Refunds through the use cases, with the relay run by hand: a refund
//! waits while the order's events sit in the outbox, then applies once; the
//! stock comes back once; bad refunds are refused.

use super::stock_tests::{T0, level, order_of, orders_on, set, to, walk};
use super::timeouts;
use super::*;
use crate::test_support::sqlite_store;
use tracker_backend::EventLog;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_backend::relay::relay_once;
use tracker_domain::clock::ManualClock;
use tracker_domain::refund::{REFUNDED, RefundRequest, RefundState};
use tracker_domain::{Order, Status};

fn refund(no: &str) -> RefundRequest {
    RefundRequest {
        biz_refund_no: no.into(),
        reason: Some("customer asked".into()),
        amount: Some(1990),
    }
}

fn state(o: &Order) -> Option<RefundState> {
    o.refund.as_ref().map(|r| r.state)
}

/// Lets the spawned retry schedules land, then fires what is due at `at`.
async fn retries_at(orders: &Orders, clock: &ManualClock, at: i64) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    clock.set(at);
    while timeouts::poll_once(orders).await > 0 {}
}

#[tokio::test]
async fn a_refund_waits_for_the_outbox_then_cancels_once_and_gives_the_stock_back() {
    let (store, _dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store.clone(), stock, &clock);
    let log = MemoryLog::new(MemoryLogConfig::default());
    set(&orders, "rf", 5).await;
    let (o, _) = orders.create(order_of("rf-1", &[("rf", 2)])).await.unwrap();
    let o = walk(&orders, o, &["paid"]).await;
    assert_eq!(level(&orders, "rf").await, (3, 2, 0));

    // The relay is behind: the order's created and paid events wait.
    let pending = orders.refund(&o.id, refund("RF-1")).await.unwrap();
    assert_eq!(state(&pending), Some(RefundState::Pending));
    assert_eq!(pending.status, Status::Paid);
    let again = orders.refund(&o.id, refund("RF-1")).await.unwrap();
    assert_eq!(state(&again), Some(RefundState::Pending), "the same refund");
    let other = orders.refund(&o.id, refund("RF-2")).await;
    assert!(
        matches!(
            other,
            Err(OrderError::Conflict {
                code: "refund_exists",
                ..
            })
        ),
        "{other:?}"
    );
    retries_at(&orders, &clock, T0 + 300).await;
    let still = orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(state(&still), Some(RefundState::Pending), "still waiting");
    assert_eq!(level(&orders, "rf").await, (3, 2, 0));

    // The relay catches up; the next retry applies the refund.
    while relay_once(&*store, &*log).await.unwrap() > 0 {}
    retries_at(&orders, &clock, T0 + 60_000).await;
    let done = orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(state(&done), Some(RefundState::Done));
    assert_eq!(
        (done.status, done.cancel_reason.as_deref()),
        (Status::Cancelled, Some(REFUNDED))
    );
    assert_eq!(level(&orders, "rf").await, (5, 0, 0), "the stock is back");

    // Its cancel and the refund follow the earlier events in the log.
    while relay_once(&*store, &*log).await.unwrap() > 0 {}
    let read = log.read(&o.id, Some(0), 100).await.unwrap();
    let kinds: Vec<String> = read
        .missed
        .unwrap()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
            format!(
                "{}:{}",
                v["t"],
                v["status"].as_str().or(v["state"].as_str()).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "\"status\":pending_payment",
            "\"status\":paid",
            "\"status\":cancelled",
            "\"refund\":done"
        ]
    );
    let after = orders.refund(&o.id, refund("RF-1")).await.unwrap();
    assert_eq!(state(&after), Some(RefundState::Done));
    assert_eq!(level(&orders, "rf").await, (5, 0, 0), "once");
}

#[tokio::test]
async fn a_timed_out_order_records_the_refund_and_bad_refunds_are_refused() {
    let (store, _dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store.clone(), stock, &clock);
    let log = MemoryLog::new(MemoryLogConfig::default());
    set(&orders, "tm", 1).await;
    let (o, _) = orders.create(order_of("tm-1", &[("tm", 1)])).await.unwrap();
    clock.set(T0 + 61_000);
    while timeouts::poll_once(&orders).await > 0 {}
    let late = orders
        .change_status(&o.id, to("paid", 2), "admin:ops")
        .await;
    assert!(matches!(
        late,
        Err(OrderError::Conflict {
            code: "refund_required",
            ..
        })
    ));
    assert_eq!(
        level(&orders, "tm").await,
        (1, 0, 0),
        "the timeout gave it back"
    );
    while relay_once(&*store, &*log).await.unwrap() > 0 {}
    let done = orders.refund(&o.id, refund("RF-T")).await.unwrap();
    let r = done.refund.as_ref().unwrap();
    assert_eq!(
        (r.state, r.outcome.as_deref()),
        (RefundState::Done, Some("recorded"))
    );
    assert_eq!(
        level(&orders, "tm").await,
        (1, 0, 0),
        "not given back twice"
    );

    // A delivered order; and requests out of bounds.
    set(&orders, "dl", 1).await;
    let (d, _) = orders.create(order_of("dl-1", &[("dl", 1)])).await.unwrap();
    let steps = [
        "paid",
        "preparing",
        "ready",
        "assigned",
        "picked_up",
        "delivered",
    ];
    let d = walk(&orders, d, &steps).await;
    let r = orders.refund(&d.id, refund("RF-D")).await;
    assert!(
        matches!(
            r,
            Err(OrderError::Conflict {
                code: "not_refundable",
                ..
            })
        ),
        "{r:?}"
    );
    for bad in [
        RefundRequest {
            biz_refund_no: String::new(),
            ..refund("x")
        },
        RefundRequest {
            amount: Some(-5),
            ..refund("x")
        },
        RefundRequest {
            reason: Some("r".repeat(2000)),
            ..refund("x")
        },
    ] {
        let r = orders.refund(&o.id, bad).await;
        assert!(matches!(r, Err(OrderError::BadRequest(_))), "{r:?}");
    }
    assert!(matches!(
        orders.refund("nope", refund("x")).await,
        Err(OrderError::NotFound)
    ));
}

#[tokio::test]
async fn the_sweep_applies_a_refund_whose_retry_was_lost() {
    let (store, _dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store.clone(), stock, &clock);
    let log = MemoryLog::new(MemoryLogConfig::default());
    let (o, _) = orders.create(order_of("sw-1", &[])).await.unwrap();
    let pending = orders.refund(&o.id, refund("RF-S")).await.unwrap();
    assert_eq!(state(&pending), Some(RefundState::Pending));
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The queue lost the retry (a process died between claim and write).
    let lost = orders.timers.claim_due(i64::MAX, 100).await.unwrap();
    assert!(lost.iter().any(|t| t.order == o.id), "{lost:?}");
    while relay_once(&*store, &*log).await.unwrap() > 0 {}
    clock.set(T0 + 5_000);
    timeouts::sweep(&orders).await;
    let done = orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(state(&done), Some(RefundState::Done));
    assert_eq!(done.status, Status::Cancelled);
}

#[tokio::test]
async fn a_refund_the_packages_will_not_let_cancel_is_refused_not_retried() {
    let (store, _dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store.clone(), stock, &clock);
    let log = MemoryLog::new(MemoryLogConfig::default());
    let new = serde_json::from_value(serde_json::json!({
        "biz_order_no": "pk-1", "biz_type": "shop", "customer_id": "c1",
        "pickup": {"lat": 23.13, "lon": 113.26}, "dropoff": {"lat": 23.14, "lon": 113.27},
        "items": [{"sku": "pk", "qty": 1}],
        "packages": [{"package_no": "P1", "items": [{"sku": "pk", "qty": 1}]}],
    }))
    .unwrap();
    let (o, _) = orders.create(new).await.unwrap();
    let o = walk(&orders, o, &["paid"]).await;
    let shipped = super::commands::PackageChange {
        to: "shipped".into(),
        version: None,
        reason: None,
    };
    orders
        .move_package(&o.id, "P1", shipped, "admin:ops")
        .await
        .unwrap();
    while relay_once(&*store, &*log).await.unwrap() > 0 {}
    let r = orders.refund(&o.id, refund("RF-P")).await.unwrap();
    let refund = r.refund.as_ref().unwrap();
    assert_eq!(refund.state, RefundState::Refused, "{refund:?}");
    assert!(
        refund.outcome.as_deref().unwrap().contains("P1"),
        "{refund:?}"
    );
    assert_eq!(r.status, Status::Paid, "the order stays as it was");
    clock.set(T0 + 10_000);
    timeouts::sweep(&orders).await;
    let after = orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(after.version, r.version, "the sweep leaves it alone");
}
