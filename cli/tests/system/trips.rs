//! The trip watcher in one process: routes as input, estimates, alerts and
//! arrivals as the customer and the operators see them.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

async fn put_route(app: &App, id: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .put(format!("{}/v1/orders/{id}/route", app.base))
        .bearer_auth(app.admin())
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_bad_route_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let p = json!({"lat": 23.13, "lon": 113.27});
    let order = |route: Value| {
        json!({"biz_order_no": unique("S"), "biz_type": "food", "customer_id": "c1",
            "pickup": p, "dropoff": p, "route": route})
    };
    let many: Vec<Value> = (0..10_000).map(|_| p.clone()).collect();
    for (route, names) in [
        (json!([p]), "`route`"),
        (json!(many), "`route`"),
        (json!([p, {"lat": 95.0, "lon": 113.0}]), "`route[1]`"),
        (json!("from here to there"), "route"),
        (json!([p, {"lat": 23.1}]), "route[1]"),
    ] {
        let (status, body) = app.post("/v1/orders", &order(route)).await;
        assert_eq!(status, 400, "{body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(names), "{names} in {body}");
    }
    let (status, created) = app.post("/v1/orders", &order(json!([p, p]))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["route"].as_array().map(Vec::len), Some(2));
    let id = created["id"].as_str().unwrap();
    let (status, body) = put_route(&app, id, &json!({"route": [p]})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = put_route(&app, id, &json!({"route": [p, p, p]})).await;
    assert_eq!(
        (status, body["route"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    let (status, body) = put_route(&app, id, &json!({"route": null})).await;
    assert_eq!((status, body.get("route")), (200, None));
}

/// Reads `ws` until `done` says so; every frame read, in order.
async fn frames_until(ws: &mut Ws, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let f = ws.next().await;
        let end = done(&f);
        seen.push(f);
        if end {
            return seen;
        }
    }
}

fn between(a: (f64, f64), b: (f64, f64), f: f64) -> (f64, f64) {
    (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f)
}

#[tokio::test]
async fn the_customer_gets_estimates_and_the_arrival_and_operators_the_alerts() {
    let app = spawn_app_with(&[
        ("TRACKER_TRIP_WATCHER", "on"),
        ("TRACKER_STALL_SECS", "60"),
        ("TRACKER_OFFLINE_SECS", "3"),
    ])
    .await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, _) = app.picked_up_order(&customer, &rider).await;
    let mut cust = app
        .watch(&app.token(&customer, Role::Customer), &order)
        .await;
    let mut ops = app.watch(&app.admin(), &order).await;

    // Pick-up to drop-off of `create_order` (about 2 km), a fix every 5 s,
    // with a 200 s stop half-way; the phone sends it all as one batch, so
    // only fix times can tell the stop.
    let (from, to) = ((23.1291, 113.2644), (23.14, 113.28));
    let mut fixes = Vec::new();
    let start = now_ms() - 120 * 5000;
    for i in 0..120 {
        let f = match i {
            0..40 => i as f64 / 80.0,
            40..80 => 0.5,
            _ => (i - 40) as f64 / 80.0,
        };
        let (lat, lon) = between(from, to, f.min(1.0));
        fixes.push(json!({"lat": lat, "lon": lon, "ts": start + i * 5000}));
    }
    let r = app
        .http
        .post(format!("{}/v1/riders/me/pos", app.base))
        .bearer_auth(app.token(&rider, Role::Rider))
        .json(&Value::from(fixes))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let seen = frames_until(&mut cust, |f| f["t"] == "arrival").await;
    assert_eq!(seen.last().unwrap()["at"], "dropoff");
    let etas: Vec<&Value> = seen.iter().filter(|f| f["t"] == "eta").collect();
    assert!(!etas.is_empty(), "estimates reach the customer: {seen:?}");
    assert!(
        etas.iter()
            .all(|e| e["eta"].as_i64() >= e["ts"].as_i64() && e["remaining_m"].is_u64())
    );
    assert!(
        seen.iter().all(|f| f["t"] != "alert"),
        "no alerts for customers"
    );

    let seen = frames_until(&mut ops, |f| {
        f["t"] == "alert" && f["kind"] == "stalled" && f["cleared"] == true
    })
    .await;
    // (A `rider_offline` may come and go before the batch arrives.)
    let alerts: Vec<(&str, bool)> = seen
        .iter()
        .filter(|f| f["t"] == "alert" && f["kind"] == "stalled")
        .map(|f| (f["kind"].as_str().unwrap(), f["cleared"] == true))
        .collect();
    assert_eq!(alerts, [("stalled", false), ("stalled", true)], "{seen:?}");
    let raised = seen
        .iter()
        .find(|f| f["t"] == "alert" && f["kind"] == "stalled")
        .unwrap();
    let stop_at = start + 40 * 5000;
    let ts = raised["ts"].as_i64().unwrap();
    assert!(
        (stop_at + 55_000..=stop_at + 60_000).contains(&ts),
        "raised on the fixes' time: {} s after the stop",
        (ts - stop_at) / 1000
    );
    assert!(
        seen.iter()
            .any(|f| f["t"] == "arrival" && f["at"] == "pickup")
    );

    // Then the phone goes quiet: `rider_offline`, on the clock, listed as open.
    frames_until(&mut ops, |f| {
        f["t"] == "alert" && f["kind"] == "rider_offline" && f["cleared"] != true
    })
    .await;
    let (status, _, open) = app.read_as("/v1/alerts", &app.admin()).await;
    assert_eq!(status, 200);
    let mine: Vec<&Value> = open["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["order"] == order.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{open}");
    assert_eq!(mine[0]["kind"], "rider_offline");
    let (status, _, _) = app
        .read_as("/v1/alerts", &app.token(&customer, Role::Customer))
        .await;
    assert_eq!(status, 403, "alerts are for operators");

    // Delivered: the episode ends with the order.
    let (_, _, now) = app
        .read_as(&format!("/v1/orders/{order}"), &app.admin())
        .await;
    app.transition(&order, "delivered", now["version"].as_i64().unwrap())
        .await;
    let end = frames_until(&mut ops, |f| f["t"] == "alert" && f["cleared"] == true).await;
    assert_eq!(end.last().unwrap()["kind"], "rider_offline");
    let (_, _, open) = app.read_as("/v1/alerts", &app.admin()).await;
    assert!(
        !open["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["order"] == order.as_str()),
        "{open}"
    );
}
