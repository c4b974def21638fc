//! The read side of orders: who may watch an order, and an order, the orders
//! under way and a trip as the caller's role may see them.

use super::{OrderError, Orders, check_id};
use crate::auth::{Claims, can_watch};
use serde::Serialize;
use tracker_backend::{Store, TrackPoint};
use tracker_domain::view::{View, customer_order};
use tracker_domain::{Order, Status};

/// Orders one list returns when the caller names no limit.
const DEFAULT_LIST: usize = 500;
/// Most orders one list returns.
const MAX_LIST: usize = 5000;

/// The order `id` if the holder of `claims` may watch it: a bad id, a missing
/// order and somebody else's order are refused. Every read-side door (the API,
/// WebSocket, SSE, long-poll) checks through here.
pub async fn watchable(store: &dyn Store, claims: &Claims, id: &str) -> Result<Order, OrderError> {
    check_id(id)?;
    let order = store.get_order(id).await?;
    if !can_watch(claims, &order) {
        return Err(OrderError::Forbidden("you may not watch this order"));
    }
    Ok(order)
}

/// The stored trip of an order, as `GET /v1/orders/{id}/track` answers it.
#[derive(Debug, Serialize)]
pub struct Trip {
    /// The order id.
    pub order: String,
    /// Its status now.
    pub status: Status,
    /// When the rider picked it up, if they did.
    pub picked_up_at: Option<i64>,
    /// The rider's points, oldest first.
    pub points: Vec<TrackPoint>,
}

impl Orders {
    /// The order `id` as the caller may see it: the customer gets the rider's
    /// first name and not their id.
    pub async fn get(&self, claims: &Claims, id: &str) -> Result<Order, OrderError> {
        let order = watchable(&*self.store, claims, id).await?;
        Ok(match claims.view() {
            View::Customer => customer_order(order),
            View::Full => order,
        })
    }

    /// The orders still under way, newest first, at most `limit` (default
    /// 500, at most 5000; 0 is refused).
    pub async fn active(&self, limit: Option<usize>) -> Result<Vec<Order>, OrderError> {
        let limit = limit.unwrap_or(DEFAULT_LIST);
        if limit == 0 {
            return Err(OrderError::BadRequest(format!(
                "`limit` must be 1..={MAX_LIST}"
            )));
        }
        let limit = limit.min(MAX_LIST);
        Ok(self.store.active_orders(limit).await?)
    }

    /// The stored trip of the order's rider, oldest first; its customer gets
    /// the part from pick-up on only, without the rider's id.
    pub async fn trip(&self, claims: &Claims, id: &str) -> Result<Trip, OrderError> {
        let order = watchable(&*self.store, claims, id).await?;
        let mut points = self.store.track_of(id).await?;
        if claims.view() == View::Customer {
            let from = order.picked_up_at.unwrap_or(i64::MAX);
            points.retain(|p| p.ts >= from);
            for p in &mut points {
                p.rider_id.clear();
            }
        }
        Ok(Trip {
            order: id.to_owned(),
            status: order.status,
            picked_up_at: order.picked_up_at,
            points,
        })
    }
}
