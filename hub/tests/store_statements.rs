//! What the store runs for each order call, counted from sqlx's own
//! statement log: a read without `include` never touches the tables of items
//! and packages, and each switch adds one statement.
//!
//! Its own test binary, because the statement log is caught by a global
//! subscriber (SQLite runs statements on a worker thread of its own).
//! `cargo test -p tracker-hub --test store_statements -- --nocapture`
//! prints the statements per call (docs/benchmarks.md).

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::SubscriberExt;
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

static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps the text of every statement sqlx logs.
struct Statements;

struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if matches!(field.name(), "summary" | "db.statement") {
            self.0.push_str(value);
            self.0.push(' ');
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            let mut text = Text(String::new());
            event.record(&mut text);
            STATEMENTS.lock().push(text.0);
        }
    }
}

/// The statements `call` ran.
async fn ran<T>(call: impl std::future::Future<Output = T>) -> (T, Vec<String>) {
    STATEMENTS.lock().clear();
    let out = call.await;
    // SQLite's worker logs a statement as it finishes; let the last one land.
    tokio::time::sleep(Duration::from_millis(20)).await;
    (out, std::mem::take(&mut *STATEMENTS.lock()))
}

fn orders_over(store: Arc<dyn Store>, stock: Arc<dyn Stock>) -> Orders {
    Orders::new(
        OrdersDeps {
            store,
            ids: Arc::new(IdGenerator::new(3, Arc::new(SystemClock))),
            clock: Arc::new(SystemClock),
            dispatch: Arc::new(MemoryDispatch::new(Duration::from_secs(60))),
            timers: Arc::new(MemoryDelayQueue::default()),
            stock,
        },
        RelayWaker::default(),
        DispatchConfig::default(),
    )
}

fn parcel(goods: bool) -> tracker_domain::NewOrder {
    let mut body = serde_json::json!({
        "biz_order_no": format!("ST-{:x}", rand::random::<u64>()), "biz_type": "parcel",
        "customer_id": "c-st",
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3},
        "recipient": {"name": "Li Wei", "phone": "13800138000"},
    });
    if goods {
        body["items"] = serde_json::json!([{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]);
        body["packages"] = serde_json::json!([
            {"package_no": "P1", "items": [{"sku": "A", "qty": 2}]},
            {"package_no": "P2", "items": [{"sku": "B", "qty": 1}]}
        ]);
    }
    serde_json::from_value(body).unwrap()
}

fn touching<'a>(stmts: &'a [String], table: &str) -> Vec<&'a String> {
    stmts.iter().filter(|s| s.contains(table)).collect()
}

async fn reads_leave_goods_alone_unless_asked(
    name: &str,
    store: Arc<dyn Store>,
    stock: Arc<dyn Stock>,
) {
    let orders = orders_over(store, stock);
    let admin = Claims::new("ops", Role::Admin, u64::MAX);
    let (created, plain_create) = ran(orders.create(parcel(false))).await;
    created.unwrap();
    let (made, goods_create) = ran(orders.create(parcel(true))).await;
    let id = made.unwrap().0.id;
    // Warm every pooled connection up first: their set-up statements are not the call's.
    for _ in 0..4 {
        orders
            .get(
                &admin,
                &id,
                Include {
                    items: true,
                    packages: true,
                },
            )
            .await
            .unwrap();
    }
    let cases = [
        ("plain", Include::default()),
        (
            "items",
            Include {
                items: true,
                packages: false,
            },
        ),
        (
            "packages",
            Include {
                items: false,
                packages: true,
            },
        ),
        (
            "items,packages",
            Include {
                items: true,
                packages: true,
            },
        ),
    ];
    println!(
        "{name}: create without goods {} statements, with items and packages {}",
        plain_create.len(),
        goods_create.len()
    );
    for (label, include) in cases {
        let (read, stmts) = ran(orders.get(&admin, &id, include)).await;
        let read = read.unwrap();
        let items = touching(&stmts, "order_items");
        let packages = touching(&stmts, "order_packages");
        assert_eq!(
            items.len(),
            usize::from(include.items),
            "{name} {label}: {stmts:#?}"
        );
        assert_eq!(
            packages.len(),
            usize::from(include.packages),
            "{name} {label}: {stmts:#?}"
        );
        assert_eq!(read.items.is_some(), include.items);
        assert_eq!(read.packages.is_some(), include.packages);
        println!("{name}: get include={label}: {} statements", stmts.len());
    }
}

#[tokio::test]
async fn a_read_touches_the_goods_tables_only_when_asked() {
    let subscriber = tracing_subscriber::registry().with(Statements);
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/st.db", dir.path().display());
    let sqlite = Arc::new(SqliteStore::open(&url).await.unwrap());
    let stock = Arc::new(sqlite.stock());
    reads_leave_goods_alone_unless_asked("sqlite", sqlite, stock).await;
    // A database of its own on the server of TRACKER_TEST_DATABASE_URL
    // (skipped without it, unless TRACKER_TEST_REQUIRE_BACKENDS=1).
    if let Some(admin) = testing::admin_url() {
        let db = testing::TestDatabase::create(&admin).await;
        let pg = Arc::new(PostgresStore::open(&db.url).await.unwrap());
        reads_leave_goods_alone_unless_asked("postgres", pg.clone(), Arc::new(pg.stock())).await;
        pg.close().await;
        db.drop_now().await;
    }
}
