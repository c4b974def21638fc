//! The one write path of orders, and what follows every write.
//!
//! Each command reads the order, computes the change in the domain, and writes
//! it with a compare-and-set on the version it read; the change's events go to
//! the outbox in the same transaction. After the write the relay is woken to
//! move them on, the dispatch pool follows the new status, and the order's
//! timers are scheduled, and an order that ended settles its stock. The
//! API's commands, the grab and the timeouts all write through [`Orders::write`].

use super::{OrderError, Orders, pool, timeouts};
use tracker_backend::StoreError;
use tracker_domain::goods::Package;
use tracker_domain::order::Change;
use tracker_domain::{EventBody, Order, package};

impl Orders {
    /// Writes `next` (and its `events` to the outbox) if the order is still at
    /// `read_version`, then does what every change needs after it: wakes the
    /// relay, keeps the dispatch pool in step and schedules the order's timeouts.
    pub async fn write(
        &self,
        next: &Order,
        read_version: i64,
        events: &[EventBody],
    ) -> Result<(), StoreError> {
        self.write_with(next, read_version, &[], events).await
    }

    /// [`Orders::write`] that also writes the order's `packages` that the
    /// change moved (see [`Orders::follow_packages`]).
    pub(crate) async fn write_with(
        &self,
        next: &Order,
        read_version: i64,
        packages: &[Package],
        events: &[EventBody],
    ) -> Result<(), StoreError> {
        self.store
            .update_order_and_packages(next, read_version, packages, events)
            .await?;
        self.after_write(next, events).await;
        Ok(())
    }

    /// What the order's change to `next` (from `read`) does to its packages
    /// (`tracker_domain::package::follow_order`): nothing unless it ends an
    /// order that has packages; then they are read, the change is refused
    /// while one is on its way, and the `created` ones of a cancel or a
    /// return are cancelled, their events added to `events`.
    pub(crate) async fn follow_packages(
        &self,
        read: &Order,
        next: &Order,
        events: &mut Vec<EventBody>,
    ) -> Result<Vec<Package>, OrderError> {
        if next.package_count == 0 || next.status == read.status || !next.status.is_terminal() {
            return Ok(Vec::new());
        }
        let packages = self.store.packages_of(&next.id).await?;
        let by = events.iter().find_map(|e| match e {
            EventBody::Status { by, .. } => by.clone(),
            _ => None,
        });
        let moved = package::follow_order(&packages, next.status, by.as_deref(), next.updated_at)?;
        let (rows, evs): (Vec<_>, Vec<_>) = moved.into_iter().unzip();
        events.extend(evs);
        Ok(rows)
    }

    /// What follows a committed change of `next` with `events`.
    async fn after_write(&self, next: &Order, events: &[EventBody]) {
        self.relay.wake();
        if events.iter().any(|e| matches!(e, EventBody::Status { .. })) {
            self.settle_stock(next).await;
        }
        pool::after_write(self, next, events).await;
        timeouts::schedule(self, next).await;
    }

    /// What follows the creation of `order`: a new order is never open for
    /// riders, so the pool has nothing to do.
    pub(crate) async fn after_create(&self, order: &Order) {
        self.relay.wake();
        timeouts::schedule(self, order).await;
    }

    /// Writes a computed change of the order `read`; the order as it now stands.
    pub(crate) async fn commit(&self, read: Order, change: Change) -> Result<Order, OrderError> {
        match change {
            Change::Unchanged => Ok(read),
            Change::Changed { order, mut events } => {
                let packages = self.follow_packages(&read, &order, &mut events).await?;
                self.write_with(&order, read.version, &packages, &events)
                    .await?;
                Ok(*order)
            }
        }
    }
}
