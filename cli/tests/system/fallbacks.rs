//! SSE and long-poll: the same events, auth and resume as the WebSocket.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

#[tokio::test]
async fn sse_streams_snapshot_and_events_with_seq_ids_and_resumes_by_last_event_id() {
    let app = spawn_app().await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, version) = app.assigned_order(&customer, &rider).await;
    let token = app.token(&customer, Role::Customer);
    let mut sse = Sse::open(&app, &order, &token, None).await.unwrap();
    let (id, snap) = sse.next().await;
    assert_eq!((snap["t"].as_str(), id), (Some("snapshot"), Some(6)));

    let phone = app.mqtt_client().await;
    let ts = now_ms();
    publish_fix(&phone, &rider, 23.0, 113.0, ts).await;
    // Before pick-up the customer's view holds a skip in the fix's place.
    let (id, skip) = sse.next().await;
    assert_eq!((skip["t"].as_str(), id), (Some("skip"), Some(7)), "{skip}");
    assert!(skip.get("lat").is_none());
    drop(sse);

    // Gone for a while: a status change and a fix happen; EventSource comes back with Last-Event-ID.
    app.transition(&order, "picked_up", version).await;
    // The status reaches the log first (a fix ahead of it would still be "before pick-up").
    app.wait_for_seq(&order, 8).await;
    publish_fix(&phone, &rider, 23.1, 113.1, now_ms()).await;
    app.wait_for_seq(&order, 9).await;
    let mut sse = Sse::open(&app, &order, &token, Some(7)).await.unwrap();
    let got = [sse.next().await, sse.next().await, sse.next().await];
    assert_eq!(got[0].0, Some(8));
    assert_eq!(got[0].1["status"], "picked_up");
    assert_eq!((got[1].0, got[1].1["t"].as_str()), (Some(9), Some("pos")));
    assert_eq!(
        (got[2].1["t"].as_str(), got[2].1["recovered"].as_bool()),
        (Some("snapshot"), Some(true))
    );
}

#[tokio::test]
async fn sse_and_long_poll_refuse_like_the_websocket() {
    let app = spawn_app().await;
    let (order, _) = app.assigned_order("alice", &unique("r")).await;
    let bob = app.token("bob", Role::Customer);
    assert_eq!(Sse::open(&app, &order, &bob, None).await.err(), Some(403));
    assert_eq!(
        Sse::open(&app, &order, "garbage", None).await.err(),
        Some(401)
    );
    assert_eq!(
        Sse::open(&app, "no-such-order", &app.admin(), None)
            .await
            .err(),
        Some(404)
    );
    let poll = |token: String, path: String| {
        let (http, base) = (app.http.clone(), app.base.clone());
        async move {
            http.get(format!("{base}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        poll(bob, format!("/v1/orders/{order}/events?since=0")).await,
        403
    );
    assert_eq!(
        poll(app.admin(), "/v1/orders/nope/events?since=0".into()).await,
        404
    );
    assert_eq!(
        poll("x".into(), format!("/v1/orders/{order}/events")).await,
        401
    );
    assert_eq!(
        poll(app.admin(), format!("/v1/orders/{order}/events?since=-1")).await,
        400
    );
}

async fn long_poll(app: &App, order: &str, query: &str) -> Value {
    let url = format!("{}/v1/orders/{order}/events?{query}", app.base);
    let r = app
        .http
        .get(url)
        .bearer_auth(app.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn long_poll_answers_at_once_waits_for_news_and_tells_when_history_is_gone() {
    let app = spawn_app_with(&[("TRACKER_LOG_HISTORY", "20")]).await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;

    // Events after since exist: at once, in order, with next.
    let r = long_poll(&app, &order, "since=3&wait=30").await;
    let seqs: Vec<u64> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!((seqs, r["next"].as_u64()), (vec![4, 5, 6], Some(6)));

    // Nothing new: the request waits until the next event arrives.
    let waiting = {
        let (http, url, token) = (
            app.http.clone(),
            format!("{}/v1/orders/{order}/events?since=6&wait=30", app.base),
            app.admin(),
        );
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "nothing after 6 yet: the poll must wait"
    );
    let phone = app.mqtt_client().await;
    let ts = now_ms();
    publish_fix(&phone, &rider, 1.0, 2.0, ts).await;
    let r = tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r["events"][0]["ts"].as_i64(), Some(ts));
    assert_eq!(r["next"], 7);

    // Still nothing new after the wait: an empty answer, next unchanged.
    let r = long_poll(&app, &order, "since=7&wait=1").await;
    assert_eq!(
        (r["events"].as_array().unwrap().len(), r["next"].as_u64()),
        (0, Some(7))
    );

    // History gone (20 kept): a fresh snapshot, recovered false.
    for i in 0..30 {
        publish_fix(&phone, &rider, 1.0, 2.0, ts + 1 + i).await;
    }
    app.wait_for_seq(&order, 37).await;
    let r = long_poll(&app, &order, "since=2").await;
    assert_eq!(r["events"].as_array().unwrap().len(), 1);
    let snap = &r["events"][0];
    assert_eq!(
        (
            snap["t"].as_str(),
            snap["recovered"].as_bool(),
            snap["seq"].as_u64()
        ),
        (Some("snapshot"), Some(false), Some(37))
    );
    assert_eq!(r["next"], 37);
    // No since at all: the current snapshot.
    let r = long_poll(&app, &order, "").await;
    assert_eq!(
        (r["events"][0]["t"].as_str(), r["next"].as_u64()),
        (Some("snapshot"), Some(37))
    );
}

async fn post_fixes(app: &App, token: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/v1/riders/me/pos", app.base))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn riders_without_mqtt_post_fixes_with_the_same_validation() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;
    let token = app.token(&rider, Role::Rider);

    let ts = now_ms();
    let (status, body) = post_fixes(
        &app,
        &token,
        json!({"lat": 23.0, "lon": 113.0, "ts": ts}).to_string(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["ts"].as_i64(), pos["seq"].as_u64()),
        (Some("pos"), Some(ts), Some(7))
    );

    // A batch with one bad fix: the good ones go through, the bad one is reported.
    let batch = json!([{"lat": 23.1, "lon": 113.1, "ts": ts - 2000}, {"lat": 123, "lon": 1, "ts": ts}, {"lat": 23.2, "lon": 113.2, "ts": ts + 1}]);
    let (status, body) = post_fixes(&app, &token, batch.to_string()).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            body["accepted"].as_u64(),
            body["rejected"]["out_of_range"].as_u64()
        ),
        (Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(
        ws.next().await["backfill"],
        true,
        "the older fix of the batch"
    );
    assert_eq!(ws.next().await["ts"].as_i64(), Some(ts + 1));

    // One bad fix alone, garbage, a non-rider, no token.
    let (status, body) = post_fixes(
        &app,
        &token,
        json!({"lat": 1, "lon": 1, "ts": ts + 3_600_000}).to_string(),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    assert!(
        body["message"].as_str().unwrap().contains("future_ts"),
        "{body}"
    );
    let (status, body) = post_fixes(&app, &token, "\u{0}garbage").await;
    assert!(
        status == 400 && body["message"].as_str().unwrap().contains("bad_json"),
        "{status} {body}"
    );
    assert_eq!(
        post_fixes(&app, &app.token("c1", Role::Customer), "{}")
            .await
            .0,
        403
    );
    assert_eq!(post_fixes(&app, "nope", "{}").await.0, 401);
    let stats = app.running.ingest_stats.clone().unwrap();
    assert_eq!(
        (stats.accepted(), stats.rejected_total()),
        (3, 3),
        "counted like MQTT fixes"
    );
}
