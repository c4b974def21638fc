//! Access that ends: tokens that expire (WebSocket 4001, SSE end, long-poll
//! per request), the refresh op, a rider taken off an order, share links and
//! their revocation, a client's clean close.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tracker_hub::Role;

/// The 5 s leeway plus a second's rounding of `exp` and a margin.
const EXPIRY_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn an_expired_token_is_closed_with_4001_and_a_refreshed_one_keeps_going() {
    let app = spawn_app().await;
    let order = app.create_order("c1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let short = app.token_for_secs("c1", Role::Customer, 1);
    let mut expiring = app.watch(&short, &order).await;
    let mut refreshed = app.watch(&short, &order).await;

    // Refusals first: the old token stays.
    refreshed.send(json!({"op": "refresh"})).await;
    assert_eq!(refreshed.next().await["code"], "bad_request");
    refreshed
        .send(json!({"op": "refresh", "token": "not.a.token"}))
        .await;
    assert_eq!(refreshed.next().await["code"], "unauthorized");
    let someone_else = app.token("c2", Role::Customer);
    refreshed
        .send(json!({"op": "refresh", "token": someone_else}))
        .await;
    let f = refreshed.next().await;
    assert_eq!(
        (f["t"].as_str(), f["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{f}"
    );
    let as_admin = app.token("c1", Role::Admin);
    refreshed
        .send(json!({"op": "refresh", "token": as_admin}))
        .await;
    assert_eq!(
        refreshed.next().await["code"],
        "forbidden",
        "same sub, another role"
    );

    let long = app.token("c1", Role::Customer);
    refreshed
        .send(json!({"op": "refresh", "token": long}))
        .await;
    let f = refreshed.next().await;
    assert_eq!(f["t"], "refreshed", "{f}");
    assert!(f["exp"].as_u64().unwrap() > now_ms() as u64 / 1000 + 3000);

    // The SSE stream of the same short token ends at its expiry too.
    let sse = app
        .http
        .get(format!("{}/v1/orders/{order}/sse?token={short}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let sse_ended = tokio::time::timeout(EXPIRY_WAIT, async {
        let mut body = sse.bytes_stream();
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    });

    let started = tokio::time::Instant::now();
    let (code, ended) = tokio::join!(expiring.closed_within(EXPIRY_WAIT), sse_ended);
    assert_eq!(code, Some(4001));
    assert!(ended.is_ok(), "the SSE stream ended at the token's expiry");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before the leeway"
    );

    // The refreshed connection lives on, and still gets the order's events.
    refreshed.send(json!({"op": "ping"})).await;
    assert_eq!(refreshed.next().await["t"], "pong");
    // Every long-poll request is checked anew: the expired token is refused
    // (once past the leeway, which the close above may beat by a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, _) = app
        .read_as(&format!("/v1/orders/{order}/events?since=0&wait=0"), &short)
        .await;
    assert_eq!(status, 401);
}

/// The rider's frames until the `forbidden` one; fails if it never comes.
async fn until_forbidden(ws: &mut Ws, order: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let f = ws.next().await;
        if f["t"] == "error" {
            assert_eq!(f["code"], "forbidden", "{f}");
            assert_eq!(f["order"], order, "{f}");
            return seen;
        }
        seen.push(f);
    }
}

#[tokio::test]
async fn a_rider_taken_off_an_order_stops_getting_its_events() {
    let app = spawn_app().await;
    let (order, v) = app.assigned_order("c1", "r1").await;
    let r1 = app.token("r1", Role::Rider);
    let mut ws = app.watch(&r1, &order).await;
    let sse = app
        .http
        .get(format!("{}/v1/orders/{order}/sse?token={r1}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    // Back to the pool, then to another rider.
    let v = app.transition(&order, "ready", v).await;
    let seen = until_forbidden(&mut ws, &order).await;
    assert!(
        seen.iter().all(|f| f["t"] != "assignment"),
        "the assignment away is not shown: {seen:?}"
    );
    let (status, o) = app
        .post(
            &format!("/v1/orders/{order}/assign"),
            &json!({"rider_id": "r2", "version": v}),
        )
        .await;
    assert_eq!(status, 200, "{o}");
    let admin = app.admin();
    let mut watcher = app.watch(&admin, &order).await;
    let mqtt = app.mqtt_client().await;
    publish_fix(&mqtt, "r2", 23.13, 113.27, now_ms()).await;
    loop {
        if watcher.next().await["t"] == "pos" {
            break;
        }
    }
    ws.silent_for(300).await;

    // The SSE stream says so and ends.
    let text = tokio::time::timeout(PATIENCE, sse.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(text.contains("\"forbidden\""), "{text}");
    assert!(!text.contains("\"r2\""), "{text}");
    // Long-poll is refused from now on.
    let (status, _, _) = app
        .read_as(&format!("/v1/orders/{order}/events?since=0&wait=0"), &r1)
        .await;
    assert_eq!(status, 403);
}

async fn share(app: &App, order: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/orders/{order}/share", app.base))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_share_link_watches_its_order_as_the_customer_and_ends_when_revoked() {
    let app = spawn_app().await;
    let (order, _) = app.assigned_order("c1", "r1").await;
    let other = app.create_order("c1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let customer = app.token("c1", Role::Customer);

    // Who may share, and with what.
    for (body, why) in [
        (json!({"ttl_secs": -1}), "negative"),
        (json!({"ttl_secs": 0}), "zero"),
        (json!({"ttl_secs": 8 * 86400}), "over 7 days"),
        (json!({"ttl_secs": "soon"}), "not a number"),
        (json!({"ttl": 60}), "unknown field"),
    ] {
        let (status, e) = share(&app, &order, &customer, Some(body)).await;
        assert_eq!(status, 400, "{why}: {e}");
        assert_eq!(e["error"], "bad_request", "{why}: {e}");
    }
    let (status, _) = share(&app, &order, &app.token("c2", Role::Customer), None).await;
    assert_eq!(status, 403, "another customer");
    let (status, _) = share(&app, &order, &app.token("r1", Role::Rider), None).await;
    assert_eq!(status, 403, "the rider");

    let (status, s) = share(&app, &order, &customer, None).await;
    assert_eq!(status, 201, "{s}");
    let viewer = s["token"].as_str().unwrap().to_owned();
    assert_eq!(s["url"], format!("/track/{order}#token={viewer}"));
    let day = now_ms() + 86_400_000;
    assert!(
        (s["expires_at"].as_i64().unwrap() - day).abs() < 5_000,
        "{s}"
    );
    let (status, s2) = share(&app, &order, &app.admin(), Some(json!({"ttl_secs": 600}))).await;
    assert_eq!(status, 201, "admins share too: {s2}");

    // The customer's view, on every transport.
    let mut ws = app.ws(&viewer).await;
    ws.sub(&order, None).await;
    let snap = ws.next().await;
    assert_eq!(snap["t"], "snapshot", "{snap}");
    assert!(
        snap.get("rider_id").is_none() || snap["rider_id"].is_null(),
        "{snap}"
    );
    let mqtt = app.mqtt_client().await;
    publish_fix(&mqtt, "r1", 23.13, 113.27, now_ms()).await;
    let f = ws.next().await;
    assert_eq!(f["t"], "skip", "no rider position before pick-up: {f}");
    let (status, _, body) = app
        .read_as(
            &format!("/v1/orders/{order}/events?since=0&wait=0"),
            &viewer,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains("\"lat\""), "{body}");
    let (status, _, o) = app.read_as(&format!("/v1/orders/{order}"), &viewer).await;
    assert_eq!(status, 200);
    assert!(o["rider_id"].is_null(), "{o}");
    let sse = app
        .http
        .get(format!("{}/v1/orders/{order}/sse?token={viewer}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    // Nothing else.
    let (status, _, _) = app.read_as(&format!("/v1/orders/{other}"), &viewer).await;
    assert_eq!(status, 403, "another order of the same customer");
    ws.sub(&other, None).await;
    assert_eq!(ws.next().await["code"], "forbidden");
    let (status, _, _) = app.read_as("/v1/orders", &viewer).await;
    assert_eq!(status, 403);
    let (status, _, _) = app
        .read_as("/v1/dispatch/nearby?lat=23.1&lon=113.2", &viewer)
        .await;
    assert_eq!(status, 403);
    let (status, _) = share(&app, &order, &viewer, None).await;
    assert_eq!(status, 403, "a viewer cannot share on");

    // Revoked: every link's sockets close with 4001, and the links are refused.
    let r = app
        .http
        .delete(format!("{}/v1/orders/{order}/share", app.base))
        .bearer_auth(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(ws.closed_within(PATIENCE).await, Some(4001));
    tokio::time::timeout(PATIENCE, sse.text())
        .await
        .expect("the SSE stream of a revoked link ends")
        .unwrap();
    for t in [&viewer, s2["token"].as_str().unwrap()] {
        let (status, _, _) = app.read_as(&format!("/v1/orders/{order}"), t).await;
        assert_eq!(status, 403);
    }
    // The customer still watches; a new link works.
    let mut own = app.watch(&customer, &order).await;
    own.send(json!({"op": "ping"})).await;
    assert_eq!(own.next().await["t"], "pong");
    let (status, s3) = share(&app, &order, &customer, None).await;
    assert_eq!(status, 201);
    let (status, _, _) = app
        .read_as(
            &format!("/v1/orders/{order}"),
            s3["token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, 200, "a link made after the revocation");
}

#[tokio::test]
async fn a_clients_close_is_answered() {
    let app = spawn_app().await;
    let mut ws = app.ws(&app.admin()).await;
    ws.stream.close(None).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, ws.stream.next())
        .await
        .unwrap();
    assert!(
        matches!(answer, Some(Ok(Message::Close(_))) | None),
        "a Close frame back, then the end: {answer:?}"
    );
    let mut ws = app.ws(&app.admin()).await;
    ws.stream
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 4100.into(),
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
    match tokio::time::timeout(PATIENCE, ws.stream.next())
        .await
        .unwrap()
    {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4100),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}
