//! Which order ids may exist: a Bloom filter of every order id the store and
//! the archive hold, so that a request naming an id nobody made is answered
//! 404 without a read of the store.
//!
//! - Loaded at start from the store's order keys and the archive's ids;
//!   until the load ends every id goes to the store as before.
//! - Refreshed every [`REFRESH_EVERY`] with the orders created since the
//!   previous refresh started, less [`WINDOW_MS`]: a row may commit that
//!   long after its `created_at`, or come from a hub whose clock is that far
//!   behind. After a refresh that started at `s`, every order committed
//!   before `s` is in the filter.
//! - An id the filter does not hold is answered from the filter when its
//!   embedded time (`domain/src/ids.rs`) is older than `s - WINDOW_MS`, or
//!   when it is not an id the hub makes. A recent one may have been made on
//!   another hub since: the request waits for the next refresh (one read for
//!   every waiter) and asks the filter again. A flood of made-up ids, of any
//!   form, costs the store nothing beyond the refreshes.
//! - Ids this hub creates go in at once. About one unknown id in a hundred
//!   is a false positive and reads the store, as does every id of an order
//!   deleted since (the filter keeps what it was told).
//! - Rows written into the store behind the hub's back are seen after the
//!   next refresh if their `created_at` is recent, and after a restart if not.
//!
//! The same filter keeps the stock-controlled SKUs (`Stock::skus`, by when
//! each was first set). A SKU carries no time, so every SKU the filter does
//! not hold waits for the next refresh before it is answered 404. It serves
//! `GET /v1/stock/{sku}`. A create's reservation still asks the stock: an
//! order must reserve a SKU set on another hub a moment ago, and it cannot
//! wait a second for a refresh.

use super::OrderError;
use fastbloom::AtomicBloomFilter;
use parking_lot::RwLock;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracker_backend::Store;
use tracker_backend::archive::Archive;
use tracker_backend::stock::Stock;
use tracker_backend::store::Cursor;
use tracker_domain::ids::time_of;
use tracker_domain::{Clock, Order};

/// How often the filter reads the orders created since its last refresh.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How far before a refresh's start the next one reads again (ms): longer
/// than a create's commit takes and than the hubs' clocks differ.
pub const WINDOW_MS: i64 = 30_000;
/// Rate of false positives of each layer of the filter.
const FALSE_POSITIVES: f64 = 0.01;
/// Ids the first layer holds at that rate; each next layer holds twice the last.
const FIRST_LAYER: usize = 1 << 20;
/// Keys read per statement while loading and refreshing.
const PAGE: usize = 10_000;

/// One fixed-size Bloom filter and how many ids it holds.
struct Layer {
    bloom: AtomicBloomFilter,
    capacity: usize,
    held: AtomicUsize,
}

impl Layer {
    fn new(capacity: usize) -> Layer {
        Layer {
            bloom: AtomicBloomFilter::with_false_pos(FALSE_POSITIVES).expected_items(capacity),
            capacity,
            held: AtomicUsize::new(0),
        }
    }
}

/// The filter of known order ids and how far its refreshes reach.
pub struct KnownIds {
    /// Full layers first; new ids go into the last.
    layers: RwLock<Vec<Layer>>,
    /// Every order committed before the last refresh started is in the
    /// filter, and an order committed since has an id at least this recent
    /// (Unix ms). `i64::MIN` until the first load ends: nothing is refused.
    covered: AtomicI64,
    /// When the last refresh that succeeded started; waiters wake on it.
    refreshed: watch::Sender<Option<Instant>>,
    clock: Arc<dyn Clock>,
    every: Duration,
    /// Order ids, whose embedded time says whether they may be new (SKUs have none).
    dated: bool,
    /// What it holds, for the metrics: `order` or `sku`.
    what: &'static str,
}

/// Where a filter reads its keys.
#[derive(Clone)]
pub enum Source {
    /// Order ids: the store's order keys, and the archive's ids at the first load.
    Orders {
        /// The hot store.
        store: Arc<dyn Store>,
        /// The archive, when archiving is on.
        archive: Option<Arc<dyn Archive>>,
    },
    /// The stock-controlled SKUs.
    Skus(Arc<dyn Stock>),
}

/// What the filter says of an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No order has it: answer 404 without the store.
    Absent,
    /// An order may have it: read the store.
    MayExist,
}

impl KnownIds {
    /// An empty filter, not loaded (it refuses nothing), timed by `clock`
    /// and refreshed every `every` by [`run`].
    pub fn new(clock: Arc<dyn Clock>, every: Duration) -> KnownIds {
        Self::with_first_layer(clock, every, FIRST_LAYER)
    }

    /// An empty filter of SKUs, not loaded.
    pub fn skus(clock: Arc<dyn Clock>, every: Duration) -> KnownIds {
        KnownIds {
            dated: false,
            what: "sku",
            ..Self::with_first_layer(clock, every, FIRST_LAYER)
        }
    }

    fn with_first_layer(clock: Arc<dyn Clock>, every: Duration, first: usize) -> KnownIds {
        KnownIds {
            layers: RwLock::new(vec![Layer::new(first)]),
            covered: AtomicI64::new(i64::MIN),
            refreshed: watch::Sender::new(None),
            clock,
            every,
            dated: true,
            what: "order",
        }
    }

    fn count(&self, outcome: &'static str) {
        metrics::counter!("tracker_known_ids_checks_total", "what" => self.what, "outcome" => outcome)
            .increment(1);
    }

    /// Whether the first load has ended (before it, every id may exist).
    pub fn loaded(&self) -> bool {
        self.covered.load(Ordering::Acquire) != i64::MIN
    }

    /// How many ids the filter holds.
    pub fn len(&self) -> usize {
        let layers = self.layers.read();
        layers.iter().map(|l| l.held.load(Ordering::Relaxed)).sum()
    }

    /// Whether it holds no id.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn holds(&self, id: &str) -> bool {
        self.layers.read().iter().any(|l| l.bloom.contains(id))
    }

    /// Adds `id` (a create on this hub, or a key read from the store).
    pub fn insert(&self, id: &str) {
        let full = {
            let layers = self.layers.read();
            if layers.iter().any(|l| l.bloom.contains(id)) {
                return;
            }
            let last = layers.last().expect("one layer at least");
            last.bloom.insert(id);
            last.held.fetch_add(1, Ordering::Relaxed) + 1 >= last.capacity
        };
        if full {
            let mut layers = self.layers.write();
            let last = layers.last().expect("one layer at least");
            if last.held.load(Ordering::Relaxed) >= last.capacity {
                let next = last.capacity * 2;
                layers.push(Layer::new(next));
            }
        }
    }

    /// Whether the id `id` may belong to an order; a recent id the filter
    /// does not hold waits for the next refresh first.
    pub async fn check(&self, id: &str) -> Verdict {
        if !self.loaded() {
            self.count("not_loaded");
            return Verdict::MayExist;
        }
        if self.holds(id) {
            self.count("passed");
            return Verdict::MayExist;
        }
        let recent = !self.dated
            || id
                .parse::<u64>()
                .is_ok_and(|n| time_of(n) >= self.covered.load(Ordering::Acquire));
        if !recent {
            self.count("refused");
            return Verdict::Absent;
        }
        let asked = Instant::now();
        let mut rx = self.refreshed.subscribe();
        let after = rx.wait_for(|started| started.is_some_and(|s| s >= asked));
        match tokio::time::timeout(self.every * 3, after).await {
            Ok(Ok(_)) if !self.holds(id) => {
                self.count("refused_after_refresh");
                Verdict::Absent
            }
            Ok(Ok(_)) => {
                self.count("passed");
                Verdict::MayExist
            }
            // The refreshes are failing or late: the store answers.
            _ => {
                self.count("refresh_late");
                Verdict::MayExist
            }
        }
    }

    /// Adds the keys of the orders after `from`, page by page.
    async fn read_keys(&self, store: &dyn Store, mut from: Option<Cursor>) -> Result<(), String> {
        loop {
            let page = store
                .order_keys(from.as_ref(), PAGE)
                .await
                .map_err(|e| e.to_string())?;
            for key in &page {
                self.insert(&key.id);
            }
            match page.last() {
                Some(last) if page.len() == PAGE => from = Some(last.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Adds the keys `source` has from `since` on (all of them without it);
    /// at the first load, the archive's too (the mover writes the archive
    /// before it deletes from the store, so an order moving meanwhile is
    /// read in one of the two).
    async fn read_since(&self, source: &Source, since: Option<i64>) -> Result<(), String> {
        match source {
            Source::Orders { store, archive } => {
                let from = since.map(|created_at| Cursor {
                    created_at,
                    id: String::new(),
                });
                self.read_keys(&**store, from).await?;
                if let (None, Some(archive)) = (since, archive) {
                    let mut after: Option<String> = None;
                    loop {
                        let page = archive
                            .ids(after.as_deref(), PAGE)
                            .await
                            .map_err(|e| e.to_string())?;
                        page.iter().for_each(|id| self.insert(id));
                        if page.len() < PAGE {
                            break;
                        }
                        after = page.last().cloned();
                    }
                }
            }
            Source::Skus(stock) => {
                // SKUs are never removed, so a page that shifts as SKUs are
                // added reads one twice but never skips one.
                let mut skip = 0;
                loop {
                    let page = stock
                        .skus(since.unwrap_or(i64::MIN), skip, PAGE)
                        .await
                        .map_err(|e| e.to_string())?;
                    page.iter().for_each(|sku| self.insert(sku));
                    if page.len() < PAGE {
                        break;
                    }
                    skip += page.len();
                }
            }
        }
        Ok(())
    }

    /// The first load (`first`), or one refresh: the keys added since the
    /// last one started, less the window.
    async fn read(&self, source: &Source, first: bool) -> Result<(), String> {
        let started = Instant::now();
        let wall = self.clock.now_ms();
        let since = (!first).then(|| self.covered.load(Ordering::Acquire));
        self.read_since(source, since).await?;
        self.covered.store(wall - WINDOW_MS, Ordering::Release);
        self.refreshed.send_replace(Some(started));
        metrics::gauge!("tracker_known_ids", "what" => self.what).set(self.len() as f64);
        Ok(())
    }

    /// The first load: every key `source` has.
    pub async fn load(&self, source: &Source) -> Result<(), String> {
        self.read(source, true).await
    }

    /// One refresh.
    pub async fn refresh(&self, source: &Source) -> Result<(), String> {
        self.read(source, false).await
    }
}

/// The store's order reads behind the filter: every door that takes an
/// order id from a caller reads through here.
#[derive(Clone)]
pub struct OrderReads {
    /// The orders.
    pub store: Arc<dyn Store>,
    /// The ids that may exist.
    pub known: Arc<KnownIds>,
}

impl OrderReads {
    /// The order `id` (a bad id refused); `NotFound` without a read when the
    /// filter knows it is not there.
    pub async fn get(&self, id: &str) -> Result<Order, OrderError> {
        super::check_id(id)?;
        if self.known.check(id).await == Verdict::Absent {
            return Err(OrderError::NotFound);
        }
        Ok(self.store.get_order(id).await?)
    }
}

/// Loads the filter from `source` (retrying until it can), then refreshes
/// it every period until `stop`.
pub async fn run(known: Arc<KnownIds>, source: Source, stop: CancellationToken) {
    while let Err(e) = known.load(&source).await {
        tracing::warn!(error = %e, what = known.what, "loading a filter of known keys; they go to the store until it works");
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(known.every) => {}
        }
    }
    tracing::info!(
        keys = known.len(),
        what = known.what,
        "filter of known keys loaded"
    );
    let mut tick = tokio::time::interval(known.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = known.refresh(&source).await {
                    metrics::counter!("tracker_known_ids_refresh_failures_total", "what" => known.what)
                        .increment(1);
                    tracing::debug!(error = %e, what = known.what, "refreshing a filter of known keys");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::sqlite_store;
    use tracker_domain::clock::ManualClock;
    use tracker_domain::ids::{ID_EPOCH_MS, IdGenerator};

    /// A year into the ids' epoch (the hub tests' usual start is before it).
    const T0: i64 = ID_EPOCH_MS + 365 * 86_400_000;
    use tracker_domain::{NewOrder, Point};

    fn order(id: String, at: i64) -> Order {
        let p = Point { lat: 1.0, lon: 1.0 };
        let new = NewOrder {
            biz_order_no: format!("K-{id}"),
            biz_type: "t".into(),
            customer_id: "c1".into(),
            pickup: p,
            dropoff: p,
            ..Default::default()
        };
        Order::new(id, new, at)
    }

    const EVERY: Duration = Duration::from_millis(50);

    fn orders_of(store: &Arc<tracker_backend::store::sqlite::SqliteStore>) -> Source {
        Source::Orders {
            store: store.clone(),
            archive: None,
        }
    }

    #[tokio::test]
    async fn unknown_ids_are_absent_once_loaded_and_recent_ones_wait_for_a_refresh() {
        let (store, _dir) = sqlite_store().await;
        let clock = ManualClock::new(T0);
        let ids = IdGenerator::new(5, Arc::new(clock.clone()));
        // An order made an hour ago, by another hub's generator.
        clock.set(T0 - 3_600_000);
        let old = order(ids.next_id().to_string(), T0 - 3_600_000);
        store.create_order(&old, &[]).await.unwrap();
        let never = ids.next_id().to_string();
        clock.set(T0);
        let known = Arc::new(KnownIds::new(Arc::new(clock.clone()), EVERY));
        assert_eq!(
            known.check(&never).await,
            Verdict::MayExist,
            "not loaded yet"
        );
        known.load(&orders_of(&store)).await.unwrap();
        assert!(known.loaded());
        assert_eq!(known.check(&old.id).await, Verdict::MayExist);
        assert_eq!(known.check(&never).await, Verdict::Absent);
        assert_eq!(known.check("not-an-id-we-make").await, Verdict::Absent);
        assert_eq!(known.check("99999999999999999999").await, Verdict::Absent);

        // Another hub creates an order now; this one has not refreshed since.
        let fresh = order(ids.next_id().to_string(), T0);
        store.create_order(&fresh, &[]).await.unwrap();
        let made_up = ids.next_id().to_string();
        let stop = CancellationToken::new();
        let job = tokio::spawn(run(known.clone(), orders_of(&store), stop.clone()));
        let (a, b) = tokio::join!(known.check(&fresh.id), known.check(&made_up));
        assert_eq!(a, Verdict::MayExist, "found by the refresh it waited for");
        assert_eq!(b, Verdict::Absent, "a recent id no order has");
        // A row committed late, with a `created_at` inside the window, is still read.
        clock.set(T0 + 20_000);
        let late = order(ids.next_id().to_string(), T0 + 1);
        store.create_order(&late, &[]).await.unwrap();
        assert_eq!(known.check(&late.id).await, Verdict::MayExist);
        stop.cancel();
        job.await.unwrap();
    }

    #[tokio::test]
    async fn the_load_reads_the_archive_too() {
        use tracker_backend::archive::{ArchivedOrder, sql::SqlArchive};
        let (store, dir) = sqlite_store().await;
        let cold = format!("sqlite://{}/cold.db", dir.path().display());
        let archive = SqlArchive::open(&cold).await.unwrap();
        let clock = ManualClock::new(T0 - 86_400_000);
        let ids = IdGenerator::new(3, Arc::new(clock.clone()));
        let moved = order(ids.next_id().to_string(), T0 - 86_400_000);
        let never = ids.next_id().to_string();
        clock.set(T0);
        let batch = [ArchivedOrder {
            order: moved.clone(),
            history: Vec::new(),
            track: Vec::new(),
        }];
        archive.put_batch(&batch, T0).await.unwrap();
        let known = KnownIds::new(Arc::new(clock), EVERY);
        known
            .load(&Source::Orders {
                store: store.clone(),
                archive: Some(Arc::new(archive)),
            })
            .await
            .unwrap();
        assert_eq!(known.check(&moved.id).await, Verdict::MayExist);
        assert_eq!(known.check(&never).await, Verdict::Absent);
    }

    #[tokio::test]
    async fn a_refresh_that_cannot_run_sends_recent_ids_to_the_store() {
        let (store, _dir) = sqlite_store().await;
        let clock = ManualClock::new(T0);
        let known = KnownIds::new(Arc::new(clock.clone()), EVERY);
        known.load(&orders_of(&store)).await.unwrap();
        let recent = IdGenerator::new(9, Arc::new(clock)).next_id().to_string();
        // No refresh job: the wait ends and the store is asked.
        assert_eq!(known.check(&recent).await, Verdict::MayExist);
    }

    #[tokio::test]
    async fn every_sku_it_does_not_hold_waits_for_a_refresh() {
        let (store, _dir) = sqlite_store().await;
        let stock: Arc<dyn Stock> = Arc::new(store.stock());
        stock.set("BEFORE", 3, T0 - 86_400_000).await.unwrap();
        let clock = ManualClock::new(T0);
        let known = Arc::new(KnownIds::skus(Arc::new(clock), EVERY));
        let stop = CancellationToken::new();
        let job = tokio::spawn(run(
            known.clone(),
            Source::Skus(stock.clone()),
            stop.clone(),
        ));
        while !known.loaded() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(known.check("BEFORE").await, Verdict::MayExist);
        assert_eq!(known.check("NEVER-SET").await, Verdict::Absent);
        // Set by another hub just now: found by the refresh the check waits for.
        stock.set("JUST-SET", 1, T0).await.unwrap();
        assert_eq!(known.check("JUST-SET").await, Verdict::MayExist);
        stop.cancel();
        job.await.unwrap();
    }

    #[test]
    fn a_full_layer_adds_a_bigger_one_and_keeps_every_id() {
        let known = KnownIds::with_first_layer(Arc::new(ManualClock::new(T0)), EVERY, 1000);
        for i in 0..5000 {
            known.insert(&format!("id-{i}"));
        }
        assert_eq!(known.layers.read().len(), 3, "1000, 2000, 4000");
        assert!((0..5000).all(|i| known.holds(&format!("id-{i}"))));
        let strangers = (0..10_000)
            .filter(|i| known.holds(&format!("x-{i}")))
            .count();
        assert!(strangers < 400, "{strangers} false positives in 10000");
        let before = known.len();
        known.insert("id-7");
        assert_eq!(known.len(), before, "an id held is not counted twice");
    }
}
