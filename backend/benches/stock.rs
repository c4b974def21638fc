//! Stock reservations: how many per second, and each call's latency, with
//! 32 concurrent callers, on one hot SKU and spread over 10,000 SKUs; each
//! reservation one unit under a key of its own (an order being created).
//! In the SQLite store's database (a temporary file), and when set, in
//! PostgreSQL (`TRACKER_BENCH_DATABASE_URL`, a database of its own on that
//! server) and in Redis (`TRACKER_BENCH_REDIS_URL`, keys under a fresh prefix).
//!
//! `cargo bench -p tracker-backend --features contract --bench stock`

#![allow(missing_docs)]

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Instant;
use tracker_backend::stock::redis::RedisStock;
use tracker_backend::stock::{ReservationKey, Reserved, Stock, StockLine};
use tracker_backend::store::postgres::{PostgresStore, testing};
use tracker_backend::store::sqlite::SqliteStore;

const CALLS: usize = 6000;
const CALLERS: usize = 32;
const SPREAD: usize = 10_000;

async fn shape(name: &str, stock: Arc<dyn Stock>, skus: usize) {
    let tag = format!("{:x}", rand::random::<u32>());
    for s in 0..skus {
        stock
            .set(&format!("{tag}-{s}"), 1_000_000, 0)
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let stock = stock.clone();
        let tag = tag.clone();
        callers.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).unwrap();
            for i in (c..CALLS).step_by(CALLERS) {
                let key = ReservationKey {
                    biz_type: "bench".into(),
                    biz_order_no: format!("{tag}-{i}"),
                };
                let line = StockLine {
                    sku: format!("{tag}-{}", i % skus),
                    qty: 1,
                };
                let t = Instant::now();
                let r = stock.reserve(&key, &[line], 1).await.unwrap();
                h.record(t.elapsed().as_micros() as u64).unwrap();
                assert_eq!(r, Reserved::New);
            }
            h
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for c in callers {
        all.add(c.await.unwrap()).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:9} {:>6} SKU(s)  {:>7.0} reservations/s  p50 {:>7.0} µs  p99 {:>7.0} µs",
        skus,
        CALLS as f64 / secs,
        all.value_at_quantile(0.5) as f64,
        all.value_at_quantile(0.99) as f64
    );
}

async fn both(name: &str, stock: Arc<dyn Stock>) {
    shape(name, stock.clone(), 1).await;
    shape(name, stock, SPREAD).await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let sqlite = SqliteStore::open(&url).await.unwrap();
        both("sqlite", Arc::new(sqlite.stock())).await;
        match std::env::var("TRACKER_BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let db = testing::TestDatabase::create(&url).await;
                let pg = PostgresStore::open(&db.url).await.unwrap();
                both("postgres", Arc::new(pg.stock())).await;
                pg.close().await;
                db.drop_now().await;
            }
            _ => println!("postgres: skipped (TRACKER_BENCH_DATABASE_URL is not set)"),
        }
        match std::env::var("TRACKER_BENCH_REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                let prefix = format!("bench-{:x}", rand::random::<u32>());
                let redis = RedisStock::connect(&url, &prefix).await.unwrap();
                both("redis", Arc::new(redis)).await;
            }
            _ => println!("redis: skipped (TRACKER_BENCH_REDIS_URL is not set)"),
        }
    });
}
