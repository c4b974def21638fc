//! The contract every [`EventLog`] implementation must meet, as one test story.
//!
//! Called from a `#[tokio::test]` per backend with a factory; order ids are
//! random so runs against a shared server do not see each other.

use super::EventLog;
use std::collections::HashSet;
use std::sync::Arc;
use tracker_domain::event::EventFrame;
use tracker_domain::{EventBody, PosEvent, Status};

fn pos(ts: i64) -> EventBody {
    EventBody::Pos(PosEvent {
        lat: 23.0,
        lon: 113.0,
        ts,
        speed: None,
        heading: None,
        backfill: false,
        before_pickup: false,
    })
}

fn order_id(tag: &str) -> String {
    format!("contract-{tag}-{:x}", rand::random::<u64>())
}

/// Runs every clause of the contract against logs made by `make`.
pub async fn run<L: EventLog>(make: impl Fn() -> Arc<L>) {
    seq_rises_by_one_and_frames_carry_it(&*make()).await;
    concurrent_appends_never_repeat_or_skip(make()).await;
    read_since_returns_exactly_what_was_missed(&*make()).await;
    tail_sees_appends_in_order(&*make()).await;
    origin_makes_retries_idempotent(&*make()).await;
    live_state_folds_status_and_newest_fix(&*make()).await;
    fixes_before_pick_up_are_flagged(&*make()).await;
    append_many_appends_to_each_order(&*make()).await;
}

/// The number of clauses [`run`] asks its factory for (one log each).
pub const CLAUSES: usize = 8;

async fn seq_rises_by_one_and_frames_carry_it(log: &dyn EventLog) {
    let o = order_id("seq");
    let first = log.append(&o, vec![pos(1), pos(2)], None).await.unwrap();
    let second = log
        .append(&o, vec![EventBody::eta(9, 3)], None)
        .await
        .unwrap();
    let seqs: Vec<u64> = first.iter().chain(&second).map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    for e in first.iter().chain(&second) {
        let frame: EventFrame = serde_json::from_slice(&e.json).unwrap();
        assert_eq!((frame.order.as_str(), frame.seq), (o.as_str(), e.seq));
        assert_eq!(&*e.order, o.as_str());
    }
    let unknown = log.read(&order_id("none"), Some(0), 10).await.unwrap();
    assert_eq!(unknown.state.seq, 0);
}

async fn concurrent_appends_never_repeat_or_skip<L: EventLog>(log: Arc<L>) {
    let o = order_id("conc");
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (log, o) = (log.clone(), o.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                for e in log.append(&o, vec![pos(t * 100 + i)], None).await.unwrap() {
                    seqs.push(e.seq);
                }
            }
            seqs
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for s in t.await.unwrap() {
            assert!(all.insert(s), "seq {s} issued twice");
        }
    }
    assert_eq!(all, (1..=400).collect::<HashSet<u64>>());
}

async fn read_since_returns_exactly_what_was_missed(log: &dyn EventLog) {
    let o = order_id("since");
    for i in 0..30 {
        log.append(&o, vec![pos(i)], None).await.unwrap();
    }
    let r = log.read(&o, Some(20), 100).await.unwrap();
    assert_eq!(r.state.seq, 30);
    let got: Vec<u64> = r.missed.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(got, (21..=30).collect::<Vec<_>>());
    assert_eq!(
        log.read(&o, Some(30), 100)
            .await
            .unwrap()
            .missed
            .unwrap()
            .len(),
        0
    );
    assert!(
        log.read(&o, Some(31), 100).await.unwrap().missed.is_none(),
        "since above top"
    );
    assert!(
        log.read(&o, Some(5), 10).await.unwrap().missed.is_none(),
        "gap above limit"
    );
    assert!(log.read(&o, None, 100).await.unwrap().missed.is_none());
    // Past the history cap (the factories keep at most 50): not recoverable.
    for i in 30..120 {
        log.append(&o, vec![pos(i)], None).await.unwrap();
    }
    assert!(log.read(&o, Some(1), 1000).await.unwrap().missed.is_none());
}

async fn tail_sees_appends_in_order(log: &dyn EventLog) {
    let o = order_id("tail");
    let mut tail = log.tail();
    log.watch(&o).await.unwrap();
    log.append(&o, vec![pos(1), pos(2), pos(3)], None)
        .await
        .unwrap();
    let seen = next_entries(&mut tail, 3, |e| *e.order == *o).await;
    assert_eq!(
        seen.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

async fn origin_makes_retries_idempotent(log: &dyn EventLog) {
    let o = order_id("origin");
    assert_eq!(
        log.append(&o, vec![pos(1)], Some(7)).await.unwrap().len(),
        1
    );
    assert!(
        log.append(&o, vec![pos(1)], Some(7))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        log.append(&o, vec![pos(1)], Some(3))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.append(&o, vec![pos(2)], Some(8)).await.unwrap()[0].seq,
        2
    );
}

async fn live_state_folds_status_and_newest_fix(log: &dyn EventLog) {
    let o = order_id("live");
    let status = EventBody::Status {
        from: None,
        status: Status::PickedUp,
        version: 4,
        ts: 1,
        reason: None,
        by: None,
    };
    log.append(&o, vec![status, pos(200)], None).await.unwrap();
    let old = log.append(&o, vec![pos(100)], None).await.unwrap();
    let frame: serde_json::Value = serde_json::from_slice(&old[0].json).unwrap();
    assert_eq!(frame["backfill"], true, "an older fix is marked backfill");
    let r = log.read(&o, None, 10).await.unwrap();
    assert_eq!(r.state.status, Some(Status::PickedUp));
    assert_eq!(r.state.version, Some(4));
    assert_eq!(r.state.pos.unwrap().ts, 200);
    assert_eq!(r.state.seq, 3);
}

async fn fixes_before_pick_up_are_flagged(log: &dyn EventLog) {
    let o = order_id("pickup");
    let status = |status, ts| EventBody::Status {
        from: None,
        status,
        version: 1,
        ts,
        reason: None,
        by: None,
    };
    let assignment = EventBody::Assignment {
        rider_id: Some("r1".into()),
        rider_name: Some("Li Wei".into()),
        ts: 10,
    };
    let to_store = log
        .append(
            &o,
            vec![status(Status::Assigned, 10), assignment, pos(20)],
            None,
        )
        .await
        .unwrap();
    let picked = log
        .append(
            &o,
            vec![status(Status::PickedUp, 30), pos(15), pos(40)],
            None,
        )
        .await
        .unwrap();
    let flag = |e: &super::Entry| {
        let v: serde_json::Value = serde_json::from_slice(&e.json).unwrap();
        v["before_pickup"] == true
    };
    assert!(flag(&to_store[2]), "on the way to the store");
    assert!(flag(&picked[1]), "an old fix uploaded after pick-up");
    assert!(!flag(&picked[2]), "after pick-up");
    let v: serde_json::Value = serde_json::from_slice(&picked[1].json).unwrap();
    assert_eq!(v["backfill"], true, "both flags can hold");
    let r = log.read(&o, None, 10).await.unwrap();
    assert_eq!(r.state.picked_up_at, Some(30));
    assert_eq!(r.state.rider_name.as_deref(), Some("Li Wei"));
    assert_eq!(r.state.rider_id.as_deref(), Some("r1"));
    let unassigned = EventBody::Assignment {
        rider_id: None,
        rider_name: None,
        ts: 50,
    };
    log.append(&o, vec![unassigned], None).await.unwrap();
    let r = log.read(&o, None, 10).await.unwrap();
    assert_eq!((r.state.rider_id, r.state.rider_name), (None, None));
}

async fn append_many_appends_to_each_order(log: &dyn EventLog) {
    let (a, b) = (order_id("many-a"), order_id("many-b"));
    // Subscribed first: on a cluster a publication crosses the cluster bus
    // and may reach this process after its append has answered.
    let mut tail = log.tail();
    log.watch(&a).await.unwrap();
    log.watch(&b).await.unwrap();
    log.append(&a, vec![pos(1)], None).await.unwrap();
    let batch = vec![
        (a.as_str().into(), vec![pos(2), pos(3)]),
        (b.as_str().into(), vec![pos(5)]),
        (a.as_str().into(), vec![pos(4)]),
    ];
    assert_eq!(log.append_many(batch).await.unwrap(), 4);
    assert_eq!(log.append_many(vec![]).await.unwrap(), 0);
    let (ra, rb) = (
        log.read(&a, Some(0), 10).await.unwrap(),
        log.read(&b, Some(0), 10).await.unwrap(),
    );
    let ts = |r: &super::ReadResult| -> Vec<(u64, i64)> {
        r.missed
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.seq, e.ts))
            .collect()
    };
    assert_eq!(
        ts(&ra),
        vec![(1, 1), (2, 2), (3, 3), (4, 4)],
        "in batch order after what was there"
    );
    assert_eq!(ts(&rb), vec![(1, 5)]);
    assert_eq!(ra.state.pos.unwrap().ts, 4);
    let seen = next_entries(&mut tail, 5, |e| *e.order == *a || *e.order == *b).await;
    // Each order's in batch order; between orders nothing is promised (on a
    // cluster they are appended on different nodes).
    let of = |o: &str| -> Vec<i64> {
        seen.iter()
            .filter(|e| *e.order == *o)
            .map(|e| e.ts)
            .collect()
    };
    assert_eq!(
        of(&a),
        [1, 2, 3, 4],
        "the tail sees an order's in batch order"
    );
    assert_eq!(of(&b), [5]);
}

/// The next `n` entries on `tail` that `wanted` keeps (others' appends on a
/// shared server are skipped), each within 5 s.
async fn next_entries(
    tail: &mut tokio::sync::broadcast::Receiver<super::TailEvent>,
    n: usize,
    wanted: impl Fn(&super::Entry) -> bool,
) -> Vec<Arc<super::Entry>> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), tail.recv())
            .await
            .expect("tail delivers within 5 s")
            .unwrap();
        if let super::TailEvent::Entries(run) = event {
            seen.extend(run.iter().filter(|e| wanted(e)).cloned());
        }
    }
    seen
}

/// The age cap the factories of [`history_is_capped_by_age`] must configure.
pub const AGE_CAP: std::time::Duration = std::time::Duration::from_millis(300);

/// With `max_age` = [`AGE_CAP`], entries older than that are gone after the next
/// append, and resuming from before them is not recoverable.
pub async fn history_is_capped_by_age(log: &dyn EventLog) {
    let o = order_id("age");
    log.append(&o, vec![pos(1), pos(2), pos(3)], None)
        .await
        .unwrap();
    assert!(
        log.read(&o, Some(0), 100).await.unwrap().missed.is_some(),
        "young entries are kept"
    );
    tokio::time::sleep(AGE_CAP + std::time::Duration::from_millis(100)).await;
    log.append(&o, vec![pos(4)], None).await.unwrap();
    assert!(
        log.read(&o, Some(0), 100).await.unwrap().missed.is_none(),
        "old entries are gone"
    );
    let recent = log.read(&o, Some(3), 100).await.unwrap().missed.unwrap();
    assert_eq!(recent.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4]);
    assert_eq!(
        log.read(&o, None, 0).await.unwrap().state.pos.unwrap().ts,
        4,
        "live state is not aged out"
    );
}
