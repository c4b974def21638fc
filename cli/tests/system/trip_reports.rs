//! Trip reports and track files over HTTP: `GET /v1/orders/{id}/trip` from
//! the stored track of fixes sent over MQTT, and `?format=gpx|csv` on
//! `/track`, with the same view rules as the track.

use crate::helpers::{PATIENCE, now_ms, publish, spawn_app, unique};
use serde_json::{Value, json};
use tracker_hub::Role;

/// Metres per degree of latitude on the sphere the hub measures with.
const M_PER_DEG: f64 = 6_372_797.560_856 * std::f64::consts::PI / 180.0;

#[tokio::test]
async fn the_trip_report_measures_the_stored_track_and_the_track_downloads_as_gpx_and_csv() {
    let app = spawn_app().await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let phone = app.mqtt_client().await;
    // 3 km due north at 10 m/s, a fix every 5 s, and one fix of 300 m
    // accuracy far off the line that the report must leave out.
    let t0 = now_ms() - 600_000;
    let mut batch: Vec<Value> = (0..=60)
        .map(|i| {
            json!({"lat": 23.0 + (i as f64 * 50.0) / M_PER_DEG, "lon": 113.0,
                   "ts": t0 + i * 5_000, "acc": 5.0})
        })
        .collect();
    batch.push(json!({"lat": 23.01, "lon": 113.01, "ts": t0 + 2_500, "acc": 300.0}));
    publish(
        &phone,
        &format!("riders/{rider}/pos/batch"),
        json!(batch).to_string(),
    )
    .await;

    let path = |rest: &str| format!("/v1/orders/{order}/{rest}");
    let admin = app.admin();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let report = loop {
        let (_, _, r) = app.read_as(&path("trip"), &admin).await;
        if r["points"].as_u64().unwrap_or(0) + r["dropped"].as_u64().unwrap_or(0) >= 62 {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "track incomplete: {r}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(report["order"], order.as_str());
    let distance = report["distance_m"].as_f64().unwrap();
    assert!((distance - 3_000.0).abs() < 30.0, "{report}");
    assert_eq!(report["dropped"], 1, "{report}");
    assert_eq!(report["duration_ms"], 300_000);
    assert!(
        (report["avg_speed"].as_f64().unwrap() - 10.0).abs() < 0.1,
        "{report}"
    );
    assert_eq!(report["stops"], json!([]));

    // The track as a file: its status, its type and its text.
    let download = |format: &str| {
        let req = app
            .http
            .get(format!(
                "{}{}",
                app.base,
                path(&format!("track?format={format}"))
            ))
            .bearer_auth(&admin);
        async move {
            let r = req.send().await.unwrap();
            let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
            (r.status().as_u16(), kind, r.text().await.unwrap())
        }
    };
    let (status, kind, text) = download("gpx").await;
    assert_eq!((status, kind.as_str()), (200, "application/gpx+xml"));
    assert!(text.contains("<gpx version=\"1.1\""), "{text}");
    assert_eq!(text.matches("<trkpt ").count(), 62, "every stored fix");

    let (status, kind, text) = download("csv").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert_eq!(text.lines().count(), 63, "a header and a row per fix");
    assert!(text.lines().nth(1).unwrap().ends_with(&rider));

    let (status, _, _) = app.read_as(&path("track?format=kml"), &admin).await;
    assert_eq!(status, 400);

    // The customer's view starts at pick-up, which has not happened: an
    // empty report.
    let (_, _, r) = app
        .read_as(&path("trip"), &app.token("c1", Role::Customer))
        .await;
    assert_eq!(
        (r["points"].as_u64(), r["distance_m"].as_f64()),
        (Some(0), Some(0.0))
    );
    let (status, _, _) = app
        .read_as(&path("trip"), &app.token("c2", Role::Customer))
        .await;
    assert_eq!(status, 403);
}
