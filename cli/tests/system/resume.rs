//! Reconnecting with `since`: exactly the missed events, or an honest fresh snapshot.

use crate::helpers::*;
use serde_json::json;
use tracker_hub::Role;

/// Subscribes, disconnects, lets 50 fixes happen, and returns (app, order, seq held, ws token).
async fn miss_fifty(app: &App) -> (String, u64, String) {
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, _) = app.picked_up_order(&customer, &rider).await;
    let token = app.token(&customer, Role::Customer);
    let mut ws = app.ws(&token).await;
    ws.sub(&order, None).await;
    let held = ws.next().await["seq"].as_u64().unwrap();
    drop(ws);

    let phone = app.mqtt_client().await;
    let t0 = now_ms();
    for i in 0..50 {
        let fix = json!({"lat": 23.0 + i as f64 * 0.001, "lon": 113.0, "ts": t0 + i});
        publish(&phone, &format!("riders/{rider}/pos"), fix.to_string()).await;
    }
    app.wait_for_seq(&order, held + 50).await;
    (order, held, token)
}

#[tokio::test]
async fn reconnect_with_since_gets_exactly_the_fifty_missed_in_order() {
    let app = spawn_app().await;
    let (order, held, token) = miss_fifty(&app).await;
    let mut ws = app.ws(&token).await;
    ws.sub(&order, Some(held)).await;
    let mut seqs = Vec::new();
    loop {
        let f = ws.next().await;
        if f["t"] == "snapshot" {
            assert_eq!(f["recovered"], true, "{f}");
            assert_eq!(
                f["seq"],
                held + 50,
                "the snapshot closes the replay at the top"
            );
            break;
        }
        assert_eq!(f["t"], "pos");
        seqs.push(f["seq"].as_u64().unwrap());
    }
    assert_eq!(
        seqs,
        ((held + 1)..=(held + 50)).collect::<Vec<_>>(),
        "exactly the missed ones, in order"
    );
    ws.silent_for(300).await;
}

#[tokio::test]
async fn with_history_gone_the_client_gets_a_fresh_snapshot_not_recovered() {
    let app = spawn_app_with(&[("TRACKER_LOG_HISTORY", "10")]).await;
    let (order, held, token) = miss_fifty(&app).await;
    let mut ws = app.ws(&token).await;
    ws.sub(&order, Some(held)).await;
    let f = ws.next().await;
    assert_eq!(
        f["t"], "snapshot",
        "no partial replay when history does not reach: {f}"
    );
    assert_eq!(f["recovered"], false);
    assert_eq!(f["seq"], held + 50);
    assert_eq!(f["status"], "picked_up");
    assert!(
        f["pos"]["ts"].as_i64().is_some(),
        "the snapshot carries the live position"
    );
    ws.silent_for(300).await;
}

#[tokio::test]
async fn a_client_from_another_epoch_is_not_replayed_the_wrong_events() {
    let app = spawn_app().await;
    let (order, held, token) = miss_fifty(&app).await;
    let mut ws = app.ws(&token).await;
    ws.send(
        json!({"op": "sub", "order": order, "since": held, "epoch": "mem-from-before-a-restart"}),
    )
    .await;
    let f = ws.next().await;
    assert_eq!(f["t"], "snapshot");
    assert_eq!(f["recovered"], false);
}

#[tokio::test]
async fn a_watcher_whose_queue_overflows_still_gets_every_event_once_in_order() {
    // A queue of 2 deliveries cannot hold a burst of 1000: the connection falls
    // behind and must catch up from the log.
    let app = spawn_app_with(&[("TRACKER_WS_QUEUE", "2")]).await;
    let order = app.create_order("c1").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_seq(&order, 1).await;
    let mut ws = app.ws(&app.admin()).await;
    ws.sub(&order, None).await;
    let start = ws.next().await["seq"].as_u64().unwrap();

    let log = app.running.log.clone();
    let o = order.clone();
    let burst = tokio::spawn(async move {
        for i in 0..1000 {
            let eta = tracker_domain::EventBody::eta(i, i);
            log.append(&o, vec![eta], None).await.unwrap();
        }
    });
    let mut expect = start + 1;
    while expect <= start + 1000 {
        let f = ws.next().await;
        let seq = f["seq"].as_u64().unwrap();
        if f["t"] == "snapshot" {
            panic!("history (1000 entries) still reaches, no snapshot expected: {f}");
        }
        assert_eq!(seq, expect, "no gap, no duplicate");
        expect += 1;
    }
    burst.await.unwrap();
    ws.silent_for(200).await;
}
