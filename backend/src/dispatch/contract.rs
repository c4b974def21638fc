//! The contract every [`Dispatch`] implementation must meet, as one test story.
//! Each clause gets a fresh index from the factory; ids are random so runs
//! against a shared server do not see each other.

use super::{Claim, Dispatch, OpenOrder};
use std::sync::Arc;
use tracker_domain::Point;

/// How many indexes [`run`] asks the factory for.
pub const CLAUSES: usize = 5;

const CENTRE: Point = Point {
    lat: 23.1291,
    lon: 113.2644,
};

fn at(dlat: f64, dlon: f64) -> Point {
    Point {
        lat: CENTRE.lat + dlat,
        lon: CENTRE.lon + dlon,
    }
}

fn open_order(tag: &str, pickup: Point) -> OpenOrder {
    OpenOrder {
        id: format!("{tag}-{:x}", rand::random::<u64>()),
        pickup,
        dropoff: at(0.05, 0.05),
        promised_at: Some(42),
    }
}

/// Runs every clause against indexes made by `make`.
pub async fn run<D: Dispatch>(make: impl Fn() -> Arc<D>) {
    nearby_lists_open_orders_by_distance(&*make()).await;
    one_of_many_concurrent_claims_wins(make()).await;
    reopening_forgets_the_claim_but_repair_keeps_it(&*make()).await;
    release_frees_only_the_winners_claim(&*make()).await;
    riders_are_found_by_distance_and_freshness(&*make()).await;
}

async fn nearby_lists_open_orders_by_distance(d: &dyn Dispatch) {
    let near = open_order("near", at(0.01, 0.0)); // ~1.1 km
    let mid = open_order("mid", at(-0.03, 0.0)); // ~3.3 km
    let far = open_order("far", at(0.0, 0.06)); // ~6.1 km
    for o in [&far, &near, &mid] {
        d.open(o).await.unwrap();
    }
    let found = d.nearby(CENTRE, 5000.0, 50).await.unwrap();
    let ids: Vec<&str> = found.iter().map(|f| f.order.id.as_str()).collect();
    assert_eq!(ids, [near.id.as_str(), mid.id.as_str()]);
    // Whole, up to JSON's last-digit rounding of coordinates.
    let got = &found[0].order;
    assert_eq!((&got.id, got.promised_at), (&near.id, near.promised_at));
    assert!((got.dropoff.lat - near.dropoff.lat).abs() < 1e-9);
    assert!(
        (found[0].dist_m - 1112.0).abs() < 10.0,
        "{}",
        found[0].dist_m
    );
    assert_eq!(
        d.nearby(CENTRE, 10_000.0, 1).await.unwrap().len(),
        1,
        "limit"
    );
    let mut all = d.open_ids().await.unwrap();
    all.sort();
    let mut want = vec![near.id.clone(), mid.id.clone(), far.id.clone()];
    want.sort();
    assert_eq!(all, want);
    d.close(&near.id).await.unwrap();
    d.close(&near.id).await.unwrap(); // idempotent
    let ids: Vec<String> = d
        .nearby(CENTRE, 5000.0, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.order.id)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&mid.id));
}

async fn one_of_many_concurrent_claims_wins<D: Dispatch>(d: Arc<D>) {
    let o = open_order("race", CENTRE);
    d.open(&o).await.unwrap();
    let mut tasks = Vec::new();
    for r in 0..200 {
        let (d, id) = (d.clone(), o.id.clone());
        tasks.push(tokio::spawn(async move {
            (
                format!("r{r}"),
                d.claim(&id, &format!("r{r}")).await.unwrap(),
            )
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<&String> = results
        .iter()
        .filter(|(_, c)| *c == Claim::Won)
        .map(|(r, _)| r)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner");
    for (_, c) in &results {
        assert!(
            *c == Claim::Won
                || *c
                    == Claim::Taken {
                        by: winners[0].clone()
                    },
            "losers are told who has it: {c:?}"
        );
    }
    assert!(
        d.nearby(CENTRE, 1000.0, 10).await.unwrap().is_empty(),
        "out of the pool"
    );
    let never = open_order("never", CENTRE);
    assert_eq!(d.claim(&never.id, "r1").await.unwrap(), Claim::NotOpen);
}

async fn reopening_forgets_the_claim_but_repair_keeps_it(d: &dyn Dispatch) {
    let o = open_order("again", CENTRE);
    d.open(&o).await.unwrap();
    assert_eq!(d.claim(&o.id, "a").await.unwrap(), Claim::Won);
    // The sweep's repair must not put a claimed order back.
    d.ensure_open(&o).await.unwrap();
    assert_eq!(
        d.claim(&o.id, "b").await.unwrap(),
        Claim::Taken { by: "a".into() }
    );
    // Back to ready (the rider never picked it up): a new round.
    d.open(&o).await.unwrap();
    assert_eq!(d.claim(&o.id, "b").await.unwrap(), Claim::Won);
    // Repair adds an open order that is missing and unclaimed, once.
    let missing = open_order("missing", CENTRE);
    d.ensure_open(&missing).await.unwrap();
    d.ensure_open(&missing).await.unwrap();
    let ids: Vec<String> = d.open_ids().await.unwrap();
    assert_eq!(ids, std::slice::from_ref(&missing.id));
}

async fn release_frees_only_the_winners_claim(d: &dyn Dispatch) {
    let o = open_order("release", CENTRE);
    d.open(&o).await.unwrap();
    assert_eq!(d.claim(&o.id, "a").await.unwrap(), Claim::Won);
    d.release(&o.id, "b").await.unwrap();
    assert_eq!(
        d.claim(&o.id, "c").await.unwrap(),
        Claim::Taken { by: "a".into() }
    );
    d.release(&o.id, "a").await.unwrap();
    assert_eq!(d.claim(&o.id, "c").await.unwrap(), Claim::NotOpen);
}

async fn riders_are_found_by_distance_and_freshness(d: &dyn Dispatch) {
    let tag = format!("{:x}", rand::random::<u64>());
    let (a, b, c) = (format!("a-{tag}"), format!("b-{tag}"), format!("c-{tag}"));
    d.rider_seen(&a, at(0.02, 0.0), 1_000).await.unwrap();
    d.rider_seen(&b, at(0.01, 0.0), 2_000).await.unwrap();
    d.rider_seen(&c, at(0.5, 0.0), 3_000).await.unwrap(); // ~55 km away
    // An older fix (an offline backlog) does not move the rider back.
    d.rider_seen(&b, at(0.3, 0.0), 1_500).await.unwrap();
    let near = d.riders_near(CENTRE, 5000.0, 0, 10).await.unwrap();
    let ids: Vec<&str> = near.iter().map(|r| r.rider_id.as_str()).collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    assert_eq!(near[0].ts, 2_000);
    assert!((near[0].lat - at(0.01, 0.0).lat).abs() < 1e-4);
    let fresh = d.riders_near(CENTRE, 5000.0, 1_500, 10).await.unwrap();
    assert_eq!(fresh.len(), 1, "a was last seen before 1500");
    assert_eq!(d.riders_near(CENTRE, 5000.0, 0, 1).await.unwrap().len(), 1);
    assert_eq!(d.forget_riders(2_500).await.unwrap(), 2);
    assert!(
        d.riders_near(CENTRE, 5000.0, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        d.riders_near(CENTRE, 100_000.0, 0, 10).await.unwrap().len(),
        1
    );
}
