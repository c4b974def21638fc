//! One story both webhook queues must tell: what the log queues, in order,
//! and how the schedule keeps a registration that races a sender.

use super::memory::MemoryWebhooks;
use super::redis::RedisWebhooks;
use super::{Due, WebhookQueue};
use crate::EventLog;
use crate::log::memory::{MemoryLog, MemoryLogConfig};
use crate::log::redis::{RedisLog, RedisLogConfig};
use std::sync::Arc;
use std::time::Duration;
use tracker_domain::event::EventFrame;
use tracker_domain::{EventBody, PosEvent};

fn fix(ts: i64) -> EventBody {
    EventBody::Pos(PosEvent {
        lat: 1.0,
        lon: 2.0,
        ts,
        speed: None,
        heading: None,
        backfill: false,
        before_pickup: false,
    })
}

fn seq_of(json: &str) -> u64 {
    serde_json::from_str::<EventFrame>(json).unwrap().seq
}

async fn due_now(q: &dyn WebhookQueue) -> Vec<Due> {
    q.due(100).await.unwrap()
}

async fn story(log: Arc<dyn EventLog>, q: Arc<dyn WebhookQueue>) {
    let order = format!("hook-{:x}", rand::random::<u32>());
    assert!(due_now(&*q).await.is_empty(), "nothing registered yet");

    // A fix alone is not hooked and registers nothing.
    log.append(&order, vec![fix(1)], None).await.unwrap();
    assert!(due_now(&*q).await.is_empty());
    log.append(&order, vec![EventBody::eta(9, 2), fix(3)], None)
        .await
        .unwrap();
    log.append(&order, vec![EventBody::eta(8, 4)], None)
        .await
        .unwrap();

    let due = due_now(&*q).await;
    assert_eq!(due.len(), 1);
    let d = due[0].clone();
    assert_eq!((&*d.order, d.tries, d.idle), (order.as_str(), 0, false));
    let head = q.head(&order, 10).await.unwrap();
    assert_eq!(
        head.iter().map(|h| seq_of(&h.json)).collect::<Vec<_>>(),
        vec![2, 4],
        "every event but fixes, in seq order"
    );

    // Delivered once: a second removal of the same one takes nothing.
    q.delivered(&order, &head[0]).await.unwrap();
    q.delivered(&order, &head[0]).await.unwrap();
    assert_eq!(q.head(&order, 10).await.unwrap(), head[1..].to_vec());

    // A failure: due again after the delay, with its count.
    q.retry(&d, Duration::from_secs(60), 1).await.unwrap();
    assert!(due_now(&*q).await.is_empty(), "waits out the retry");
    // A new event while it backs off queues behind it and keeps the wait.
    log.append(&order, vec![EventBody::eta(7, 5)], None)
        .await
        .unwrap();
    assert!(due_now(&*q).await.is_empty(), "the retry's wait stands");
    q.retry(&d, Duration::ZERO, 2).await.unwrap();
    let d = due_now(&*q).await.pop().expect("due after its wait");
    assert_eq!(d.tries, 2);
    for h in q.head(&order, 10).await.unwrap() {
        q.delivered(&order, &h).await.unwrap();
    }
    // Through at last: the next failure counts from one again.
    q.recovered(&d).await.unwrap();
    let again = due_now(&*q).await.pop().expect("still due");
    assert_eq!(again.tries, 0, "a success clears the count");

    // Empty: parked for the grace, not forgotten.
    q.settle(&d).await.unwrap();
    assert!(due_now(&*q).await.is_empty());
    // An append registers it again at once.
    log.append(&order, vec![EventBody::eta(6, 6)], None)
        .await
        .unwrap();
    let d = due_now(&*q).await.pop().expect("registered again");
    assert!(!d.idle && d.tries == 0);

    // The race: the sender emptied the queue, then an append registered the
    // order before the sender settled it: it stays due.
    for h in q.head(&order, 10).await.unwrap() {
        q.delivered(&order, &h).await.unwrap();
    }
    log.append(&order, vec![EventBody::eta(5, 7)], None)
        .await
        .unwrap();
    q.settle(&d).await.unwrap();
    let d = due_now(&*q)
        .await
        .pop()
        .expect("the later registration wins");
    let head = q.head(&order, 10).await.unwrap();
    assert_eq!(
        head.iter().map(|h| seq_of(&h.json)).collect::<Vec<_>>(),
        vec![7]
    );
    q.delivered(&order, &head[0]).await.unwrap();

    // Settled twice with nothing in between: forgotten.
    q.settle(&d).await.unwrap();
    let idle = Due {
        idle: true,
        ..d.clone()
    };
    q.settle(&idle).await.unwrap();
    assert!(due_now(&*q).await.is_empty());
    log.append(&order, vec![EventBody::eta(4, 8)], None)
        .await
        .unwrap();
    let d = due_now(&*q).await.pop().expect("a new registration");
    assert_eq!(q.head(&order, 10).await.unwrap().len(), 1);
    assert!(!d.idle);
}

#[tokio::test]
async fn memory_queue_tells_the_story() {
    let log = MemoryLog::new(MemoryLogConfig::default());
    let q: Arc<MemoryWebhooks> = log.webhooks();
    story(log, q).await;
}

#[tokio::test]
async fn redis_queue_tells_the_story() {
    let Some(url) = crate::log::redis::test_url() else {
        return;
    };
    let prefix = format!("t{:x}", rand::random::<u32>());
    let log = RedisLog::connect(
        &url,
        RedisLogConfig {
            prefix: prefix.clone(),
            webhooks: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let q = RedisWebhooks::connect(&url, &prefix, Duration::ZERO)
        .await
        .unwrap();
    assert!(q.maintain().await.unwrap());
    assert_eq!(q.owned().len(), super::PARTITIONS);
    let q = Arc::new(q);
    story(Arc::new(log), q.clone()).await;
    q.release().await;
}
