//! Several processes, as users run them past one node: two `tracker hub` and two
//! `tracker ingest` against one Redis, PostgreSQL and Mosquitto.

use crate::backends::backend_url;
use crate::helpers::{PATIENCE, forget_mqtt_session, mqtt_client_at, now_ms, publish, unique};
use crate::processes::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tracker_backend::EventLog;
use tracker_backend::log::redis::{RedisLog, RedisLogConfig};
use tracker_backend::store::postgres::testing::TestDatabase;
use tracker_hub::{Auth, Role};

#[tokio::test]
async fn two_hubs_and_two_ingests_share_the_work_and_lose_nothing() {
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    two_hubs_and_two_ingests_on(&redis).await;
}

/// The same run with the two hubs and two ingests on a private three-master
/// Redis Cluster, found from its seed list.
#[tokio::test]
async fn two_hubs_and_two_ingests_on_a_redis_cluster() {
    // The run needs every backend; the cluster itself is made from the
    // machine's redis-server, which the Redis suite's machines have.
    if [
        "TRACKER_TEST_REDIS_URL",
        "TRACKER_TEST_MQTT_URL",
        "TRACKER_TEST_DATABASE_URL",
    ]
    .iter()
    .any(|v| backend_url(v).is_none())
    {
        return;
    }
    let cluster = PrivateRedisCluster::start().await;
    two_hubs_and_two_ingests_on(&cluster.url).await;
    // The cross-order structures are sharded by hash tag (backend/src/shard.rs),
    // so their shards live on several masters. Asked of the cluster itself, not
    // of the keys this short run happened to leave: those are a handful of
    // slots, all on one master now and then (it failed CI that way once).
    let mut nodes = Vec::new();
    for seed in cluster.url.split(',') {
        nodes.push(
            redis::Client::open(seed)
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        );
    }
    for structure in ["dispatch", "riders", "timers"] {
        let mut owners = std::collections::BTreeSet::new();
        for k in 0..tracker_backend::shard::REDIS_SHARDS {
            let key = format!("any:{{{structure}:{k}}}");
            // Only the node that serves the key's slot answers; the others
            // redirect (MOVED).
            let mut serving = Vec::new();
            for (i, node) in nodes.iter_mut().enumerate() {
                let here: redis::RedisResult<String> =
                    redis::cmd("TYPE").arg(&key).query_async(node).await;
                if here.is_ok() {
                    serving.push(i);
                }
            }
            assert_eq!(serving.len(), 1, "{key} is served by {serving:?}");
            owners.extend(serving);
        }
        assert!(
            owners.len() >= 2,
            "the {structure} shards all live on one master: {owners:?}"
        );
    }
}

/// Two hubs and two ingests on the Redis at `redis`: the work is shared, a
/// watcher sees every event once in order, a hub's stop loses nothing.
async fn two_hubs_and_two_ingests_on(redis: &str) {
    let Some(mqtt) = backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    let Some(admin_db) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    let redis = redis.to_owned();
    let db = TestDatabase::create(&admin_db).await;
    let prefix = unique("nodes");
    let group = unique("ingest");
    // Each ingest's session has a name of its own, ended when the test is done.
    let client_id = |node: &str| format!("{group}-{node}");
    let common = |node: &str| {
        let mut env = node_env(&redis, &prefix, &db.url, node);
        env.extend([
            ("TRACKER_MQTT_URL", mqtt.clone()),
            ("TRACKER_MQTT_SHARE_GROUP", group.clone()),
            ("TRACKER_MQTT_CLIENT_ID", client_id(node)),
            // This test counts every event of the order: no estimates or
            // alerts of the trip watcher among them (the fixes are far off
            // the straight line to the drop-off and would raise `off_route`).
            ("TRACKER_TRIP_WATCHER", "off".into()),
        ]);
        env
    };
    // The first process migrates the database; the others find it done.
    let hub_a = start("hub", &common("1")).await;
    let hub_b = start("hub", &common("2")).await;
    let ingest_1 = start("ingest", &common("3")).await;
    let ingest_2 = start("ingest", &common("4")).await;

    // The test reads the shared log directly to know when events have landed.
    let log_cfg = RedisLogConfig {
        prefix: prefix.clone(),
        ..Default::default()
    };
    let log = RedisLog::connect(&redis, log_cfg).await.unwrap();
    let log = &log;
    let top_of = |id: String| async move { log.read(&id, None, 0).await.unwrap().state.seq };
    let wait_top = |id: String, want: u64| async move {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let top = log.read(&id, None, 0).await.unwrap().state.seq;
            if top >= want {
                return top;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "log stuck at {top}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let (customer, rider) = (unique("c"), unique("r"));

    // The order is made and moved through hub B ...
    let (id, v) = assigned_order(&hub_b.base, &admin, &customer, &rider).await;

    // ... and watched on hub A.
    let token = auth.mint(&customer, Role::Customer, 600);
    let ws_url = |p: &Proc| format!("{}/v1/ws?token={token}", p.base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&hub_a))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "sub", "order": id}).to_string().into(),
    ))
    .await
    .unwrap();
    let mut last = next_frame(&mut ws).await.unwrap()["seq"].as_u64().unwrap();
    // Events still being relayed arrive after the snapshot; wait until the six are in.
    while last < 6 {
        let f = next_frame(&mut ws).await.unwrap();
        assert_eq!(f["seq"].as_u64().unwrap(), last + 1);
        last += 1;
    }

    // Fixes through Mosquitto: the two ingest instances split them.
    let (host, port) = {
        let t = tracker_ingest::MqttTarget::parse(&mqtt).unwrap();
        (t.host, t.port)
    };
    let phone = mqtt_client_at(&host, port).await;
    let topic = format!("riders/{rider}/pos");
    let t0 = now_ms() - 100_000;
    // Ingest subscribes after it connects; fixes sent before that reach nobody,
    // so send one at a time until one lands (bounded).
    let mut sent = 0;
    while top_of(id.clone()).await < 7 {
        publish(
            &phone,
            &topic,
            json!({"lat": 23.0, "lon": 113.0, "ts": t0 + sent}).to_string(),
        )
        .await;
        sent += 1;
        assert!(sent < 100, "no fix made it through Mosquitto and ingest");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..60 {
        publish(
            &phone,
            &topic,
            json!({"lat": 23.0, "lon": 113.0, "ts": t0 + 1000 + i}).to_string(),
        )
        .await;
    }
    let target = wait_top(id.clone(), 67).await;
    while last < target {
        let f = next_frame(&mut ws).await.unwrap();
        assert_eq!(
            f["seq"].as_u64().unwrap(),
            last + 1,
            "no gap, no duplicate across processes"
        );
        last += 1;
    }
    let (took_1, took_2) = (
        ingest_1.metric("tracker_fixes_accepted_total").await,
        ingest_2.metric("tracker_fixes_accepted_total").await,
    );
    assert!(
        took_1 > 0.0 && took_2 > 0.0,
        "both ingest instances took part: {took_1} and {took_2}"
    );

    // A change through B is seen on A.
    post(
        &hub_b.base,
        &admin,
        &format!("/v1/orders/{id}/status"),
        json!({"to": "picked_up", "version": v}),
    )
    .await;
    let f = next_frame(&mut ws).await.unwrap();
    assert_eq!(
        (f["status"].as_str(), f["seq"].as_u64()),
        (Some("picked_up"), Some(last + 1))
    );
    last += 1;

    // Node A stops: the watcher is told to reconnect, and comes back on B with since.
    hub_a.terminate().await;
    let closed = loop {
        match next_frame(&mut ws).await {
            None => break true,
            Some(_) => continue,
        }
    };
    assert!(closed);
    for i in 0..10 {
        publish(
            &phone,
            &topic,
            json!({"lat": 23.1, "lon": 113.1, "ts": t0 + 2000 + i}).to_string(),
        )
        .await;
    }
    // Fixes of a delivered order are no longer routed, so let them land first.
    wait_top(id.clone(), last + 10).await;
    post(
        &hub_b.base,
        &admin,
        &format!("/v1/orders/{id}/status"),
        json!({"to": "delivered", "version": v + 1}),
    )
    .await;
    let top = wait_top(id.clone(), last + 11).await;
    assert_eq!(top, last + 11, "ten fixes and one status, each once");

    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&hub_b))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "sub", "order": id, "since": last})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    loop {
        let f = next_frame(&mut ws).await.unwrap();
        if f["t"] == "snapshot" {
            assert_eq!(
                (f["recovered"].as_bool(), f["seq"].as_u64()),
                (Some(true), Some(top)),
                "{f}"
            );
            assert_eq!(f["status"], "delivered");
            break;
        }
        got.push(f["seq"].as_u64().unwrap());
    }
    assert_eq!(
        got,
        ((last + 1)..=top).collect::<Vec<_>>(),
        "exactly what was missed while A was gone"
    );

    // The trip was stored by the ingest processes' track workers: exactly the
    // log's pos events, each once (a point may be delivered twice; it is stored once).
    let history = log.read(&id, Some(0), 1000).await.unwrap().missed.unwrap();
    let mut want: Vec<i64> = history
        .iter()
        .map(|e| serde_json::from_slice::<Value>(&e.json).unwrap())
        .filter(|f| f["t"] == "pos")
        .map(|f| f["ts"].as_i64().unwrap())
        .collect();
    want.sort();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let r = reqwest::Client::new()
            .get(format!("{}/v1/orders/{id}/track", hub_b.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        let trip: Value = r.json().await.unwrap();
        let got: Vec<i64> = trip["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["ts"].as_i64().unwrap())
            .collect();
        if got == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stored trip {got:?} != log {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    ingest_1.terminate().await;
    ingest_2.terminate().await;
    let broker = tracker_ingest::MqttTarget::parse(&mqtt).unwrap();
    for node in ["3", "4"] {
        forget_mqtt_session(&broker.host, broker.port, &client_id(node)).await;
    }
    drop(hub_b);
    db.drop_now().await;
}

#[tokio::test]
async fn a_relay_killed_between_commit_and_publish_loses_and_duplicates_nothing() {
    let Some((redis, db)) = private_redis_and_database().await else {
        return;
    };
    let env = |node: &str| node_env(&redis.url, "tracker", &db.url, node);
    let hub_a = start("hub", &env("1")).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let body = json!({"biz_order_no": unique("S"), "biz_type": "grocery", "customer_id": "c1",
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3}});
    let id = post(&hub_a.base, &admin, "/v1/orders", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = RedisLog::connect(&redis.url, RedisLogConfig::default())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while log.read(&id, None, 0).await.unwrap().state.seq < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "creation never relayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Redis freezes: the relay's append cannot complete. The change commits,
    // the relay takes the outbox row, and the hub dies before it could publish.
    // Until the relay's next idle round the gauge still shows the creation row.
    while hub_a.metric("tracker_outbox_backlog").await > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never went idle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.signal("-STOP");
    post(
        &hub_a.base,
        &admin,
        &format!("/v1/orders/{id}/status"),
        json!({"to": "paid", "version": 1}),
    )
    .await;
    // The relay reports the row it took just before it appends (and blocks).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub_a.metric("tracker_outbox_backlog").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never took the row"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub_a.kill().await;
    redis.signal("-CONT");

    // Another node's relay finishes the job.
    let hub_b = start("hub", &env("2")).await;
    let token = auth.mint("c1", Role::Customer, 600);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{}/v1/ws?token={token}",
        hub_b.base.replace("http://", "ws://")
    ))
    .await
    .unwrap();
    ws.send(Message::Text(
        json!({"op": "sub", "order": id, "since": 1})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    loop {
        let f = next_frame(&mut ws).await.unwrap();
        if f["t"] == "snapshot" && f["seq"].as_u64() >= Some(2) {
            assert_eq!(f["status"], "paid", "{f}");
            break;
        }
        frames.push(f);
    }
    // What the watcher saw after seq 1: the paid event exactly once, nothing else.
    let events: Vec<&Value> = frames.iter().filter(|f| f["t"] != "snapshot").collect();
    assert_eq!(events.len(), 1, "{frames:?}");
    assert_eq!(
        (events[0]["status"].as_str(), events[0]["seq"].as_u64()),
        (Some("paid"), Some(2))
    );
    assert_eq!(
        log.read(&id, None, 0).await.unwrap().state.seq,
        2,
        "the log holds it once"
    );

    drop(hub_b);
    db.drop_now().await;
}

#[tokio::test]
async fn access_taken_away_on_one_hub_ends_on_the_other() {
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let Some(admin_db) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    let db = TestDatabase::create(&admin_db).await;
    let prefix = unique("access");
    let common = |node: &str| node_env(&redis, &prefix, &db.url, node);
    let hub_a = start("hub", &common("1")).await;
    let hub_b = start("hub", &common("2")).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let (customer, rider) = (unique("c"), unique("r"));
    let (id, v) = assigned_order(&hub_a.base, &admin, &customer, &rider).await;
    let share = post(
        &hub_a.base,
        &auth.mint(&customer, Role::Customer, 600),
        &format!("/v1/orders/{id}/share"),
        json!({}),
    )
    .await;

    // On hub B: the rider and a share link watch the order.
    let mut on_b = watch_on(&hub_b.base, &auth.mint(&rider, Role::Rider, 600), &id).await;
    let mut link_on_b = watch_on(&hub_b.base, share["token"].as_str().unwrap(), &id).await;

    // Through hub A: the order goes back to the pool; the shares are revoked.
    let path = format!("/v1/orders/{id}/status");
    post(
        &hub_a.base,
        &admin,
        &path,
        json!({"to": "ready", "version": v}),
    )
    .await;
    let forbidden = loop {
        let f = next_frame(&mut on_b).await.expect("still open");
        if f["t"] == "error" {
            break f;
        }
        assert_ne!(f["t"], "assignment", "{f}");
    };
    assert_eq!(forbidden["code"], "forbidden", "{forbidden}");
    assert_eq!(forbidden["order"], id.as_str());
    let r = reqwest::Client::new()
        .delete(format!("{}/v1/orders/{id}/share", hub_a.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let code = loop {
        match tokio::time::timeout(PATIENCE, link_on_b.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(4001));
    hub_a.terminate().await;
    hub_b.terminate().await;
}

/// What an order's log holds of `kind`'s alerts: (raised, cleared).
async fn episodes_of(log: &RedisLog, id: &str, kind: &str) -> (usize, usize) {
    let read = log.read(id, Some(0), 10_000).await.unwrap();
    let mut n = (0, 0);
    for e in read.missed.expect("the whole history") {
        let v: Value = serde_json::from_slice(&e.json).unwrap();
        if v["t"] == "alert" && v["kind"] == kind {
            if v["cleared"] == true {
                n.1 += 1;
            } else {
                n.0 += 1;
            }
        }
    }
    n
}

/// Three hub processes share the trip watcher's partitions (they split them
/// while the riders ride, so orders move between processes mid-trip); 30
/// orders, a third with a stall, a third with a detour off their planned
/// route, a third whose phone goes silent: each episode is raised once and
/// cleared once, and no order gets an alert it did not earn.
#[tokio::test]
async fn three_hubs_raise_and_clear_each_episode_exactly_once() {
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let Some(admin_db) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    let db = TestDatabase::create(&admin_db).await;
    let prefix = unique("trips");
    let env = |node: &str| {
        let mut env = node_env(&redis, &prefix, &db.url, node);
        env.extend([
            ("TRACKER_STALL_SECS", "5".to_owned()),
            ("TRACKER_STALL_RADIUS_M", "30".to_owned()),
            ("TRACKER_OFFLINE_SECS", "6".to_owned()),
            ("TRACKER_FIX_RATE", "off".to_owned()),
        ]);
        env
    };
    let first = start("hub", &env("1")).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let log = RedisLog::connect(
        &redis,
        RedisLogConfig {
            prefix: prefix.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Thirty riders, each 6 km east along a planned straight route.
    let origin = (23.10, 113.20);
    let east = |m: f64| 113.20 + m / (111_320.0 * 23.10f64.to_radians().cos());
    let north = |m: f64| 23.10 + m / 111_320.0;
    let mut orders = Vec::new();
    for i in 0..30 {
        let rider = unique("r");
        let lat = north(i as f64 * 2000.0);
        let body = json!({"biz_order_no": unique("S"), "biz_type": "food", "customer_id": "c",
            "pickup": {"lat": lat, "lon": origin.1}, "dropoff": {"lat": lat, "lon": east(6000.0)},
            "route": [{"lat": lat, "lon": origin.1}, {"lat": lat, "lon": east(6000.0)}]});
        let (id, v) = order_to_assigned(&first.base, &admin, body, &rider).await;
        let path = format!("/v1/orders/{id}/status");
        post(
            &first.base,
            &admin,
            &path,
            json!({"to": "picked_up", "version": v}),
        )
        .await;
        orders.push((id, rider, lat));
    }
    // The other two join now: the partitions are split while the trips run.
    let second = start("hub", &env("2")).await;
    let third = start("hub", &env("3")).await;
    let bases = [first.base.clone(), second.base.clone(), third.base.clone()];

    // Twenty seconds of riding at 40 m/s, a fix a second through any hub.
    // From 4 s to 12 s: orders 0-9 stand still, 10-19 ride 500 m north of
    // their route, 20-29 send nothing.
    let client = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    for s in 0..20u64 {
        let mut sends = Vec::new();
        for (i, (_, rider, lat)) in orders.iter().enumerate() {
            let during = (4..12).contains(&s);
            if during && i >= 20 {
                continue;
            }
            let moved = if during && i < 10 { 4 * 40 } else { s * 40 };
            let lat = if during && (10..20).contains(&i) {
                lat + 500.0 / 111_320.0
            } else {
                *lat
            };
            let fix = json!({"lat": lat, "lon": east(100.0 + moved as f64), "ts": now_ms()});
            let req = client
                .post(format!("{}/v1/riders/me/pos", bases[i % 3]))
                .bearer_auth(auth.mint(rider, Role::Rider, 600))
                .json(&fix)
                .send();
            sends.push(req);
        }
        for r in futures_util::future::join_all(sends).await {
            assert!(r.unwrap().status().is_success());
        }
        tokio::time::sleep_until(started + Duration::from_secs(s + 1)).await;
    }
    // Every episode has ended (the stall moved on, the detour rejoined, the
    // phone came back); let the watchers catch up, then look at the logs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, (id, _, _)) in orders.iter().enumerate() {
        let kind = ["stalled", "off_route", "rider_offline"][i / 10];
        for other in ["stalled", "off_route", "rider_offline"] {
            let want = if other == kind { (1, 1) } else { (0, 0) };
            assert_eq!(
                episodes_of(&log, id, other).await,
                want,
                "order {i} ({kind}): its {other} alerts"
            );
        }
    }
    let mut owned = Vec::new();
    for p in [&first, &second, &third] {
        owned.push(p.metric("tracker_trips_partitions_owned").await);
    }
    assert_eq!(
        owned.iter().sum::<f64>(),
        16.0,
        "each partition followed by one process"
    );
    assert!(owned.iter().all(|&n| n >= 4.0), "shared out: {owned:?}");
    for p in [first, second, third] {
        p.terminate().await;
    }
    db.drop_now().await;
}

/// The node id inside an order id made on `base`.
async fn node_of_order_made_on(base: &str, admin: &str) -> (u16, u64) {
    let o = post(
        base,
        admin,
        "/v1/orders",
        json!({"biz_order_no": unique("N"), "biz_type": "grocery", "customer_id": "c-nodes",
            "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3}}),
    )
    .await;
    let id: u64 = o["id"].as_str().unwrap().parse().unwrap();
    (tracker_domain::ids::node_of(id), id)
}

#[tokio::test]
async fn two_hubs_with_auto_node_ids_never_share_one_and_ids_keep_rising() {
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let Some(admin_db) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    let db = TestDatabase::create(&admin_db).await;
    let prefix = unique("ids");
    let common = || node_env(&redis, &prefix, &db.url, "auto");
    let hub_a = start("hub", &common()).await;
    let hub_b = start("hub", &common()).await;
    let admin = Auth::hs256(SECRET.as_bytes()).mint("ops", Role::Admin, 600);
    let (node_a, id_a) = node_of_order_made_on(&hub_a.base, &admin).await;
    let (node_b, id_b) = node_of_order_made_on(&hub_b.base, &admin).await;
    assert_ne!(node_a, node_b, "two processes, two node ids");
    // Hub A is killed (its lease is left to run out) and a new hub starts:
    // it takes a free node id, and its ids are above every earlier one.
    let mut hub_a = hub_a;
    hub_a.child.kill().await.unwrap();
    let hub_c = start("hub", &common()).await;
    let (node_c, id_c) = node_of_order_made_on(&hub_c.base, &admin).await;
    assert!(node_c != node_b, "B still holds its node id");
    assert!(id_c > id_a.max(id_b), "{id_c} after {id_a} and {id_b}");
    drop((hub_b, hub_c));
    db.drop_now().await;
}

#[tokio::test]
async fn a_refund_waits_while_the_relay_is_frozen_and_completes_once_it_runs() {
    let Some((redis, db)) = private_redis_and_database().await else {
        return;
    };
    let mut env = node_env(&redis.url, "tracker", &db.url, "1");
    env.push(("TRACKER_TIMEOUT_SWEEP_SECS", "1".to_owned()));
    let hub = start("hub", &env).await;
    let admin = Auth::hs256(SECRET.as_bytes()).mint("ops", Role::Admin, 600);
    let r = reqwest::Client::new()
        .put(format!("{}/v1/stock/RF-SKU", hub.base))
        .bearer_auth(&admin)
        .json(&json!({"available": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = json!({"biz_order_no": unique("RF"), "biz_type": "shop", "customer_id": "c1",
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3},
        "items": [{"sku": "RF-SKU", "qty": 2}]});
    let id = post(&hub.base, &admin, "/v1/orders", body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stock = get_json(&hub.base, &admin, "/v1/stock/RF-SKU").await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(1), Some(2))
    );

    // Redis freezes: the order's payment commits, and its event cannot reach
    // the log. The refund that follows must wait for it.
    redis.signal("-STOP");
    post(
        &hub.base,
        &admin,
        &format!("/v1/orders/{id}/status"),
        json!({"to": "paid", "version": 1}),
    )
    .await;
    let refund = json!({"biz_refund_no": "RF-1", "reason": "changed mind", "amount": 1990});
    let answer = post(
        &hub.base,
        &admin,
        &format!("/v1/orders/{id}/refund"),
        refund.clone(),
    )
    .await;
    assert_eq!(answer["refund"]["state"], "pending", "{answer}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = get_json(&hub.base, &admin, &format!("/v1/orders/{id}")).await;
    assert_eq!(
        (held["refund"]["state"].as_str(), held["status"].as_str()),
        (Some("pending"), Some("paid")),
        "two sweeps later, still waiting: {held}"
    );

    redis.signal("-CONT");
    let deadline = tokio::time::Instant::now() + 3 * PATIENCE;
    let done = loop {
        let o = get_json(&hub.base, &admin, &format!("/v1/orders/{id}")).await;
        if o["refund"]["state"] == "done" {
            break o;
        }
        assert!(tokio::time::Instant::now() < deadline, "never applied: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (done["status"].as_str(), done["cancel_reason"].as_str()),
        (Some("cancelled"), Some("refunded"))
    );
    let again = post(
        &hub.base,
        &admin,
        &format!("/v1/orders/{id}/refund"),
        refund,
    )
    .await;
    assert_eq!(again["refund"]["state"], "done", "the same refund: {again}");
    // Two more sweeps: the stock came back, once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stock = get_json(&hub.base, &admin, "/v1/stock/RF-SKU").await;
    assert_eq!(
        (stock["available"].as_i64(), stock["reserved"].as_i64()),
        (Some(3), Some(0)),
        "{stock}"
    );
    // The log has the payment, the cancel and the refund, in that order.
    let log = RedisLog::connect(&redis.url, RedisLogConfig::default())
        .await
        .unwrap();
    let read = log.read(&id, Some(0), 100).await.unwrap();
    let kinds: Vec<String> = read
        .missed
        .unwrap()
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_slice(&e.json).unwrap();
            let what = v["status"].as_str().or(v["state"].as_str()).unwrap_or("");
            format!("{}:{what}", v["t"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "status:pending_payment",
            "status:paid",
            "status:cancelled",
            "refund:done"
        ]
    );
    hub.kill().await;
    db.drop_now().await;
}

/// Per-order delivery between nodes, on a Redis Cluster: a hub hears the
/// orders its own watchers hold and no others, so its tail and fan-out
/// counts stay flat while another hub's order moves.
#[tokio::test]
async fn a_hub_hears_only_the_orders_its_watchers_hold_on_a_redis_cluster() {
    if backend_url("TRACKER_TEST_REDIS_URL").is_none() {
        return;
    }
    let Some(admin_db) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    let cluster = PrivateRedisCluster::start().await;
    let db = TestDatabase::create(&admin_db).await;
    let prefix = unique("per-order");
    let env = |node: &str| {
        let mut env = node_env(&cluster.url, &prefix, &db.url, node);
        env.push(("TRACKER_TRIP_WATCHER", "off".into()));
        env
    };
    let hub_a = start("hub", &env("1")).await;
    let hub_b = start("hub", &env("2")).await;
    let auth = Auth::hs256(SECRET.as_bytes());
    let admin = auth.mint("ops", Role::Admin, 600);
    let (customer, rider_x, rider_y) = (unique("c"), unique("rx"), unique("ry"));
    let (x, _) = assigned_order(&hub_a.base, &admin, &customer, &rider_x).await;
    let (y, _) = assigned_order(&hub_a.base, &admin, &customer, &rider_y).await;
    let (mut on_a, mut last_x) = watch_from(&hub_a.base, &admin, &x).await;
    let (mut on_b, mut last_y) = watch_from(&hub_b.base, &admin, &y).await;
    let http = reqwest::Client::new();
    let fixes = |rider: &str, n: usize| {
        let (http, base) = (http.clone(), hub_a.base.clone());
        let token = auth.mint(rider, Role::Rider, 600);
        async move {
            for i in 0..n {
                let fix = json!({"lat": 23.1, "lon": 113.2, "ts": now_ms() - 1000 + i as i64});
                let r = http
                    .post(format!("{base}/v1/riders/me/pos"))
                    .bearer_auth(&token)
                    .json(&fix)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }
    };
    // Whatever was still on its way to B from the set-up has landed once
    // its watcher has the order's six events.
    while last_y < 6 {
        last_y = next_frame(&mut on_b).await.unwrap()["seq"]
            .as_u64()
            .unwrap();
    }
    let before_b = tail_counts(&hub_b).await;
    let before_a = tail_counts(&hub_a).await;

    // Thirty fixes of order X, watched only on A: A's watcher gets each.
    fixes(&rider_x, 30).await;
    while last_x < 36 {
        last_x = next_frame(&mut on_a).await.unwrap()["seq"]
            .as_u64()
            .unwrap();
    }
    // Then one fix of Y: once B's watcher has it, B's tail is live and
    // caught up, and it took that one entry only.
    fixes(&rider_y, 1).await;
    let f = next_frame(&mut on_b).await.unwrap();
    assert_eq!(f["seq"].as_u64(), Some(last_y + 1), "{f}");
    let after_b = tail_counts(&hub_b).await;
    let after_a = tail_counts(&hub_a).await;
    assert_eq!(
        (after_b.0 - before_b.0, after_b.1 - before_b.1),
        (1.0, 1.0),
        "hub B received and delivered Y's one fix and none of X's thirty"
    );
    assert!(
        after_a.0 - before_a.0 >= 30.0 && after_a.1 - before_a.1 >= 30.0,
        "hub A received and delivered X's fixes: {before_a:?} -> {after_a:?}"
    );
    drop((hub_a, hub_b));
    db.drop_now().await;
}

/// What `p`'s tail received and its fan-out handed on, so far.
async fn tail_counts(p: &Proc) -> (f64, f64) {
    (
        p.metric("tracker_tail_entries_total").await,
        p.metric("tracker_fanout_queued_total").await,
    )
}
