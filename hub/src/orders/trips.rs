//! The trip side of orders: an order's planned route, and the open alerts of
//! every order for the operators' list. The episodes themselves are raised
//! and cleared by the trip watcher (`trips/`), through the same store row.

use super::{OrderError, Orders, check_id};
use serde::{Deserialize, Serialize};
use tracker_domain::{Order, Point};

/// Most orders the alerts list looks at.
const MAX_ALERTING: usize = 5000;

/// The body of `PUT /v1/orders/{id}/route`: the new route, or `null` to remove it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// Pick-up to drop-off, 2–5000 points.
    pub route: Option<Vec<Point>>,
}

/// One open alert of `GET /v1/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenAlert {
    /// The order it is about.
    pub order: String,
    /// `stalled`, `off_route`, `rider_offline`, or `late` while the order is under way.
    pub kind: String,
    /// When it was raised, Unix ms.
    pub ts: i64,
    /// The facts given with it.
    pub detail: serde_json::Value,
}

impl Orders {
    /// Sets or removes the planned route of an order that has not ended.
    pub async fn set_route(&self, id: &str, body: RouteBody) -> Result<Order, OrderError> {
        check_id(id)?;
        if let Some(r) = &body.route {
            tracker_domain::route::check_route(r).map_err(OrderError::BadRequest)?;
        }
        let order = self.order(id).await?;
        let change = order.set_route(body.route, self.clock.now_ms())?;
        self.commit(order, change).await
    }

    /// The open alerts of every order, newest change first: the episodes
    /// under way and the `late` alerts of orders that have not ended.
    pub async fn open_alerts(&self) -> Result<Vec<OpenAlert>, OrderError> {
        let mut out = Vec::new();
        for o in self.store.alerting_orders(MAX_ALERTING).await? {
            for (kind, e) in o.open_alerts() {
                out.push(OpenAlert {
                    order: o.id.clone(),
                    kind: kind.to_owned(),
                    ts: e.ts,
                    detail: e.detail.clone(),
                });
            }
        }
        Ok(out)
    }
}
