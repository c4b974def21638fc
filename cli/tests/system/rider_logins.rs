//! Riders log in to `tracker run`'s own MQTT listener with their token
//! (`TRACKER_MQTT_AUTH=jwt`, the default): 3.1.1 and 5 both reach a watcher,
//! logins that prove no rider are refused at CONNECT, and a rider cannot
//! publish for another.

use crate::helpers::*;
use rumqttc::v5;
use std::time::Duration;
use tracker_domain::RejectReason;
use tracker_hub::Role;

/// Polls a 5 event loop until the first PUBACK (or panics on an error).
async fn puback5(ev: &mut v5::EventLoop) -> v5::mqttbytes::v5::PubAck {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ev.poll().await {
                Ok(v5::Event::Incoming(v5::mqttbytes::v5::Packet::PubAck(a))) => return a,
                Ok(_) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .expect("a PUBACK")
}

fn fix() -> String {
    serde_json::json!({"lat": 23.13, "lon": 113.26, "ts": now_ms()}).to_string()
}

#[tokio::test]
async fn riders_publish_with_their_token_over_3_1_1_and_5_and_nobody_else_gets_in() {
    let app = spawn_app_with(&[("TRACKER_MQTT_AUTH", "jwt")]).await;
    let (host, port) = (app.mqtt.0.clone(), app.mqtt.1);
    let (r1, r2) = (unique("r"), unique("r"));
    let (order1, _) = app.assigned_order("c1", &r1).await;
    let (order2, _) = app.assigned_order("c1", &r2).await;
    let mut ws = app.ws(&app.admin()).await;
    ws.sub(&order1, None).await;
    ws.sub(&order2, None).await;
    assert_eq!(ws.next().await["t"], "snapshot");
    assert_eq!(ws.next().await["t"], "snapshot");

    // MQTT 5 with r1's token.
    let mut o = v5::MqttOptions::new(unique("phone5"), host.clone(), port);
    o.set_credentials(r1.clone(), app.token(&r1, Role::Rider));
    let (c5, mut e5) = v5::AsyncClient::new(o, 16);
    c5.publish(
        format!("riders/{r1}/pos"),
        v5::mqttbytes::QoS::AtLeastOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    assert_eq!(
        puback5(&mut e5).await.reason,
        v5::mqttbytes::v5::PubAckReason::Success
    );
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["order"].as_str()),
        (Some("pos"), Some(order1.as_str())),
        "{pos}"
    );

    // r1 publishing for r2: refused, counted, nothing reaches r2's order.
    let stats = app.running.ingest_stats.clone().unwrap();
    assert_eq!(stats.rejected(RejectReason::Forbidden), 0);
    c5.publish(
        format!("riders/{r2}/pos"),
        v5::mqttbytes::QoS::AtLeastOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    assert_eq!(
        puback5(&mut e5).await.reason,
        v5::mqttbytes::v5::PubAckReason::NotAuthorized
    );
    assert_eq!(
        stats.rejected(RejectReason::Forbidden),
        1,
        "counted as forbidden"
    );
    ws.silent_for(300).await;

    // MQTT 3.1.1 with r2's token.
    let mut o = rumqttc::MqttOptions::new(unique("phone4"), host.clone(), port);
    o.set_credentials(r2.clone(), app.token(&r2, Role::Rider));
    let (c4, mut e4) = rumqttc::AsyncClient::new(o, 16);
    c4.publish(
        format!("riders/{r2}/pos"),
        rumqttc::QoS::AtLeastOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match e4.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .unwrap();
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["order"].as_str()),
        (Some("pos"), Some(order2.as_str())),
        "{pos}"
    );

    // Logins that prove no rider: anonymous, a customer's token, another
    // rider's token, a token of another secret.
    let foreign = tracker_hub::Auth::hs256(b"another-secret-0123456789").mint(&r1, Role::Rider, 60);
    for (user, password) in [
        (None, None),
        (Some(r1.clone()), Some(app.token(&r1, Role::Customer))),
        (Some(r1.clone()), Some(app.token(&r2, Role::Rider))),
        (Some(r1.clone()), Some(foreign)),
    ] {
        let mut o = rumqttc::MqttOptions::new(unique("intruder"), host.clone(), port);
        if let (Some(u), Some(p)) = (&user, &password) {
            o.set_credentials(u.clone(), p.clone());
        }
        let (_c, mut e) = rumqttc::AsyncClient::new(o, 4);
        let refused = tokio::time::timeout(Duration::from_secs(5), e.poll())
            .await
            .unwrap();
        assert!(
            matches!(refused, Err(rumqttc::ConnectionError::ConnectionRefused(_))),
            "{user:?}: {refused:?}"
        );
    }
    app.running.shutdown().await.unwrap();
}
