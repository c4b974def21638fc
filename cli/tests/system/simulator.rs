//! The simulator against a whole `tracker run`: riders carry orders over the
//! API and MQTT (some offline, uploading batches), watchers on all three
//! transports drop and resume, and every event reaches every watcher once.

use crate::helpers::*;
use std::time::Duration;
use tracker_sim::phones::Broker;
use tracker_sim::route::LatLon;
use tracker_sim::{SimConfig, run};

#[tokio::test]
async fn a_short_run_delivers_every_event_to_every_watcher_once() {
    let app = spawn_app().await;
    let broker = Broker {
        host: app.mqtt.0.clone(),
        port: app.mqtt.1,
    };
    let mut cfg = SimConfig::new(&app.base, broker, "test-secret-0123456789");
    cfg.riders = 4;
    cfg.interval = Duration::from_millis(100);
    cfg.speed_mps = 90.0;
    cfg.radius_m = 800.0;
    cfg.center = LatLon {
        lat: 23.1291,
        lon: 113.2644,
    };
    cfg.watchers_per_order = 4;
    cfg.sse_share = 0.25;
    cfg.poll_share = 0.25;
    cfg.offline_share = 0.5;
    cfg.drop_every = Some(Duration::from_millis(700));
    cfg.watch_as_operator = true;
    cfg.duration = Some(Duration::from_secs(5));
    cfg.mqtt_connections = 2;
    let report = run(cfg, Default::default(), |_, _| {}).await.unwrap();
    let json = serde_json::to_string(&report).unwrap();
    assert!(report.fixes > 100, "{json}");
    assert!(report.orders >= 4, "{json}");
    assert!(report.delivered > report.fixes, "{json}");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{json}");
    assert_eq!(report.watchers_without_snapshot, 0, "{json}");
    assert!(report.reconnects > 0 && report.resumed > 0, "{json}");
    assert!(report.delay_ms.count > 0, "{json}");
    assert_eq!((report.api_errors, report.publish_errors), (0, 0), "{json}");
}
