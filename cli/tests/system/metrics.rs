//! `/metrics` carries what operators scale and alert on.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn metrics_cover_connections_events_rejections_backlog_and_latency() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;
    let phone = app.mqtt_client().await;
    publish(&phone, &format!("riders/{rider}/pos"), b"garbage".to_vec()).await;
    publish_fix(&phone, &rider, 1.0, 2.0, now_ms()).await;
    assert_eq!(ws.next().await["t"], "pos");
    // One more round trip so the delivery above has been flushed and counted.
    ws.send(json!({"op": "ping"})).await;
    assert_eq!(ws.next().await["t"], "pong");

    let text = app.metrics_text().await;
    for name in [
        "tracker_ws_connections",
        "tracker_ws_subscriptions",
        "tracker_events_appended_total{source=\"ingest\"}",
        "tracker_events_appended_total{source=\"outbox\"}",
        "tracker_events_delivered_total",
        "tracker_fixes_rejected_total{reason=\"bad_json\"}",
        "tracker_fixes_accepted_total",
        "tracker_outbox_backlog",
        "tracker_tail_backlog",
        "tracker_delivery_latency_seconds_bucket{le=\"0.02\"}",
        "tracker_event_age_at_fanout_seconds_bucket",
    ] {
        assert!(text.contains(name), "/metrics lacks {name}");
    }
}
