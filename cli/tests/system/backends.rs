//! The same live path against the machine's real services.
//!
//! A suite runs when its `TRACKER_TEST_*_URL` is set (scripts/test sets them when
//! the service answers); unset, it is skipped with a note, unless
//! `TRACKER_TEST_REQUIRE_BACKENDS=1` (CI), where a missing service fails the run.

use crate::helpers::*;
use crate::processes::PrivateBroker;
use serde_json::json;
use tracker_hub::Role;

/// The URL of a backend suite, or `None` to skip it (failing instead when required).
pub(crate) fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(url) => Some(url),
        None if std::env::var("TRACKER_TEST_REQUIRE_BACKENDS").as_deref() == Ok("1") => {
            panic!(
                "{var} is not set but TRACKER_TEST_REQUIRE_BACKENDS=1: the real-backend suites must run"
            )
        }
        None => {
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// Redis and a fresh PostgreSQL database for one test, under a Redis prefix of
/// its own; `None` (skipped, or a failure when required) when either is missing.
pub(crate) struct RedisAndPostgres {
    pub(crate) redis: String,
    pub(crate) prefix: String,
    pub(crate) db: tracker_backend::store::postgres::testing::TestDatabase,
}

impl RedisAndPostgres {
    pub(crate) async fn create() -> Option<Self> {
        let redis = backend_url("TRACKER_TEST_REDIS_URL")?;
        let admin = backend_url("TRACKER_TEST_DATABASE_URL")?;
        Some(RedisAndPostgres {
            redis,
            prefix: unique("systest"),
            db: tracker_backend::store::postgres::testing::TestDatabase::create(&admin).await,
        })
    }

    /// The settings that put a process on them.
    pub(crate) fn vars(&self) -> [(&'static str, &str); 3] {
        [
            ("TRACKER_REDIS_URL", self.redis.as_str()),
            ("TRACKER_REDIS_PREFIX", self.prefix.as_str()),
            ("TRACKER_DATABASE_URL", self.db.url.as_str()),
        ]
    }
}

#[tokio::test]
async fn fixes_through_an_external_mosquitto_reach_watchers() {
    let Some(url) = backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    // Its own share group, so parallel runs on the shared broker do not split
    // each other's fixes, and its own session, ended when the test is done.
    let (group, client) = (unique("ingest-test"), unique("ingest-test"));
    let app = spawn_app_with(&[
        ("TRACKER_MQTT_URL", url.as_str()),
        ("TRACKER_MQTT_SHARE_GROUP", group.as_str()),
        ("TRACKER_MQTT_CLIENT_ID", client.as_str()),
    ])
    .await;
    assert!(
        app.running.mqtt_addr.is_none(),
        "no embedded broker when TRACKER_MQTT_URL is set"
    );
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;

    // Ingest subscribes after its ConnAck; publish until the first fix lands, bounded.
    let phone = app.mqtt_client().await;
    let topic = format!("riders/{rider}/pos");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let first = loop {
        let ts = now_ms();
        publish_fix(&phone, &rider, 23.0, 113.0, ts).await;
        if let Ok(Some(Ok(m))) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            futures_util::StreamExt::next(&mut ws.stream),
        )
        .await
        {
            break serde_json::from_str::<serde_json::Value>(m.to_text().unwrap()).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fix came through Mosquitto"
        );
    };
    assert_eq!(
        (first["t"].as_str(), first["seq"].as_u64()),
        (Some("pos"), Some(7)),
        "{first}"
    );

    // And garbage through the external broker is counted, not fatal.
    publish(&phone, &topic, vec![0xde, 0xad]).await;
    let ts = now_ms() + 1;
    publish(
        &phone,
        &topic,
        json!({"lat": 23.1, "lon": 113.1, "ts": ts}).to_string(),
    )
    .await;
    loop {
        let f = ws.next().await;
        if f["ts"].as_i64() == Some(ts) {
            break;
        }
    }
    assert!(app.running.ingest_stats.as_ref().unwrap().rejected_total() >= 1);
    app.stop_and_forget_mqtt_session().await;
}

#[tokio::test]
async fn a_burst_through_mosquitto_onto_redis_keeps_each_riders_order() {
    let Some(url) = backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let (group, prefix, client) = (
        unique("ingest-test"),
        unique("systest"),
        unique("ingest-test"),
    );
    let app = spawn_app_with(&[
        ("TRACKER_MQTT_URL", url.as_str()),
        ("TRACKER_MQTT_SHARE_GROUP", group.as_str()),
        ("TRACKER_MQTT_CLIENT_ID", client.as_str()),
        ("TRACKER_REDIS_URL", redis.as_str()),
        ("TRACKER_REDIS_PREFIX", prefix.as_str()),
    ])
    .await;
    app.burst_keeps_each_riders_order(12, 40).await;
    app.stop_and_forget_mqtt_session().await;
}

#[tokio::test]
async fn the_live_path_and_resume_work_on_the_redis_log() {
    let Some(url) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("systest");
    let app = spawn_app_with(&[
        ("TRACKER_REDIS_URL", url.as_str()),
        ("TRACKER_REDIS_PREFIX", prefix.as_str()),
    ])
    .await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, _) = app.assigned_order(&customer, &rider).await;
    let token = app.token(&rider, Role::Rider);
    let mut ws = app.watch(&token, &order).await;
    let phone = app.mqtt_client().await;
    let ts = now_ms();
    publish_fix(&phone, &rider, 23.0, 113.0, ts).await;
    let pos = ws.next().await;
    assert_eq!(
        (pos["t"].as_str(), pos["seq"].as_u64(), pos["ts"].as_i64()),
        (Some("pos"), Some(7), Some(ts))
    );
    drop(ws);

    for i in 1..=20 {
        publish_fix(&phone, &rider, 23.0, 113.0, ts + i).await;
    }
    app.wait_for_seq(&order, 27).await;
    let mut ws = app.ws(&token).await;
    ws.sub(&order, Some(7)).await;
    let mut got = Vec::new();
    loop {
        let f = ws.next().await;
        if f["t"] == "snapshot" {
            assert_eq!(
                (f["recovered"].as_bool(), f["seq"].as_u64()),
                (Some(true), Some(27)),
                "{f}"
            );
            assert!(f["epoch"].as_str().unwrap().starts_with("redis-"));
            break;
        }
        got.push(f["seq"].as_u64().unwrap());
    }
    assert_eq!(got, (8..=27).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_live_path_runs_on_redis_and_postgres_together() {
    let Some(real) = RedisAndPostgres::create().await else {
        return;
    };
    let app = spawn_app_with(&real.vars()).await;
    let (customer, rider) = (unique("c"), unique("r"));
    let (order, version) = app.assigned_order(&customer, &rider).await;
    let mut ws = app
        .watch(&app.token(&customer, Role::Customer), &order)
        .await;
    let phone = app.mqtt_client().await;
    let ts = now_ms();
    publish_fix(&phone, &rider, 23.0, 113.0, ts).await;
    assert_eq!(ws.next().await["seq"], 7);
    app.transition(&order, "picked_up", version).await;
    let status = ws.next().await;
    assert_eq!(
        (status["status"].as_str(), status["seq"].as_u64()),
        (Some("picked_up"), Some(8))
    );
    // The order row lives in PostgreSQL.
    let row = app.running.store.get_order(&order).await.unwrap();
    assert_eq!(row.version, version + 1);
    app.running.shutdown().await.unwrap();
    real.db.drop_now().await;
}

/// Publishes fresh fixes (bounded) until one reaches `ws` as a `pos` event.
async fn until_a_fix_arrives(app: &App, rider: &str, ws: &mut Ws) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + PATIENCE * 2;
    let mut phone = None;
    loop {
        if phone.is_none() {
            // The phone itself may be cut off by the restart; a new one is made as needed.
            phone = tokio::time::timeout(std::time::Duration::from_millis(500), app.mqtt_client())
                .await
                .ok();
        }
        if let Some(p) = &phone {
            let fix = json!({"lat": 23.0, "lon": 113.0, "ts": now_ms()}).to_string();
            if p.try_publish(
                format!("riders/{rider}/pos"),
                rumqttc::QoS::AtLeastOnce,
                false,
                fix,
            )
            .is_err()
            {
                phone = None;
            }
        }
        if let Ok(Some(Ok(m))) = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            futures_util::StreamExt::next(&mut ws.stream),
        )
        .await
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(m.to_text().unwrap_or(""))
            && v["t"] == "pos"
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fix came through"
        );
    }
}

#[tokio::test]
async fn ingest_reconnects_after_the_broker_restarts_and_resumes() {
    // Needs the mosquitto binary, which the MQTT suite's machines have.
    let Some(_) = backend_url("TRACKER_TEST_MQTT_URL") else {
        return;
    };
    let mut broker = PrivateBroker::start();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let app = spawn_app_with(&[("TRACKER_MQTT_URL", url.as_str())]).await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;
    let before = until_a_fix_arrives(&app, &rider, &mut ws).await;

    broker.restart();
    let restarted_at = now_ms();
    let after = loop {
        // Frames of fixes sent before the restart may still be on their way: skip them.
        let f = until_a_fix_arrives(&app, &rider, &mut ws).await;
        if f["ts"].as_i64() >= Some(restarted_at) {
            break f;
        }
    };
    assert!(
        after["seq"].as_u64() > before["seq"].as_u64(),
        "{before} then {after}"
    );
    drop(broker);
}

#[tokio::test]
async fn a_full_offline_batch_reaches_prompt_watchers_whole_on_redis() {
    let Some(redis) = backend_url("TRACKER_TEST_REDIS_URL") else {
        return;
    };
    let prefix = unique("systest");
    let app = spawn_app_with(&[
        ("TRACKER_REDIS_URL", redis.as_str()),
        ("TRACKER_REDIS_PREFIX", prefix.as_str()),
        ("TRACKER_WS_QUEUE", "8"),
    ])
    .await;
    crate::live_path::a_full_offline_batch_reaches_prompt_watchers_whole(&app).await;
}
