//! The use cases without sockets: in-process backends, a SQLite file, a clock
//! the test moves by hand.

use super::timeouts::{self, Fired};
use super::*;
use crate::auth::Role;
use crate::orders::commands::{Assignment, StatusChange};
use crate::test_support::{T0, claims, orders_on, sqlite_store, to};
use tracker_backend::timers::{Timer, TimerKind};
use tracker_domain::clock::ManualClock;
use tracker_domain::order::ChangeError;
use tracker_domain::{EventBody, NewOrder, Order, Point, Status};

struct Fixture {
    orders: Orders,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let (store, dir) = sqlite_store().await;
    let stock = Arc::new(store.stock());
    let clock = ManualClock::new(T0);
    Fixture {
        orders: orders_on(store, stock, &clock),
        clock,
        _dir: dir,
    }
}

fn new_order(key: &str) -> NewOrder {
    let p = Point {
        lat: 23.13,
        lon: 113.26,
    };
    NewOrder {
        biz_order_no: key.into(),
        biz_type: "grocery".into(),
        customer_id: "c1".into(),
        pickup: p,
        dropoff: p,
        promised_at: None,
        route: None,
        ..Default::default()
    }
}

impl Fixture {
    /// A new order walked to `ready`.
    async fn ready_order(&self, key: &str) -> Order {
        let (mut o, _) = self.orders.create(new_order(key)).await.unwrap();
        for s in ["paid", "preparing", "ready"] {
            o = self
                .orders
                .change_status(&o.id, to(s, o.version), "admin:ops")
                .await
                .unwrap();
        }
        o
    }

    async fn open_ids(&self) -> Vec<String> {
        self.orders.dispatch.open_ids().await.unwrap()
    }
}

#[tokio::test]
async fn create_is_idempotent_by_business_key_and_schedules_the_payment_timer() {
    let f = fixture().await;
    let (a, created) = f.orders.create(new_order("S-1")).await.unwrap();
    assert!(created);
    assert_eq!(a.status, Status::PendingPayment);
    let (b, again) = f.orders.create(new_order("S-1")).await.unwrap();
    assert!(!again);
    assert_eq!(a.id, b.id);
    assert_eq!(
        f.orders.timers.waiting().await.unwrap(),
        1,
        "one payment timer"
    );
    let bad = NewOrder {
        biz_order_no: String::new(),
        ..new_order("x")
    };
    assert!(matches!(
        f.orders.create(bad).await,
        Err(OrderError::BadRequest(_))
    ));
}

#[tokio::test]
async fn status_changes_refuse_stale_versions_illegal_edges_and_bad_requests() {
    let f = fixture().await;
    let (o, _) = f.orders.create(new_order("S-2")).await.unwrap();
    let stale = f
        .orders
        .change_status(&o.id, to("paid", o.version + 5), "admin:ops")
        .await;
    assert!(matches!(
        stale,
        Err(OrderError::Change(ChangeError::Stale { .. }))
    ));
    let illegal = f
        .orders
        .change_status(&o.id, to("delivered", o.version), "admin:ops")
        .await;
    assert!(matches!(
        illegal,
        Err(OrderError::Change(ChangeError::Illegal { .. }))
    ));
    let unknown = f
        .orders
        .change_status(&o.id, to("teleported", o.version), "admin:ops")
        .await;
    assert!(matches!(unknown, Err(OrderError::BadRequest(_))));
    let no_version = StatusChange {
        version: None,
        ..to("paid", 0)
    };
    assert!(matches!(
        f.orders.change_status(&o.id, no_version, "admin:ops").await,
        Err(OrderError::BadRequest(_))
    ));
    let long = StatusChange {
        reason: Some("x".repeat(2000)),
        ..to("cancelled", o.version)
    };
    assert!(matches!(
        f.orders.change_status(&o.id, long, "admin:ops").await,
        Err(OrderError::BadRequest(_))
    ));
    assert!(matches!(
        f.orders
            .change_status("nope", to("paid", 1), "admin:ops")
            .await,
        Err(OrderError::NotFound)
    ));
    let paid = f
        .orders
        .change_status(&o.id, to("paid", o.version), "admin:ops")
        .await
        .unwrap();
    assert_eq!((paid.status, paid.version), (Status::Paid, o.version + 1));
}

#[tokio::test]
async fn the_pool_follows_every_write() {
    let f = fixture().await;
    let o = f.ready_order("S-3").await;
    assert_eq!(f.open_ids().await, [o.id.as_str()], "ready joins the pool");
    let assign = Assignment {
        rider_id: "r1".into(),
        rider_name: None,
        version: Some(o.version),
        status_version: None,
    };
    let a = f.orders.assign(&o.id, assign, "admin:ops").await.unwrap();
    assert_eq!(a.status, Status::Assigned);
    assert!(f.open_ids().await.is_empty(), "assigned leaves the pool");
}

#[tokio::test]
async fn of_many_concurrent_grabs_exactly_one_wins() {
    let f = fixture().await;
    let o = f.ready_order("S-4").await;
    let grabs = (0..8).map(|i| {
        let orders = f.orders.clone();
        let id = o.id.clone();
        tokio::spawn(async move {
            orders
                .grab(&claims(&format!("r{i}"), Role::Rider), &id)
                .await
        })
    });
    let mut won = Vec::new();
    for g in grabs {
        match g.await.unwrap() {
            Ok(order) => won.push(order),
            Err(OrderError::Conflict { code, .. }) => assert_eq!(code, "already_taken"),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(won.len(), 1, "{won:?}");
    let rider = won[0].rider_id.clone().unwrap();
    let again = f
        .orders
        .grab(&claims(&rider, Role::Rider), &o.id)
        .await
        .unwrap();
    assert_eq!(
        again.version, won[0].version,
        "a retry of one's own grab changes nothing"
    );
    assert!(matches!(
        f.orders.grab(&claims("c1", Role::Customer), &o.id).await,
        Err(OrderError::Forbidden(_))
    ));
    let (fresh, _) = f.orders.create(new_order("S-5")).await.unwrap();
    assert!(matches!(
        f.orders.grab(&claims("r1", Role::Rider), &fresh.id).await,
        Err(OrderError::Conflict {
            code: "not_open",
            ..
        })
    ));
}

#[tokio::test]
async fn a_payment_that_loses_to_its_timeout_is_a_refund() {
    let f = fixture().await;
    let (o, _) = f.orders.create(new_order("S-6")).await.unwrap();
    assert_eq!(timeouts::poll_once(&f.orders).await, 0, "not due yet");
    f.clock.set(T0 + 61_000);
    assert_eq!(timeouts::poll_once(&f.orders).await, 1);
    let now = f.orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(now.status, Status::Cancelled);
    let late = f
        .orders
        .change_status(&o.id, to("paid", now.version), "admin:ops")
        .await;
    assert!(matches!(
        late,
        Err(OrderError::Conflict {
            code: "refund_required",
            ..
        })
    ));
    let after = f.orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(after.status, Status::Cancelled, "the order stays cancelled");
    let outbox = f.orders.store.outbox_fetch(100).await.unwrap();
    let alert = outbox
        .iter()
        .flat_map(|i| &i.events)
        .any(|e| matches!(e, EventBody::Alert { kind, .. } if kind == "refund_required"));
    assert!(alert, "the log is told the money must go back");
}

#[tokio::test]
async fn a_timer_fires_once_however_often_it_is_handed_out() {
    let f = fixture().await;
    let o = f.ready_order("S-7").await;
    let won = f
        .orders
        .grab(&claims("r1", Role::Rider), &o.id)
        .await
        .unwrap();
    let timer = Timer {
        kind: TimerKind::Pickup,
        order: o.id.clone(),
        status_version: won.status_version,
        due: T0,
    };
    f.clock.set(T0 + 31_000);
    assert_eq!(
        timeouts::fire(&f.orders, &timer).await.unwrap(),
        Fired::Changed
    );
    assert_eq!(
        timeouts::fire(&f.orders, &timer).await.unwrap(),
        Fired::Noop
    );
    let back = f.orders.store.get_order(&o.id).await.unwrap();
    assert_eq!(back.status, Status::Ready);
    assert_eq!(f.open_ids().await, [o.id.as_str()], "back in the pool");
}

#[tokio::test]
async fn the_timeouts_job_fires_due_timers_and_stops_with_its_signal() {
    let mut f = fixture().await;
    let mut cfg = (*f.orders.cfg).clone();
    cfg.poll_every = Duration::from_millis(10);
    f.orders.cfg = Arc::new(cfg);
    let (o, _) = f.orders.create(new_order("S-8")).await.unwrap();
    f.clock.set(T0 + 61_000);
    let stop = tokio_util::sync::CancellationToken::new();
    let job = tokio::spawn(timeouts::run(f.orders.clone(), stop.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.orders.store.get_order(&o.id).await.unwrap().status != Status::Cancelled {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the payment timeout never fired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn each_role_reads_what_it_may() {
    let f = fixture().await;
    let o = f.ready_order("S-9").await;
    f.orders
        .grab(&claims("r1", Role::Rider), &o.id)
        .await
        .unwrap();
    let admin = f
        .orders
        .get(&claims("ops", Role::Admin), &o.id, Default::default())
        .await
        .unwrap();
    assert_eq!(admin.rider_id.as_deref(), Some("r1"));
    let customer = f
        .orders
        .get(&claims("c1", Role::Customer), &o.id, Default::default())
        .await
        .unwrap();
    assert_eq!(
        customer.rider_id, None,
        "customers get the name, not the id"
    );
    assert_eq!(customer.rider_name.as_deref(), Some("r1"));
    for stranger in [claims("c2", Role::Customer), claims("r2", Role::Rider)] {
        assert!(matches!(
            f.orders.get(&stranger, &o.id, Default::default()).await,
            Err(OrderError::Forbidden(_))
        ));
    }
    assert!(matches!(
        f.orders
            .get(&claims("ops", Role::Admin), "", Default::default())
            .await,
        Err(OrderError::BadRequest(_))
    ));
    let trip = f
        .orders
        .trip(&claims("c1", Role::Customer), &o.id)
        .await
        .unwrap();
    assert!(trip.points.is_empty() && trip.picked_up_at.is_none());
    assert_eq!(f.orders.active(None).await.unwrap().len(), 1);
}
