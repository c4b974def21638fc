//! The order commands of the API: create (idempotent by business key), change
//! status, assign. Each reads the order, computes the change in the domain and
//! writes it through [`Orders::write`](super::Orders::write).

use super::{OrderError, Orders, check_id};
use serde::Deserialize;
use tracker_backend::StoreError;
use tracker_backend::store::Lookup;
use tracker_domain::goods::Package;
use tracker_domain::ids::shard_of_customer;
use tracker_domain::package::{PackageStatus, UnknownPackageStatus};
use tracker_domain::rider::{MAX_RIDER_ID, is_valid_rider_id};
use tracker_domain::{Expected, NewOrder, Order, Status};

/// Longest `reason` or `by` of a status change, bytes.
const MAX_TEXT: usize = 1024;

/// `POST /v1/orders/{id}/status`: one transition.
#[derive(Debug, Deserialize)]
pub struct StatusChange {
    /// The requested status.
    pub to: String,
    /// Expected order version; at least one of the two versions is required.
    pub version: Option<i64>,
    /// Expected status version, for writers that only care about status.
    pub status_version: Option<i64>,
    /// Why (cancels, returns, rejections).
    pub reason: Option<String>,
    /// Who asked for a cancel (`customer`, `shop`, `system`, …); without
    /// it the history names the caller's account.
    pub by: Option<String>,
}

/// `POST /v1/orders/{id}/packages/{package_no}/status`: one package transition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    /// The requested package status.
    pub to: String,
    /// The package's expected version; left out, the change is made whatever it is.
    pub version: Option<i64>,
    /// Why (rejections, cancels).
    pub reason: Option<String>,
}

/// `POST /v1/orders/{id}/assign`: `ready → assigned` to a rider.
#[derive(Debug, Deserialize)]
pub struct Assignment {
    /// The rider who gets the order.
    pub rider_id: String,
    /// Their display name; the order's customer sees its first word.
    pub rider_name: Option<String>,
    /// Expected order version.
    pub version: Option<i64>,
    /// Expected status version.
    pub status_version: Option<i64>,
}

fn expected(version: Option<i64>, status_version: Option<i64>) -> Result<Expected, OrderError> {
    if version.is_none() && status_version.is_none() {
        return Err(OrderError::BadRequest(
            "`version` (or `status_version`) is required".into(),
        ));
    }
    Ok(Expected {
        version,
        status_version,
    })
}

fn short_text(name: &str, v: &Option<String>) -> Result<(), OrderError> {
    match v {
        Some(s) if s.len() > MAX_TEXT => Err(OrderError::BadRequest(format!(
            "`{name}` is longer than {MAX_TEXT} bytes"
        ))),
        _ => Ok(()),
    }
}

impl Orders {
    /// Creates an order; a repeated business key returns the existing one.
    /// The flag says whether this call created it. Its stock-controlled
    /// items are reserved first, all or nothing (`out_of_stock`).
    pub async fn create(&self, new: NewOrder) -> Result<(Order, bool), OrderError> {
        new.validate().map_err(OrderError::BadRequest)?;
        if let Err(e) = self.reserve_for(&new).await {
            // A repeated create of an order that exists is answered with it,
            // even when its stock has run out since.
            if matches!(e, OrderError::OutOfStock { .. })
                && let Some(existing) = self.order_by_key(&new.biz_type, &new.biz_order_no).await?
            {
                return Ok((existing, false));
            }
            return Err(e);
        }
        let shard = shard_of_customer(&new.customer_id);
        let id = self.ids.next_id_in(shard).to_string();
        let order = Order::new(id, new, self.clock.now_ms());
        let (order, created) = match self
            .store
            .create_order(&order, &[order.created_event()])
            .await
        {
            // The business key is taken by an order that moved to the archive.
            Err(StoreError::NotFound) => (self.archived_by_key(&order).await?, false),
            other => other?,
        };
        if created {
            self.known.insert(&order.id);
            self.after_create(&order).await;
            metrics::counter!("tracker_orders_created_total").increment(1);
        }
        Ok((order, created))
    }

    /// The archived order with `order`'s business key.
    async fn archived_by_key(&self, order: &Order) -> Result<Order, OrderError> {
        let archive = self.archive.as_ref().ok_or(OrderError::NotFound)?;
        let key = Lookup::Business {
            no: order.biz_order_no.clone(),
            kind: Some(order.biz_type.clone()),
        };
        let (found, _) = archive.lookup(&key, None, 1).await?;
        found.into_iter().next().ok_or(OrderError::NotFound)
    }

    /// One status transition: stale versions and illegal transitions are
    /// refused. A payment that lost the race with its timeout leaves the order
    /// cancelled, notes in its log that the money must go back, and is refused
    /// as `refund_required`.
    /// `actor` is the caller's account (`admin:<sub>`), kept as who made it
    /// unless the request names the party (`by`).
    pub async fn change_status(
        &self,
        id: &str,
        req: StatusChange,
        actor: &str,
    ) -> Result<Order, OrderError> {
        check_id(id)?;
        let to: Status = req
            .to
            .parse()
            .map_err(|e: tracker_domain::status::UnknownStatus| {
                OrderError::BadRequest(e.to_string())
            })?;
        let exp = expected(req.version, req.status_version)?;
        short_text("reason", &req.reason)?;
        short_text("by", &req.by)?;
        let order = self.order(id).await?;
        let now = self.clock.now_ms();
        if to == Status::Paid && order.cancelled_for_payment_timeout() {
            let change = order.refund_required(now);
            let _noted = self.commit(order, change).await?;
            metrics::counter!("tracker_refunds_required_total").increment(1);
            return Err(OrderError::Conflict {
                code: "refund_required",
                message:
                    "the order was cancelled by the payment timeout; the payment must be refunded"
                        .into(),
            });
        }
        let by = req.by.or_else(|| Some(actor.to_owned()));
        let change = order.change_status(to, exp, req.reason, by, now)?;
        self.commit(order, change).await
    }

    /// Gives a `ready` order to a rider (operators; `actor` is the operator's account).
    pub async fn assign(
        &self,
        id: &str,
        req: Assignment,
        actor: &str,
    ) -> Result<Order, OrderError> {
        check_id(id)?;
        if !is_valid_rider_id(&req.rider_id) {
            return Err(OrderError::BadRequest(format!(
                "`rider_id` must be 1..={MAX_RIDER_ID} characters of A-Z, a-z, 0-9, `_`, `-`, `.`"
            )));
        }
        short_text("rider_name", &req.rider_name)?;
        let exp = expected(req.version, req.status_version)?;
        let order = self.order(id).await?;
        let now = self.clock.now_ms();
        let by = Some(actor.to_owned());
        let change = order.assign(&req.rider_id, req.rider_name.as_deref(), exp, by, now)?;
        self.commit(order, change).await
    }

    /// One transition of one of the order's packages (`tracker_domain::package`):
    /// a stale version is 409, an illegal transition (or one the order does
    /// not allow) 422. Answers the package as it now stands.
    pub async fn move_package(
        &self,
        id: &str,
        package_no: &str,
        req: PackageChange,
        actor: &str,
    ) -> Result<Package, OrderError> {
        check_id(id)?;
        let to: PackageStatus = req
            .to
            .parse()
            .map_err(|e: UnknownPackageStatus| OrderError::BadRequest(e.to_string()))?;
        short_text("reason", &req.reason)?;
        let order = self.order(id).await?;
        let packages = if order.package_count == 0 {
            Vec::new()
        } else {
            self.store.packages_of(id).await?
        };
        let Some(package) = packages.into_iter().find(|p| p.package_no == package_no) else {
            return Err(OrderError::NotFound);
        };
        let now = self.clock.now_ms();
        let by = Some(actor.to_owned());
        match package.change(to, req.version, order.status, req.reason, by, now)? {
            None => Ok(package),
            Some((next, event)) => {
                self.store.update_package(id, &next, &[event]).await?;
                self.relay.wake();
                metrics::counter!("tracker_package_changes_total", "to" => to.as_str())
                    .increment(1);
                Ok(next)
            }
        }
    }
}
