//! The grab: a rider takes an open order. Exactly one of any number of
//! concurrent grabs wins; the rest are refused as `already_taken`, and an
//! order not open for riders as `not_open`.
//!
//! Flow: check the order in the store, claim it atomically in the dispatch
//! index (the claim decides who may write), then write the assignment with the
//! store's version check (the final word).

use super::{OrderError, Orders, check_id};
use crate::auth::{Claims, Role};
use tracker_backend::StoreError;
use tracker_backend::dispatch::{Claim, OpenOrder};
use tracker_domain::order::Change;
use tracker_domain::{Expected, Order, Status};

/// Tries at writing a won grab when other fields of the order move meanwhile.
const GRAB_WRITES: usize = 3;

fn refuse_unless_ready(order: &Order) -> Result<(), OrderError> {
    match order.status {
        Status::Ready => Ok(()),
        s if s.rider_attached() || s.picked_up_or_later() => Err(OrderError::already_taken()),
        s => Err(OrderError::Conflict {
            code: "not_open",
            message: format!("the order is {s}, not open for riders"),
        }),
    }
}

impl Orders {
    /// The calling rider takes the open order `id`; the order as assigned.
    pub async fn grab(&self, claims: &Claims, id: &str) -> Result<Order, OrderError> {
        if claims.role != Role::Rider {
            return Err(OrderError::Forbidden("only riders grab orders"));
        }
        check_id(id)?;
        let rider = claims.sub.as_str();
        let order = self.order(id).await?;
        if order.status == Status::Assigned && order.rider_id.as_deref() == Some(rider) {
            return Ok(order); // a retry of our own grab
        }
        refuse_unless_ready(&order)?;
        let won = match self.dispatch.claim(id, rider).await? {
            Claim::Won => true,
            Claim::Taken { by } => by == rider,
            Claim::NotOpen => {
                // Ready in the store but not in the pool: its writer has not opened
                // it yet (or died first). Put it in and claim as anyone would.
                self.dispatch.open(&OpenOrder::from(&order)).await?;
                self.dispatch.claim(id, rider).await? == Claim::Won
            }
        };
        if !won {
            metrics::counter!("tracker_grabs_total", "outcome" => "already_taken").increment(1);
            return Err(OrderError::already_taken());
        }
        match self.write_grab(order, rider, claims.name.as_deref()).await {
            Ok(order) => {
                metrics::counter!("tracker_grabs_total", "outcome" => "won").increment(1);
                Ok(order)
            }
            Err(e) => {
                // Whatever happened, this rider does not hold the order: let the
                // pool follow the store again.
                if let Err(r) = self.dispatch.release(id, rider).await {
                    tracing::warn!(error = %r, order = %id, "releasing a failed grab's claim");
                }
                metrics::counter!("tracker_grabs_total", "outcome" => "lost_on_write").increment(1);
                Err(e)
            }
        }
    }

    /// Writes the assignment of a won grab with the store's version check; when
    /// another field moved meanwhile it reads again and retries while still ready.
    async fn write_grab(
        &self,
        mut order: Order,
        rider: &str,
        name: Option<&str>,
    ) -> Result<Order, OrderError> {
        for _ in 0..GRAB_WRITES {
            let now = self.clock.now_ms();
            let exp = Expected {
                version: Some(order.version),
                status_version: None,
            };
            let Change::Changed {
                order: next,
                events,
            } = order.assign(rider, name, exp, Some(format!("rider:{rider}")), now)?
            else {
                return Ok(order);
            };
            match self.write(&next, order.version, &events).await {
                Ok(()) => return Ok(*next),
                Err(StoreError::Conflict) => {
                    order = self.store.get_order(&order.id).await?;
                    refuse_unless_ready(&order)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(OrderError::already_taken())
    }
}
