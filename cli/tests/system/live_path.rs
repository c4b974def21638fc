//! The spine: a fix over MQTT and a status change over the API reach the watching customer.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

#[tokio::test]
async fn a_riders_fix_and_a_status_change_reach_the_watching_customer() {
    let app = spawn_app().await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, version) = app.assigned_order(&customer, &rider).await;
    // created, paid, preparing, ready, assigned + assignment = 6 events.

    let mut ws = app.ws(&app.token(&customer, Role::Customer)).await;
    ws.sub(&order, None).await;
    let snap = ws.next().await;
    assert_eq!(snap["t"], "snapshot", "{snap}");
    assert_eq!(snap["seq"], 6);
    assert_eq!(snap["status"], "assigned");
    assert!(
        snap.get("recovered").is_none(),
        "a plain sub is not a resume: {snap}"
    );

    // On the way to the store the rider is not shown to the customer: a skip
    // keeps the seq (views by role; tests/system/views.rs has the rest).
    let phone = app.mqtt_client().await;
    publish_fix(&phone, &rider, 23.1291, 113.2644, now_ms()).await;
    let skip = ws.next().await;
    assert_eq!(
        (skip["t"].as_str(), skip["seq"].as_u64()),
        (Some("skip"), Some(7)),
        "{skip}"
    );

    app.transition(&order, "picked_up", version).await;
    let status = ws.next().await;
    assert_eq!(status["t"], "status");
    assert_eq!(status["seq"], 8);
    assert_eq!(status["status"], "picked_up");
    assert_eq!(status["version"], version + 1);

    let ts = now_ms();
    let fix =
        json!({"lat": 23.1301, "lon": 113.2650, "ts": ts, "speed": 4.2, "heading": 90, "acc": 8});
    publish(&phone, &format!("riders/{rider}/pos"), fix.to_string()).await;
    let pos = ws.next().await;
    assert_eq!(pos["t"], "pos", "{pos}");
    assert_eq!(pos["order"], order.as_str());
    assert_eq!(pos["seq"], 9);
    assert_eq!(pos["lat"], 23.1301);
    assert_eq!(pos["lon"], 113.2650);
    assert_eq!(pos["ts"], ts);
    assert_eq!(pos["speed"], 4.2);
    assert_eq!(pos["heading"], 90.0);
    assert!(pos.get("before_pickup").is_none());

    assert_eq!(
        app.running.ingest_stats.as_ref().unwrap().appended_total(),
        2
    );
    app.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn one_connection_watches_many_orders_and_unsub_stops_one() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (a, _) = app.assigned_order("c1", &rider).await;
    let (b, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.ws(&app.admin()).await;
    ws.sub(&a, None).await;
    ws.sub(&b, None).await;
    assert_eq!(ws.next().await["t"], "snapshot");
    assert_eq!(ws.next().await["t"], "snapshot");

    // The rider holds both orders: one fix lands in both logs.
    let phone = app.mqtt_client().await;
    let fix = json!({"lat": 23.0, "lon": 113.0, "ts": now_ms()});
    publish(&phone, &format!("riders/{rider}/pos"), fix.to_string()).await;
    let mut orders = vec![ws.next().await["order"].as_str().unwrap().to_owned()];
    orders.push(ws.next().await["order"].as_str().unwrap().to_owned());
    orders.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(orders, want);

    ws.send(json!({"op": "unsub", "order": a})).await;
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(
        ws.next().await["t"],
        "pong",
        "unsub is processed before the ping"
    );
    publish_fix(&phone, &rider, 23.1, 113.1, now_ms()).await;
    let next = ws.next().await;
    assert_eq!(
        next["order"],
        b.as_str(),
        "only the order still watched: {next}"
    );
    ws.silent_for(200).await;
}

#[tokio::test]
async fn a_burst_from_many_riders_keeps_each_riders_order() {
    spawn_app()
        .await
        .burst_keeps_each_riders_order(12, 40)
        .await;
}

#[tokio::test]
async fn an_offline_batch_is_kept_whole_but_moves_the_marker_only_forward() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let phone = app.mqtt_client().await;
    let now = now_ms();
    publish_fix(&phone, &rider, 23.5, 113.5, now).await;
    app.wait_for_seq(&order, 7).await;

    // A tunnel backlog: older than the live fix, out of order, plus one newer fix.
    let batch = json!([
        {"lat": 23.2, "lon": 113.2, "ts": now - 20_000},
        {"lat": 23.6, "lon": 113.6, "ts": now + 1_000},
        {"lat": 23.1, "lon": 113.1, "ts": now - 30_000},
    ]);
    publish(
        &phone,
        &format!("riders/{rider}/pos/batch"),
        batch.to_string(),
    )
    .await;
    app.wait_for_seq(&order, 10).await;

    let read = app.running.log.read(&order, Some(7), 100).await.unwrap();
    let frames: Vec<serde_json::Value> = read
        .missed
        .unwrap()
        .iter()
        .map(|e| serde_json::from_slice(&e.json).unwrap())
        .collect();
    let ts: Vec<i64> = frames.iter().map(|f| f["ts"].as_i64().unwrap()).collect();
    assert_eq!(
        ts,
        vec![now - 30_000, now - 20_000, now + 1_000],
        "kept whole, oldest first"
    );
    assert_eq!(frames[0]["backfill"], true);
    assert_eq!(frames[1]["backfill"], true);
    assert!(frames[2].get("backfill").is_none());
    assert_eq!(
        read.state.pos.unwrap().ts,
        now + 1_000,
        "the marker follows the newest fix only"
    );
}

#[tokio::test]
async fn shutdown_closes_sockets_with_the_reconnect_code() {
    let app = spawn_app().await;
    let mut ws = app.ws(&app.admin()).await;
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(ws.next().await["t"], "pong");
    app.running.stop.cancel();
    use futures_util::StreamExt;
    let msg = tokio::time::timeout(PATIENCE, ws.stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match msg {
        tokio_tungstenite::tungstenite::Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 1012)
        }
        other => panic!("expected close 1012, got {other:?}"),
    }
}

#[tokio::test]
async fn routed_fixes_are_stored_as_the_orders_trip() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let phone = app.mqtt_client().await;
    let t0 = now_ms() - 10_000;
    let batch: Vec<_> = (0..5)
        .rev()
        .map(|i| json!({"lat": 23.0 + i as f64 * 0.01, "lon": 113.0, "ts": t0 + i * 1000}))
        .collect();
    publish(
        &phone,
        &format!("riders/{rider}/pos/batch"),
        json!(batch).to_string(),
    )
    .await;
    publish_fix(&phone, &rider, 23.5, 113.5, t0 + 9000).await;

    let url = format!("{}/v1/orders/{order}/track", app.base);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let trip = loop {
        let body: serde_json::Value = app
            .http
            .get(&url)
            .bearer_auth(app.admin())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["points"].as_array().map_or(0, |p| p.len()) >= 6 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trip incomplete: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let ts: Vec<i64> = trip["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ts"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ts,
        vec![t0, t0 + 1000, t0 + 2000, t0 + 3000, t0 + 4000, t0 + 9000],
        "oldest first, the backlog included"
    );
    assert_eq!(trip["points"][0]["rider_id"], rider.as_str());

    // The customer's trip starts at pick-up: nothing yet.
    let customer: serde_json::Value = app
        .http
        .get(&url)
        .bearer_auth(app.token("c1", Role::Customer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(customer["points"], json!([]), "{customer}");
    let stranger = app
        .http
        .get(&url)
        .bearer_auth(app.token("c2", Role::Customer))
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status().as_u16(), 403);
    let missing = app
        .http
        .get(format!("{}/v1/orders/nope/track", app.base))
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// A rider's longest legal offline batch (2000 fixes) reaches prompt watchers
/// on every transport whole and in order, with no `recovered:false`: it is
/// one item in each socket queue, though it is far more than the queue
/// (`app` runs with a queue of 8, so that a queue of single events overflows
/// whatever the machine's speed) and twice the history the log keeps.
pub(crate) async fn a_full_offline_batch_reaches_prompt_watchers_whole(app: &App) {
    let rider = unique("r");
    let (order, _) = app.picked_up_order("c1", &rider).await;
    let admin = app.admin();
    let mut ws = app.watch(&admin, &order).await;
    let mut sse = Sse::open(app, &order, &admin, None).await.unwrap();
    let (_, snap) = sse.next().await;
    let start = snap["seq"].as_u64().unwrap();
    // The long-poll client waits for news from where the snapshot stands.
    let poll = {
        let (http, base, order, admin) = (
            app.http.clone(),
            app.base.clone(),
            order.clone(),
            admin.clone(),
        );
        let epoch = snap["epoch"].as_str().unwrap().to_owned();
        tokio::spawn(async move {
            let url =
                format!("{base}/v1/orders/{order}/events?since={start}&epoch={epoch}&wait=20");
            let r = http.get(url).bearer_auth(&admin).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let now = now_ms();
    let batch: Vec<Value> = (0..2000)
        .map(|i| json!({"lat": 23.1 + i as f64 * 1e-5, "lon": 113.2, "ts": now - 2_000_000 + i * 1000}))
        .collect();
    let r = app
        .http
        .post(format!("{}/v1/riders/me/pos", app.base))
        .bearer_auth(app.token(&rider, Role::Rider))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let top = start + 2000;

    let check = |name: &str, frames: &[Value]| {
        let seqs: Vec<u64> = frames.iter().filter_map(|f| f["seq"].as_u64()).collect();
        assert!(
            frames.iter().all(|f| f["t"] == "pos"),
            "{name}: only the batch's events, no snapshot: {:?}",
            frames.iter().find(|f| f["t"] != "pos")
        );
        assert_eq!(
            seqs,
            (start + 1..=top).collect::<Vec<_>>(),
            "{name}: every event once, in order"
        );
    };
    let mut got = Vec::new();
    while got.len() < 2000 {
        got.push(ws.next().await);
    }
    check("websocket", &got);
    let mut got = Vec::new();
    while got.len() < 2000 {
        got.push(sse.next().await.1);
    }
    check("sse", &got);
    let answer = poll.await.unwrap();
    check("long-poll", answer["events"].as_array().unwrap());
    assert_eq!(answer["next"].as_u64(), Some(top));
}

#[tokio::test]
async fn a_full_offline_batch_reaches_prompt_watchers_whole_in_process() {
    let app = spawn_app_with(&[("TRACKER_WS_QUEUE", "8")]).await;
    a_full_offline_batch_reaches_prompt_watchers_whole(&app).await;
}
