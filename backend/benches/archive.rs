//! Archive throughput: orders moved per second by the mover, each with 2
//! item lines in 1 package, 4 history entries and 20 track points, from a
//! SQLite store to a SQLite archive (temporary files) and, when
//! `TRACKER_BENCH_DATABASE_URL` is set, PostgreSQL to PostgreSQL (databases
//! of their own on that server).
//!
//! `cargo bench -p tracker-backend --bench archive`

#![allow(missing_docs)]

use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracker_backend::Store;
use tracker_backend::archive::Archive;
use tracker_backend::archive::mover::{Mover, MoverConfig};
use tracker_backend::archive::sql::SqlArchive;
use tracker_backend::store::TrackPoint;
use tracker_backend::store::postgres::PostgresStore;
use tracker_backend::store::sqlite::SqliteStore;
use tracker_domain::order::Change;
use tracker_domain::{Expected, NewOrder, Order, Status, SystemClock};

const ORDERS: usize = 3000;
const DAY: i64 = 86_400_000;

async fn fill(store: &dyn Store, now: i64) {
    for i in 0..ORDERS {
        let new: NewOrder = serde_json::from_value(serde_json::json!({
            "biz_order_no": format!("AB-{i}"), "biz_type": "parcel", "customer_id": format!("c{}", i % 50),
            "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3},
            "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
            "packages": [{"package_no": "P1", "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}]
        }))
        .unwrap();
        let at = now - 10 * DAY;
        let o = Order::new(format!("{}", 10_000 + i), new, at);
        store.create_order(&o, &[o.created_event()]).await.unwrap();
        let Change::Changed { order, events } = o
            .change_status(
                Status::Cancelled,
                Expected::default(),
                None,
                Some("system".into()),
                at,
            )
            .unwrap()
        else {
            unreachable!()
        };
        store
            .update_order(&order, o.version, &events)
            .await
            .unwrap();
        let points: Vec<TrackPoint> = (0..20)
            .map(|k| TrackPoint {
                order_id: o.id.clone(),
                rider_id: "r1".into(),
                ts: at + k * 1000,
                lat: 23.1 + k as f64 * 1e-4,
                lon: 113.2,
                speed: Some(4.0),
                heading: None,
                acc: None,
            })
            .collect();
        store.insert_track_points(&points).await.unwrap();
    }
}

async fn run(name: &str, store: Arc<dyn Store>, archive: Arc<dyn Archive>) {
    let now = tracker_domain::Clock::now_ms(&SystemClock);
    fill(&*store, now).await;
    let mover = Mover::new(
        store,
        archive.clone(),
        Arc::new(SystemClock),
        MoverConfig {
            after: Duration::from_secs(86_400),
            batch: 100,
            pause: Duration::ZERO,
            max_batches: usize::MAX,
            ..MoverConfig::default()
        },
    );
    let t = Instant::now();
    let moved = mover.pass().await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(moved, ORDERS);
    assert_eq!(archive.count().await.unwrap(), ORDERS as u64);
    println!(
        "{name:18} {moved} orders in {secs:.2} s: {:.0} orders/s (batches of 100, no pause)",
        moved as f64 / secs
    );
}

/// A new database on the server of `admin`: its name and URL.
async fn scratch(admin: &str, what: &str) -> (String, String) {
    let name = format!("tracker_bench_{what}_{:x}", rand::random::<u32>());
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    (name.clone(), format!("{base}/{name}"))
}

async fn drop_db(admin: &str, name: &str) {
    let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(&sql).execute(&mut c).await.unwrap();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let hot = format!("sqlite://{}/hot.db", dir.path().display());
        let cold = format!("sqlite://{}/archive.db", dir.path().display());
        run(
            "sqlite → sqlite",
            Arc::new(SqliteStore::open(&hot).await.unwrap()),
            Arc::new(SqlArchive::open(&cold).await.unwrap()),
        )
        .await;
        match std::env::var("TRACKER_BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let (h, c) = (scratch(&url, "hot").await, scratch(&url, "cold").await);
                let store = Arc::new(PostgresStore::open(&h.1).await.unwrap());
                let archive = Arc::new(SqlArchive::open(&c.1).await.unwrap());
                run("postgres → postgres", store.clone(), archive.clone()).await;
                store.close().await;
                archive.close().await;
                drop_db(&url, &h.0).await;
                drop_db(&url, &c.0).await;
            }
            _ => println!("postgres: skipped (TRACKER_BENCH_DATABASE_URL is not set)"),
        }
    });
}
