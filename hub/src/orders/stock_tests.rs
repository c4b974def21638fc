//! Stock through the order use cases: never oversold under concurrent
//! creates, given back or sold exactly once whoever ends the order, and
//! repaired by the sweep. In process (SQLite) and on Redis + PostgreSQL.

use super::commands::Assignment;
use super::stock::{RESERVATION_GRACE, SetStock, key_of};
use super::timeouts::{self, Fired};
use super::*;
use crate::test_support::sqlite_store;
use tracker_backend::stock::{StockLevel, StockLine};
use tracker_backend::store::postgres::PostgresStore;
use tracker_backend::store::postgres::testing::{TestDatabase, admin_url};
use tracker_backend::timers::{Timer, TimerKind};
use tracker_domain::clock::ManualClock;
use tracker_domain::{Expected, NewOrder, Order, Status};

pub(super) use crate::test_support::{T0, orders_on, to};

pub(super) fn order_of(no: &str, items: &[(&str, u32)]) -> NewOrder {
    let items: Vec<_> = items
        .iter()
        .map(|(sku, qty)| serde_json::json!({"sku": sku, "qty": qty}))
        .collect();
    serde_json::from_value(serde_json::json!({
        "biz_order_no": no, "biz_type": "shop", "customer_id": "c1",
        "pickup": {"lat": 23.13, "lon": 113.26}, "dropoff": {"lat": 23.14, "lon": 113.27},
        "items": items,
    }))
    .unwrap()
}

pub(super) async fn level(orders: &Orders, sku: &str) -> (i64, i64, i64) {
    let StockLevel {
        available,
        reserved,
        sold,
        ..
    } = orders.stock_level(sku).await.unwrap();
    (available, reserved, sold)
}

pub(super) async fn set(orders: &Orders, sku: &str, available: i64) {
    orders.set_stock(sku, SetStock { available }).await.unwrap();
}

pub(super) async fn walk(orders: &Orders, mut o: Order, steps: &[&str]) -> Order {
    for s in steps {
        o = if *s == "assigned" {
            let a = Assignment {
                rider_id: "r1".into(),
                rider_name: None,
                version: Some(o.version),
                status_version: None,
            };
            orders.assign(&o.id, a, "admin:ops").await.unwrap()
        } else {
            orders
                .change_status(&o.id, to(s, o.version), "admin:ops")
                .await
                .unwrap()
        };
    }
    o
}

/// The scenario: 1000 concurrent creates against a stock of 100,
/// then 10 cancels and 10 payment timeouts, a delivery, and orders of three
/// SKUs where one runs out.
async fn never_oversold(orders: Orders, clock: ManualClock, tag: &str) {
    let sku = format!("{tag}-hot");
    set(&orders, &sku, 100).await;
    let creates = (0..1000).map(|i| {
        let orders = orders.clone();
        let new = order_of(&format!("{tag}-{i}"), &[(&sku, 1)]);
        tokio::spawn(async move { orders.create(new).await })
    });
    let mut won = Vec::new();
    let mut short = 0;
    for c in creates {
        match c.await.unwrap() {
            Ok((o, true)) => won.push(o),
            Err(OrderError::OutOfStock { sku: s }) if s == sku => short += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((won.len(), short), (100, 900));
    assert_eq!(level(&orders, &sku).await, (0, 100, 0));

    let again = order_of(&won[0].biz_order_no, &[(&sku, 1)]);
    let (same, created) = orders.create(again).await.unwrap();
    assert!(!created && same.id == won[0].id);
    assert_eq!(level(&orders, &sku).await, (0, 100, 0), "reserved once");

    for o in &won[..10] {
        walk(&orders, o.clone(), &["cancelled"]).await;
    }
    assert_eq!(level(&orders, &sku).await, (10, 90, 0));
    let mut paid = Vec::new();
    for o in &won[20..] {
        paid.push(walk(&orders, o.clone(), &["paid"]).await);
    }
    clock.set(T0 + 61_000);
    while timeouts::poll_once(&orders).await > 0 {}
    for o in &won[10..20] {
        let now = orders.store.get_order(&o.id).await.unwrap();
        assert_eq!(now.status, Status::Cancelled, "the payment timeout");
    }
    assert_eq!(level(&orders, &sku).await, (20, 80, 0));

    let steps = ["preparing", "ready", "assigned", "picked_up", "delivered"];
    walk(&orders, paid[0].clone(), &steps).await;
    assert_eq!(level(&orders, &sku).await, (20, 79, 1), "delivered is sold");

    let (a, b, c) = (format!("{tag}-a"), format!("{tag}-b"), format!("{tag}-c"));
    for s in [&a, &b] {
        set(&orders, s, 5).await;
    }
    set(&orders, &c, 1).await;
    let three = [(a.as_str(), 1), (b.as_str(), 2), (c.as_str(), 1)];
    orders
        .create(order_of(&format!("{tag}-three-1"), &three))
        .await
        .unwrap();
    for i in 2..5 {
        let refused = orders
            .create(order_of(&format!("{tag}-three-{i}"), &three))
            .await;
        assert!(
            matches!(&refused, Err(OrderError::OutOfStock { sku }) if *sku == c),
            "{refused:?}"
        );
    }
    assert_eq!(
        level(&orders, &a).await,
        (4, 1, 0),
        "nothing for the refused"
    );
    assert_eq!(level(&orders, &b).await, (3, 2, 0));
    assert_eq!(level(&orders, &c).await, (0, 1, 0));
    let bad = orders
        .create(order_of(&format!("{tag}-zero"), &[(&a, 0)]))
        .await;
    assert!(matches!(bad, Err(OrderError::BadRequest(_))), "{bad:?}");
}

#[tokio::test]
async fn in_process_stock_is_never_oversold() {
    let (store, _dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    never_oversold(orders_on(store, stock, &clock), clock, "mem").await;
}

/// The Redis of `TRACKER_TEST_REDIS_URL`, or `None` (skipping) / a panic (when required).
fn redis_url() -> Option<String> {
    match std::env::var("TRACKER_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("TRACKER_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
            panic!("TRACKER_TEST_REDIS_URL is not set but TRACKER_TEST_REQUIRE_BACKENDS=1")
        }
        _ => {
            eprintln!("skipped: TRACKER_TEST_REDIS_URL is not set");
            None
        }
    }
}

#[tokio::test]
async fn stock_on_redis_and_postgres_is_never_oversold() {
    let (Some(admin), Some(redis)) = (admin_url(), redis_url()) else {
        return;
    };
    let db = TestDatabase::create(&admin).await;
    let pg = Arc::new(PostgresStore::open(&db.url).await.unwrap());
    let prefix = format!("test-{:x}", rand::random::<u64>());
    let stock = Arc::new(
        tracker_backend::stock::redis::RedisStock::connect(&redis, &prefix)
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(T0);
    never_oversold(orders_on(pg.clone(), stock, &clock), clock, "redis").await;
    pg.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn the_release_happens_once_when_timeout_cancel_and_sweep_race() {
    let (store, _dir) = sqlite_store().await;
    let stock: Arc<dyn Stock> = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    // Three processes on one store and one stock.
    let procs: Vec<Orders> = (0..3)
        .map(|_| orders_on(store.clone(), stock.clone(), &clock))
        .collect();
    set(&procs[0], "race", 30).await;
    let mut made = Vec::new();
    for i in 0..30 {
        let (o, _) = procs[0]
            .create(order_of(&format!("race-{i}"), &[("race", 1)]))
            .await
            .unwrap();
        made.push(o);
    }
    assert_eq!(level(&procs[0], "race").await, (0, 30, 0));
    clock.set(T0 + 61_000 + RESERVATION_GRACE.as_millis() as i64);
    let mut racers = Vec::new();
    for o in &made {
        let timer = Timer {
            kind: TimerKind::Payment,
            order: o.id.clone(),
            status_version: o.status_version,
            due: T0,
        };
        let (p0, p1, p2) = (procs[0].clone(), procs[1].clone(), procs[2].clone());
        let (id, v) = (o.id.clone(), o.version);
        racers.push(tokio::spawn(async move {
            // Whichever writes the cancel, the others find it done (a cancel
            // of a cancelled order is answered with it unchanged) or lose the
            // compare-and-set.
            let (fired, cancel, ()) = tokio::join!(
                timeouts::fire(&p0, &timer),
                p1.change_status(&id, to("cancelled", v), "admin:ops"),
                timeouts::sweep(&p2),
            );
            assert!(matches!(fired, Ok(Fired::Changed | Fired::Noop)));
            assert!(
                matches!(cancel, Ok(_) | Err(OrderError::VersionConflict)),
                "{cancel:?}"
            );
        }));
    }
    for r in racers {
        r.await.unwrap();
    }
    timeouts::sweep(&procs[2]).await;
    for o in &made {
        let now = procs[0].store.get_order(&o.id).await.unwrap();
        assert_eq!(now.status, Status::Cancelled);
    }
    assert_eq!(
        level(&procs[0], "race").await,
        (30, 0, 0),
        "every unit back, none twice"
    );
}

#[tokio::test]
async fn the_sweep_repairs_what_a_crash_left() {
    let (store, _dir) = sqlite_store().await;
    let stock: Arc<dyn Stock> = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store.clone(), stock.clone(), &clock);
    set(&orders, "crash", 10).await;
    // Crashed after the order's cancel was written, before the stock was told.
    let (o, _) = orders
        .create(order_of("crash-1", &[("crash", 2)]))
        .await
        .unwrap();
    let exp = Expected {
        version: Some(o.version),
        status_version: None,
    };
    let tracker_domain::order::Change::Changed { order, events } = o
        .change_status(Status::Cancelled, exp, None, None, T0 + 1)
        .unwrap()
    else {
        panic!("a cancel changes the order")
    };
    store
        .update_order(&order, o.version, &events)
        .await
        .unwrap();
    // Crashed after reserving, before the order was written.
    let ghost = key_of("shop", "crash-ghost");
    let line = StockLine {
        sku: "crash".into(),
        qty: 3,
    };
    stock.reserve(&ghost, &[line], T0 + 2).await.unwrap();
    // And an order under way, which keeps its reservation.
    orders
        .create(order_of("crash-2", &[("crash", 1)]))
        .await
        .unwrap();
    assert_eq!(level(&orders, "crash").await, (4, 6, 0));

    clock.set(T0 + 1_000);
    orders.repair_stock().await;
    assert_eq!(
        level(&orders, "crash").await,
        (4, 6, 0),
        "within the grace nothing moves"
    );
    clock.set(T0 + 2 + RESERVATION_GRACE.as_millis() as i64 + 1);
    orders.repair_stock().await;
    orders.repair_stock().await;
    assert_eq!(level(&orders, "crash").await, (9, 1, 0));
    // The forgotten create, retried, reserves anew.
    orders
        .create(order_of("crash-ghost", &[("crash", 3)]))
        .await
        .unwrap();
    assert_eq!(level(&orders, "crash").await, (6, 4, 0));
}

#[tokio::test]
async fn a_repeated_create_answers_its_order_after_the_stock_ran_out() {
    let (store, _dir) = sqlite_store().await;
    let stock: Arc<dyn Stock> = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    let orders = orders_on(store, stock, &clock);
    // Made before the SKU was stock-controlled: it holds no reservation.
    let (first, _) = orders
        .create(order_of("late-set", &[("late", 2)]))
        .await
        .unwrap();
    set(&orders, "late", 1).await;
    let (again, created) = orders
        .create(order_of("late-set", &[("late", 2)]))
        .await
        .unwrap();
    assert!(
        !created && again.id == first.id,
        "the same order, not out_of_stock"
    );
    assert_eq!(level(&orders, "late").await, (1, 0, 0));
    let other = orders.create(order_of("late-other", &[("late", 2)])).await;
    assert!(matches!(other, Err(OrderError::OutOfStock { .. })));
}
