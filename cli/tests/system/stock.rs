//! Stock through the API of `tracker run` (stock in its SQLite store):
//! levels set and read, orders refused when short, the stock back when
//! they are cancelled, and all of it kept across a restart.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

impl App {
    async fn put_stock(&self, sku: &str, body: &Value, token: &str) -> (u16, Value) {
        let path = format!("/v1/stock/{sku}");
        self.send(reqwest::Method::PUT, &path, body, token).await
    }

    async fn stock(&self, sku: &str) -> (u16, Value) {
        let (status, _, body) = self
            .read_as(&format!("/v1/stock/{sku}"), &self.admin())
            .await;
        (status, body)
    }
}

fn order_with(no: &str, sku: &str, qty: u32) -> Value {
    json!({
        "biz_order_no": no, "biz_type": "shop", "customer_id": "c-stock",
        "pickup": {"lat": 23.1291, "lon": 113.2644}, "dropoff": {"lat": 23.14, "lon": 113.28},
        "items": [{"sku": sku, "qty": qty}, {"sku": "not-counted", "qty": 3}]
    })
}

#[tokio::test]
async fn stock_is_reserved_refused_given_back_and_kept() {
    let app = spawn_app().await;
    let admin = app.admin();
    let (status, unknown) = app.stock("TEA-1").await;
    assert_eq!(status, 404, "never set: not stock-controlled {unknown}");
    let (status, level) = app
        .put_stock("TEA-1", &json!({"available": 1}), &admin)
        .await;
    assert_eq!(status, 200, "{level}");
    assert_eq!(
        level,
        json!({"sku": "TEA-1", "available": 1, "reserved": 0, "sold": 0})
    );

    let (status, short) = app
        .post("/v1/orders", &order_with(&unique("K"), "TEA-1", 2))
        .await;
    assert_eq!(status, 409, "{short}");
    assert_eq!(
        (short["error"].as_str(), short["sku"].as_str()),
        (Some("out_of_stock"), Some("TEA-1"))
    );
    let no = unique("K");
    let (status, o) = app.post("/v1/orders", &order_with(&no, "TEA-1", 1)).await;
    assert_eq!(status, 201, "{o}");
    let (status, again) = app.post("/v1/orders", &order_with(&no, "TEA-1", 1)).await;
    assert_eq!((status, &again["id"]), (200, &o["id"]), "the same create");
    assert_eq!(app.stock("TEA-1").await.1["reserved"], 1, "reserved once");
    let (status, late) = app
        .post("/v1/orders", &order_with(&unique("K"), "TEA-1", 1))
        .await;
    assert_eq!(
        (status, late["error"].as_str()),
        (409, Some("out_of_stock"))
    );

    let id = o["id"].as_str().unwrap();
    let (status, c) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "cancelled", "version": o["version"]}),
        )
        .await;
    assert_eq!(status, 200, "{c}");
    let (_, back) = app.stock("TEA-1").await;
    assert_eq!(
        (back["available"].as_i64(), back["reserved"].as_i64()),
        (Some(1), Some(0))
    );

    app.put_stock("TEA-1", &json!({"available": 7}), &admin)
        .await;
    let app = app.restart().await;
    assert_eq!(
        app.stock("TEA-1").await.1["available"],
        7,
        "kept across a restart"
    );
}

#[tokio::test]
async fn bad_stock_requests_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin();
    let customer = app.token("c-stock", Role::Customer);
    let (status, _) = app
        .put_stock("TEA-2", &json!({"available": 5}), &customer)
        .await;
    assert_eq!(status, 403, "admins only");
    let (status, _, _) = app.read_as("/v1/stock/TEA-2", &customer).await;
    assert_eq!(status, 403);
    for (sku, body) in [
        ("TEA-2", json!({"available": -1})),
        ("TEA-2", json!({"available": "lots"})),
        ("TEA-2", json!({"available": 1, "reserved": 5})),
        ("TEA-2", json!({})),
        (&*"S".repeat(1024), json!({"available": 1})),
    ] {
        let (status, e) = app.put_stock(sku, &body, &admin).await;
        assert_eq!(status, 400, "{body} → {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
    }
    let (status, _) = app.stock(&"S".repeat(1024)).await;
    assert_eq!(status, 400);
    app.put_stock("TEA-2", &json!({"available": 5}), &admin)
        .await;
    let (status, e) = app
        .post("/v1/orders", &order_with(&unique("K"), "TEA-2", 0))
        .await;
    assert_eq!(status, 400, "a quantity of zero: {e}");
    assert_eq!(app.stock("TEA-2").await.1["available"], 5, "nothing moved");
}

#[tokio::test]
async fn a_refund_cancels_the_order_gives_the_stock_back_and_is_one_per_order() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.put_stock("TEA-3", &json!({"available": 2}), &admin)
        .await;
    let (_, o) = app
        .post("/v1/orders", &order_with(&unique("K"), "TEA-3", 2))
        .await;
    let id = o["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}/refund");
    let (status, r) = app
        .post(
            &path,
            &json!({"biz_refund_no": "RF-9", "reason": "sold out", "amount": 500}),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    assert!(
        ["pending", "done"].contains(&r["refund"]["state"].as_str().unwrap()),
        "{r}"
    );
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, _, now) = app.read_as(&format!("/v1/orders/{id}"), &admin).await;
        if now["refund"]["state"] == "done" {
            assert_eq!(
                (now["status"].as_str(), now["refund"]["amount"].as_i64()),
                (Some("cancelled"), Some(500))
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.stock("TEA-3").await.1["available"],
        2,
        "the stock is back"
    );
    let (status, again) = app.post(&path, &json!({"biz_refund_no": "RF-9"})).await;
    assert_eq!(
        (status, again["refund"]["state"].as_str()),
        (202, Some("done"))
    );
    let (status, other) = app.post(&path, &json!({"biz_refund_no": "RF-10"})).await;
    assert_eq!(
        (status, other["error"].as_str()),
        (409, Some("refund_exists")),
        "{other}"
    );
    for bad in [
        json!({}),
        json!({"biz_refund_no": ""}),
        json!({"biz_refund_no": "x", "amount": -1}),
        json!({"biz_refund_no": "x", "extra": 1}),
    ] {
        let (status, e) = app.post(&path, &bad).await;
        assert_eq!(status, 400, "{bad} → {e}");
    }
    let (status, _) = app
        .post("/v1/orders/404404/refund", &json!({"biz_refund_no": "x"}))
        .await;
    assert_eq!(status, 404);
    let customer = app.token("c-stock", Role::Customer);
    let body = json!({"biz_refund_no": "RF-9"});
    let (status, _) = app
        .send(reqwest::Method::POST, &path, &body, &customer)
        .await;
    assert_eq!(status, 403, "admins (the payment system) only");
}
