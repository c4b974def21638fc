//! The one write path of orders, and what follows every write.
//!
//! Each command reads the order, computes the change in the domain, and writes
//! it with a compare-and-set on the version it read; the change's events go to
//! the outbox in the same transaction. After the write the relay is woken to
//! move them on, the dispatch pool follows the new status, and the order's
//! timers are scheduled. The API's commands, the grab and the timeouts all
//! write through [`Orders::write`].

use super::{OrderError, Orders, pool, timeouts};
use tracker_backend::StoreError;
use tracker_domain::order::Change;
use tracker_domain::{EventBody, Order};

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
        self.store.update_order(next, read_version, events).await?;
        self.after_write(next, events).await;
        Ok(())
    }

    /// What follows a committed change of `next` with `events`.
    async fn after_write(&self, next: &Order, events: &[EventBody]) {
        self.relay.wake();
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
            Change::Changed { order, events } => {
                self.write(&order, read.version, &events).await?;
                Ok(*order)
            }
        }
    }
}
