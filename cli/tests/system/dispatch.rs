//! Dispatch end to end: open orders near a rider, the grab (one winner of a
//! thousand, on each backend), riders near a point, and timeouts that fire once
//! however many processes run.

use crate::backends::RedisAndPostgres;
use crate::helpers::{App, PATIENCE, now_ms, spawn_app_with, unique};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tracker_hub::{Claims, Role};

impl App {
    async fn send_as(&self, method: reqwest::Method, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        self.send_as(reqwest::Method::GET, token, path).await
    }

    async fn grab_as(&self, token: &str, order: &str) -> (u16, Value) {
        let path = format!("/v1/orders/{order}/grab");
        self.send_as(reqwest::Method::POST, token, &path).await
    }

    /// An order carried to `ready` (open for riders); returns its id.
    async fn ready_order(&self) -> String {
        let o = self.create_order(&unique("c")).await;
        let id = o["id"].as_str().unwrap().to_owned();
        let mut v = o["version"].as_i64().unwrap();
        for to in ["paid", "preparing", "ready"] {
            v = self.transition(&id, to, v).await;
        }
        id
    }

    async fn nearby_ids(&self, token: &str) -> Vec<String> {
        let (s, body) = self
            .get_as(
                token,
                "/v1/dispatch/nearby?lat=23.1291&lon=113.2644&radius_m=5000",
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until the pool does (or does not) list `order`.
    async fn wait_pool(&self, token: &str, order: &str, listed: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.nearby_ids(token).await.contains(&order.to_owned()) != listed {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pool never settled for {order}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every event of `order`'s log, via long-poll as an admin.
    async fn events(&self, order: &str) -> Vec<Value> {
        let (s, body) = self
            .get_as(
                &self.admin(),
                &format!("/v1/orders/{order}/events?since=0&wait=0"),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    }

    /// Waits until the order's status is `status`; returns the order.
    async fn wait_status(&self, order: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        loop {
            let (_, o) = self
                .get_as(&self.admin(), &format!("/v1/orders/{order}"))
                .await;
            if o["status"] == status {
                return o;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{order} never became {status}: {o}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn rider_token(app: &App, rider: &str) -> String {
    app.auth.mint_claims(&Claims {
        name: Some(format!("{rider} Surname")),
        ..Claims::new(
            rider,
            Role::Rider,
            jsonwebtoken::get_current_timestamp() + 3600,
        )
    })
}

/// A thousand riders grab one order at once: one wins, the rest get a clean
/// 409, and the store and the log agree on the winner.
async fn one_of_a_thousand_grabs_wins(app: &App) {
    let order = app.ready_order().await;
    let scout = app.token("scout", Role::Rider);
    app.wait_pool(&scout, &order, true).await;

    let riders: Vec<String> = (0..1000).map(|i| format!("{}-{i}", unique("r"))).collect();
    let tokens: Vec<String> = riders.iter().map(|r| rider_token(app, r)).collect();
    let mut tasks = Vec::new();
    for (rider, token) in riders.iter().zip(tokens) {
        let (http, base, order, rider) = (
            app.http.clone(),
            app.base.clone(),
            order.clone(),
            rider.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/orders/{order}/grab"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (rider, status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut by_status: HashMap<u16, Vec<(String, Value)>> = HashMap::new();
    for t in tasks {
        let (rider, status, body) = t.await.unwrap();
        by_status.entry(status).or_default().push((rider, body));
    }
    let counts: HashMap<u16, usize> = by_status.iter().map(|(s, v)| (*s, v.len())).collect();
    assert_eq!(
        counts,
        HashMap::from([(200, 1), (409, 999)]),
        "one winner, 999 refusals"
    );
    assert!(
        by_status[&409]
            .iter()
            .all(|(_, b)| b["error"] == "already_taken"),
        "every loser is told it is taken"
    );
    let (winner, won) = &by_status[&200][0];
    assert_eq!(won["rider_id"], winner.as_str());
    assert_eq!(won["status"], "assigned");

    let row = app.running.store.get_order(&order).await.unwrap();
    assert_eq!(
        row.rider_id.as_deref(),
        Some(winner.as_str()),
        "the store names the winner"
    );
    assert_eq!(
        row.rider_name.as_deref(),
        Some(format!("{winner} Surname").as_str())
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let assignments = loop {
        let a: Vec<Value> = app
            .events(&order)
            .await
            .into_iter()
            .filter(|e| e["t"] == "assignment")
            .collect();
        if !a.is_empty() || tokio::time::Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(assignments.len(), 1, "one assignment in the log");
    assert_eq!(
        assignments[0]["rider_id"],
        winner.as_str(),
        "the log names the winner"
    );
    app.wait_pool(&scout, &order, false).await;
    // The winner grabbing again is answered as before; the order is theirs.
    let (s, _) = app.grab_as(&rider_token(app, winner), &order).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn one_of_a_thousand_grabs_wins_in_process() {
    let app = spawn_app_with(&[]).await;
    one_of_a_thousand_grabs_wins(&app).await;
}

#[tokio::test]
async fn one_of_a_thousand_grabs_wins_on_redis_and_postgres() {
    let Some(real) = RedisAndPostgres::create().await else {
        return;
    };
    let app = spawn_app_with(&real.vars()).await;
    one_of_a_thousand_grabs_wins(&app).await;
    app.running.shutdown().await.unwrap();
    real.db.drop_now().await;
}

#[tokio::test]
async fn nearby_and_riders_answer_by_role_and_refuse_bad_input() {
    let app = spawn_app_with(&[]).await;
    let rider = unique("r");
    let token = app.token(&rider, Role::Rider);
    let customer = app.token("c1", Role::Customer);
    // A customer neither lists nor grabs.
    let (s, _) = app
        .get_as(&customer, "/v1/dispatch/nearby?lat=23.1&lon=113.2")
        .await;
    assert_eq!(s, 403);
    let order = app.ready_order().await;
    assert_eq!(app.grab_as(&customer, &order).await.0, 403);
    // An order not yet ready is not open.
    let early = app.create_order("c1").await;
    let (s, body) = app.grab_as(&token, early["id"].as_str().unwrap()).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("not_open")),
        "{body}"
    );
    assert_eq!(app.grab_as(&token, "no-such-order").await.0, 404);
    for bad in [
        "lat=abc&lon=1",
        "lat=91&lon=1",
        "lon=1",
        "lat=1&lon=1&radius_m=0",
        "lat=1&lon=1&radius_m=1e9",
        "lat=1&lon=1&limit=0",
    ] {
        let (s, body) = app
            .get_as(&token, &format!("/v1/dispatch/nearby?{bad}"))
            .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    app.wait_pool(&token, &order, true).await;

    // A rider's fix (over HTTP here; MQTT goes through the same router) puts them on the map.
    let r = app
        .http
        .post(format!("{}/v1/riders/me/pos", app.base))
        .bearer_auth(&token)
        .json(&json!({"lat": 23.13, "lon": 113.2644, "ts": now_ms()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (s, body) = app
        .get_as(
            &app.admin(),
            "/v1/dispatch/riders?lat=23.1291&lon=113.2644&radius_m=2000",
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let found: Vec<&Value> = body["riders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["rider_id"] == rider.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{body}");
    assert!(found[0]["dist_m"].as_f64().unwrap() < 200.0);
    let (s, _) = app
        .get_as(&token, "/v1/dispatch/riders?lat=23.1291&lon=113.2644")
        .await;
    assert_eq!(s, 403, "rider positions are for operators");
}

/// Payment timeout, the refund for a payment that lost the race, the pick-up
/// timeout back to the pool, and the late alert, on the embedded backends.
#[tokio::test]
async fn timeouts_cancel_return_and_alert() {
    let app = spawn_app_with(&[
        ("TRACKER_PAYMENT_TIMEOUT_SECS", "1"),
        ("TRACKER_PICKUP_TIMEOUT_SECS", "1"),
        ("TRACKER_TIMEOUT_SWEEP_SECS", "1"),
    ])
    .await;
    // Unpaid: cancelled by the system; a payment after that asks for a refund.
    let o = app.create_order("c1").await;
    let id = o["id"].as_str().unwrap();
    let cancelled = app.wait_status(id, "cancelled").await;
    assert_eq!(cancelled["cancel_reason"], "payment_timeout");
    assert_eq!(cancelled["cancelled_by"], "system");
    let (s, body) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "paid", "version": o["version"]}),
        )
        .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (409, Some("refund_required")),
        "{body}"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !app
        .events(id)
        .await
        .iter()
        .any(|e| e["t"] == "alert" && e["kind"] == "refund_required")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refund_required in the log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Grabbed but never picked up: back to ready and the pool, and grabbable again.
    let order = app.ready_order().await;
    let (a, b) = (unique("r"), unique("r"));
    let scout = app.token("scout", Role::Rider);
    app.wait_pool(&scout, &order, true).await;
    assert_eq!(app.grab_as(&rider_token(&app, &a), &order).await.0, 200);
    let back = app.wait_status(&order, "ready").await;
    assert_eq!(back["rider_id"], Value::Null);
    app.wait_pool(&scout, &order, true).await;
    let (s, body) = app.grab_as(&rider_token(&app, &b), &order).await;
    assert_eq!(
        (s, body["rider_id"].as_str()),
        (200, Some(b.as_str())),
        "{body}"
    );
    let reasons: Vec<Value> = app
        .events(&order)
        .await
        .into_iter()
        .filter(|e| e["t"] == "status" && e["status"] == "ready")
        .map(|e| e["reason"].clone())
        .collect();
    assert_eq!(reasons, [Value::Null, json!("pickup_timeout")]);

    // Late: one alert, however often the timer and the sweep look.
    let body = json!({
        "biz_order_no": unique("S"), "biz_type": "grocery", "customer_id": "c1",
        "pickup": {"lat": 23.1291, "lon": 113.2644}, "dropoff": {"lat": 23.14, "lon": 113.28},
        "promised_at": now_ms() + 500,
    });
    let (s, late) = app.post("/v1/orders", &body).await;
    assert_eq!(s, 201);
    let late = late["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await; // three sweeps
    let alerts: Vec<Value> = app
        .events(late)
        .await
        .into_iter()
        .filter(|e| e["t"] == "alert" && e["kind"] == "late" && e["cleared"] != true)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0]["detail"]["late_by_ms"].as_i64().unwrap() >= 0);
}

/// Three processes' worth of hub state (each with its own connections, timer
/// poller and sweep) on one Redis and one PostgreSQL: every timeout fires once.
#[tokio::test]
async fn each_timeout_fires_once_across_three_nodes() {
    let Some(real) = RedisAndPostgres::create().await else {
        return;
    };
    let mut nodes = Vec::new();
    for node in ["1", "2", "3"] {
        let mut vars = real.vars().to_vec();
        vars.extend([
            ("TRACKER_NODE_ID", node),
            ("TRACKER_PAYMENT_TIMEOUT_SECS", "1"),
            ("TRACKER_TIMEOUT_SWEEP_SECS", "1"),
        ]);
        nodes.push(spawn_app_with(&vars).await);
    }
    // Orders created through all three nodes, unpaid and already late.
    let mut orders = Vec::new();
    for i in 0..30 {
        let body = json!({
            "biz_order_no": unique("S"), "biz_type": "grocery", "customer_id": "c1",
            "pickup": {"lat": 23.1291, "lon": 113.2644}, "dropoff": {"lat": 23.14, "lon": 113.28},
            "promised_at": now_ms() - 1,
        });
        let (s, o) = nodes[i % 3].post("/v1/orders", &body).await;
        assert_eq!(s, 201);
        orders.push(o["id"].as_str().unwrap().to_owned());
    }
    for id in &orders {
        nodes[0].wait_status(id, "cancelled").await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await; // more sweeps on every node
    for id in &orders {
        let events = nodes[1].events(id).await;
        let cancels = events
            .iter()
            .filter(|e| e["t"] == "status" && e["status"] == "cancelled")
            .count();
        let lates = events
            .iter()
            .filter(|e| e["t"] == "alert" && e["kind"] == "late" && e["cleared"] != true)
            .count();
        assert_eq!((cancels, lates), (1, 1), "{id}: {events:?}");
    }
    for n in nodes {
        n.running.shutdown().await.unwrap();
    }
    real.db.drop_now().await;
}
