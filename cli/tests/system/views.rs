//! Views by role, enforced by the hub: a customer sees the rider's position only
//! from pick-up on and the rider's first name only; operators see everything.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

/// GET `path` with `token`; (status, JSON body).
async fn get(app: &App, path: &str, token: &str) -> (u16, Value) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// An order of `customer` assigned to `rider`, named "Li Wei"; returns (id, version).
async fn named_assignment(app: &App, customer: &str, rider: &str) -> (String, i64) {
    let o = app.create_order(customer).await;
    let id = o["id"].as_str().unwrap().to_owned();
    let mut v = o["version"].as_i64().unwrap();
    for to in ["paid", "preparing", "ready"] {
        v = app.transition(&id, to, v).await;
    }
    let (status, o) = app
        .post(
            &format!("/v1/orders/{id}/assign"),
            &json!({"rider_id": rider, "rider_name": "Li Wei", "version": v}),
        )
        .await;
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["rider_name"], "Li Wei");
    app.wait_for_seq(&id, 6).await;
    (id, o["version"].as_i64().unwrap())
}

#[tokio::test]
async fn customers_see_the_rider_from_pick_up_on_and_by_first_name_operators_see_all() {
    let app = spawn_app().await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, version) = named_assignment(&app, &customer, &rider).await;
    let customer_token = app.token(&customer, Role::Customer);

    // Resuming from before the assignment replays it: the first name, no rider id.
    let mut cust = app.ws(&customer_token).await;
    cust.sub(&order, Some(4)).await;
    let (assigned, assignment, snap) = (cust.next().await, cust.next().await, cust.next().await);
    assert_eq!(assigned["status"], "assigned");
    assert_eq!(
        assignment,
        json!({"order": order, "seq": 6, "t": "assignment", "rider_name": "Li", "ts": assignment["ts"]})
    );
    assert_eq!(
        (snap["t"].as_str(), snap["rider_name"].as_str()),
        (Some("snapshot"), Some("Li"))
    );
    assert!(snap.get("rider_id").is_none(), "{snap}");
    let mut ops = app.ws(&app.admin()).await;
    ops.sub(&order, None).await;
    let snap = ops.next().await;
    assert_eq!(
        (snap["rider_id"].as_str(), snap["rider_name"].as_str()),
        (Some(rider.as_str()), Some("Li Wei"))
    );
    let mut own_rider = app.watch(&app.token(&rider, Role::Rider), &order).await;

    // On the way to the store: operators and the rider see the fix, the customer a skip.
    let phone = app.mqtt_client().await;
    let before = now_ms();
    publish_fix(&phone, &rider, 23.1291, 113.2644, before).await;
    let op_pos = ops.next().await;
    assert_eq!(
        (op_pos["t"].as_str(), op_pos["seq"].as_u64()),
        (Some("pos"), Some(7))
    );
    assert_eq!(op_pos["before_pickup"], true);
    assert_eq!(own_rider.next().await["lat"], 23.1291);
    assert_eq!(
        cust.next().await,
        json!({"order": order, "seq": 7, "t": "skip"})
    );

    // The customer's order read shows the first name and no rider id.
    let (status, row) = get(&app, &format!("/v1/orders/{order}"), &customer_token).await;
    assert_eq!(status, 200);
    assert_eq!(
        (row["rider_name"].as_str(), &row["rider_id"]),
        (Some("Li"), &Value::Null)
    );
    let (_, row) = get(&app, &format!("/v1/orders/{order}"), &app.admin()).await;
    assert_eq!(row["rider_id"], rider.as_str());

    // From pick-up on, everyone sees the rider.
    app.transition(&order, "picked_up", version).await;
    assert_eq!(cust.next().await["status"], "picked_up");
    let after = now_ms();
    publish_fix(&phone, &rider, 23.1301, 113.2650, after).await;
    let pos = cust.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["seq"].as_u64(), pos["ts"].as_i64()),
        (Some("pos"), Some(9), Some(after))
    );
    // A backlog from before pick-up, uploaded late, stays hidden from the customer.
    publish(
        &phone,
        &format!("riders/{rider}/pos/batch"),
        json!([{"lat": 23.0, "lon": 113.0, "ts": before + 1}]).to_string(),
    )
    .await;
    assert_eq!(cust.next().await["t"], "skip");

    // A fresh customer snapshot and the long-poll tell the same story.
    let mut late = app.watch(&customer_token, &order).await;
    late.sub(&order, Some(6)).await;
    let mut seen = Vec::new();
    loop {
        let f = late.next().await;
        seen.push((
            f["t"].as_str().unwrap().to_owned(),
            f["seq"].as_u64().unwrap(),
        ));
        if f["t"] == "snapshot" {
            assert_eq!(
                f["pos"]["ts"], after,
                "the live position is the post-pick-up fix: {f}"
            );
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("skip", 7),
            ("status", 8),
            ("pos", 9),
            ("skip", 10),
            ("snapshot", 10)
        ]
        .map(|(t, s)| (t.to_owned(), s))
    );
    let (_, polled) = get(
        &app,
        &format!("/v1/orders/{order}/events?since=6"),
        &customer_token,
    )
    .await;
    let polled: Vec<&str> = polled["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["t"].as_str().unwrap())
        .collect();
    assert_eq!(polled, ["skip", "status", "pos", "skip"]);

    // The stored trip: operators get all of it, the customer the part from pick-up on.
    let track = format!("/v1/orders/{order}/track");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let full = loop {
        let (_, t) = get(&app, &track, &app.admin()).await;
        if t["points"].as_array().unwrap().len() >= 3 {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "trip incomplete: {t}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(full["points"][0]["rider_id"], rider.as_str());
    let (status, mine) = get(&app, &track, &customer_token).await;
    assert_eq!(status, 200);
    let points = mine["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{mine}");
    assert_eq!(points[0]["ts"], after);
    assert!(points[0].get("rider_id").is_none());
}

#[tokio::test]
async fn only_operators_list_the_orders_under_way() {
    let app = spawn_app().await;
    let (open, _) = app.assigned_order("c1", &unique("r")).await;
    let done = app.create_order("c1").await;
    let done = done["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/v1/orders/{done}/status"),
            &json!({"to": "cancelled", "version": 1}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, list) = get(&app, "/v1/orders?limit=50", &app.admin()).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&open.as_str()) && !ids.contains(&done),
        "{list}"
    );
    let (status, _) = get(&app, "/v1/orders", &app.token("c1", Role::Customer)).await;
    assert_eq!(status, 403);
}
