//! The orders API of PROTOCOL.md: create (idempotent), get, status transition, assign.
//!
//! Each write reads the order, computes the change in the domain, and writes it
//! with a compare-and-set on the version it read; the change's events go to the
//! outbox in the same transaction and the relay is woken to move them on.

use crate::AppState;
use crate::auth::{Admin, Caller, Claims, can_watch};
use crate::error::{ApiError, ApiJson};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tracker_backend::StoreError;
use tracker_domain::order::{Change, MAX_KEY_LEN};
use tracker_domain::view::{View, customer_order};
use tracker_domain::{EventBody, Expected, NewOrder, Order, Status};

type OrderAnswer = Result<(StatusCode, Json<Order>), ApiError>;

pub(crate) fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > MAX_KEY_LEN {
        return Err(ApiError::bad_request("order id must be 1..=128 characters"));
    }
    Ok(())
}

/// `POST /v1/orders`: 201 with a new order, 200 with the existing one for a repeated key.
pub async fn create(
    State(st): State<AppState>,
    _: Admin,
    ApiJson(new): ApiJson<NewOrder>,
) -> OrderAnswer {
    new.validate().map_err(ApiError::bad_request)?;
    let order = Order::new(
        st.deps.ids.next_id().to_string(),
        new,
        st.deps.clock.now_ms(),
    );
    let (order, created) = st
        .deps
        .store
        .create_order(&order, &[order.created_event()])
        .await?;
    if created {
        st.relay.wake();
        crate::dispatch::timeouts::schedule(&st, &order).await;
        metrics::counter!("tracker_orders_created_total").increment(1);
    }
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(order)))
}

/// The order `id` if the holder of `claims` may watch it: 400 for a bad id,
/// 404 when missing, 403 when not theirs. Every read-side door checks through here.
pub(crate) async fn watchable(st: &AppState, claims: &Claims, id: &str) -> Result<Order, ApiError> {
    check_id(id)?;
    let order = st.deps.store.get_order(id).await?;
    if !can_watch(claims, &order) {
        return Err(ApiError::forbidden("you may not watch this order"));
    }
    Ok(order)
}

/// `GET /v1/orders/{id}`: admins, the order's customer (who gets the rider's
/// first name and not their id), its rider.
pub async fn get(
    State(st): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> OrderAnswer {
    let order = watchable(&st, &claims, &id).await?;
    let order = match claims.view() {
        View::Customer => customer_order(order),
        View::Full => order,
    };
    Ok((StatusCode::OK, Json(order)))
}

/// Query of `GET /v1/orders`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// At most this many (default 500, at most 5000).
    pub limit: Option<usize>,
}

/// `GET /v1/orders`: the orders still under way, newest first (operators): the
/// operator page's list, which it then watches one by one.
pub async fn list_active(
    State(st): State<AppState>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let orders = st.deps.store.active_orders(limit).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

/// Body of `POST /v1/orders/{id}/status`.
#[derive(Debug, Deserialize)]
pub struct StatusBody {
    /// The requested status.
    pub to: String,
    /// Expected order version; at least one of the two versions is required.
    pub version: Option<i64>,
    /// Expected status version, for writers that only care about status.
    pub status_version: Option<i64>,
    /// Why (cancels, returns, rejections).
    pub reason: Option<String>,
    /// Who asked for a cancel (`customer`, `shop`, `system`, …).
    pub by: Option<String>,
}

fn expected(version: Option<i64>, status_version: Option<i64>) -> Result<Expected, ApiError> {
    if version.is_none() && status_version.is_none() {
        return Err(ApiError::bad_request(
            "`version` (or `status_version`) is required",
        ));
    }
    Ok(Expected {
        version,
        status_version,
    })
}

fn short_text(name: &str, v: &Option<String>) -> Result<(), ApiError> {
    match v {
        Some(s) if s.len() > 1024 => Err(ApiError::bad_request(format!(
            "`{name}` is longer than 1024 bytes"
        ))),
        _ => Ok(()),
    }
}

/// Writes `next` (and its `events` to the outbox) if the order is still at
/// `read_version`, then does what every change needs after it: wakes the
/// relay, keeps the dispatch pool in step and schedules the order's timeouts.
/// The one write path of the API, the grab and the timeouts.
pub(crate) async fn write(
    st: &AppState,
    next: &Order,
    read_version: i64,
    events: &[EventBody],
) -> Result<(), StoreError> {
    st.deps
        .store
        .update_order(next, read_version, events)
        .await?;
    st.relay.wake();
    crate::dispatch::pool::after_write(st, next, events).await;
    crate::dispatch::timeouts::schedule(st, next).await;
    Ok(())
}

/// Writes a computed change: 200 with the order as it now stands.
async fn commit(st: &AppState, read: Order, change: Change) -> OrderAnswer {
    match change {
        Change::Unchanged => Ok((StatusCode::OK, Json(read))),
        Change::Changed { order, events } => {
            write(st, &order, read.version, &events).await?;
            Ok((StatusCode::OK, Json(*order)))
        }
    }
}

/// `POST /v1/orders/{id}/status`: one transition; 409 stale version, 422 illegal.
pub async fn change_status(
    State(st): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusBody>,
) -> OrderAnswer {
    check_id(&id)?;
    let to: Status = body
        .to
        .parse()
        .map_err(|e: tracker_domain::status::UnknownStatus| ApiError::bad_request(e.to_string()))?;
    let exp = expected(body.version, body.status_version)?;
    short_text("reason", &body.reason)?;
    short_text("by", &body.by)?;
    let order = st.deps.store.get_order(&id).await?;
    let now = st.deps.clock.now_ms();
    if to == Status::Paid && order.cancelled_for_payment_timeout() {
        // The payment lost the race with its timeout: the order stays cancelled
        // and the log says the money must go back.
        let change = order.refund_required(now);
        let _noted = commit(&st, order, change).await?;
        metrics::counter!("tracker_refunds_required_total").increment(1);
        return Err(ApiError::conflict(
            "refund_required",
            "the order was cancelled by the payment timeout; the payment must be refunded",
        ));
    }
    let change = order.change_status(to, exp, body.reason, body.by, now)?;
    commit(&st, order, change).await
}

/// Body of `POST /v1/orders/{id}/assign`.
#[derive(Debug, Deserialize)]
pub struct AssignBody {
    /// The rider who gets the order.
    pub rider_id: String,
    /// Their display name; the order's customer sees its first word.
    pub rider_name: Option<String>,
    /// Expected order version.
    pub version: Option<i64>,
    /// Expected status version.
    pub status_version: Option<i64>,
}

/// `POST /v1/orders/{id}/assign`: `ready → assigned` to a rider (operators).
pub async fn assign(
    State(st): State<AppState>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignBody>,
) -> OrderAnswer {
    check_id(&id)?;
    let exp = expected(body.version, body.status_version)?;
    let order = st.deps.store.get_order(&id).await?;
    let now = st.deps.clock.now_ms();
    let change = order.assign(&body.rider_id, body.rider_name.as_deref(), exp, now)?;
    commit(&st, order, change).await
}

/// `GET /v1/orders/{id}/track`: the stored trip of the order's rider, oldest
/// first. Whoever may watch the order may read it; its customer gets the part
/// from pick-up on only.
pub async fn track(
    State(st): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let order = watchable(&st, &claims, &id).await?;
    let mut points = st.deps.store.track_of(&id).await?;
    if claims.view() == View::Customer {
        let from = order.picked_up_at.unwrap_or(i64::MAX);
        points.retain(|p| p.ts >= from);
        for p in &mut points {
            p.rider_id.clear();
        }
    }
    Ok(Json(serde_json::json!({
        "order": id,
        "status": order.status,
        "picked_up_at": order.picked_up_at,
        "points": points,
    })))
}
