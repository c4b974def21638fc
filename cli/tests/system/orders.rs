//! The orders API of `docs/protocol.md` over real HTTP: idempotent create, versions, legality, errors.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;

fn new_order(key: &str) -> Value {
    json!({
        "biz_order_no": key, "biz_type": "grocery", "customer_id": "c1",
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3},
    })
}

#[tokio::test]
async fn two_hundred_identical_creates_at_once_make_one_order() {
    let app = std::sync::Arc::new(spawn_app().await);
    let body = new_order(&unique("S"));
    let calls: Vec<_> = (0..200)
        .map(|_| {
            let (app, body) = (app.clone(), body.clone());
            tokio::spawn(async move { app.post("/v1/orders", &body).await })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for c in calls {
        let (status, order) = c.await.unwrap();
        assert!(status == 201 || status == 200, "{status} {order}");
        created += usize::from(status == 201);
        ids.insert(order["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one order for one (biz_order_no, biz_type)");
    assert_eq!(created, 1, "exactly one 201");
    let id = ids.into_iter().next().unwrap();
    app.wait_for_seq(&id, 1).await;
    let r = app.running.log.read(&id, Some(0), 10).await.unwrap();
    assert_eq!(r.state.seq, 1, "one creation event, not 200");
}

#[tokio::test]
async fn stale_version_is_409_and_illegal_transition_is_422_with_json_errors() {
    let app = spawn_app().await;
    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap();
    let v = app.transition(id, "paid", 1).await;
    assert_eq!(v, 2);

    let (status, err) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "preparing", "version": 1}),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(err["error"], "version_conflict");
    assert!(
        err["message"].as_str().unwrap().contains("version 2"),
        "{err}"
    );

    let (status, err) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "delivered", "version": 2}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"], "illegal_transition");

    // status_version alone works for writers that only care about status.
    let (status, o) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "preparing", "status_version": 2}),
        )
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(
        (o["version"].as_i64(), o["status_version"].as_i64()),
        (Some(3), Some(3))
    );
}

#[tokio::test]
async fn a_write_that_changes_nothing_touches_no_storage() {
    let app = spawn_app().await;
    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap();
    app.transition(id, "paid", 1).await;
    app.wait_for_seq(id, 2).await;
    // A retry of the same transition (with the version it was sent with) is a no-op.
    let (status, again) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "paid", "version": 1}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(again["version"], 2, "no new version");
    assert_eq!(
        app.running.store.outbox_fetch(100).await.unwrap().len(),
        0,
        "no outbox row"
    );
    assert_eq!(
        app.running.log.read(id, None, 0).await.unwrap().state.seq,
        2,
        "no event"
    );
}

#[tokio::test]
async fn cancel_after_pickup_becomes_a_return_with_reason_and_who() {
    let app = spawn_app().await;
    let (id, v) = app.assigned_order("c1", &unique("r")).await;
    let v = app.transition(&id, "picked_up", v).await;
    let (status, o) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "cancelled", "version": v, "reason": "customer not home", "by": "customer"}),
        )
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["status"], "returning");
    assert_eq!(o["cancel_reason"], "customer not home");
    assert_eq!(o["cancelled_by"], "customer");
    app.transition(&id, "returned", v + 1).await;
}

#[tokio::test]
async fn bad_bodies_and_unknown_orders_get_json_errors() {
    let app = spawn_app().await;
    let raw = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .bearer_auth(app.admin())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(raw.json::<Value>().await.unwrap()["error"], "bad_request");

    let mut bad = new_order("S-x");
    bad["pickup"]["lat"] = json!(123.0);
    let (status, err) = app.post("/v1/orders", &bad).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    assert!(err["message"].as_str().unwrap().contains("pickup"));

    let (status, err) = app.post("/v1/orders", &json!({"biz_order_no": 5})).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));

    let (status, err) = app
        .post(
            "/v1/orders/nope/status",
            &json!({"to": "paid", "version": 1}),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (404, Some("not_found")));

    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap();
    let (status, err) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "flying", "version": 1}),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad_request")));
    let (status, err) = app
        .post(&format!("/v1/orders/{id}/status"), &json!({"to": "paid"}))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("bad_request")),
        "a version is required"
    );
    let (status, err) = app
        .post(
            &format!("/v1/orders/{id}/assign"),
            &json!({"rider_id": "r1", "version": 1}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (422, Some("illegal_transition")),
        "not ready yet"
    );

    let huge = json!({"to": "paid", "version": 1, "reason": "x".repeat(100_000)});
    let (status, err) = app.post(&format!("/v1/orders/{id}/status"), &huge).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (413, Some("too_large")),
        "bodies above the limit are refused"
    );
}

#[tokio::test]
async fn health_answers_once_serving() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The sum of the lines of the filter's counter with these labels.
fn counter(text: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with("tracker_known_ids_checks_total{") && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn unknown_order_ids_are_refused_on_every_door_without_the_store() {
    const REFUSED: &[&str] = &["what=\"order\"", "outcome=\"refused\""];
    let app = spawn_app().await;
    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap().to_owned();
    let admin = app.admin();
    // The filter loads as the process starts; until then ids go to the store.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let before = counter(&app.metrics_text().await, REFUSED);
        assert_eq!(app.read_as("/v1/orders/no-such-order", &admin).await.0, 404);
        if counter(&app.metrics_text().await, REFUSED) > before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the filter never loaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let before = counter(&app.metrics_text().await, REFUSED);
    // Ids of the hub's own kind from a day ago, and anything at all.
    let day_ago = tracker_domain::ids::IdGenerator::new(
        900,
        std::sync::Arc::new(tracker_domain::clock::ManualClock::new(
            now_ms() - 86_400_000,
        )),
    );
    for i in 0..100 {
        let unknown = match i % 2 {
            0 => day_ago.next_id().to_string(),
            _ => unique("guess"),
        };
        for path in [
            format!("/v1/orders/{unknown}"),
            format!("/v1/orders/{unknown}/track"),
            format!("/v1/orders/{unknown}/events?wait=0"),
        ] {
            let (status, _, body) = app.read_as(&path, &admin).await;
            assert_eq!(
                (status, body["error"].as_str()),
                (404, Some("not_found")),
                "{path}"
            );
        }
    }
    let mut ws = app.ws(&admin).await;
    ws.sub(&day_ago.next_id().to_string(), None).await;
    let refused = ws.next().await;
    assert_eq!(refused["t"], "error", "{refused}");
    let after = counter(&app.metrics_text().await, REFUSED);
    assert!(after - before >= 301.0, "refused {} of 301", after - before);
    // The order that exists is read as before, on every door.
    assert_eq!(
        app.read_as(&format!("/v1/orders/{id}"), &admin).await.0,
        200
    );
    ws.sub(&id, None).await;
    assert_eq!(ws.next().await["t"], "snapshot");

    // A SKU never set: 404 once the next refresh of the SKUs' filter has
    // run, without a read of the stock; one just set is found at once.
    let sku = unique("SKU");
    let labels = &["what=\"sku\"", "outcome=\"refused_after_refresh\""];
    let before = counter(&app.metrics_text().await, labels);
    assert_eq!(
        app.read_as(&format!("/v1/stock/{sku}"), &admin).await.0,
        404
    );
    assert!(counter(&app.metrics_text().await, labels) - before >= 1.0);
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &format!("/v1/stock/{sku}"),
            &json!({"available": 4}),
            &admin,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, level) = app.read_as(&format!("/v1/stock/{sku}"), &admin).await;
    assert_eq!((status, level["available"].as_i64()), (200, Some(4)));
}
