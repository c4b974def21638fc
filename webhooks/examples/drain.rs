//! Sender throughput alone (`bench/webhooks.sh` measures it in a whole
//! process): queues ORDERS × PER_ORDER events in an in-process log, then
//! times one sender draining them to URL (a receiver such as
//! `webhooks/examples/receiver.rs`), and prints events per second and this
//! process's CPU per event; before that, the CPU per append of the same
//! events to a log without webhooks and to one with them (the hub's side).
//!
//! With REDIS_URL set, the log and the queue are on that Redis (under a
//! prefix of the run's own, deleted after), as `tracker hub` has them.
//!
//! usage: [REDIS_URL=…] drain URL SECRET [ORDERS=2000] [PER_ORDER=10] [CONCURRENCY=64]

use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracker_backend::EventLog;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_backend::log::redis::{RedisLog, RedisLogConfig};
use tracker_backend::webhooks::WebhookQueue;
use tracker_backend::webhooks::redis::RedisWebhooks;
use tracker_webhooks::{WebhookSender, WebhookSettings};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: drain URL SECRET [ORDERS] [PER_ORDER] [CONCURRENCY]");
        std::process::exit(2);
    }
    let num = |i: usize, d: usize| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let (orders, per_order, concurrency) = (num(2, 2000), num(3, 10), num(4, 64));
    let redis = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty());
    let prefix = format!("drain-{:x}", rand::random::<u32>());
    let open = |webhooks: bool, tag: &'static str| {
        let redis = redis.clone();
        let prefix = format!("{prefix}{tag}");
        async move {
            let pair: (Arc<dyn EventLog>, Option<Arc<dyn WebhookQueue>>) = match &redis {
                None => {
                    let log = MemoryLog::new(MemoryLogConfig::default());
                    let queue = webhooks.then(|| log.webhooks() as Arc<dyn WebhookQueue>);
                    (log, queue)
                }
                Some(url) => {
                    let cfg = RedisLogConfig {
                        prefix: prefix.clone(),
                        webhooks,
                        ..Default::default()
                    };
                    let log = RedisLog::connect(url, cfg)
                        .await
                        .expect("connecting to Redis");
                    let queue = match webhooks {
                        true => Some(Arc::new(
                            RedisWebhooks::connect(url, &prefix, Duration::ZERO)
                                .await
                                .expect("connecting to Redis"),
                        ) as Arc<dyn WebhookQueue>),
                        false => None,
                    };
                    (Arc::new(log), queue)
                }
            };
            pair
        }
    };
    let ids: Vec<String> = (0..orders).map(|o| format!("drain-{o}")).collect();
    let total = orders * per_order;
    let append_all = |log: Arc<dyn EventLog>| {
        let ids = ids.clone();
        async move {
            let c0 = cpu_seconds();
            for round in 0..per_order {
                for o in &ids {
                    let ts = round as i64;
                    log.append(o, vec![tracker_domain::EventBody::eta(ts + 1, ts)], None)
                        .await
                        .unwrap();
                }
            }
            (cpu_seconds() - c0) * 1e6 / total as f64
        }
    };
    let (plain, _) = open(false, "p").await;
    let append_off = append_all(plain).await;
    let (log, queue) = open(true, "w").await;
    let queue = queue.expect("webhooks on");
    let append_on = append_all(log).await;
    let settings = WebhookSettings {
        concurrency,
        ..WebhookSettings::new(args[0].clone(), SecretString::from(args[1].clone()))
    };
    let stop = CancellationToken::new();
    let sender = WebhookSender::new(queue.clone(), settings).unwrap();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let run = tokio::spawn(sender.run(stop.clone()));
    // Drained when every order's queue is empty; asked from the first order
    // on, a round stopping at the first one not yet empty (few calls: the
    // sender takes the orders about in the order they were registered).
    let mut next = 0;
    while next < ids.len() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        while next < ids.len() && queue.head(&ids[next], 1).await.unwrap().is_empty() {
            next += 1;
        }
    }
    let (c1, dt) = (cpu_seconds(), t0.elapsed().as_secs_f64());
    stop.cancel();
    run.await.unwrap();
    if let Some(url) = &redis {
        let c = redis::Client::open(url.as_str()).unwrap();
        let mut conn = c.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        for k in keys {
            let _: () = redis::cmd("DEL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }
    println!(
        "drain log={} events={total} orders={orders} concurrency={concurrency} events_per_s={:.0} cpu_us_per_event={:.1} append_cpu_us_per_event off={append_off:.1} on={append_on:.1}",
        if redis.is_some() {
            "redis"
        } else {
            "in-process"
        },
        total as f64 / dt,
        (c1 - c0) * 1e6 / total as f64
    );
}
