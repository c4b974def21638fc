//! What the store runs for each order call, counted from sqlx's own
//! statement log: a read without `include` never touches the tables of items
//! and packages, and each switch adds one statement; a read of an order id
//! nobody made does not reach the store at all.
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
    name: &'static str,
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

/// The tests of this binary share the statement log: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn catch_statements() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(Statements);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Runs `check` on a fresh SQLite store and, when TRACKER_TEST_DATABASE_URL
/// names a server, on a PostgreSQL database of its own (skipped without it,
/// unless TRACKER_TEST_REQUIRE_BACKENDS=1).
async fn on_each_store<F, Fut>(check: F)
where
    F: Fn(&'static str, Arc<dyn Store>, Arc<dyn Stock>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _one = SERIAL.lock().await;
    catch_statements();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/st.db", dir.path().display());
    let sqlite = Arc::new(SqliteStore::open(&url).await.unwrap());
    let stock = Arc::new(sqlite.stock());
    check("sqlite", sqlite, stock).await;
    if let Some(admin) = testing::admin_url() {
        let db = testing::TestDatabase::create(&admin).await;
        let pg = Arc::new(PostgresStore::open(&db.url).await.unwrap());
        check("postgres", pg.clone(), Arc::new(pg.stock())).await;
        pg.close().await;
        db.drop_now().await;
    }
}

#[tokio::test]
async fn a_read_touches_the_goods_tables_only_when_asked() {
    on_each_store(reads_leave_goods_alone_unless_asked).await;
}

/// Point reads of one order (`WHERE id = …`), as against the filter's own
/// reads of order keys.
fn point_reads(stmts: &[String]) -> usize {
    stmts
        .iter()
        .filter(|s| s.contains("FROM orders WHERE id") || s.contains("FROM archived_orders"))
        .count()
}

async fn unknown_ids_cost_the_store_nothing(
    name: &'static str,
    store: Arc<dyn Store>,
    stock: Arc<dyn Stock>,
) {
    use tracker_domain::clock::ManualClock;
    use tracker_hub::orders::OrderError;
    let orders = orders_over(store.clone(), stock);
    let admin = Claims::new("ops", Role::Admin, u64::MAX);
    let mut made = Vec::new();
    for _ in 0..20 {
        made.push(orders.create(parcel(false)).await.unwrap().0.id);
    }
    let stop = tokio_util::sync::CancellationToken::new();
    let job = tokio::spawn(tracker_hub::orders::known::run(
        orders.known().clone(),
        tracker_hub::orders::known::Source::Orders {
            store,
            archive: None,
        },
        stop.clone(),
    ));
    while !orders.known().loaded() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let now = tracker_domain::Clock::now_ms(&SystemClock);
    // 10,000 distinct ids no order has: half of them the hub's own kind,
    // made a day ago on another node, half of them anything at all.
    let day_ago = IdGenerator::new(77, Arc::new(ManualClock::new(now - 86_400_000)));
    let unknown: Vec<String> = (0..10_000)
        .map(|i| match i % 2 {
            0 => day_ago.next_id().to_string(),
            _ => format!("guess-{:x}", rand::random::<u64>()),
        })
        .collect();
    let (answers, stmts) = ran(async {
        let mut answers = Vec::new();
        for id in &unknown {
            answers.push(orders.get(&admin, id, Include::default()).await);
        }
        answers
    })
    .await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(OrderError::NotFound)))
    );
    let reached = point_reads(&stmts);
    println!("{name}: 10000 GETs of unknown ids, {reached} reached the store");
    assert!(
        reached <= 300,
        "{name}: {reached} of 10000 reached the store"
    );

    // 1,000 made-up ids of this very second (another hub might have just
    // made them): they wait for the next refresh together, then are refused.
    let this_second = IdGenerator::new(78, Arc::new(SystemClock));
    let recent: Vec<String> = (0..1000)
        .map(|_| this_second.next_id().to_string())
        .collect();
    let (answers, stmts) = ran(futures_util::future::join_all(
        recent
            .iter()
            .map(|id| orders.get(&admin, id, Include::default())),
    ))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(OrderError::NotFound)))
    );
    let reached = point_reads(&stmts);
    println!("{name}: 1000 GETs of recent unknown ids, {reached} reached the store");
    assert!(reached <= 60, "{name}: {reached} of 1000 reached the store");
    // Every order that exists is still found, each with a read of its own.
    let ((), stmts) = ran(async {
        for id in &made {
            orders.get(&admin, id, Include::default()).await.unwrap();
        }
    })
    .await;
    assert_eq!(point_reads(&stmts), made.len(), "{name}: {stmts:#?}");
    stop.cancel();
    job.await.unwrap();
}

#[tokio::test]
async fn gets_of_unknown_order_ids_do_not_reach_the_store() {
    on_each_store(unknown_ids_cost_the_store_nothing).await;
}
