//! The Watcher without sockets: a real fan-out, the in-process log, a SQLite
//! store; deliveries handed over by hand in the order a test wants.

use super::fanout::Delivery;
use super::*;
use crate::auth::{Claims, Role};
use crate::test_support::{claims, sqlite_store};
use serde_json::Value;
use tokio::sync::mpsc;
use tracker_backend::Store;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_domain::{EventBody, NewOrder, Order, Point};

struct Fixture {
    hub: Watchers,
    order: String,
    _dir: tempfile::TempDir,
}

async fn fixture(cfg: WsConfig) -> Fixture {
    fixture_on(cfg, MemoryLog::new(MemoryLogConfig::default())).await
}

/// [`fixture`] on `log`.
async fn fixture_on(cfg: WsConfig, log: Arc<dyn tracker_backend::EventLog>) -> Fixture {
    let (store, dir) = sqlite_store().await;
    let p = Point { lat: 1.0, lon: 1.0 };
    let new = NewOrder {
        biz_order_no: "W-1".into(),
        biz_type: "t".into(),
        customer_id: "c1".into(),
        pickup: p,
        dropoff: p,
        promised_at: None,
        route: None,
        ..Default::default()
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
        crate::orders::known::OrderReads {
            store,
            known: Arc::new(crate::orders::known::KnownIds::new(
                Arc::new(tracker_domain::SystemClock),
                crate::orders::known::REFRESH_EVERY,
            )),
        },
        log,
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

/// The delivery the tail would make of a logged entry alone.
fn delivery(e: &tracker_backend::Entry) -> Arc<Delivery> {
    Arc::new(Delivery {
        order: e.order.clone(),
        events: Box::new([super::fanout::LiveEvent {
            seq: e.seq,
            ts: e.ts,
            text: String::from_utf8(e.json.to_vec()).unwrap().into(),
            customer: None,
            access: super::access::access_change(&e.json),
        }]),
    })
}

fn eta(n: i64) -> EventBody {
    EventBody::eta(n, n)
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
        entries.iter().map(|e| delivery(e)).collect()
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

impl Fixture {
    /// Gives the order to `rider` in the store (as an assignment would).
    async fn hand_to(&self, rider: &str) {
        let mut o = self.hub.reads.store.get_order(&self.order).await.unwrap();
        let read = o.version;
        o.rider_id = Some(rider.into());
        o.version += 1;
        self.hub
            .reads
            .store
            .update_order(&o, read, &[])
            .await
            .unwrap();
    }

    /// Appends `body` to the order's log; its delivery.
    async fn append_one(&self, body: EventBody) -> Arc<Delivery> {
        let e = self
            .hub
            .log
            .append(&self.order, vec![body], None)
            .await
            .unwrap()
            .remove(0);
        delivery(&e)
    }
}

fn assignment(rider: Option<&str>) -> EventBody {
    EventBody::Assignment {
        rider_id: rider.map(str::to_owned),
        rider_name: None,
        ts: 5,
    }
}

#[tokio::test]
async fn a_rider_whose_order_moves_on_gets_forbidden_and_nothing_after() {
    let f = fixture(WsConfig::default()).await;
    f.hand_to("r1").await;
    let (mut rider, _rx) = f.watcher(claims("r1", Role::Rider));
    let (mut ops, _rx2) = f.watcher(claims("ops", Role::Admin));
    rider.subscribe(&f.order, None, None).await.unwrap();
    ops.subscribe(&f.order, None, None).await.unwrap();
    frames(&mut rider);
    frames(&mut ops);

    let away = f.append_one(assignment(Some("r2"))).await;
    rider.on_delivery(away.clone()).await;
    ops.on_delivery(away).await;
    let got = frames(&mut rider);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0]["code"].as_str(), got[0]["order"].as_str()),
        (Some("forbidden"), Some(f.order.as_str()))
    );
    assert_eq!(rider.watching(), 0);
    assert_eq!(frames(&mut ops)[0]["t"], "assignment", "others see it");

    let later = f.append(1).await.remove(0);
    rider.on_delivery(later).await;
    assert!(frames(&mut rider).is_empty(), "no later event");
    assert_eq!(f.hub.fanout.watchers(&f.order), 1, "only ops is left");
}

#[tokio::test]
async fn a_gap_read_from_the_log_ends_the_riders_subscription_too() {
    let f = fixture(WsConfig::default()).await;
    f.hand_to("r1").await;
    let (mut rider, _rx) = f.watcher(claims("r1", Role::Rider));
    rider.subscribe(&f.order, None, None).await.unwrap();
    frames(&mut rider);
    f.append(1).await; // delivered to nobody: a gap
    f.append_one(assignment(None)).await;
    let last = f.append(1).await.remove(0);
    rider.on_delivery(last).await;
    let got = frames(&mut rider);
    let kinds: Vec<&str> = got.iter().map(|f| f["t"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["eta", "error"], "{got:?}");
    assert_eq!(rider.watching(), 0);
}

#[tokio::test]
async fn revoking_shares_ends_the_links_made_before() {
    let f = fixture(WsConfig::default()).await;
    let link = |made: i64| Claims {
        order: Some(f.order.clone()),
        shared_at: Some(made),
        ..Claims::new("share:x", Role::Viewer, u64::MAX)
    };
    let (mut old, _rx) = f.watcher(link(10));
    let (mut customer, _rx2) = f.watcher(claims("c1", Role::Customer));
    old.subscribe(&f.order, None, None).await.unwrap();
    customer.subscribe(&f.order, None, None).await.unwrap();
    frames(&mut old);
    frames(&mut customer);
    let revoked = f.append_one(EventBody::ShareRevoked { ts: 20 }).await;
    old.on_delivery(revoked.clone()).await;
    customer.on_delivery(revoked).await;
    assert!(old.revoked());
    assert!(frames(&mut old).is_empty());
    assert!(!customer.revoked());
    assert_eq!(frames(&mut customer)[0]["t"], "share_revoked");
}

/// On Redis an order without events reads with no epoch of its own: a
/// watcher that subscribed then must not take the history's epoch, learnt
/// later, for a lost history (a `recovered:false` snapshot at the next
/// catch-up, where the events themselves were in the log).
#[tokio::test]
async fn a_watcher_subscribed_before_the_first_event_learns_the_epoch_and_catches_up_by_seq() {
    let Ok(url) = std::env::var("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    use tracker_backend::log::redis::{RedisLog, RedisLogConfig};
    let cfg = RedisLogConfig {
        prefix: format!("test-{:x}", rand::random::<u64>()),
        ..RedisLogConfig::default()
    };
    let log = Arc::new(RedisLog::connect(&url, cfg).await.unwrap());
    let f = fixture_on(WsConfig::default(), log).await;
    let (mut w, _rx) = f.watcher(claims("ops", Role::Admin));
    w.subscribe(&f.order, None, None).await.unwrap();
    let snap = frames(&mut w);
    assert_eq!(seqs(&snap), [("snapshot".to_owned(), 0)]);
    assert_eq!(snap[0]["epoch"], tracker_backend::log::EPOCH_BEFORE_HISTORY);

    let first = f.append(1).await.remove(0);
    w.on_delivery(first).await;
    assert_eq!(seqs(&frames(&mut w)), [("event".to_owned(), 1)]);

    // 2 is lost on the way (the tail's connection dropped): a gap, then a catch-up.
    f.append(1).await;
    w.signal().lag();
    let third = f.append(1).await.remove(0);
    w.on_delivery(third).await;
    assert_eq!(
        seqs(&frames(&mut w)),
        [("event".to_owned(), 2), ("event".to_owned(), 3)],
        "read from the log by seq, not a recovered:false snapshot"
    );
}
