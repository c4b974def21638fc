//! The webhook from the outside: `tracker run` with `TRACKER_WEBHOOK_URL`
//! POSTs every event of an order but its fixes to a receiver here, signed,
//! in `seq` order; in process and on Redis with PostgreSQL.

use crate::backends::RedisAndPostgres;
use crate::helpers::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::{Arc, Mutex};
use tracker_domain::event::EventFrame;

const SECRET: &str = "webhook-secret-for-the-tests";

/// The frames a receiver accepted, whether each was signed right.
type Got = Arc<Mutex<Vec<(EventFrame, bool)>>>;

async fn receiver() -> (String, Got) {
    async fn take(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let sig = headers
            .get("x-tracker-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let signed = tracker_webhooks::verify(SECRET.as_bytes(), &body, sig)
            && headers
                .get("content-type")
                .is_some_and(|v| v == "application/json");
        match serde_json::from_slice::<EventFrame>(&body) {
            Ok(frame) => {
                got.lock().unwrap().push((frame, signed));
                StatusCode::OK
            }
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }
    let got: Got = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/events", post(take))
        .with_state(got.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// An order taken to `picked_up`, a fix of its rider, then `delivered`:
/// the receiver gets every event of its log but the fix, in order.
async fn story(app: &App, got: &Got) {
    let rider = unique("r");
    let (order, v) = app.picked_up_order("c1", &rider).await;
    let phone = app.mqtt_client().await;
    publish_fix(&phone, &rider, 23.0, 113.0, now_ms()).await;
    app.wait_for_seq(&order, 8).await;
    app.transition(&order, "delivered", v).await;
    app.wait_for_seq(&order, 9).await;

    let log = app
        .running
        .log
        .read(&order, Some(0), 100)
        .await
        .unwrap()
        .missed
        .unwrap();
    let want: Vec<u64> = log
        .iter()
        .filter(|e| !String::from_utf8_lossy(&e.json).contains(r#""t":"pos""#))
        .map(|e| e.seq)
        .collect();
    assert_eq!(want.len(), 8, "the order's events but its fix");
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    loop {
        let seqs: Vec<u64> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, _)| f.order == order)
            .map(|(f, _)| f.seq)
            .collect();
        if seqs == want {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the webhook got {seqs:?}, the log holds {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap();
    for (frame, signed) in got.iter().filter(|(f, _)| f.order == order) {
        assert!(signed, "seq {} is signed with the secret", frame.seq);
        let json = serde_json::to_string(frame).unwrap();
        let entry = log.iter().find(|e| e.seq == frame.seq).unwrap();
        let logged: EventFrame = serde_json::from_slice(&entry.json).unwrap();
        assert_eq!(logged, *frame, "the body is the frame watchers get: {json}");
    }
}

#[tokio::test]
async fn tracker_run_posts_an_orders_events_to_the_webhook() {
    let (url, got) = receiver().await;
    let app = spawn_app_with(&[
        ("TRACKER_WEBHOOK_URL", url.as_str()),
        ("TRACKER_WEBHOOK_SECRET", SECRET),
    ])
    .await;
    story(&app, &got).await;
}

#[tokio::test]
async fn on_redis_and_postgres_the_webhook_gets_the_same() {
    let Some(backends) = RedisAndPostgres::create().await else {
        return;
    };
    let (url, got) = receiver().await;
    let mut vars = backends.vars().to_vec();
    vars.extend([
        ("TRACKER_WEBHOOK_URL", url.as_str()),
        ("TRACKER_WEBHOOK_SECRET", SECRET),
        // Quick to stop: its partitions stay closed for one timeout after.
        ("TRACKER_WEBHOOK_TIMEOUT_SECS", "1"),
    ]);
    let app = spawn_app_with(&vars).await;
    story(&app, &got).await;
}

#[tokio::test]
async fn on_a_redis_cluster_the_webhook_gets_the_same() {
    // The queue is in each order's slot, the schedule in slots of its own.
    let Some(admin) = crate::backends::backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    if crate::backends::backend_url("TRACKER_TEST_REDIS_URL").is_none() {
        return;
    }
    let cluster = crate::processes::PrivateRedisCluster::start().await;
    let db = tracker_backend::store::postgres::testing::TestDatabase::create(&admin).await;
    let (url, got) = receiver().await;
    let prefix = unique("hooks");
    let app = spawn_app_with(&[
        ("TRACKER_REDIS_URL", cluster.url.as_str()),
        ("TRACKER_REDIS_PREFIX", prefix.as_str()),
        ("TRACKER_DATABASE_URL", db.url.as_str()),
        ("TRACKER_WEBHOOK_URL", url.as_str()),
        ("TRACKER_WEBHOOK_SECRET", SECRET),
        ("TRACKER_WEBHOOK_TIMEOUT_SECS", "1"),
    ])
    .await;
    story(&app, &got).await;
}
