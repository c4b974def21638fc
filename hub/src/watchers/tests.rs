//! The Watcher without sockets: a real fan-out, the in-process log, a SQLite
//! store; deliveries handed over by hand in the order a test wants.

use super::fanout::Delivery;
use super::*;
use crate::auth::{Claims, Role};
use crate::test_support::{claims, sqlite_store};
use serde_json::Value;
use tokio::sync::mpsc;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_domain::{EventBody, NewOrder, Order, Point};

struct Fixture {
    hub: Watchers,
    order: String,
    _dir: tempfile::TempDir,
}

async fn fixture(cfg: WsConfig) -> Fixture {
    let (store, dir) = sqlite_store().await;
    let p = Point { lat: 1.0, lon: 1.0 };
    let new = NewOrder {
        biz_order_no: "W-1".into(),
        biz_type: "t".into(),
        customer_id: "c1".into(),
        pickup: p,
        dropoff: p,
        promised_at: None,
    };
    let order = Order::new("41".into(), new, 1_000);
    store
        .create_order(&order, &[order.created_event()])
        .await
        .unwrap();
    let hub = Watchers::new(
        Arc::new(Fanout::default()),
        Arc::new(Auth::hs256(b"watcher-tests")),
        tracker_gate::Gate::open(),
        store,
        MemoryLog::new(MemoryLogConfig::default()),
        cfg,
        CancellationToken::new(),
        TaskTracker::new(),
    );
    Fixture {
        hub,
        order: order.id,
        _dir: dir,
    }
}

fn eta(n: i64) -> EventBody {
    EventBody::Eta { eta: n, ts: n }
}

impl Fixture {
    /// Appends `n` events to the order's log; their deliveries, as the tail would make them.
    async fn append(&self, n: usize) -> Vec<Arc<Delivery>> {
        let entries = self
            .hub
            .log
            .append(&self.order, (0..n as i64).map(eta).collect(), None)
            .await
            .unwrap();
        entries
            .iter()
            .map(|e| {
                Arc::new(Delivery {
                    order: e.order.clone(),
                    seq: e.seq,
                    ts: e.ts,
                    text: String::from_utf8(e.json.to_vec()).unwrap().into(),
                    customer: None,
                    access: super::access::access_change(&e.json),
                })
            })
            .collect()
    }

    fn watcher(&self, who: Claims) -> (Watcher, mpsc::Receiver<Arc<Delivery>>) {
        Watcher::new(who, self.hub.clone())
    }
}

/// The frames queued so far, as JSON.
fn frames(w: &mut Watcher) -> Vec<Value> {
    w.take()
        .iter()
        .map(|o| serde_json::from_str(o.text.as_str()).unwrap())
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<(String, u64)> {
    frames
        .iter()
        .map(|f| {
            let t = match f["t"].as_str() {
                Some("snapshot") => "snapshot",
                _ => "event",
            };
            (t.to_owned(), f["seq"].as_u64().unwrap_or(0))
        })
        .collect()
}

#[tokio::test]
async fn live_events_follow_the_snapshot_once_each_in_order_and_gaps_are_read_from_the_log() {
    let f = fixture(WsConfig::default()).await;
    f.append(3).await;
    let (mut w, _rx) = f.watcher(claims("ops", Role::Admin));
    w.subscribe(&f.order, None, None).await.unwrap();
    let snap = frames(&mut w);
    assert_eq!(seqs(&snap), [("snapshot".to_owned(), 3)]);
    assert_eq!(f.hub.fanout.watchers(&f.order), 1);

    let d4 = f.append(1).await.remove(0);
    w.on_delivery(d4.clone()).await;
    w.on_delivery(d4).await; // a duplicate: dropped
    let live = frames(&mut w);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["seq"], 4);

    // 5 is lost on the way; 6 arrives: the watcher reads 5 and 6 from the log.
    let mut more = f.append(2).await;
    w.on_delivery(more.pop().unwrap()).await;
    let caught: Vec<u64> = frames(&mut w)
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(caught, [5, 6]);

    drop(w);
    assert_eq!(f.hub.fanout.watchers(&f.order), 0, "dropping unregisters");
}

#[tokio::test]
async fn resume_replays_what_was_missed_then_marks_it_recovered() {
    let f = fixture(WsConfig::default()).await;
    f.append(5).await;
    let (mut w, _rx) = f.watcher(claims("ops", Role::Admin));
    w.subscribe(&f.order, None, None).await.unwrap();
    let epoch = frames(&mut w)[0]["epoch"].as_str().unwrap().to_owned();

    let (mut back, _rx) = f.watcher(claims("ops", Role::Admin));
    back.subscribe(&f.order, Some(2), Some(&epoch))
        .await
        .unwrap();
    let got = frames(&mut back);
    let want: Vec<(String, u64)> = [3, 4, 5]
        .iter()
        .map(|&s| ("event".to_owned(), s))
        .chain([("snapshot".to_owned(), 5)])
        .collect();
    assert_eq!(seqs(&got), want);
    assert_eq!(got[3]["recovered"], true);

    let (mut lost, _rx) = f.watcher(claims("ops", Role::Admin));
    lost.subscribe(&f.order, Some(2), Some("another-history"))
        .await
        .unwrap();
    let got = frames(&mut lost);
    assert_eq!(seqs(&got), [("snapshot".to_owned(), 5)]);
    assert_eq!(got[0]["recovered"], false, "another epoch is not replayed");
}

#[tokio::test]
async fn refusals_are_error_frames_and_register_nothing() {
    let f = fixture(WsConfig {
        max_subs: 1,
        ..WsConfig::default()
    })
    .await;
    let (mut stranger, _rx) = f.watcher(claims("c2", Role::Customer));
    assert_eq!(
        stranger.subscribe(&f.order, None, None).await,
        Err(SubError::Forbidden)
    );
    assert_eq!(
        stranger.subscribe("no-such-order", None, None).await,
        Err(SubError::NotFound)
    );
    assert_eq!(
        stranger.subscribe("", None, None).await,
        Err(SubError::BadRequest)
    );
    let codes: Vec<Value> = frames(&mut stranger)
        .iter()
        .map(|f| f["code"].clone())
        .collect();
    assert_eq!(codes, ["forbidden", "not_found", "bad_request"]);
    assert_eq!(f.hub.fanout.watchers(&f.order), 0);

    let (mut owner, _rx) = f.watcher(claims("c1", Role::Customer));
    owner.subscribe(&f.order, None, None).await.unwrap();
    assert_eq!(
        owner.subscribe("another", None, None).await,
        Err(SubError::TooMany)
    );
    owner.unsubscribe(&f.order);
    assert_eq!(f.hub.fanout.watchers(&f.order), 0);
}
