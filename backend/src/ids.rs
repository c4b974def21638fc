//! The order id generator of a process, kept unique across restarts and nodes.
//!
//! - **Node id**: leased from the store (`id_nodes`): the one configured, or
//!   (`TRACKER_NODE_ID=auto`) the lowest one free or whose lease ran out.
//!   The lease lasts [`LEASE`] and is renewed every [`RENEW_EVERY`]; a
//!   process that finds its lease taken (it was cut off for longer than the
//!   lease) moves to a new node id before it issues again.
//! - **High-water mark**: the generator issues no time past a reservation
//!   [`RESERVE`] ahead, written to the store before it is used; a starting
//!   process reads the highest reservation of every node and starts above
//!   it, so an id issued after a restart with the clock set back is still
//!   above every id issued before. Only if the store cannot be written for
//!   longer than the reservation does the generator run past it (counted
//!   in `tracker_ids_past_reservation`).

use crate::store::{Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracker_domain::Clock;
use tracker_domain::ids::{IdGenerator, spilled};

/// How long a node id's lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often it is renewed (and the reservation moved on).
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How far ahead of the time issued the reservation reaches.
pub const RESERVE: Duration = Duration::from_secs(60);

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// A process's generator and its lease.
pub struct NodeIds {
    /// The generator every order id comes from.
    pub ids: Arc<IdGenerator>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    owner: String,
}

impl NodeIds {
    /// Leases a node id (`wanted`, or any free one) and reserves the first
    /// stretch of time above every earlier reservation.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        wanted: Option<u16>,
    ) -> Result<NodeIds, StoreError> {
        let owner = format!("{:016x}", rand::random::<u64>());
        let now = clock.now_ms();
        let claim = store
            .claim_node(&owner, wanted, now, now + ms(LEASE))
            .await?;
        let ids = Arc::new(IdGenerator::new(claim.node, clock.clone()));
        ids.raise_floor(claim.mark);
        let me = NodeIds {
            ids,
            store,
            clock,
            owner,
        };
        if !me.renew().await? {
            return Err(StoreError::Unavailable(
                "the node id lease was taken as it was made".into(),
            ));
        }
        tracing::info!(
            node = claim.node,
            floor = claim.mark,
            "order ids: node id leased"
        );
        metrics::gauge!("tracker_id_node").set(f64::from(claim.node));
        Ok(me)
    }

    /// Extends the lease and the reservation; false when the lease is gone.
    async fn renew(&self) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let until = now.max(self.ids.last_ms()) + ms(RESERVE);
        let node = self.ids.node();
        let kept = self
            .store
            .renew_node(node, &self.owner, now + ms(LEASE), until)
            .await?;
        if kept {
            self.ids.set_ceiling(until);
        }
        Ok(kept)
    }

    /// Keeps the lease until `stop`, then gives it up (the reservation stays
    /// as the node's mark).
    pub async fn run(self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(RENEW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            metrics::gauge!("tracker_ids_past_reservation").set(spilled() as f64);
            match self.renew().await {
                Ok(true) => {}
                Ok(false) => self.move_node().await,
                Err(e) => {
                    metrics::counter!("tracker_id_lease_errors_total").increment(1);
                    tracing::warn!(error = %e, "order ids: the node lease could not be renewed");
                }
            }
        }
        let mark = self.clock.now_ms().max(self.ids.last_ms()) + ms(RESERVE);
        // Expired at the epoch: free for the next process whatever its clock says.
        if let Err(e) = self
            .store
            .renew_node(self.ids.node(), &self.owner, 0, mark)
            .await
        {
            tracing::warn!(error = %e, "order ids: the node lease could not be given up");
        }
    }

    /// The lease was taken by another process: lease another node id (any
    /// free one, even when this one was configured) above every mark.
    async fn move_node(&self) {
        let old = self.ids.node();
        metrics::counter!("tracker_id_lease_lost_total").increment(1);
        let now = self.clock.now_ms();
        match self
            .store
            .claim_node(&self.owner, None, now, now + ms(LEASE))
            .await
        {
            Ok(claim) => {
                self.ids.raise_floor(claim.mark);
                self.ids.set_node(claim.node);
                metrics::gauge!("tracker_id_node").set(f64::from(claim.node));
                tracing::error!(
                    old,
                    new = claim.node,
                    "order ids: another process took this node id; moved to a new one"
                );
                if let Err(e) = self.renew().await {
                    tracing::warn!(error = %e, "order ids: the new node lease could not be renewed");
                }
            }
            Err(e) => tracing::error!(error = %e, "order ids: lost the node id and found no other"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use tracker_domain::clock::ManualClock;
    use tracker_domain::ids::{ID_EPOCH_MS, node_of, time_of};

    async fn store() -> (Arc<dyn Store>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/ids.db", dir.path().display());
        (Arc::new(SqliteStore::open(&url).await.unwrap()), dir)
    }

    #[tokio::test]
    async fn two_processes_lease_two_node_ids_and_a_restart_issues_higher_ids() {
        let (store, _dir) = store().await;
        let t = ID_EPOCH_MS + 400 * 86_400_000;
        let clock = ManualClock::new(t);
        let a = NodeIds::start(store.clone(), Arc::new(clock.clone()), None)
            .await
            .unwrap();
        let b = NodeIds::start(store.clone(), Arc::new(clock.clone()), None)
            .await
            .unwrap();
        assert_ne!(a.ids.node(), b.ids.node());
        let mut last = 0;
        for _ in 0..500 {
            last = last.max(a.ids.next_id()).max(b.ids.next_id());
        }
        // The first process stops for good; a new one starts with the clock an hour back.
        let stop = CancellationToken::new();
        stop.cancel();
        a.run(stop).await;
        clock.set(t - 3_600_000);
        let c = NodeIds::start(store.clone(), Arc::new(clock.clone()), None)
            .await
            .unwrap();
        assert_eq!(c.ids.node(), 0, "a node id given up is taken again");
        let id = c.ids.next_id();
        assert!(id > last, "{} not after {}", time_of(id), time_of(last));
        assert_eq!(node_of(id), 0);
        // A configured node id is taken whoever held it.
        let d = NodeIds::start(store.clone(), Arc::new(clock.clone()), Some(9))
            .await
            .unwrap();
        assert_eq!(d.ids.node(), 9);
    }

    #[tokio::test]
    async fn a_lease_that_ran_out_is_taken_and_its_old_holder_moves_on() {
        let (store, _dir) = store().await;
        let t = ID_EPOCH_MS + 400 * 86_400_000;
        let clock = ManualClock::new(t);
        let a = NodeIds::start(store.clone(), Arc::new(clock.clone()), None)
            .await
            .unwrap();
        let before = a.ids.next_id();
        // `a` is cut off past its lease; `b` takes node 0.
        clock.set(t + ms(LEASE) + 1);
        let b = NodeIds::start(store.clone(), Arc::new(clock.clone()), None)
            .await
            .unwrap();
        assert_eq!((a.ids.node(), b.ids.node()), (0, 0));
        assert!(!a.renew().await.unwrap(), "the lease is b's now");
        a.move_node().await;
        assert_ne!(a.ids.node(), 0);
        let ia = a.ids.next_id();
        let ib = b.ids.next_id();
        assert!(ia > before && ib > before);
        assert_ne!(node_of(ia), node_of(ib));
    }
}
