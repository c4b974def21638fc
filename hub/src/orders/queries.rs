//! The read side of orders: who may watch an order, and an order, the orders
//! under way and a trip as the caller's role may see them.

use super::known::{OrderReads, Verdict};
use super::{OrderError, Orders, check_id};
use crate::auth::{Claims, Role, can_watch};
use serde::{Deserialize, Serialize};
use tracker_backend::TrackPoint;
use tracker_backend::archive::ArchivedOrder;
use tracker_backend::store::{Cursor, Lookup};
use tracker_domain::history::{HistoryEntry, customer_entry};
use tracker_domain::view::{View, customer_order, without_phones};
use tracker_domain::{Order, Status};

/// Orders one list returns when the caller names no limit.
const DEFAULT_LIST: usize = 500;
/// Most orders one list returns.
const MAX_LIST: usize = 5000;

/// The order `id` if the holder of `claims` may watch it: a bad id, a missing
/// order and somebody else's order are refused. Every read-side door (the API,
/// WebSocket, SSE, long-poll) checks through here.
pub async fn watchable(reads: &OrderReads, claims: &Claims, id: &str) -> Result<Order, OrderError> {
    let order = reads.get(id).await?;
    may_watch(claims, &order)?;
    Ok(order)
}

/// Refuses the holder of `claims` an order they may not watch.
fn may_watch(claims: &Claims, order: &Order) -> Result<(), OrderError> {
    if !can_watch(claims, order) {
        return Err(OrderError::Forbidden("you may not watch this order"));
    }
    Ok(())
}

/// What the archive keeps of an order besides its row.
struct ArchivedRecords {
    history: Vec<HistoryEntry>,
    track: Vec<TrackPoint>,
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

/// Orders one lookup page holds when the caller names no limit.
const DEFAULT_PAGE: usize = 50;
/// Most orders one lookup page holds.
const MAX_PAGE: usize = 500;

/// What `GET /v1/orders/{id}?include=` asks to be read besides the order row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Include {
    /// The item lines (`items`).
    pub items: bool,
    /// The packages as they stand (`packages`).
    pub packages: bool,
}

impl Include {
    /// Reads `items`, `packages` or `items,packages`; anything else is refused.
    pub fn parse(text: Option<&str>) -> Result<Include, OrderError> {
        let mut inc = Include::default();
        for part in text.unwrap_or("").split(',').filter(|p| !p.is_empty()) {
            match part {
                "items" => inc.items = true,
                "packages" => inc.packages = true,
                other => {
                    return Err(OrderError::BadRequest(format!(
                        "`include` takes `items` and `packages`, not `{}`",
                        other.chars().take(32).collect::<String>()
                    )));
                }
            }
        }
        Ok(inc)
    }
}

/// `GET /v1/orders?customer_id=…` or `?biz_order_no=…&biz_type=…`.
#[derive(Debug, Default, Deserialize)]
pub struct LookupQuery {
    /// One customer's orders (admins, or that customer).
    pub customer_id: Option<String>,
    /// The orders with this business number (admins).
    pub biz_order_no: Option<String>,
    /// With `biz_order_no`: one business line only.
    pub biz_type: Option<String>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
    /// Where the page starts: the `next` of the page before.
    pub cursor: Option<String>,
}

/// One page of a lookup, newest first.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The orders, as the caller may see them.
    pub orders: Vec<Order>,
    /// The cursor of the next page; `null` on the last one.
    pub next: Option<String>,
}

/// `GET /v1/orders/{id}/history`.
#[derive(Debug, Serialize)]
pub struct History {
    /// The order id.
    pub order: String,
    /// Every status change of the order and its packages, oldest first.
    pub changes: Vec<HistoryEntry>,
}

/// One page of two sorted pages (the hot store's and the archive's, read
/// after the same cursor): the newest `limit` of both, an order in both
/// (moved as the pages were read) once, and the cursor after the last.
fn merge_pages(
    hot: (Vec<Order>, Option<Cursor>),
    cold: (Vec<Order>, Option<Cursor>),
    limit: usize,
) -> (Vec<Order>, Option<Cursor>) {
    let more = hot.1.is_some() || cold.1.is_some();
    let mut all = hot.0;
    for o in cold.0 {
        if !all.iter().any(|h| h.id == o.id) {
            all.push(o);
        }
    }
    all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let cut = all.len() > limit;
    all.truncate(limit);
    let next = (more || cut).then(|| all.last()).flatten().map(|o| Cursor {
        created_at: o.created_at,
        id: o.id.clone(),
    });
    (all, next)
}

/// The order as the holder of `claims` may see it: a customer's view (the
/// rider's first name, no alerts) for customers and share links, and no
/// phone numbers for share links.
fn as_seen(claims: &Claims, order: Order) -> Order {
    match (claims.view(), claims.role) {
        (View::Full, _) => order,
        (View::Customer, Role::Viewer) => without_phones(customer_order(order)),
        (View::Customer, _) => customer_order(order),
    }
}

impl Orders {
    /// The order `id` from the hot store or, once it moved there, from the
    /// archive (with its goods, history and track), if `claims` may watch it.
    async fn readable(
        &self,
        claims: &Claims,
        id: &str,
    ) -> Result<(Order, Option<ArchivedRecords>), OrderError> {
        // An id the filter knows is unused is in neither the store nor the archive.
        check_id(id)?;
        if self.known.check(id).await == Verdict::Absent {
            return Err(OrderError::NotFound);
        }
        let found = self.store.get_order(id).await.map_err(OrderError::from);
        match (found, &self.archive) {
            (Err(OrderError::NotFound), Some(archive)) => {
                let ArchivedOrder {
                    order,
                    history,
                    track,
                } = archive.get(id).await?.ok_or(OrderError::NotFound)?;
                may_watch(claims, &order)?;
                Ok((order, Some(ArchivedRecords { history, track })))
            }
            (found, _) => {
                let order = found?;
                may_watch(claims, &order)?;
                Ok((order, None))
            }
        }
    }

    /// The order `id` as the caller may see it: the customer gets the rider's
    /// first name and not their id, a share link no phone numbers. Items and
    /// packages are read only when `include` asks for them. An archived
    /// order answers the same, with `archived: true`.
    pub async fn get(
        &self,
        claims: &Claims,
        id: &str,
        include: Include,
    ) -> Result<Order, OrderError> {
        let (mut order, archived) = self.readable(claims, id).await?;
        if archived.is_some() {
            if !include.items {
                order.items = None;
            }
            if !include.packages {
                order.packages = None;
            }
            return Ok(as_seen(claims, order));
        }
        if include.items {
            order.items = Some(if order.item_count == 0 {
                Vec::new()
            } else {
                self.store.items_of(id).await?
            });
        }
        if include.packages {
            order.packages = Some(if order.package_count == 0 {
                Vec::new()
            } else {
                self.store.packages_of(id).await?
            });
        }
        Ok(as_seen(claims, order))
    }

    /// Every status change of the order and of its packages, oldest first;
    /// customers and share links see an operator's or rider's account as its role.
    pub async fn history(&self, claims: &Claims, id: &str) -> Result<History, OrderError> {
        let mut changes = match self.readable(claims, id).await? {
            (_, Some(archived)) => archived.history,
            (_, None) => self.store.history_of(id).await?,
        };
        if claims.view() == View::Customer {
            changes = changes.into_iter().map(customer_entry).collect();
        }
        Ok(History {
            order: id.to_owned(),
            changes,
        })
    }

    /// One page of the orders of a customer (admins, or that customer) or
    /// with a business number (admins), newest first.
    pub async fn lookup(&self, claims: &Claims, q: LookupQuery) -> Result<Page, OrderError> {
        let limit = q.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(OrderError::BadRequest(format!(
                "`limit` must be 1..={MAX_PAGE}"
            )));
        }
        let after = match q.cursor.as_deref() {
            Some(text) => Some(Cursor::decode(text).ok_or_else(|| {
                OrderError::BadRequest("`cursor` is not one this API gave".into())
            })?),
            None => None,
        };
        let key = |name: &str, v: &str| {
            if v.is_empty() || v.len() > tracker_domain::order::MAX_KEY_LEN {
                return Err(OrderError::BadRequest(format!(
                    "`{name}` must be 1..=128 characters"
                )));
            }
            Ok(())
        };
        let lookup = match (q.customer_id, q.biz_order_no) {
            (Some(c), None) => {
                key("customer_id", &c)?;
                let own = claims.role == Role::Customer && claims.sub == c;
                if claims.role != Role::Admin && !own {
                    return Err(OrderError::Forbidden(
                        "only admins and the customer may list a customer's orders",
                    ));
                }
                Lookup::Customer(c)
            }
            (None, Some(no)) => {
                key("biz_order_no", &no)?;
                if let Some(t) = &q.biz_type {
                    key("biz_type", t)?;
                }
                if claims.role != Role::Admin {
                    return Err(OrderError::Forbidden(
                        "only admins may look orders up by business number",
                    ));
                }
                Lookup::Business {
                    no,
                    kind: q.biz_type,
                }
            }
            _ => {
                return Err(OrderError::BadRequest(
                    "give either `customer_id` or `biz_order_no`".into(),
                ));
            }
        };
        let (orders, next) = self.store.lookup(&lookup, after.as_ref(), limit).await?;
        let (orders, next) = match &self.archive {
            None => (orders, next),
            Some(archive) => {
                let cold = archive.lookup(&lookup, after.as_ref(), limit).await?;
                merge_pages((orders, next), cold, limit)
            }
        };
        Ok(Page {
            orders: orders.into_iter().map(|o| as_seen(claims, o)).collect(),
            next: next.map(|c| c.encode()),
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
        let (order, archived) = self.readable(claims, id).await?;
        let mut points = match archived {
            Some(a) => a.track,
            None => self.store.track_of(id).await?,
        };
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
