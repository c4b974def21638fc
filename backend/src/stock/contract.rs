//! The contract every [`Stock`] must meet. Each clause names its own SKUs and
//! keys, so one backend may serve them all.

use super::{ReservationKey, ReservationState, Reserved, Settle, Stock, StockError, StockLine};
use std::sync::Arc;

fn line(sku: &str, qty: i64) -> StockLine {
    StockLine {
        sku: sku.into(),
        qty,
    }
}

fn key(no: &str) -> ReservationKey {
    ReservationKey {
        biz_type: "shop".into(),
        biz_order_no: no.into(),
    }
}

/// Runs every clause against stock made by `make`.
pub async fn run<S: Stock>(make: impl Fn() -> Arc<S>) {
    let tag = format!("{:x}", rand::random::<u32>());
    levels_are_set_and_read(&*make(), &tag).await;
    skus_list_in_the_order_first_set(&*make(), &tag).await;
    reservations_are_all_or_nothing_and_once(&*make(), &tag).await;
    settling_happens_once(&*make(), &tag).await;
    concurrent_reservations_never_oversell(make(), &tag).await;
}

async fn levels_are_set_and_read(s: &dyn Stock, tag: &str) {
    let sku = format!("{tag}-level");
    assert_eq!(
        s.get(&sku).await.unwrap(),
        None,
        "never set: not controlled"
    );
    let l = s.set(&sku, 5, 1).await.unwrap();
    assert_eq!((l.available, l.reserved, l.sold), (5, 0, 0));
    assert!(matches!(
        s.set(&sku, -1, 1).await,
        Err(StockError::Invalid(_))
    ));
    assert!(matches!(
        s.set(&"x".repeat(1024), 1, 1).await,
        Err(StockError::Invalid(_))
    ));
    assert!(matches!(s.get("").await, Err(StockError::Invalid(_))));
    s.reserve(&key(&format!("{tag}-l1")), &[line(&sku, 2)], 2)
        .await
        .unwrap();
    let l = s.set(&sku, 7, 3).await.unwrap();
    assert_eq!(
        (l.available, l.reserved),
        (7, 2),
        "setting the level keeps what is reserved"
    );
    assert_eq!(s.get(&sku).await.unwrap(), Some(l));
}

async fn skus_list_in_the_order_first_set(s: &dyn Stock, tag: &str) {
    // Far ahead of every other clause's SKUs.
    let base = 5_000_000_000_000 + i64::from(rand::random::<u16>()) * 100;
    let [a, b, c] = ["a", "b", "c"].map(|x| format!("{tag}-listed-{x}"));
    s.set(&a, 1, base).await.unwrap();
    s.set(&c, 1, base + 1).await.unwrap();
    s.set(&b, 1, base + 1).await.unwrap();
    assert_eq!(
        s.skus(base, 0, 10).await.unwrap(),
        [a.as_str(), b.as_str(), c.as_str()]
    );
    assert_eq!(
        s.skus(base, 1, 1).await.unwrap(),
        [b.as_str()],
        "the first skipped"
    );
    s.set(&a, 3, base + 50).await.unwrap();
    assert_eq!(
        s.skus(base, 0, 10).await.unwrap(),
        [a.as_str(), b.as_str(), c.as_str()],
        "set again, same place"
    );
    assert_eq!(
        s.skus(base + 1, 0, 10).await.unwrap(),
        [b.as_str(), c.as_str()]
    );
    assert!(s.skus(base + 2, 0, 10).await.unwrap().is_empty());
}

async fn reservations_are_all_or_nothing_and_once(s: &dyn Stock, tag: &str) {
    let (a, b, free) = (
        format!("{tag}-a"),
        format!("{tag}-b"),
        format!("{tag}-free"),
    );
    s.set(&a, 10, 1).await.unwrap();
    s.set(&b, 1, 1).await.unwrap();
    let short = s
        .reserve(&key(&format!("{tag}-1")), &[line(&a, 2), line(&b, 2)], 2)
        .await;
    assert!(
        matches!(&short, Err(StockError::OutOfStock { sku }) if *sku == b),
        "{short:?}"
    );
    assert_eq!(
        s.get(&a).await.unwrap().unwrap().available,
        10,
        "nothing of a"
    );
    // The refused key may try again.
    let k2 = key(&format!("{tag}-1"));
    let lines = [line(&free, 5), line(&b, 1), line(&a, 2)];
    assert_eq!(s.reserve(&k2, &lines, 3).await.unwrap(), Reserved::New);
    assert_eq!(
        s.reserve(&k2, &lines, 4).await.unwrap(),
        Reserved::Already(ReservationState::Reserved),
        "the same key reserves once"
    );
    let la = s.get(&a).await.unwrap().unwrap();
    let lb = s.get(&b).await.unwrap().unwrap();
    assert_eq!((la.available, la.reserved), (8, 2));
    assert_eq!((lb.available, lb.reserved), (0, 1));
    assert_eq!(
        s.get(&free).await.unwrap(),
        None,
        "an uncontrolled SKU stays so"
    );
    assert_eq!(
        s.reserve(&key(&format!("{tag}-2")), &[line(&free, 1)], 5)
            .await
            .unwrap(),
        Reserved::Uncontrolled
    );
    for bad in [
        vec![line(&a, 0)],
        vec![line(&a, -3)],
        vec![line(&"s".repeat(1024), 1)],
        vec![line(&a, 1), line(&a, 1)],
    ] {
        assert!(
            matches!(
                s.reserve(&key(&format!("{tag}-3")), &bad, 6).await,
                Err(StockError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    assert_eq!(s.get(&a).await.unwrap().unwrap().available, 8);
}

async fn settling_happens_once(s: &dyn Stock, tag: &str) {
    let sku = format!("{tag}-settle");
    s.set(&sku, 10, 1).await.unwrap();
    let (k1, k2, k3) = (
        key(&format!("{tag}-s1")),
        key(&format!("{tag}-s2")),
        key(&format!("{tag}-s3")),
    );
    for k in [&k1, &k2, &k3] {
        s.reserve(k, &[line(&sku, 2)], 10).await.unwrap();
    }
    let open = s.open_reservations(11, 100).await.unwrap();
    let ours = format!("{tag}-s");
    let mine = |o: &[super::OpenReservation]| {
        o.iter()
            .filter(|r| r.key.biz_order_no.starts_with(&ours))
            .count()
    };
    assert_eq!(mine(&open), 3);
    assert_eq!(
        mine(&s.open_reservations(10, 100).await.unwrap()),
        0,
        "before is exclusive"
    );

    assert!(s.settle(&k1, Settle::Release, 20).await.unwrap());
    assert!(!s.settle(&k1, Settle::Release, 21).await.unwrap(), "once");
    assert!(
        !s.settle(&k1, Settle::Sell, 21).await.unwrap(),
        "once, whatever the way"
    );
    assert!(s.settle(&k2, Settle::Sell, 22).await.unwrap());
    assert!(!s.settle(&k2, Settle::Release, 23).await.unwrap());
    let l = s.get(&sku).await.unwrap().unwrap();
    assert_eq!((l.available, l.reserved, l.sold), (6, 2, 2));
    assert_eq!(
        s.reserve(&k1, &[line(&sku, 2)], 24).await.unwrap(),
        Reserved::Already(ReservationState::Released),
        "a settled reservation is remembered"
    );

    assert!(s.settle(&k3, Settle::Forget, 25).await.unwrap());
    assert!(!s.settle(&k3, Settle::Forget, 25).await.unwrap());
    assert_eq!(s.get(&sku).await.unwrap().unwrap().available, 8);
    assert_eq!(mine(&s.open_reservations(i64::MAX, 100).await.unwrap()), 0);
    assert_eq!(
        s.reserve(&k3, &[line(&sku, 2)], 26).await.unwrap(),
        Reserved::New,
        "a forgotten reservation may be made again"
    );
    assert!(
        !s.settle(&key(&format!("{tag}-none")), Settle::Release, 27)
            .await
            .unwrap()
    );
}

async fn concurrent_reservations_never_oversell<S: Stock>(s: Arc<S>, tag: &str) {
    let sku = format!("{tag}-hot");
    s.set(&sku, 100, 1).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let s = s.clone();
        let sku = sku.clone();
        let k = key(&format!("{tag}-c{i}"));
        tasks.push(tokio::spawn(async move {
            s.reserve(&k, &[line(&sku, 1)], 30).await
        }));
    }
    let (mut won, mut short) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(Reserved::New) => won += 1,
            Err(StockError::OutOfStock { .. }) => short += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((won, short), (100, 900));
    let l = s.get(&sku).await.unwrap().unwrap();
    assert_eq!((l.available, l.reserved), (0, 100));
}
