//! The contract every [`Store`] implementation must meet, as one test story.

use super::{Store, StoreError, TrackPoint};
use std::collections::HashSet;
use std::sync::Arc;
use tracker_domain::order::Change;
use tracker_domain::{EventBody, Expected, NewOrder, Order, Point, Status};

fn new_order(key: &str) -> Order {
    let id = format!("{}", rand::random::<u64>() >> 1);
    let new = NewOrder {
        biz_order_no: key.into(),
        biz_type: "grocery".into(),
        customer_id: "c1".into(),
        pickup: Point {
            lat: 23.1,
            lon: 113.2,
        },
        dropoff: Point {
            lat: 23.2,
            lon: 113.3,
        },
        promised_at: Some(5),
        route: None,
        ..Default::default()
    };
    Order::new(id, new, 1000)
}

fn key() -> String {
    format!("S-{:x}", rand::random::<u64>())
}

/// Runs every clause of the contract against `store`.
pub async fn run<S: Store>(store: Arc<S>) {
    create_is_idempotent_by_business_key(&*store).await;
    concurrent_creates_make_one_order(store.clone()).await;
    updates_compare_and_set_on_version(&*store).await;
    outbox_holds_events_until_acked(&*store).await;
    held_orders_keep_rider_name_and_pick_up_and_list_as_active(&*store).await;
    track_points_are_idempotent_and_read_oldest_first(&*store).await;
    sweeps_find_orders_by_status_age_and_promise(&*store).await;
    a_share_revocation_is_kept_with_its_event(&*store).await;
    a_trip_keeps_its_route_episodes_and_arrivals(&*store).await;
    the_eta_model_is_replaced_by_key(&*store).await;
    goods_packages_and_history_are_kept(&*store).await;
    lookups_page_newest_first(&*store).await;
    order_keys_page_in_creation_order(&*store).await;
    node_ids_are_leased_once_and_keep_their_mark(&*store).await;
}

fn applied(c: Change) -> (Order, Vec<EventBody>) {
    match c {
        Change::Changed { order, events } => (*order, events),
        Change::Unchanged => panic!("expected a change"),
    }
}

async fn a_trip_keeps_its_route_episodes_and_arrivals(store: &dyn Store) {
    let mut o = new_order(&key());
    let route = vec![
        o.pickup,
        Point {
            lat: 23.15,
            lon: 113.25,
        },
        o.dropoff,
    ];
    o.route = Some(route.clone());
    let (o, _) = store.create_order(&o, &[]).await.unwrap();
    let back = store.get_order(&o.id).await.unwrap();
    assert_eq!(back.route.as_ref(), Some(&route));

    let (raised, events) =
        applied(o.raise_alert("stalled", 50, serde_json::json!({"secs": 300}), 7, 51));
    store
        .update_order(&raised, o.version, &events)
        .await
        .unwrap();
    let alerting = store.alerting_orders(10_000).await.unwrap();
    let listed = alerting
        .iter()
        .find(|a| a.id == o.id)
        .expect("listed while open");
    assert_eq!(listed.alerts["stalled"].basis, 7);
    assert_eq!(listed.open_alerts().count(), 1);

    let (cleared, events) =
        applied(raised.clear_alert("stalled", 60, serde_json::Value::Null, 9, 61));
    store
        .update_order(&cleared, raised.version, &events)
        .await
        .unwrap();
    let (arrived, events) = applied(cleared.arrive(tracker_domain::Stop::Dropoff, 70, 71));
    store
        .update_order(&arrived, cleared.version, &events)
        .await
        .unwrap();
    let (rerouted, events) = applied(arrived.set_route(None, 72).unwrap());
    store
        .update_order(&rerouted, arrived.version, &events)
        .await
        .unwrap();
    let back = store.get_order(&o.id).await.unwrap();
    assert!(!back.alerts["stalled"].open, "the episode's end is kept");
    assert_eq!(back.arrived_dropoff_at, Some(70));
    assert_eq!(back.route, None);
    assert!(
        !store
            .alerting_orders(10_000)
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == o.id),
        "no longer listed once cleared"
    );
}

async fn the_eta_model_is_replaced_by_key(store: &dyn Store) {
    use super::ModelEntry;
    let k = key();
    let entry = |value: f64, updated_at: i64| ModelEntry {
        key: k.clone(),
        value,
        weight: 2.0,
        updated_at,
    };
    store.model_save(&[entry(4.5, 1)]).await.unwrap();
    store.model_save(&[entry(5.5, 2)]).await.unwrap();
    let all = store.model_load().await.unwrap();
    let mine: Vec<_> = all.iter().filter(|e| e.key == k).collect();
    assert_eq!(mine, vec![&entry(5.5, 2)]);
}

async fn a_share_revocation_is_kept_with_its_event(store: &dyn Store) {
    let (o, _) = store.create_order(&new_order(&key()), &[]).await.unwrap();
    assert_eq!(
        store.get_order(&o.id).await.unwrap().shares_revoked_at,
        None
    );
    let Change::Changed { order, events } = o.revoke_shares(42) else {
        panic!("a revocation always changes the order")
    };
    store
        .update_order(&order, o.version, &events)
        .await
        .unwrap();
    let back = store.get_order(&o.id).await.unwrap();
    assert_eq!(back.shares_revoked_at, Some(42));
    assert_eq!(back.version, o.version + 1);
    let queued = store.outbox_fetch(10_000).await.unwrap();
    assert!(
        queued
            .iter()
            .any(|i| i.order_id == o.id && i.events.contains(&EventBody::ShareRevoked { ts: 42 })),
        "the share_revoked event is in the outbox with the change"
    );
}

fn point(order: &str, ts: i64) -> TrackPoint {
    TrackPoint {
        order_id: order.into(),
        rider_id: "r1".into(),
        ts,
        lat: 23.0 + ts as f64 * 1e-6,
        lon: 113.0,
        speed: Some(3.5),
        heading: None,
        // Kept and read back, so trip reports can judge each fix.
        acc: Some(7.5),
    }
}

async fn track_points_are_idempotent_and_read_oldest_first(store: &dyn Store) {
    let (a, b) = (key(), key());
    store
        .insert_track_points(&[point(&a, 30), point(&a, 10), point(&b, 20)])
        .await
        .unwrap();
    // A redelivered batch (one old point, one new) stores only the new one.
    store
        .insert_track_points(&[point(&a, 10), point(&a, 20)])
        .await
        .unwrap();
    store.insert_track_points(&[]).await.unwrap();
    let trip = store.track_of(&a).await.unwrap();
    assert_eq!(
        trip.iter().map(|p| p.ts).collect::<Vec<_>>(),
        vec![10, 20, 30]
    );
    assert_eq!(trip[0], point(&a, 10));
    assert_eq!(store.track_of(&b).await.unwrap().len(), 1);
    assert!(store.track_of("nothing").await.unwrap().is_empty());

    // A large batch (several statements' worth) with repeats inside it and of
    // points already stored: each point once.
    let c = key();
    let big: Vec<TrackPoint> = (0..700).map(|i| point(&c, i % 600)).collect();
    store.insert_track_points(&big).await.unwrap();
    store.insert_track_points(&big[..300]).await.unwrap();
    let trip = store.track_of(&c).await.unwrap();
    assert_eq!(
        trip.iter().map(|p| p.ts).collect::<Vec<_>>(),
        (0..600).collect::<Vec<i64>>()
    );
}

/// A new order stored (with its creation event when `with_events`), then paid;
/// returns the order as created, the paid order, and the payment's events.
async fn stored_then_paid(store: &dyn Store, with_events: bool) -> (Order, Order, Vec<EventBody>) {
    let o = new_order(&key());
    let created = if with_events {
        vec![o.created_event()]
    } else {
        vec![]
    };
    store.create_order(&o, &created).await.unwrap();
    let Change::Changed {
        order: paid,
        events,
    } = o
        .change_status(Status::Paid, Expected::default(), None, None, 2000)
        .unwrap()
    else {
        panic!("pending_payment -> paid is a change")
    };
    store.update_order(&paid, o.version, &events).await.unwrap();
    (o, *paid, events)
}

async fn create_is_idempotent_by_business_key(store: &dyn Store) {
    let k = key();
    let o = new_order(&k);
    let (made, created) = store.create_order(&o, &[o.created_event()]).await.unwrap();
    assert!(created);
    assert_eq!(made, o);
    assert_eq!(store.get_order(&o.id).await.unwrap(), o);
    let again = new_order(&k);
    let (same, created) = store
        .create_order(&again, &[again.created_event()])
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(same.id, o.id);
    assert!(matches!(
        store.get_order(&again.id).await,
        Err(StoreError::NotFound)
    ));
    let mut other_type = new_order(&k);
    other_type.biz_type = "food".into();
    assert!(store.create_order(&other_type, &[]).await.unwrap().1);
}

async fn concurrent_creates_make_one_order<S: Store>(store: Arc<S>) {
    let k = key();
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (store, o) = (store.clone(), new_order(&k));
            tokio::spawn(async move { store.create_order(&o, &[o.created_event()]).await.unwrap() })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (o, c) = t.await.unwrap();
        ids.insert(o.id);
        created += usize::from(c);
    }
    assert_eq!(ids.len(), 1, "one order for one business key");
    assert_eq!(created, 1);
}

async fn updates_compare_and_set_on_version(store: &dyn Store) {
    let (o, paid, events) = stored_then_paid(store, false).await;
    assert_eq!(store.get_order(&o.id).await.unwrap(), paid);
    // A second writer that read the old version loses.
    assert!(matches!(
        store.update_order(&paid, o.version, &events).await,
        Err(StoreError::Conflict)
    ));
    let ghost = new_order(&key());
    assert!(matches!(
        store.update_order(&ghost, 1, &[]).await,
        Err(StoreError::NotFound)
    ));
}

async fn outbox_holds_events_until_acked(store: &dyn Store) {
    let (o, _, events) = stored_then_paid(store, true).await;
    let mine: Vec<_> = store
        .outbox_fetch(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.order_id == o.id)
        .collect();
    assert_eq!(mine.len(), 2);
    assert!(mine[0].id < mine[1].id);
    assert_eq!(mine[0].events, vec![o.created_event()]);
    assert_eq!(mine[1].events, events);
    store.outbox_ack(&[mine[0].id, mine[1].id]).await.unwrap();
    let left = store.outbox_fetch(10_000).await.unwrap();
    assert!(left.iter().all(|i| i.order_id != o.id));
}

async fn held_orders_keep_rider_name_and_pick_up_and_list_as_active(store: &dyn Store) {
    let rider = format!("r-{:x}", rand::random::<u64>());
    let mut held = new_order(&key());
    held.status = Status::Ready;
    store.create_order(&held, &[]).await.unwrap();
    let Change::Changed {
        order: assigned, ..
    } = held
        .assign(&rider, Some("Li Wei"), Expected::default(), None, 5)
        .unwrap()
    else {
        panic!("a change")
    };
    store
        .update_order(&assigned, held.version, &[])
        .await
        .unwrap();
    let mut done = new_order(&key());
    done.status = Status::Delivered;
    done.rider_id = Some(rider.clone());
    store.create_order(&done, &[]).await.unwrap();
    assert_eq!(
        store.rider_orders(&rider).await.unwrap(),
        vec![held.id.clone()]
    );
    assert!(store.rider_orders("nobody").await.unwrap().is_empty());

    let back = store.get_order(&held.id).await.unwrap();
    assert_eq!(back.rider_name.as_deref(), Some("Li Wei"));
    let Change::Changed { order: picked, .. } = back
        .change_status(Status::PickedUp, Expected::default(), None, None, 77)
        .unwrap()
    else {
        panic!("a change")
    };
    store
        .update_order(&picked, back.version, &[])
        .await
        .unwrap();
    assert_eq!(
        store.get_order(&held.id).await.unwrap().picked_up_at,
        Some(77)
    );

    let active = store.active_orders(100_000).await.unwrap();
    assert!(active.iter().any(|o| o.id == held.id));
    assert!(active.iter().all(|o| !o.status.is_terminal()));
    assert!(active.iter().all(|o| o.id != done.id));
    assert!(
        active
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at),
        "newest first"
    );
    assert_eq!(store.active_orders(1).await.unwrap().len(), 1);
}

async fn sweeps_find_orders_by_status_age_and_promise(store: &dyn Store) {
    let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.id).collect::<HashSet<_>>();
    // Created at 1000, promised at 5: unpaid, and overdue from 5 on.
    let (unpaid, _) = store.create_order(&new_order(&key()), &[]).await.unwrap();
    let old = ids(store
        .orders_in(Status::PendingPayment, 1001, 10_000)
        .await
        .unwrap());
    assert!(
        old.contains(&unpaid.id),
        "unpaid and older than the cut-off"
    );
    let young = ids(store
        .orders_in(Status::PendingPayment, 1000, 10_000)
        .await
        .unwrap());
    assert!(
        !young.contains(&unpaid.id),
        "changed at the cut-off is not older"
    );
    let paid = ids(store
        .orders_in(Status::Paid, i64::MAX, 10_000)
        .await
        .unwrap());
    assert!(!paid.contains(&unpaid.id), "another status");

    assert!(!ids(store.overdue_orders(4, 10_000).await.unwrap()).contains(&unpaid.id));
    assert!(ids(store.overdue_orders(5, 10_000).await.unwrap()).contains(&unpaid.id));
    // Once its alert is raised (a CAS write like any other) it is no longer listed.
    let Change::Changed { order, events } = unpaid.late_alert(7) else {
        panic!("late at 7")
    };
    store
        .update_order(&order, unpaid.version, &events)
        .await
        .unwrap();
    assert_eq!(
        store.get_order(&unpaid.id).await.unwrap().late_alert_at,
        Some(7)
    );
    assert!(!ids(store.overdue_orders(9, 10_000).await.unwrap()).contains(&unpaid.id));
}

fn goods(key: &str, customer: &str) -> Order {
    use tracker_domain::goods::{Item, NewPackage, PackedItem, Party};
    let item = |sku: &str, qty| Item {
        sku: sku.into(),
        name: Some(format!("{sku} name")),
        qty,
        weight_g: Some(250),
        volume_cm3: None,
    };
    let packed = |sku: &str, qty| PackedItem {
        sku: sku.into(),
        qty,
    };
    let new = NewOrder {
        biz_order_no: key.into(),
        biz_type: "parcel".into(),
        customer_id: customer.into(),
        recipient: Some(Party {
            name: "Li Wei".into(),
            phone: Some("+86 138 0013 8000".into()),
            address: Some("1 Tianhe Rd".into()),
            address_code: vec![
                "44".into(),
                "4401".into(),
                "440106".into(),
                "440106001".into(),
            ],
        }),
        notes: Some("ring twice".into()),
        metadata: serde_json::json!({"shop": 7}).as_object().cloned(),
        items: vec![item("A", 2), item("B", 1)],
        packages: vec![
            NewPackage {
                package_no: "P1".into(),
                items: vec![packed("A", 2)],
                carrier: Some("SF".into()),
                waybill: Some("SF123".into()),
            },
            NewPackage {
                package_no: "P2".into(),
                items: vec![packed("B", 1)],
                carrier: None,
                waybill: None,
            },
        ],
        ..Default::default()
    };
    new.validate().unwrap();
    Order::new(format!("{}", rand::random::<u64>() >> 1), new, 1000)
}

async fn goods_packages_and_history_are_kept(store: &dyn Store) {
    use tracker_domain::package::{PackageStatus, follow_order};
    let o = goods(&key(), "c-goods");
    let (o, created) = store.create_order(&o, &[o.created_event()]).await.unwrap();
    assert!(created);
    let read = store.get_order(&o.id).await.unwrap();
    assert_eq!((read.item_count, read.package_count), (2, 2));
    assert_eq!(read.items, None, "a plain read leaves the goods out");
    assert_eq!(read.packages, None);
    assert_eq!(read.recipient, o.recipient);
    assert_eq!(read.metadata, o.metadata);
    assert_eq!(read.notes.as_deref(), Some("ring twice"));
    assert_eq!(
        store.items_of(&o.id).await.unwrap(),
        o.items.clone().unwrap()
    );
    let packages = store.packages_of(&o.id).await.unwrap();
    assert_eq!(packages, o.packages.clone().unwrap());

    // P1 ships once the order is paid; a second writer from the same version loses.
    let (paid, ev) = applied(
        read.change_status(
            Status::Paid,
            Expected::default(),
            None,
            Some("admin:ops".into()),
            2000,
        )
        .unwrap(),
    );
    store.update_order(&paid, read.version, &ev).await.unwrap();
    let (shipped, ev) = packages[0]
        .change(
            PackageStatus::Shipped,
            Some(1),
            paid.status,
            None,
            None,
            2100,
        )
        .unwrap()
        .unwrap();
    store
        .update_package(&o.id, &shipped, std::slice::from_ref(&ev))
        .await
        .unwrap();
    assert!(matches!(
        store.update_package(&o.id, &shipped, &[ev]).await,
        Err(StoreError::Conflict)
    ));
    let mut ghost = shipped.clone();
    ghost.package_no = "P9".into();
    assert!(matches!(
        store.update_package(&o.id, &ghost, &[]).await,
        Err(StoreError::NotFound)
    ));

    // A cancel is refused while P1 is on its way; once P1 is back, it
    // cancels P2 (still `created`) in the same write.
    let now = store.packages_of(&o.id).await.unwrap();
    assert!(follow_order(&now, Status::Cancelled, None, 3000).is_err());
    let (cancelled, mut ev) = applied(
        paid.change_status(
            Status::Cancelled,
            Expected::default(),
            Some("shop".into()),
            Some("shop".into()),
            3000,
        )
        .unwrap(),
    );
    let (in_transit, e1) = now[0]
        .change(
            PackageStatus::InTransit,
            None,
            paid.status,
            None,
            None,
            2900,
        )
        .unwrap()
        .unwrap();
    let (rejected, e2) = in_transit
        .change(
            PackageStatus::Rejected,
            None,
            paid.status,
            Some("refused".into()),
            None,
            2950,
        )
        .unwrap()
        .unwrap();
    store
        .update_package(&o.id, &in_transit, &[e1])
        .await
        .unwrap();
    store.update_package(&o.id, &rejected, &[e2]).await.unwrap();
    let now = store.packages_of(&o.id).await.unwrap();
    let follow = follow_order(&now, Status::Cancelled, Some("shop"), 3000).unwrap();
    assert_eq!(follow.len(), 1);
    let (rows, evs): (Vec<_>, Vec<_>) = follow.into_iter().unzip();
    ev.extend(evs);
    // A package written from a stale version fails the whole change.
    let mut stale = rows.clone();
    stale[0].version += 5;
    assert!(matches!(
        store
            .update_order_and_packages(&cancelled, paid.version, &stale, &ev)
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.get_order(&o.id).await.unwrap().status, Status::Paid);
    store
        .update_order_and_packages(&cancelled, paid.version, &rows, &ev)
        .await
        .unwrap();
    let after = store.packages_of(&o.id).await.unwrap();
    assert_eq!(after[1].status, PackageStatus::Cancelled);
    assert_eq!(after[1].version, 2);

    let history = store.history_of(&o.id).await.unwrap();
    let steps: Vec<(Option<&str>, Option<&str>, &str)> = history
        .iter()
        .map(|h| (h.package.as_deref(), h.from.as_deref(), h.to.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            (None, None, "pending_payment"),
            (None, Some("pending_payment"), "paid"),
            (Some("P1"), Some("created"), "shipped"),
            (Some("P1"), Some("shipped"), "in_transit"),
            (Some("P1"), Some("in_transit"), "rejected"),
            (None, Some("paid"), "cancelled"),
            (Some("P2"), Some("created"), "cancelled"),
        ]
    );
    assert_eq!(history[1].by.as_deref(), Some("admin:ops"));
    assert_eq!(history[4].reason.as_deref(), Some("refused"));
    assert_eq!(history[5].version, cancelled.version);
    assert!(store.history_of("no-such-order").await.unwrap().is_empty());
}

async fn order_keys_page_in_creation_order(store: &dyn Store) {
    use super::Cursor;
    // Far ahead of every other clause's orders, so only these come after `from`.
    let base = 4_000_000_000_000 + i64::from(rand::random::<u16>()) * 100;
    let biz = key();
    let mut made = Vec::new();
    for i in 0..5 {
        let mut o = new_order(&format!("{biz}-{i}"));
        o.id = format!("k{}-{:x}", 4 - i, rand::random::<u32>());
        // Two orders share a millisecond: the id breaks the tie.
        o.created_at = base + (i / 2) * 10;
        store.create_order(&o, &[]).await.unwrap();
        made.push(Cursor {
            created_at: o.created_at,
            id: o.id,
        });
    }
    made.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut after = Cursor {
        created_at: base,
        id: String::new(),
    };
    let mut seen = Vec::new();
    loop {
        let page = store.order_keys(Some(&after), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = last;
    }
    assert_eq!(seen, made, "every order once, oldest first");
    let all = store.order_keys(None, 100_000).await.unwrap();
    assert!(
        all.len() >= 5 && all.ends_with(&made),
        "from the first without a cursor"
    );
}

async fn lookups_page_newest_first(store: &dyn Store) {
    use super::{Cursor, Lookup};
    let customer = format!("c-{:x}", rand::random::<u32>());
    let biz = key();
    let mut made = Vec::new();
    for i in 0..5 {
        let mut o = new_order(&format!("{biz}-{i}"));
        o.customer_id = customer.clone();
        // Two orders share a millisecond: the id breaks the tie.
        o.created_at = 10_000 + (i / 2) * 10;
        store.create_order(&o, &[]).await.unwrap();
        made.push(o);
    }
    let mut newest_first: Vec<&Order> = made.iter().collect();
    newest_first.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let by_customer = Lookup::Customer(customer.clone());
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    loop {
        let (page, next) = store.lookup(&by_customer, after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|o| o.id));
        match next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = newest_first.iter().map(|o| o.id.clone()).collect();
    assert_eq!(seen, want, "every order once, newest first");
    let (one, next) = store
        .lookup(
            &Lookup::Business {
                no: format!("{biz}-3"),
                kind: Some("grocery".into()),
            },
            None,
            50,
        )
        .await
        .unwrap();
    assert_eq!((one.len(), next), (1, None));
    assert_eq!(one[0].biz_order_no, format!("{biz}-3"));
    let (none, _) = store
        .lookup(
            &Lookup::Business {
                no: format!("{biz}-3"),
                kind: Some("food".into()),
            },
            None,
            50,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn node_ids_are_leased_once_and_keep_their_mark(store: &dyn Store) {
    let a = store
        .claim_node("owner-a", None, 1_000, 16_000)
        .await
        .unwrap();
    let b = store
        .claim_node("owner-b", None, 1_000, 16_000)
        .await
        .unwrap();
    assert_ne!(a.node, b.node, "a node id is leased to one owner at a time");
    assert!(
        store
            .renew_node(a.node, "owner-a", 21_000, 90_000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_node(a.node, "owner-b", 21_000, 95_000)
            .await
            .unwrap(),
        "only its owner renews a lease"
    );
    // The mark only rises.
    assert!(
        store
            .renew_node(a.node, "owner-a", 21_000, 50_000)
            .await
            .unwrap()
    );
    let c = store
        .claim_node("owner-c", None, 2_000, 17_000)
        .await
        .unwrap();
    assert!(c.node != a.node && c.node != b.node);
    assert_eq!(c.mark, 90_000, "the highest mark of every node");
    // Past b's lease, its node id goes to the next claimant.
    let d = store
        .claim_node("owner-d", None, 17_000, 32_000)
        .await
        .unwrap();
    assert_eq!(d.node, b.node.min(c.node));
    assert!(
        !store
            .renew_node(b.node, "owner-b", 40_000, 1)
            .await
            .unwrap(),
        "b's lease went to d"
    );
    // A configured node id is taken whoever holds it.
    let e = store
        .claim_node("owner-e", Some(a.node), 17_000, 32_000)
        .await
        .unwrap();
    assert_eq!(e.node, a.node);
}
