//! Latency of the order calls through the use-case layer on a real store,
//! with and without items and packages: create, and get without and with
//! `include=items,packages`. p50 and p99 of `N` sequential calls each, on
//! SQLite (a temporary file) and, when `TRACKER_BENCH_DATABASE_URL` is set,
//! PostgreSQL (a database of its own, created on that server and dropped). Statements per call: hub/tests/store_statements.rs.
//!
//! `cargo bench -p tracker-hub --bench order_calls`

#![allow(missing_docs)]

use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracker_backend::Store;
use tracker_backend::dispatch::memory::MemoryDispatch;
use tracker_backend::relay::RelayWaker;
use tracker_backend::stock::Stock;
use tracker_backend::store::postgres::{PostgresStore, testing};
use tracker_backend::store::sqlite::SqliteStore;
use tracker_backend::timers::memory::MemoryDelayQueue;
use tracker_domain::SystemClock;
use tracker_domain::ids::IdGenerator;
use tracker_hub::orders::queries::Include;
use tracker_hub::orders::{DispatchConfig, Orders, OrdersDeps};
use tracker_hub::{Claims, Role};

const N: usize = 2000;

fn orders_over(store: Arc<dyn Store>, stock: Arc<dyn Stock>) -> Orders {
    Orders::new(
        OrdersDeps {
            store,
            ids: Arc::new(IdGenerator::new(5, Arc::new(SystemClock))),
            clock: Arc::new(SystemClock),
            dispatch: Arc::new(MemoryDispatch::new(Duration::from_secs(60))),
            timers: Arc::new(MemoryDelayQueue::default()),
            stock,
        },
        RelayWaker::default(),
        DispatchConfig::default(),
    )
}

fn new_order(i: usize, goods: bool) -> tracker_domain::NewOrder {
    let mut body = serde_json::json!({
        "biz_order_no": format!("B-{:x}-{i}", rand::random::<u32>()), "biz_type": "parcel",
        "customer_id": format!("c{}", i % 100),
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3},
        "recipient": {"name": "Li Wei", "phone": "13800138000", "address": "1 Tianhe Rd"},
    });
    if goods {
        body["items"] = serde_json::json!([
            {"sku": "A", "name": "Tea", "qty": 2, "weight_g": 250},
            {"sku": "B", "qty": 1}, {"sku": "C", "qty": 3}
        ]);
        body["packages"] = serde_json::json!([
            {"package_no": "P1", "items": [{"sku": "A", "qty": 2}, {"sku": "C", "qty": 3}], "carrier": "SF", "waybill": "SF1"},
            {"package_no": "P2", "items": [{"sku": "B", "qty": 1}]}
        ]);
    }
    serde_json::from_value(body).unwrap()
}

fn line(store: &str, call: &str, h: &Histogram<u64>) {
    println!(
        "{store:8} {call:34} p50 {:>7.1} µs  p99 {:>7.1} µs",
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64
    );
}

async fn run(name: &str, store: Arc<dyn Store>, stock: Arc<dyn Stock>) {
    let orders = orders_over(store.clone(), stock);
    let admin = Claims::new("ops", Role::Admin, u64::MAX);
    let mut made = Vec::new();
    for goods in [false, true] {
        let mut create = Histogram::<u64>::new(3).unwrap();
        let mut ids = Vec::with_capacity(N);
        for i in 0..N {
            let t = Instant::now();
            let (o, _) = orders.create(new_order(i, goods)).await.unwrap();
            create.record(t.elapsed().as_micros() as u64).unwrap();
            ids.push(o.id);
        }
        let what = if goods {
            "with 3 items, 2 packages"
        } else {
            "without goods"
        };
        line(name, &format!("create, {what}"), &create);
        let includes: &[(&str, Include)] = if goods {
            &[
                ("get", Include::default()),
                (
                    "get ?include=items,packages",
                    Include {
                        items: true,
                        packages: true,
                    },
                ),
            ]
        } else {
            &[("get", Include::default())]
        };
        for (label, include) in includes {
            let mut get = Histogram::<u64>::new(3).unwrap();
            for id in &ids {
                let t = Instant::now();
                orders.get(&admin, id, *include).await.unwrap();
                get.record(t.elapsed().as_micros() as u64).unwrap();
            }
            line(name, &format!("{label}, {what}"), &get);
        }
        made.extend(ids);
    }
    // The filter of known ids (hub/src/orders/known.rs): a read of an order
    // that exists and of an id nobody made, before the filter loads (every
    // id goes to the store, as without it) and after.
    let unknown: Vec<String> = (0..N).map(|i| format!("nobody-{i}")).collect();
    for loaded in [false, true] {
        if loaded {
            let source = tracker_hub::orders::known::Source::Orders {
                store: store.clone(),
                archive: None,
            };
            orders.known().load(&source).await.unwrap();
        }
        let state = if loaded {
            "filter loaded"
        } else {
            "filter not loaded"
        };
        let (mut known, mut absent) = (
            Histogram::<u64>::new(3).unwrap(),
            Histogram::<u64>::new(3).unwrap(),
        );
        for (id, nobody) in made.iter().zip(&unknown) {
            let t = Instant::now();
            orders.get(&admin, id, Include::default()).await.unwrap();
            known.record(t.elapsed().as_micros() as u64).unwrap();
            let t = Instant::now();
            orders
                .get(&admin, nobody, Include::default())
                .await
                .unwrap_err();
            absent.record(t.elapsed().as_micros() as u64).unwrap();
        }
        line(name, &format!("get, order exists, {state}"), &known);
        line(name, &format!("get, unknown id, {state}"), &absent);
    }
    // The filter's own check, alone: an id it holds.
    let t = Instant::now();
    for _ in 0..50 {
        for id in &made {
            std::hint::black_box(orders.known().check(id).await);
        }
    }
    let each = t.elapsed().as_nanos() as f64 / (50 * made.len()) as f64;
    println!("{name:8} the filter's check of an id it holds: {each:.0} ns");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let sqlite = SqliteStore::open(&url).await.unwrap();
        let stock = Arc::new(sqlite.stock());
        run("sqlite", Arc::new(sqlite), stock).await;
        match std::env::var("TRACKER_BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let db = testing::TestDatabase::create(&url).await;
                let pg = Arc::new(PostgresStore::open(&db.url).await.unwrap());
                run("postgres", pg.clone(), Arc::new(pg.stock())).await;
                pg.close().await;
                db.drop_now().await;
            }
            _ => println!("postgres: skipped (TRACKER_BENCH_DATABASE_URL is not set)"),
        }
    });
}
