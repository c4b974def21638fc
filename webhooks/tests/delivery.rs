//! The sender against a receiver that fails on purpose: 30 % of calls answer
//! 500 and 5 % take longer than the sender waits. Every event must arrive,
//! per order in `seq` order, signed; on Redis, two senders never make the
//! same attempt twice; a receiver that is down for a minute gets everything
//! after.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use parking_lot::Mutex;
use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracker_backend::EventLog;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_backend::log::redis::{RedisLog, RedisLogConfig};
use tracker_backend::webhooks::WebhookQueue;
use tracker_backend::webhooks::redis::RedisWebhooks;
use tracker_domain::event::EventFrame;
use tracker_domain::{EventBody, PosEvent};
use tracker_webhooks::{WebhookSender, WebhookSettings, verify};

const SECRET: &str = "a-test-secret-of-some-length";
const TIMEOUT: Duration = Duration::from_millis(400);

/// One call as the receiver saw it.
#[derive(Debug, Clone)]
struct Call {
    order: String,
    seq: u64,
    kind: String,
    attempt: u32,
    signed: bool,
    accepted: bool,
}

#[derive(Default)]
struct Receiver {
    calls: Mutex<Vec<Call>>,
    /// Share of calls answered 500 (it may change during a test), and of
    /// calls left hanging past the timeout.
    fail: Mutex<f64>,
    hang: f64,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let frame: EventFrame = serde_json::from_slice(&body).expect("the body is a frame");
    let mut call = Call {
        order: frame.order.clone(),
        seq: frame.seq,
        kind: frame.body.kind().to_owned(),
        attempt: header("x-tracker-attempt").parse().unwrap_or(0),
        signed: verify(SECRET.as_bytes(), &body, &header("x-tracker-signature"))
            && header("x-tracker-order") == frame.order,
        accepted: false,
    };
    let roll: f64 = rand::random();
    let fail = *r.fail.lock();
    if roll < fail {
        r.calls.lock().push(call);
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if roll < fail + r.hang {
        r.calls.lock().push(call);
        tokio::time::sleep(TIMEOUT * 3).await;
        return StatusCode::OK;
    }
    call.accepted = true;
    r.calls.lock().push(call);
    StatusCode::NO_CONTENT
}

/// Serves `r` on `addr` until `down` is cancelled (idle connections closed,
/// the port released).
async fn serve(r: Arc<Receiver>, addr: SocketAddr, down: CancellationToken) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/hook", post(receive)).with_state(r);
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { down.cancelled().await })
            .await
            .unwrap();
    });
    addr
}

fn settings(addr: SocketAddr) -> WebhookSettings {
    WebhookSettings {
        timeout: TIMEOUT,
        concurrency: 32,
        first_retry: Duration::from_millis(50),
        max_retry: Duration::from_secs(2),
        ..WebhookSettings::new(format!("http://{addr}/hook"), SecretString::from(SECRET))
    }
}

fn fix(ts: i64) -> EventBody {
    EventBody::Pos(PosEvent {
        lat: 1.0,
        lon: 2.0,
        ts,
        speed: None,
        heading: None,
        backfill: false,
        before_pickup: false,
    })
}

/// Appends `per_order` hooked events (estimates and alerts, a fix between
/// each) to each of `orders`, a round at a time; returns the hooked
/// `(order, seq)`s in the order they were appended.
async fn append(log: &dyn EventLog, orders: &[String], per_order: usize) -> Vec<(String, u64)> {
    let mut hooked = Vec::new();
    for round in 0..per_order {
        for o in orders {
            let ts = round as i64 * 1000;
            let event = if round % 2 == 0 {
                EventBody::eta(ts + 600_000, ts)
            } else {
                EventBody::alert("stalled", ts, serde_json::json!({"round": round}))
            };
            let entries = log.append(o, vec![fix(ts), event], None).await.unwrap();
            hooked.push((o.clone(), entries[1].seq));
        }
    }
    hooked
}

fn orders(n: usize) -> Vec<String> {
    let run: u32 = rand::random();
    (0..n).map(|i| format!("wh{run:x}-{i}")).collect()
}

/// Waits until every one of `want` was accepted; panics after `within`.
async fn all_accepted(r: &Receiver, want: &[(String, u64)], within: Duration) {
    let want: HashSet<(String, u64)> = want.iter().cloned().collect();
    let start = Instant::now();
    loop {
        let got: HashSet<(String, u64)> = r
            .calls
            .lock()
            .iter()
            .filter(|c| c.accepted)
            .map(|c| (c.order.clone(), c.seq))
            .collect();
        let missing = want.difference(&got).count();
        if missing == 0 {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{missing} of {} events never accepted within {within:?}",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What must hold of the calls a receiver saw.
fn check_calls(r: &Receiver, want: &[(String, u64)]) {
    check_calls_but(r, want, true)
}

/// [`check_calls`]; `unique_attempts` false where a sender was killed mid-call
/// (its last call's failure was never recorded, so the next holder makes
/// that attempt again).
fn check_calls_but(r: &Receiver, want: &[(String, u64)], unique_attempts: bool) {
    let calls = r.calls.lock().clone();
    let hooked: HashSet<(String, u64)> = want.iter().cloned().collect();
    assert!(calls.iter().all(|c| c.signed), "every call is signed");
    assert!(calls.iter().all(|c| c.kind != "pos"), "fixes are not sent");
    assert!(
        calls
            .iter()
            .all(|c| hooked.contains(&(c.order.clone(), c.seq))),
        "only appended events are sent"
    );
    // Per order, in seq order: each call carries the earliest event not yet
    // accepted, or repeats one that was (at least once: an answer can be lost).
    let mut pending: HashMap<&str, Vec<u64>> = HashMap::new();
    for (o, seq) in want {
        pending.entry(o.as_str()).or_default().push(*seq);
    }
    for seqs in pending.values_mut() {
        seqs.sort_unstable();
        seqs.reverse();
    }
    let mut accepted: HashSet<(&str, u64)> = HashSet::new();
    for c in &calls {
        let next = pending[c.order.as_str()].last().copied();
        assert!(
            next == Some(c.seq) || accepted.contains(&(c.order.as_str(), c.seq)),
            "order {}: seq {} sent while {next:?} was not yet accepted",
            c.order,
            c.seq
        );
        if c.accepted && next == Some(c.seq) {
            pending.get_mut(c.order.as_str()).unwrap().pop();
            accepted.insert((c.order.as_str(), c.seq));
        }
    }
    // No attempt is made twice.
    let mut seen = HashSet::new();
    for c in calls.iter().filter(|_| unique_attempts) {
        assert!(
            seen.insert((c.order.clone(), c.seq, c.attempt)),
            "order {} seq {} attempt {} sent twice",
            c.order,
            c.seq,
            c.attempt
        );
    }
    let failed = calls.iter().filter(|c| !c.accepted).count();
    eprintln!(
        "{} calls for {} events ({failed} failed on purpose)",
        calls.len(),
        want.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_every_event_arrives_in_order_despite_failures() {
    let r = Arc::new(Receiver {
        fail: Mutex::new(0.30),
        hang: 0.05,
        ..Default::default()
    });
    let addr = serve(
        r.clone(),
        "127.0.0.1:0".parse().unwrap(),
        CancellationToken::new(),
    )
    .await;
    let log = MemoryLog::new(MemoryLogConfig::default());
    let queue: Arc<dyn WebhookQueue> = log.webhooks();
    let stop = CancellationToken::new();
    let sender = WebhookSender::new(queue, settings(addr)).unwrap();
    let run = tokio::spawn(sender.run(stop.clone()));
    let want = append(&*log, &orders(200), 5).await;
    all_accepted(&r, &want, Duration::from_secs(120)).await;
    stop.cancel();
    run.await.unwrap();
    check_calls(&r, &want);
}

fn redis_url() -> Option<String> {
    match std::env::var("TRACKER_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(u) => Some(u),
        None if std::env::var("TRACKER_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
            panic!("TRACKER_TEST_REDIS_URL is not set but TRACKER_TEST_REQUIRE_BACKENDS=1")
        }
        None => {
            eprintln!("skipped: TRACKER_TEST_REDIS_URL is not set");
            None
        }
    }
}

async fn redis_log(url: &str, prefix: &str) -> Arc<RedisLog> {
    let cfg = RedisLogConfig {
        prefix: prefix.to_owned(),
        webhooks: true,
        ..Default::default()
    };
    Arc::new(RedisLog::connect(url, cfg).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_two_senders_share_the_work_and_never_repeat_an_attempt() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = format!("t{:x}", rand::random::<u32>());
    let r = Arc::new(Receiver {
        fail: Mutex::new(0.30),
        hang: 0.05,
        ..Default::default()
    });
    let addr = serve(
        r.clone(),
        "127.0.0.1:0".parse().unwrap(),
        CancellationToken::new(),
    )
    .await;
    let log = redis_log(&url, &prefix).await;
    let stop = CancellationToken::new();
    let mut runs = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..2 {
        let q = Arc::new(
            RedisWebhooks::connect(&url, &prefix, TIMEOUT)
                .await
                .unwrap(),
        );
        queues.push(q.clone());
        let sender = WebhookSender::new(q, settings(addr)).unwrap();
        runs.push(tokio::spawn(sender.run(stop.clone())));
    }
    let want = append(&*log, &orders(200), 5).await;
    all_accepted(&r, &want, Duration::from_secs(180)).await;
    let shares: Vec<usize> = queues.iter().map(|q| q.owned().len()).collect();
    assert_eq!(shares, vec![8, 8], "each sender holds half the partitions");
    stop.cancel();
    for run in runs {
        run.await.unwrap();
    }
    check_calls(&r, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_receiver_down_for_a_minute_gets_everything_after() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = format!("t{:x}", rand::random::<u32>());
    let r = Arc::new(Receiver::default());
    // Learn a free port, then leave it closed: the receiver is down.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let log = redis_log(&url, &prefix).await;
    let stop = CancellationToken::new();
    let q = RedisWebhooks::connect(&url, &prefix, TIMEOUT)
        .await
        .unwrap();
    let sender = WebhookSender::new(Arc::new(q), settings(addr)).unwrap();
    let run = tokio::spawn(sender.run(stop.clone()));
    let down_from = Instant::now();
    let mut want = append(&*log, &orders(50), 2).await;
    // Down for a minute, with more events coming while it is.
    tokio::time::sleep(Duration::from_secs(30)).await;
    want.extend(append(&*log, &orders(50), 2).await);
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down_from.elapsed())).await;
    assert!(r.calls.lock().is_empty());
    serve(r.clone(), addr, CancellationToken::new()).await;
    // Retries are at most max_retry apart: everything comes soon after.
    all_accepted(&r, &want, Duration::from_secs(30)).await;
    stop.cancel();
    run.await.unwrap();
    check_calls(&r, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_orders_of_a_sender_that_died_are_sent_by_another() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = format!("t{:x}", rand::random::<u32>());
    let r = Arc::new(Receiver {
        fail: Mutex::new(1.0),
        ..Default::default()
    });
    let addr = serve(
        r.clone(),
        "127.0.0.1:0".parse().unwrap(),
        CancellationToken::new(),
    )
    .await;
    let log = redis_log(&url, &prefix).await;
    let sender = |q: RedisWebhooks| WebhookSender::new(Arc::new(q), settings(addr)).unwrap();
    let a = RedisWebhooks::connect(&url, &prefix, TIMEOUT)
        .await
        .unwrap();
    let a = tokio::spawn(sender(a).run(CancellationToken::new()));
    let want = append(&*log, &orders(20), 3).await;
    // Every order tried and failed at least once, then the sender dies: no
    // clean stop, its leases run out by themselves.
    let start = Instant::now();
    while r
        .calls
        .lock()
        .iter()
        .map(|c| &c.order)
        .collect::<HashSet<_>>()
        .len()
        < 20
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the first sender never tried them all"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.abort();
    let _ = a.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    *r.fail.lock() = 0.0;
    let stop = CancellationToken::new();
    let b = RedisWebhooks::connect(&url, &prefix, TIMEOUT)
        .await
        .unwrap();
    let b = tokio::spawn(sender(b).run(stop.clone()));
    // The dead one's leases last 15 s; retries are at most 2 s apart.
    all_accepted(&r, &want, Duration::from_secs(40)).await;
    stop.cancel();
    b.await.unwrap();
    check_calls_but(&r, &want, false);
    // The second sender went on counting the attempts the first one made.
    let calls = r.calls.lock();
    let retried = calls.iter().filter(|c| c.accepted && c.attempt > 1).count();
    assert!(
        retried >= 20,
        "only {retried} accepted calls carried a later attempt"
    );
}
