//! The contract every [`DelayQueue`] must meet, one fresh queue per clause.

use super::{DelayQueue, Timer, TimerKind};
use std::collections::HashSet;
use std::sync::Arc;

/// How many queues [`run`] asks the factory for.
pub const CLAUSES: usize = 2;

fn timer(kind: TimerKind, order: &str, status_version: i64, due: i64) -> Timer {
    Timer {
        kind,
        order: order.into(),
        status_version,
        due,
    }
}

/// Runs every clause against queues made by `make`.
pub async fn run<Q: DelayQueue>(make: impl Fn() -> Arc<Q>) {
    due_timers_come_out_in_order_once(&*make()).await;
    concurrent_claimers_share_without_overlap(make()).await;
}

async fn due_timers_come_out_in_order_once(q: &dyn DelayQueue) {
    q.schedule(&timer(TimerKind::Late, "o|1", 3, 300))
        .await
        .unwrap();
    q.schedule(&timer(TimerKind::Payment, "o2", 1, 100))
        .await
        .unwrap();
    q.schedule(&timer(TimerKind::Pickup, "o3", 5, 900))
        .await
        .unwrap();
    // The same timer again moves it; it does not add a second.
    q.schedule(&timer(TimerKind::Payment, "o2", 1, 200))
        .await
        .unwrap();
    assert_eq!(q.waiting().await.unwrap(), 3);
    assert!(q.claim_due(199, 10).await.unwrap().is_empty());
    let due = q.claim_due(300, 10).await.unwrap();
    assert_eq!(
        due,
        [
            timer(TimerKind::Payment, "o2", 1, 200),
            timer(TimerKind::Late, "o|1", 3, 300)
        ],
        "earliest first, ids with the separator in them intact"
    );
    assert!(q.claim_due(300, 10).await.unwrap().is_empty(), "once");
    assert_eq!(q.claim_due(1000, 10).await.unwrap().len(), 1);
    assert_eq!(q.waiting().await.unwrap(), 0);
}

async fn concurrent_claimers_share_without_overlap<Q: DelayQueue>(q: Arc<Q>) {
    for i in 0..300 {
        q.schedule(&timer(TimerKind::Payment, &format!("o{i}"), 1, i))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = q.claim_due(1_000, 7).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|t| t.order));
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for o in t.await.unwrap() {
            total += 1;
            seen.insert(o);
        }
    }
    assert_eq!((total, seen.len()), (300, 300), "every timer exactly once");
}
