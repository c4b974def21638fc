//! The archive mover: finished orders older than the setting go from the
//! hot store to the archive in small batches, off the hot paths (one batch
//! at a time, a pause between batches, on a timer of its own).
//!
//! Each batch is two transactions, the cold one first ([`Mover::copy_batch`],
//! with the checkpoint) and the hot delete second ([`Mover::delete_batch`]).
//! A pass starts by finishing the delete of the batch the checkpoint names,
//! so a mover killed between the two steps loses and duplicates nothing.
//! Any number of processes may run it: a batch copied twice is written once,
//! and a delete of what is gone deletes nothing.

use super::{Archive, ArchivedOrder};
use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracker_domain::Clock;

/// When and how much the mover moves.
#[derive(Debug, Clone)]
pub struct MoverConfig {
    /// An order is moved once it has been finished this long.
    pub after: Duration,
    /// Orders per batch.
    pub batch: usize,
    /// How often a pass runs.
    pub every: Duration,
    /// The pause between two batches of a pass, so the stores' other
    /// callers go first.
    pub pause: Duration,
    /// Most batches of one pass.
    pub max_batches: usize,
}

impl Default for MoverConfig {
    fn default() -> Self {
        MoverConfig {
            after: Duration::from_secs(7 * 86_400),
            batch: 100,
            every: Duration::from_secs(60),
            pause: Duration::from_millis(50),
            max_batches: 100,
        }
    }
}

/// Moves finished orders from `store` to `archive`.
pub struct Mover {
    store: Arc<dyn Store>,
    archive: Arc<dyn Archive>,
    clock: Arc<dyn Clock>,
    cfg: MoverConfig,
}

/// A batch copied to the archive: each order's id and the version copied.
pub type Copied = Vec<(String, i64)>;

impl Mover {
    /// A mover between the two stores.
    pub fn new(
        store: Arc<dyn Store>,
        archive: Arc<dyn Archive>,
        clock: Arc<dyn Clock>,
        cfg: MoverConfig,
    ) -> Self {
        Mover {
            store,
            archive,
            clock,
            cfg,
        }
    }

    /// Deletes from the hot store what the checkpoint's last batch left
    /// there (a mover that died after its cold write). How many went.
    pub async fn finish_last(&self) -> Result<usize, StoreError> {
        let cp = self.archive.checkpoint().await?;
        let mut left = Vec::new();
        for id in cp.last_batch {
            match self.store.get_order(&id).await {
                Ok(o) => {
                    // Only what the archive holds as the hot store has it now.
                    if let Some(a) = self.archive.get(&id).await?
                        && a.order.version == o.version
                    {
                        left.push((id, o.version));
                    }
                }
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.store.delete_orders(&left).await?.len())
    }

    /// Copies the next batch of orders due into the archive, with its
    /// checkpoint, in one transaction of the archive. Empty when none is due.
    pub async fn copy_batch(&self) -> Result<Copied, StoreError> {
        let before = self.clock.now_ms() - self.cfg.after.as_millis() as i64;
        let due = self.store.finished_orders(before, self.cfg.batch).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = due.iter().map(|o| o.id.clone()).collect();
        let mut records = self.store.records_of(&ids).await?;
        let mut batch = Vec::with_capacity(due.len());
        for mut order in due {
            let r = records.remove(&order.id).unwrap_or_default();
            order.items = Some(r.items);
            order.packages = Some(r.packages);
            batch.push(ArchivedOrder {
                order,
                history: r.history,
                track: r.track,
            });
        }
        self.archive.put_batch(&batch, self.clock.now_ms()).await?;
        Ok(batch
            .into_iter()
            .map(|a| (a.order.id, a.order.version))
            .collect())
    }

    /// Deletes a copied batch from the hot store: the orders still at the
    /// version copied. How many went.
    pub async fn delete_batch(&self, copied: &Copied) -> Result<usize, StoreError> {
        Ok(self.store.delete_orders(copied).await?.len())
    }

    /// One pass: the last batch finished, then batches until none is due
    /// (at most `max_batches`). How many orders left the hot store.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut moved = self.finish_last().await?;
        for _ in 0..self.cfg.max_batches {
            let copied = self.copy_batch().await?;
            if copied.is_empty() {
                break;
            }
            let gone = self.delete_batch(&copied).await?;
            moved += gone;
            metrics::counter!("tracker_archive_orders_total").increment(gone as u64);
            metrics::counter!("tracker_archive_batches_total").increment(1);
            tokio::time::sleep(self.cfg.pause).await;
        }
        Ok(moved)
    }

    /// Runs a pass every `every` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let started = std::time::Instant::now();
            match self.pass().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    orders = n,
                    secs = started.elapsed().as_secs_f64(),
                    "archive: moved"
                ),
                Err(e) => {
                    metrics::counter!("tracker_archive_errors_total").increment(1);
                    tracing::warn!(error = %e, "archive: a pass failed; the next one retries");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::sql::SqlArchive;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Lookup, TrackPoint};
    use tracker_domain::clock::ManualClock;
    use tracker_domain::{Expected, NewOrder, Order, Point, Status};

    const T0: i64 = 1_780_000_000_000;
    const DAY: i64 = 86_400_000;

    struct Two {
        store: Arc<dyn Store>,
        archive: Arc<SqlArchive>,
        clock: ManualClock,
        _dir: tempfile::TempDir,
    }

    async fn two() -> Two {
        let dir = tempfile::tempdir().unwrap();
        let hot = format!("sqlite://{}/hot.db", dir.path().display());
        let cold = format!("sqlite://{}/archive.db", dir.path().display());
        Two {
            store: Arc::new(SqliteStore::open(&hot).await.unwrap()),
            archive: Arc::new(SqlArchive::open(&cold).await.unwrap()),
            clock: ManualClock::new(T0),
            _dir: dir,
        }
    }

    impl Two {
        fn mover(&self) -> Mover {
            Mover::new(
                self.store.clone(),
                self.archive.clone(),
                Arc::new(self.clock.clone()),
                MoverConfig {
                    after: Duration::from_secs(86_400),
                    batch: 4,
                    pause: Duration::ZERO,
                    ..Default::default()
                },
            )
        }

        /// An order created, paid and cancelled at `at`, with one track point.
        async fn finished(&self, i: usize, at: i64) -> Order {
            let new = NewOrder {
                biz_order_no: format!("A-{i}"),
                biz_type: "food".into(),
                customer_id: format!("c{}", i % 3),
                pickup: Point {
                    lat: 23.1,
                    lon: 113.2,
                },
                dropoff: Point {
                    lat: 23.2,
                    lon: 113.3,
                },
                ..Default::default()
            };
            let o = Order::new(format!("{}", 1000 + i), new, at);
            self.store
                .create_order(&o, &[o.created_event()])
                .await
                .unwrap();
            let mut cur = o;
            for s in [Status::Paid, Status::Cancelled] {
                let tracker_domain::order::Change::Changed { order, events } = cur
                    .change_status(s, Expected::default(), None, Some("system".into()), at)
                    .unwrap()
                else {
                    panic!()
                };
                self.store
                    .update_order(&order, cur.version, &events)
                    .await
                    .unwrap();
                cur = *order;
            }
            let p = TrackPoint {
                order_id: cur.id.clone(),
                rider_id: "r1".into(),
                ts: at,
                lat: 23.1,
                lon: 113.2,
                speed: None,
                heading: None,
                acc: None,
            };
            self.store.insert_track_points(&[p]).await.unwrap();
            cur
        }

        async fn hot_ids(&self) -> Vec<String> {
            let mut ids = Vec::new();
            for c in ["c0", "c1", "c2"] {
                let (page, _) = self
                    .store
                    .lookup(&Lookup::Customer(c.into()), None, 500)
                    .await
                    .unwrap();
                ids.extend(page.into_iter().map(|o| o.id));
            }
            ids.sort();
            ids
        }
    }

    #[tokio::test]
    async fn orders_move_with_their_history_and_track_only_when_due() {
        let t = two().await;
        let old: Vec<Order> = futures_join(&t, 0..6, T0 - 3 * DAY).await;
        let fresh = t.finished(99, T0).await;
        let moved = t.mover().pass().await.unwrap();
        assert_eq!(moved, 6);
        assert_eq!(t.hot_ids().await, vec![fresh.id.clone()]);
        assert_eq!(t.archive.count().await.unwrap(), 6);
        let mut want: Vec<String> = old.iter().map(|o| o.id.clone()).collect();
        want.sort();
        let first = t.archive.ids(None, 4).await.unwrap();
        let rest = t
            .archive
            .ids(first.last().map(|s| s.as_str()), 4)
            .await
            .unwrap();
        assert_eq!([first, rest].concat(), want, "ids page in id order");
        let a = t.archive.get(&old[0].id).await.unwrap().unwrap();
        assert!(a.order.archived);
        assert_eq!(a.order.status, Status::Cancelled);
        let to: Vec<&str> = a.history.iter().map(|h| h.to.as_str()).collect();
        assert_eq!(to, ["pending_payment", "paid", "cancelled"]);
        assert_eq!(a.track.len(), 1);
        assert!(t.store.history_of(&old[0].id).await.unwrap().is_empty());
        assert!(t.store.track_of(&old[0].id).await.unwrap().is_empty());
        let cp = t.archive.checkpoint().await.unwrap();
        assert_eq!((cp.orders, cp.batches), (6, 2));
        assert_eq!(t.mover().pass().await.unwrap(), 0, "nothing more is due");
    }

    async fn futures_join(t: &Two, range: std::ops::Range<usize>, at: i64) -> Vec<Order> {
        let mut out = Vec::new();
        for i in range {
            out.push(t.finished(i, at).await);
        }
        out
    }

    #[tokio::test]
    async fn a_mover_killed_between_the_cold_write_and_the_hot_delete_loses_and_duplicates_nothing()
    {
        killed_between_the_steps(&two().await).await;
    }

    #[tokio::test]
    async fn on_postgresql_too() {
        use crate::store::postgres::PostgresStore;
        use crate::store::postgres::testing::{TestDatabase, admin_url};
        let Some(admin) = admin_url() else { return };
        let (hot, cold) = (
            TestDatabase::create(&admin).await,
            TestDatabase::create(&admin).await,
        );
        let store = Arc::new(PostgresStore::open(&hot.url).await.unwrap());
        let archive = Arc::new(SqlArchive::open(&cold.url).await.unwrap());
        let t = Two {
            store: store.clone(),
            archive: archive.clone(),
            clock: ManualClock::new(T0),
            _dir: tempfile::tempdir().unwrap(),
        };
        killed_between_the_steps(&t).await;
        drop(t);
        store.close().await;
        archive.close().await;
        hot.drop_now().await;
        cold.drop_now().await;
    }

    async fn killed_between_the_steps(t: &Two) {
        let orders = futures_join(t, 0..10, T0 - 3 * DAY).await;
        // The first mover copies a batch and dies before deleting it.
        let copied = t.mover().copy_batch().await.unwrap();
        assert_eq!(copied.len(), 4);
        assert_eq!(t.archive.count().await.unwrap(), 4);
        assert_eq!(
            t.hot_ids().await.len(),
            10,
            "still hot: the delete never ran"
        );
        // A new mover (a restarted process) finishes the job.
        let moved = t.mover().pass().await.unwrap();
        assert_eq!(moved, 10);
        assert!(t.hot_ids().await.is_empty());
        assert_eq!(t.archive.count().await.unwrap(), 10, "each order once");
        for o in &orders {
            let a = t.archive.get(&o.id).await.unwrap().expect("archived");
            assert_eq!(a.order.version, o.version);
            assert_eq!(a.history.len(), 3);
        }
    }

    #[tokio::test]
    async fn an_order_that_changes_after_its_copy_stays_hot_and_is_copied_again() {
        let t = two().await;
        let o = t.finished(1, T0 - 3 * DAY).await;
        let copied = t.mover().copy_batch().await.unwrap();
        // A late write (e.g. a refund noted on the cancelled order) lands in between.
        let tracker_domain::order::Change::Changed { order, events } =
            o.refund_required(T0 - 2 * DAY)
        else {
            panic!()
        };
        t.store
            .update_order(&order, o.version, &events)
            .await
            .unwrap();
        assert_eq!(t.mover().delete_batch(&copied).await.unwrap(), 0);
        assert_eq!(t.hot_ids().await, vec![o.id.clone()]);
        assert_eq!(t.mover().pass().await.unwrap(), 1);
        let a = t.archive.get(&o.id).await.unwrap().unwrap();
        assert_eq!(
            a.order.version, order.version,
            "the later copy replaced the first"
        );
        assert_eq!(t.archive.count().await.unwrap(), 1);
    }
}
