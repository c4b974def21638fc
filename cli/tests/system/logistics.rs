//! Orders as logistics centres keep them, through the API: recipients,
//! items, packages and their own states, the durable history, lookups.

use crate::helpers::*;
use serde_json::{Value, json};
use tracker_hub::Role;

fn parcel_order(customer: &str) -> Value {
    json!({
        "biz_order_no": unique("L"), "biz_type": "parcel", "customer_id": customer,
        "pickup": {"lat": 23.1291, "lon": 113.2644}, "dropoff": {"lat": 23.14, "lon": 113.28},
        "recipient": {"name": "Li Wei", "phone": "+86 138 0013 8000",
            "address": "1 Tianhe Rd", "address_code": ["44", "4401", "440106", "440106001"]},
        "sender": {"name": "Shop 7", "phone": "020-8888-0000", "address": "5 Huacheng Ave"},
        "items": [
            {"sku": "A", "name": "Tea", "qty": 2, "weight_g": 250, "volume_cm3": 400},
            {"sku": "B", "qty": 1}
        ],
        "packages": [
            {"package_no": "P1", "items": [{"sku": "A", "qty": 2}], "carrier": "SF", "waybill": "SF1"},
            {"package_no": "P2", "items": [{"sku": "B", "qty": 1}]}
        ],
        "notes": "ring twice",
        "metadata": {"shop": 7, "tags": ["fragile"]}
    })
}

impl App {
    async fn fetch_as(&self, path: &str, token: &str) -> (u16, Value) {
        let (status, _, body) = self.read_as(path, token).await;
        (status, body)
    }

    async fn move_package(&self, id: &str, no: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/v1/orders/{id}/packages/{no}/status"), &body)
            .await
    }
}

#[tokio::test]
async fn an_order_keeps_its_goods_and_shows_them_when_asked() {
    let app = spawn_app().await;
    let (status, o) = app.post("/v1/orders", &parcel_order("c-log")).await;
    assert_eq!(status, 201, "{o}");
    let id = o["id"].as_str().unwrap();
    assert_eq!(o["items"].as_array().map(Vec::len), Some(2), "{o}");
    assert_eq!(o["packages"][0]["status"], "created");
    let admin = app.admin();
    let (_, plain) = app.fetch_as(&format!("/v1/orders/{id}"), &admin).await;
    assert!(
        plain.get("items").is_none() && plain.get("packages").is_none(),
        "{plain}"
    );
    assert_eq!(
        (
            plain["item_count"].as_i64(),
            plain["package_count"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(plain["recipient"]["address_code"][3], "440106001");
    assert_eq!(plain["metadata"]["tags"][0], "fragile");
    assert_eq!(plain["notes"], "ring twice");
    let (_, items) = app
        .fetch_as(&format!("/v1/orders/{id}?include=items"), &admin)
        .await;
    assert_eq!(items["items"][0]["weight_g"], 250);
    assert!(items.get("packages").is_none());
    let (_, both) = app
        .fetch_as(&format!("/v1/orders/{id}?include=items,packages"), &admin)
        .await;
    assert_eq!(both["packages"][0]["waybill"], "SF1");
    assert_eq!(both["packages"][1]["items"][0]["sku"], "B");
    assert_eq!(both["items"].as_array().map(Vec::len), Some(2));
    let (status, bad) = app
        .fetch_as(&format!("/v1/orders/{id}?include=rider"), &admin)
        .await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("`include`"));

    // The phone: admins, the customer and the order's rider; not a share link.
    let phone = |v: &Value| v["recipient"]["phone"].as_str().map(str::to_owned);
    let customer = app.token("c-log", Role::Customer);
    let (_, seen) = app.fetch_as(&format!("/v1/orders/{id}"), &customer).await;
    assert_eq!(phone(&seen).as_deref(), Some("+86 138 0013 8000"));
    let (status, share) = app
        .http
        .post(format!("{}/v1/orders/{id}/share", app.base))
        .bearer_auth(&customer)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 201);
    let share: Value = share.json().await.unwrap();
    let viewer = share["token"].as_str().unwrap();
    let (status, shared) = app.fetch_as(&format!("/v1/orders/{id}"), viewer).await;
    assert_eq!(status, 200, "{shared}");
    assert_eq!(phone(&shared), None, "{shared}");
    assert!(shared["sender"]["phone"].is_null());
    assert_eq!(shared["recipient"]["name"], "Li Wei");
    let stranger = app.token("r-other", Role::Rider);
    let (status, _) = app.fetch_as(&format!("/v1/orders/{id}"), &stranger).await;
    assert_eq!(status, 403, "another rider may not read the order at all");
    let mut v = o["version"].as_i64().unwrap();
    for to in ["paid", "preparing", "ready"] {
        v = app.transition(id, to, v).await;
    }
    let (status, _) = app
        .post(
            &format!("/v1/orders/{id}/assign"),
            &json!({"rider_id": "r-log", "version": v}),
        )
        .await;
    assert_eq!(status, 200);
    let rider = app.token("r-log", Role::Rider);
    let (_, held) = app.fetch_as(&format!("/v1/orders/{id}"), &rider).await;
    assert_eq!(phone(&held).as_deref(), Some("+86 138 0013 8000"));
}

#[tokio::test]
async fn packages_move_on_their_own_and_hold_the_order_back() {
    let app = spawn_app().await;
    let (_, o) = app.post("/v1/orders", &parcel_order("c-pkg")).await;
    let id = o["id"].as_str().unwrap();
    let (status, body) = app.move_package(id, "P1", json!({"to": "shipped"})).await;
    assert_eq!(
        status, 422,
        "a package ships only once the order is paid: {body}"
    );
    let v = app.transition(id, "paid", 1).await;
    let (status, p1) = app
        .move_package(id, "P1", json!({"to": "shipped", "version": 1}))
        .await;
    assert_eq!(
        (status, p1["status"].as_str(), p1["version"].as_i64()),
        (200, Some("shipped"), Some(2))
    );
    let (status, body) = app
        .move_package(id, "P1", json!({"to": "in_transit", "version": 1}))
        .await;
    assert_eq!(status, 409, "stale package version: {body}");
    let (status, body) = app
        .move_package(id, "P1", json!({"to": "delivered", "version": 2}))
        .await;
    assert_eq!(status, 422, "shipped -> delivered skips in_transit: {body}");
    let (status, body) = app.move_package(id, "P1", json!({"to": "lost"})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.move_package(id, "P9", json!({"to": "shipped"})).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .move_package(id, "P1", json!({"to": "in_transit", "version": 2}))
        .await;
    assert_eq!(status, 200);
    // The order cannot end while P1 travels, nor be delivered with P2 unshipped.
    let (status, body) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "cancelled", "version": v}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("`P1`"), "{body}");
    let (status, _) = app.move_package(id, "P1", json!({"to": "delivered"})).await;
    assert_eq!(status, 200);
    // Now the cancel goes through and takes P2, never shipped, with it.
    let (status, body) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "cancelled", "version": v, "reason": "out of stock", "by": "shop"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, after) = app
        .fetch_as(&format!("/v1/orders/{id}?include=packages"), &app.admin())
        .await;
    assert_eq!(after["packages"][1]["status"], "cancelled", "{after}");

    // The package events reach the order's stream, oldest first.
    let mut ws = app.ws(&app.admin()).await;
    ws.sub(id, Some(0)).await;
    let mut kinds = Vec::new();
    while kinds.len() < 7 {
        let f = ws.next().await;
        if f["t"] == "package" {
            kinds.push(format!(
                "{}:{}",
                f["package"].as_str().unwrap(),
                f["status"].as_str().unwrap()
            ));
        }
        if f["t"] == "status" && f["status"] == "cancelled" {
            break;
        }
    }
    assert_eq!(kinds, ["P1:shipped", "P1:in_transit", "P1:delivered"]);

    let (status, h) = app
        .fetch_as(&format!("/v1/orders/{id}/history"), &app.admin())
        .await;
    assert_eq!(status, 200);
    let steps: Vec<String> = h["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c["package"]
                    .as_str()
                    .map(|p| format!("{p}:"))
                    .unwrap_or_default(),
                c["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "pending_payment",
            "paid",
            "P1:shipped",
            "P1:in_transit",
            "P1:delivered",
            "cancelled",
            "P2:cancelled"
        ]
    );
    assert_eq!(h["changes"][1]["by"], "admin:ops");
    assert_eq!(h["changes"][5]["by"], "shop");
    assert_eq!(h["changes"][5]["reason"], "out of stock");
    let (_, mine) = app
        .fetch_as(
            &format!("/v1/orders/{id}/history"),
            &app.token("c-pkg", Role::Customer),
        )
        .await;
    assert_eq!(
        mine["changes"][1]["by"], "admin",
        "customers see the role, not the account"
    );
}

#[tokio::test]
async fn the_history_outlives_a_restart_and_the_embedded_log() {
    let app = spawn_app().await;
    let o = app.create_order("c-hist").await;
    let id = o["id"].as_str().unwrap().to_owned();
    let mut v = 1;
    for to in ["paid", "preparing", "ready"] {
        v = app.transition(&id, to, v).await;
    }
    let (status, _) = app
        .post(
            &format!("/v1/orders/{id}/assign"),
            &json!({"rider_id": "r-h", "version": v}),
        )
        .await;
    assert_eq!(status, 200);
    app.wait_for_seq(&id, 6).await;
    let app = app.restart().await;
    let (status, h) = app
        .fetch_as(&format!("/v1/orders/{id}/history"), &app.admin())
        .await;
    assert_eq!(status, 200, "{h}");
    let changes = h["changes"].as_array().unwrap();
    let to: Vec<&str> = changes.iter().map(|c| c["to"].as_str().unwrap()).collect();
    assert_eq!(
        to,
        ["pending_payment", "paid", "preparing", "ready", "assigned"]
    );
    let versions: Vec<i64> = changes
        .iter()
        .map(|c| c["version"].as_i64().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(changes[0]["from"].is_null());
    assert_eq!(changes[4]["from"], "ready");
    assert_eq!(changes[4]["by"], "admin:ops");
}

#[tokio::test]
async fn lookups_page_by_customer_and_find_by_business_number() {
    let app = spawn_app().await;
    let customer = unique("c");
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            app.create_order(&customer).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let other = app.create_order("c-someone-else").await;
    ids.reverse();
    let mine = app.token(&customer, Role::Customer);
    let mut seen = Vec::new();
    let mut path = format!("/v1/orders?customer_id={customer}&limit=2");
    loop {
        let (status, page) = app.fetch_as(&path, &mine).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["orders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(c) => path = format!("/v1/orders?customer_id={customer}&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every order of the customer once, newest first");
    let (status, _) = app
        .fetch_as("/v1/orders?customer_id=c-someone-else", &mine)
        .await;
    assert_eq!(status, 403);
    let no = other["biz_order_no"].as_str().unwrap();
    let (status, _) = app
        .fetch_as(&format!("/v1/orders?biz_order_no={no}"), &mine)
        .await;
    assert_eq!(status, 403, "business numbers are for admins");
    let (status, found) = app
        .fetch_as(
            &format!("/v1/orders?biz_order_no={no}&biz_type=grocery"),
            &app.admin(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(found["orders"][0]["id"], other["id"]);
    assert!(found["next"].is_null());
    for bad in ["limit=0", "limit=501", "cursor=nonsense"] {
        let (status, body) = app
            .fetch_as(&format!("/v1/orders?customer_id={customer}&{bad}"), &mine)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn bad_goods_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut o = parcel_order("c-bad");
        patch(&mut o);
        o
    };
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"sku": format!("S{i}"), "qty": 1}))
        .collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|o| {
                o["items"] = json!(many);
                o.as_object_mut().unwrap().remove("packages");
            }),
            "`items`",
        ),
        (
            with(&|o| o["packages"][0]["items"][0]["qty"] = json!(3)),
            "`packages[0].items[0].qty`",
        ),
        (
            with(&|o| o["metadata"] = json!({"blob": "x".repeat(5 * 1024)})),
            "`metadata`",
        ),
        (
            with(&|o| o["recipient"]["phone"] = json!("1".repeat(1024))),
            "`recipient.phone`",
        ),
        (with(&|o| o["items"][0]["qty"] = json!(0)), "`items[0].qty`"),
        (
            with(&|o| o["items"][0]["sku"] = json!("x".repeat(1024))),
            "`items[0].sku`",
        ),
        (with(&|o| o["metadata"] = json!([1, 2])), "metadata"),
        (with(&|o| o["items"][0]["qty"] = json!(-1)), "items[0].qty"),
        (
            with(&|o| o["sender"]["address_code"] = json!(["1", "2", "3", "4", "5"])),
            "`sender.address_code`",
        ),
    ];
    for (body, names) in cases {
        let (status, answer) = app.post("/v1/orders", &body).await;
        assert_eq!(status, 400, "{names}: {answer}");
        let msg = answer["message"].as_str().unwrap_or_default();
        assert!(msg.contains(names), "{names} in {msg}");
    }
}

#[tokio::test]
async fn archived_orders_answer_every_read_as_before() {
    let app = spawn_app_with(&[
        ("TRACKER_ARCHIVE_AFTER_SECS", "1"),
        ("TRACKER_ARCHIVE_EVERY_SECS", "1"),
    ])
    .await;
    let customer = unique("c-arch");
    let mut body = parcel_order(&customer);
    let (status, o) = app.post("/v1/orders", &body).await;
    assert_eq!(status, 201, "{o}");
    let id = o["id"].as_str().unwrap().to_owned();
    let live = app.create_order(&customer).await;
    let (status, _) = app
        .post(
            &format!("/v1/orders/{id}/status"),
            &json!({"to": "cancelled", "version": 1, "by": "customer"}),
        )
        .await;
    assert_eq!(status, 200);
    let admin = app.admin();
    let archived = loop {
        let (status, got) = app
            .fetch_as(&format!("/v1/orders/{id}?include=items,packages"), &admin)
            .await;
        assert_eq!(status, 200, "{got}");
        if got["archived"] == true {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(archived["status"], "cancelled");
    assert_eq!(
        archived["packages"][1]["status"], "cancelled",
        "the packages moved with it"
    );
    assert_eq!(archived["items"].as_array().map(Vec::len), Some(2));
    let (_, plain) = app.fetch_as(&format!("/v1/orders/{id}"), &admin).await;
    assert!(
        plain.get("items").is_none(),
        "the switches still apply: {plain}"
    );
    let (status, h) = app
        .fetch_as(&format!("/v1/orders/{id}/history"), &admin)
        .await;
    assert_eq!(status, 200);
    let to: Vec<&str> = h["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        to,
        ["pending_payment", "cancelled", "cancelled", "cancelled"],
        "{h}"
    );
    let (status, track) = app
        .fetch_as(&format!("/v1/orders/{id}/track"), &admin)
        .await;
    assert_eq!((status, track["status"].as_str()), (200, Some("cancelled")));
    // The customer still reads it, and finds it in their list beside the live one.
    let mine = app.token(&customer, Role::Customer);
    let (status, seen) = app.fetch_as(&format!("/v1/orders/{id}"), &mine).await;
    assert_eq!((status, seen["archived"].as_bool()), (200, Some(true)));
    let (_, page) = app
        .fetch_as(&format!("/v1/orders?customer_id={customer}"), &mine)
        .await;
    let ids: Vec<&str> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [live["id"].as_str().unwrap(), id.as_str()],
        "newest first, hot and archived"
    );
    // The same create again is still the same order.
    body["notes"] = json!("a retry");
    let (status, again) = app.post("/v1/orders", &body).await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(id.as_str())),
        "{again}"
    );
    // The history outlives a restart too.
    let app = app.restart().await;
    let (status, h2) = app
        .fetch_as(&format!("/v1/orders/{id}/history"), &app.admin())
        .await;
    assert_eq!((status, &h2["changes"]), (200, &h["changes"]));
}
