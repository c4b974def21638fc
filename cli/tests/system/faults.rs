//! Faults of one backend under live watchers: what every transport tells its
//! clients when the history they follow is lost.

use crate::helpers::{PATIENCE, Sse, now_ms, unique};
use crate::processes::*;
use futures_util::SinkExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tracker_backend::EventLog;
use tracker_backend::log::redis::{RedisLog, RedisLogConfig};
use tracker_hub::{Auth, Role};

/// The frames one watcher received, in order.
type Seen = Arc<Mutex<Vec<Value>>>;

/// Subscribes a WebSocket watcher to `order` and collects its frames.
async fn ws_watcher(
    base: &str,
    token: &str,
    order: &str,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    let url = format!("{}/v1/ws?token={token}", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let sub = json!({"op": "sub", "order": order}).to_string();
    ws.send(Message::Text(sub.into())).await.unwrap();
    tokio::spawn(async move {
        while let Some(f) = frame(&mut ws).await {
            seen.lock().unwrap().push(f);
        }
    })
}

/// Collects an SSE stream's frames.
fn sse_watcher(mut sse: Sse, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (_, f) = sse.next().await;
            seen.lock().unwrap().push(f);
        }
    })
}

/// Long-polls `order` as a client does: `since` and `epoch` from the last
/// answer, retrying after a refusal (the backend is down).
fn long_poller(
    base: String,
    token: String,
    order: String,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let (mut since, mut epoch): (Option<u64>, Option<String>) = (None, None);
        loop {
            let mut url = format!("{base}/v1/orders/{order}/events?wait=5");
            if let Some(s) = since {
                url.push_str(&format!("&since={s}"));
            }
            if let Some(e) = &epoch {
                url.push_str(&format!("&epoch={e}"));
            }
            let r = http.get(&url).bearer_auth(&token).send().await;
            let Ok(r) = r else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if !r.status().is_success() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let body: Value = r.json().await.unwrap();
            for f in body["events"].as_array().unwrap() {
                seen.lock().unwrap().push(f.clone());
            }
            since = body["next"].as_u64();
            epoch = body["epoch"].as_str().map(str::to_owned);
        }
    })
}

/// Checks one watcher's frames: every event follows the one before it by
/// seq, except right after a snapshot, which sets where the client stands;
/// after `restart_at` frames (those seen before the crash) a snapshot with
/// `recovered:false` of the new epoch came before any event of it; the
/// client ends at `top`. Returns the problem, if any.
fn problems(frames: &[Value], old_epoch: &str, top: u64) -> Option<String> {
    let mut at: Option<u64> = None;
    let mut told = false;
    for f in frames {
        let seq = f["seq"].as_u64();
        if f["t"] == "snapshot" {
            if f["recovered"] == false && f["epoch"].as_str() != Some(old_epoch) {
                told = true;
            }
            at = seq;
            continue;
        }
        let (Some(seq), Some(prev)) = (seq, at) else {
            return Some(format!("an event before any snapshot: {f}"));
        };
        if seq != prev + 1 {
            return Some(format!("seq {seq} after {prev} with no snapshot between"));
        }
        at = Some(seq);
    }
    if !told {
        return Some("no recovered:false snapshot of the new history".into());
    }
    (at != Some(top)).then(|| format!("ends at {at:?}, the log at {top}"))
}

#[tokio::test]
async fn redis_restarted_empty_tells_every_watcher_on_every_transport_recovered_false() {
    let Some((mut redis, db)) = private_redis_and_database().await else {
        return;
    };
    let mut env = node_env(&redis.url, "tracker", &db.url, "1");
    env.push(("TRACKER_FIX_RATE", "off".into()));
    env.push(("TRACKER_CONNECT_RATE", "off".into()));
    let hub = start("hub", &env).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let rider = unique("r");
    let (id, _) = picked_up_order(&hub.base, &admin, "c1", &rider).await;
    let customer = auth.mint("c1", Role::Customer, 600);
    let rider_token = auth.mint(&rider, Role::Rider, 600);

    // Five watchers: two WebSockets, two SSE streams, one long-poll client.
    let seen: Vec<Seen> = (0..5).map(|_| Seen::default()).collect();
    let mut tasks = Vec::new();
    for s in &seen[..2] {
        tasks.push(ws_watcher(&hub.base, &customer, &id, s.clone()).await);
    }
    for s in &seen[2..4] {
        let url = format!("{}/v1/orders/{id}/sse?token={customer}", hub.base);
        tasks.push(sse_watcher(
            Sse::open_url(&url, None).await.unwrap(),
            s.clone(),
        ));
    }
    tasks.push(long_poller(
        hub.base.clone(),
        customer.clone(),
        id.clone(),
        seen[4].clone(),
    ));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.iter().any(|s| s.lock().unwrap().is_empty()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a watcher got no snapshot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let http = reqwest::Client::new();
    let send_fixes = |n: usize| {
        let (http, base, token) = (http.clone(), hub.base.clone(), rider_token.clone());
        async move {
            for i in 0..n {
                let fix = json!({"lat": 23.1 + i as f64 * 1e-4, "lon": 113.2, "ts": now_ms()});
                let _ = http
                    .post(format!("{base}/v1/riders/me/pos"))
                    .bearer_auth(&token)
                    .timeout(Duration::from_secs(2))
                    .json(&fix)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    // A short history before the crash, so the new one soon passes its top:
    // a client that is only compared by seq would take the new history's
    // later events for the continuation of the old.
    send_fixes(5).await;
    let log = RedisLog::connect(&redis.url, RedisLogConfig::default())
        .await
        .unwrap();
    let old_epoch = log.read(&id, None, 0).await.unwrap().epoch.to_string();
    drop(log);

    // Redis dies with the order's whole history and comes back empty while
    // fixes keep coming; the new history begins at seq 1.
    let riding: Vec<_> = (0..3).map(|_| tokio::spawn(send_fixes(200))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.crash_and_restart_empty(Duration::from_secs(2)).await;
    for r in riding {
        r.await.unwrap();
    }

    let log = RedisLog::connect(&redis.url, RedisLogConfig::default())
        .await
        .unwrap();
    let now = log.read(&id, None, 0).await.unwrap();
    assert_ne!(&*now.epoch, old_epoch, "a new history");
    assert!(now.state.seq > 0, "fixes reached the new history");
    let top = now.state.seq;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let names = ["ws 1", "ws 2", "sse 1", "sse 2", "long-poll"];
    loop {
        let found: Vec<Option<String>> = seen
            .iter()
            .map(|s| problems(&s.lock().unwrap(), &old_epoch, top))
            .collect();
        if found.iter().all(Option::is_none) {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let report: Vec<String> = names
                .iter()
                .zip(&found)
                .filter_map(|(n, p)| p.as_ref().map(|p| format!("{n}: {p}")))
                .collect();
            panic!("{}", report.join("; "));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.abort();
    }
    drop(hub);
    db.drop_now().await;
}

/// A rider's phone as the apps are told to connect: a persistent session of
/// its own, QoS 1, and the client resending what the broker has not acked
/// after every reconnect.
async fn phone(port: u16) -> rumqttc::AsyncClient {
    let mut o = rumqttc::MqttOptions::new(unique("phone"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5))
        .set_clean_session(false);
    let (client, mut ev) = rumqttc::AsyncClient::new(o, 4096);
    tokio::spawn(async move {
        loop {
            if ev.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    client
}

/// The `ts` of every position `order`'s log holds (duplicates kept).
async fn logged_fix_times(log: &RedisLog, order: &str) -> Vec<i64> {
    let read = log.read(order, Some(0), 5000).await.unwrap();
    read.missed
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let v: Value = serde_json::from_slice(&e.json).ok()?;
            (v["t"] == "pos").then(|| v["ts"].as_i64()).flatten()
        })
        .collect()
}

/// What goes wrong between phone and log in the ingest tests.
enum Fault {
    /// `kill -9` of `tracker ingest`, restarted after a while.
    KillIngest,
    /// The broker stopped and started again.
    RestartBroker,
}

/// 200 fixes at QoS 1, 20 a second, through a private persistent Mosquitto
/// and `tracker ingest` into the log, with `fault` in the middle: every one
/// the broker acknowledged must reach the log.
async fn fixes_survive(fault: Fault) {
    let Some(redis) = crate::backends::backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let Some(admin_db) = crate::backends::backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    // The private broker needs the mosquitto binary, which the MQTT suite's machines have.
    let Some(_) = crate::backends::backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    let db = tracker_backend::store::postgres::testing::TestDatabase::create(&admin_db).await;
    let mut broker = PrivateBroker::persistent().await;
    let prefix = unique("faults");
    let mut env = node_env(&redis, &prefix, &db.url, "1");
    env.push(("TRACKER_FIX_RATE", "off".into()));
    let hub = start("hub", &env).await;
    let mut ingest_env = node_env(&redis, &prefix, &db.url, "2");
    ingest_env.extend([
        ("TRACKER_FIX_RATE", "off".into()),
        (
            "TRACKER_MQTT_URL",
            format!("mqtt://127.0.0.1:{}", broker.port),
        ),
        ("TRACKER_MQTT_CLIENT_ID", "tracker-ingest-under-test".into()),
    ]);
    if let Fault::RestartBroker = fault {
        // Mosquitto's persistence restores plain subscriptions but not shared
        // ones (docs/brokers.md): one ingest per broker subscribes plainly.
        ingest_env.push(("TRACKER_MQTT_SHARE_GROUP", "off".into()));
    }
    let mut ingest = Some(start("ingest", &ingest_env).await);

    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let rider = unique("r");
    let (id, _) = picked_up_order(&hub.base, &admin, "c1", &rider).await;
    let log_cfg = RedisLogConfig {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let log = RedisLog::connect(&redis, log_cfg).await.unwrap();

    let phone = phone(broker.port).await;
    let topic = format!("riders/{rider}/pos");
    let mut sent = Vec::new();
    let started = tokio::time::Instant::now();
    for i in 0..200u64 {
        if i == 40 {
            match fault {
                Fault::KillIngest => ingest.take().unwrap().kill().await,
                Fault::RestartBroker => broker.restart_gracefully().await,
            }
        }
        if i == 100
            && let Fault::KillIngest = fault
        {
            ingest = Some(start("ingest", &ingest_env).await);
        }
        let ts = now_ms();
        let fix = json!({"lat": 23.1 + i as f64 * 1e-5, "lon": 113.2, "ts": ts});
        phone
            .publish(&topic, rumqttc::QoS::AtLeastOnce, false, fix.to_string())
            .await
            .unwrap();
        sent.push(ts);
        tokio::time::sleep_until(started + Duration::from_millis(50 * (i + 1))).await;
    }

    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    loop {
        let logged = logged_fix_times(&log, &id).await;
        let missing: Vec<usize> = (0..sent.len())
            .filter(|&i| !logged.contains(&sent[i]))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} fixes never reached the log: numbers {missing:?}",
            missing.len(),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((hub, ingest));
    db.drop_now().await;
}

#[tokio::test]
async fn a_killed_ingest_gets_the_fixes_it_missed_after_its_restart() {
    fixes_survive(Fault::KillIngest).await;
}

#[tokio::test]
async fn a_broker_restart_mid_stream_loses_no_qos1_fix() {
    fixes_survive(Fault::RestartBroker).await;
}

#[tokio::test]
async fn every_fix_answered_accepted_outlives_a_kill_of_tracker_run() {
    // The embedded defaults: one process, SQLite in its data folder.
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("TRACKER_DATA_DIR", dir.path().display().to_string()),
        ("TRACKER_JWT_SECRET", SECRET.to_owned()),
        ("TRACKER_MQTT_ADDR", "127.0.0.1:0".to_owned()),
        ("TRACKER_FIX_RATE", "off".to_owned()),
    ];
    let run = start("run", &env).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let rider = unique("r");
    let (id, _) = picked_up_order(&run.base, &admin, "c1", &rider).await;

    // Four phones post fixes as fast as they are answered; the process is
    // killed in the middle of it.
    let accepted: Arc<Mutex<Vec<i64>>> = Arc::default();
    let token = auth.mint(&rider, Role::Rider, 600);
    let senders: Vec<_> = (0..4i64)
        .map(|k| {
            let (base, token, accepted) = (run.base.clone(), token.clone(), accepted.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0.. {
                    let ts = now_ms() - 60_000 + i * 8 + k;
                    let fix = json!({"lat": 23.1, "lon": 113.2, "ts": ts});
                    let r = http
                        .post(format!("{base}/v1/riders/me/pos"))
                        .bearer_auth(&token)
                        .json(&fix)
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    let Ok(body) = r.json::<Value>().await else {
                        return;
                    };
                    if body["accepted"] == 1 {
                        accepted.lock().unwrap().push(ts);
                    }
                }
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while accepted.lock().unwrap().len() < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fixes were not accepted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.kill().await;
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();

    let run = start("run", &env).await;
    let track = get_json(&run.base, &admin, &format!("/v1/orders/{id}/track")).await;
    let stored: Vec<i64> = track["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["ts"].as_i64())
        .collect();
    let lost: Vec<&i64> = accepted.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} fixes answered `accepted` are not in the stored track",
        lost.len(),
        accepted.len()
    );
    drop(run);
}
