//! Bad input on every door: each is answered or counted, and the door keeps serving.

use crate::helpers::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tracker_domain::RejectReason;

#[tokio::test]
async fn malformed_fixes_are_counted_by_reason_and_ingest_keeps_serving() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;

    let phone = app.mqtt_client().await;
    let topic = format!("riders/{rider}/pos");
    let batch = format!("riders/{rider}/pos/batch");
    let now = now_ms();
    let huge: Vec<_> = (0..3000)
        .map(|_| json!({"lat": 1, "lon": 1, "ts": now}))
        .collect();
    let cases: Vec<(String, Vec<u8>, RejectReason)> = vec![
        (
            topic.clone(),
            vec![0xff, 0x00, 0x13, 0x37],
            RejectReason::BadJson,
        ),
        (
            topic.clone(),
            b"{\"lat\":NaN,\"lon\":1,\"ts\":1}".to_vec(),
            RejectReason::BadJson,
        ),
        (
            topic.clone(),
            json!({"lat": "north", "lon": 1, "ts": now})
                .to_string()
                .into(),
            RejectReason::BadType,
        ),
        (
            topic.clone(),
            json!({"lat": 95.0, "lon": 1, "ts": now}).to_string().into(),
            RejectReason::OutOfRange,
        ),
        (
            topic.clone(),
            json!({"lat": 1, "lon": 1, "ts": now + 3_600_000})
                .to_string()
                .into(),
            RejectReason::FutureTs,
        ),
        (
            topic.clone(),
            json!({"lat": 1, "lon": 1, "ts": now, "speed": -3})
                .to_string()
                .into(),
            RejectReason::BadField,
        ),
        (
            batch.clone(),
            json!({"not": "an array"}).to_string().into(),
            RejectReason::BadType,
        ),
        (
            batch.clone(),
            json!(huge).to_string().into(),
            RejectReason::BatchTooLarge,
        ),
        (
            "riders/bad id!/pos".into(),
            json!({"lat": 1, "lon": 1, "ts": now}).to_string().into(),
            RejectReason::BadTopic,
        ),
    ];
    let stats = app.running.ingest_stats.clone().unwrap();
    for (t, payload, _) in &cases {
        publish(&phone, t, payload.clone()).await;
    }
    // A good fix after all the bad ones still arrives: the consumer is alive.
    let ts = now_ms();
    publish_fix(&phone, &rider, 23.0, 113.0, ts).await;
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["ts"].as_i64()),
        (Some("pos"), Some(ts)),
        "{pos}"
    );
    ws.silent_for(200).await;

    // Order is kept per topic only, so wait (bounded) until every bad payload was seen.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stats.rejected_total() < cases.len() as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} rejections counted",
            stats.rejected_total()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for reason in [
        RejectReason::BadJson,
        RejectReason::BadType,
        RejectReason::OutOfRange,
        RejectReason::FutureTs,
        RejectReason::BadField,
        RejectReason::BatchTooLarge,
        RejectReason::BadTopic,
    ] {
        let want = cases.iter().filter(|c| c.2 == reason).count() as u64;
        assert_eq!(stats.rejected(reason), want, "{}", reason.as_str());
    }
    assert_eq!(stats.rejected_total(), cases.len() as u64);
    assert_eq!(stats.appended_total(), 1);
}

#[tokio::test]
async fn a_batch_with_some_bad_fixes_keeps_the_good_ones() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let phone = app.mqtt_client().await;
    let now = now_ms();
    let batch = json!([{"lat": 1, "lon": 1, "ts": now - 2000}, {"lat": 1000, "lon": 1, "ts": now}, "x", {"lat": 2, "lon": 2, "ts": now - 1000}]);
    publish(
        &phone,
        &format!("riders/{rider}/pos/batch"),
        batch.to_string(),
    )
    .await;
    app.wait_for_seq(&order, 8).await;
    let stats = app.running.ingest_stats.clone().unwrap();
    assert_eq!(stats.rejected(RejectReason::OutOfRange), 1);
    assert_eq!(stats.rejected(RejectReason::BadType), 1);
    assert_eq!(stats.appended_total(), 2);
}

#[tokio::test]
async fn bad_websocket_frames_get_error_frames_and_the_connection_keeps_serving() {
    let app = spawn_app().await;
    let (order, v) = app.assigned_order("c1", &unique("r")).await;
    let mut ws = app.watch(&app.admin(), &order).await;

    ws.stream
        .send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(ws.next().await["code"], "unsupported");
    ws.stream
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    assert_eq!(ws.next().await["code"], "bad_json");
    ws.send(json!({"op": "dance"})).await;
    assert_eq!(ws.next().await["code"], "bad_request");
    ws.send(json!({"op": "sub"})).await;
    assert_eq!(ws.next().await["code"], "bad_request");
    ws.send(json!({"op": "sub", "order": "x".repeat(500)}))
        .await;
    assert_eq!(ws.next().await["code"], "bad_request");
    ws.send(json!({"op": "sub", "order": "no-such-order"}))
        .await;
    assert_eq!(ws.next().await["code"], "not_found");
    ws.send(json!({"op": "ping", "pad": "x".repeat(10_000)}))
        .await;
    assert_eq!(ws.next().await["code"], "too_large");

    // Still serving: ping answered, and the subscription still delivers.
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(ws.next().await["t"], "pong");
    // A frame just under the limit spans several reads of the 1 KiB read buffer.
    ws.send(json!({"op": "ping", "pad": "x".repeat(3_900)}))
        .await;
    assert_eq!(ws.next().await["t"], "pong");
    app.transition(&order, "picked_up", v).await;
    assert_eq!(ws.next().await["status"], "picked_up");
}

#[tokio::test]
async fn an_oversized_message_closes_only_that_connection_with_1009() {
    let app = spawn_app().await;
    let mut other = app.ws(&app.admin()).await;
    let mut ws = app.ws(&app.admin()).await;
    ws.stream
        .send(Message::Text("y".repeat(200_000).into()))
        .await
        .unwrap();
    let closed = ws.closed_within(PATIENCE).await;
    assert_eq!(closed, Some(1009), "closed with {closed:?}");
    // A 16 MB frame, refused from its header: the client still reads the
    // 1009 close once it has sent it all, not a reset.
    let mut huge = app.ws(&app.admin()).await;
    huge.stream
        .send(Message::Binary(vec![7u8; 16 << 20].into()))
        .await
        .unwrap();
    assert_eq!(huge.closed_within(PATIENCE).await, Some(1009));
    other.send(json!({"op": "ping"})).await;
    assert_eq!(
        other.next().await["t"],
        "pong",
        "other connections are untouched"
    );
}
