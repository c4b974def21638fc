//! Tokens and per-order access: 401 at the handshake, `forbidden` frames per order.

use crate::helpers::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;
use tracker_hub::Role;

const SECRET: &str = "test-secret-0123456789";

async fn handshake_status(app: &App, query: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("{}{query}", app.ws_url)).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("unexpected handshake error {e}"),
    }
}

fn token(secret: &str, sub: &str, role: &str, exp_from_now_s: i64) -> String {
    let claims = json!({"sub": sub, "role": role, "exp": now_ms() / 1000 + exp_from_now_s});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_tokens_are_refused_at_the_handshake_and_by_the_api() {
    let app = spawn_app().await;
    let good = token(SECRET, "c1", "customer", 3600);
    let expired = token(SECRET, "c1", "customer", -3600);
    let foreign = token("someone-elses-secret-key", "c1", "admin", 3600);
    // Forged: admin claims (signed elsewhere) carrying a valid customer token's signature.
    let (head_and_claims, _) = foreign.rsplit_once('.').unwrap();
    let (_, good_sig) = good.rsplit_once('.').unwrap();
    let forged = format!("{head_and_claims}.{good_sig}");
    let unknown_role = token(SECRET, "c1", "superuser", 3600);

    assert_eq!(handshake_status(&app, "").await, 401, "no token");
    for (bad, why) in [
        ("garbage", "malformed"),
        (expired.as_str(), "expired"),
        (forged.as_str(), "forged signature"),
        (foreign.as_str(), "signed with another key"),
        (unknown_role.as_str(), "unknown role"),
    ] {
        assert_eq!(
            handshake_status(&app, &format!("?token={bad}")).await,
            401,
            "{why}"
        );
        let r = app
            .http
            .get(format!("{}/v1/orders/1", app.base))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{why}");
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "unauthorized"
        );
    }
    assert_eq!(
        handshake_status(&app, &format!("?token={good}")).await,
        101,
        "a good token passes"
    );

    // The header form works too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        app.ws_url.as_str(),
    )
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {good}").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
}

#[tokio::test]
async fn customers_watch_only_their_orders_and_riders_only_assigned_ones() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (mine, _) = app.picked_up_order("alice", &rider).await;
    let (theirs, _) = app.assigned_order("bob", &unique("r")).await;

    let mut ws = app.watch(&app.token("alice", Role::Customer), &mine).await;
    ws.sub(&theirs, None).await;
    let err = ws.next().await;
    assert_eq!(
        (err["t"].as_str(), err["code"].as_str()),
        (Some("error"), Some("forbidden")),
        "{err}"
    );
    assert_eq!(err["order"], theirs.as_str());

    // The refused sub left the allowed one untouched.
    let phone = app.mqtt_client().await;
    publish_fix(&phone, &rider, 1.0, 2.0, now_ms()).await;
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["order"].as_str()),
        (Some("pos"), Some(mine.as_str()))
    );

    let mut stranger = app.ws(&app.token("not-the-rider", Role::Rider)).await;
    stranger.sub(&mine, None).await;
    assert_eq!(stranger.next().await["code"], "forbidden");
    // The assigned rider may watch it: `watch` asserts the snapshot.
    app.watch(&app.token(&rider, Role::Rider), &mine).await;

    // The orders API: customers read their own order and write nothing.
    let status_of = |r: reqwest::Response| r.status().as_u16();
    let alice = app.token("alice", Role::Customer);
    let get = |id: &str| {
        app.http
            .get(format!("{}/v1/orders/{id}", app.base))
            .bearer_auth(&alice)
            .send()
    };
    assert_eq!(status_of(get(&mine).await.unwrap()), 200);
    assert_eq!(status_of(get(&theirs).await.unwrap()), 403);
    let post = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .bearer_auth(&alice)
        .json(&json!({}));
    assert_eq!(status_of(post.send().await.unwrap()), 403);
    let anonymous = app
        .http
        .post(format!("{}/v1/orders", app.base))
        .json(&json!({}));
    assert_eq!(status_of(anonymous.send().await.unwrap()), 401);
}
