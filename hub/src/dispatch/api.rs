//! The dispatch endpoints: open orders near a rider, the grab, riders near a point.

use crate::AppState;
use crate::api::orders::{check_id, write};
use crate::auth::{Admin, Caller, Role};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tracker_backend::StoreError;
use tracker_backend::dispatch::{Claim, DispatchError, OpenOrder};
use tracker_domain::order::Change;
use tracker_domain::{Expected, Order, Point, Status};

/// Largest search radius, metres.
const MAX_RADIUS_M: f64 = 50_000.0;
/// Tries at writing a won grab when other fields of the order move meanwhile.
const GRAB_WRITES: usize = 3;

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        ApiError::unavailable(e)
    }
}

/// Query of the two "near a point" calls.
#[derive(Debug, Deserialize)]
pub struct NearQuery {
    /// Latitude of the centre.
    pub lat: f64,
    /// Longitude of the centre.
    pub lon: f64,
    /// Radius, metres (default 5000, at most 50 000).
    pub radius_m: Option<f64>,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

impl NearQuery {
    fn checked(&self) -> Result<(Point, f64, usize), ApiError> {
        let at = Point {
            lat: self.lat,
            lon: self.lon,
        };
        if !at.is_valid() {
            return Err(ApiError::bad_request("`lat`/`lon` is not a valid position"));
        }
        let radius = self.radius_m.unwrap_or(5000.0);
        if !(radius.is_finite() && radius > 0.0 && radius <= MAX_RADIUS_M) {
            return Err(ApiError::bad_request(format!(
                "`radius_m` must be in (0, {MAX_RADIUS_M}]"
            )));
        }
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request("`limit` must be in 1..=500"));
        }
        Ok((at, radius, limit))
    }
}

fn rider_or_admin(claims: &crate::Claims) -> Result<(), ApiError> {
    match claims.role {
        Role::Rider | Role::Admin => Ok(()),
        Role::Customer => Err(ApiError::forbidden("this call is for riders")),
    }
}

/// `GET /v1/dispatch/nearby`: open orders by distance of their pickup (riders, operators).
pub async fn nearby(
    State(st): State<AppState>,
    Caller(claims): Caller,
    q: Result<Query<NearQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    rider_or_admin(&claims)?;
    let Query(q) = q?;
    let (at, radius, limit) = q.checked()?;
    let orders = st.deps.dispatch.nearby(at, radius, limit).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

/// `GET /v1/dispatch/riders`: riders heard from lately, by distance (operators).
pub async fn riders(
    State(st): State<AppState>,
    _: Admin,
    q: Result<Query<NearQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q?;
    let (at, radius, limit) = q.checked()?;
    let since = st.deps.clock.now_ms() - st.cfg.dispatch.rider_stale.as_millis() as i64;
    let riders = st
        .deps
        .dispatch
        .riders_near(at, radius, since, limit)
        .await?;
    Ok(Json(serde_json::json!({ "riders": riders })))
}

/// `POST /v1/orders/{id}/grab`: the calling rider takes an open order. Exactly
/// one of any number of concurrent grabs wins (200 with the order); the rest
/// get 409 `already_taken`; an order not open for riders gets 409 `not_open`.
pub async fn grab(
    State(st): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    if claims.role != Role::Rider {
        return Err(ApiError::forbidden("only riders grab orders"));
    }
    check_id(&id)?;
    let rider = claims.sub.as_str();
    let order = st.deps.store.get_order(&id).await?;
    if order.status == Status::Assigned && order.rider_id.as_deref() == Some(rider) {
        return Ok((StatusCode::OK, Json(order))); // a retry of our own grab
    }
    refuse_unless_ready(&order)?;
    let won = match st.deps.dispatch.claim(&id, rider).await? {
        Claim::Won => true,
        Claim::Taken { by } => by == rider,
        Claim::NotOpen => {
            // Ready in the store but not in the pool: its writer has not opened
            // it yet (or died first). Put it in and claim as anyone would.
            st.deps.dispatch.open(&OpenOrder::from(&order)).await?;
            st.deps.dispatch.claim(&id, rider).await? == Claim::Won
        }
    };
    if !won {
        metrics::counter!("tracker_grabs_total", "outcome" => "already_taken").increment(1);
        return Err(already_taken());
    }
    match write_grab(&st, order, rider, claims.name.as_deref()).await {
        Ok(order) => {
            metrics::counter!("tracker_grabs_total", "outcome" => "won").increment(1);
            Ok((StatusCode::OK, Json(order)))
        }
        Err(e) => {
            // Whatever happened, this rider does not hold the order: let the
            // pool follow the store again.
            if let Err(r) = st.deps.dispatch.release(&id, rider).await {
                tracing::warn!(error = %r, order = %id, "releasing a failed grab's claim");
            }
            metrics::counter!("tracker_grabs_total", "outcome" => "lost_on_write").increment(1);
            Err(e)
        }
    }
}

fn already_taken() -> ApiError {
    ApiError::conflict("already_taken", "another rider has this order")
}

fn refuse_unless_ready(order: &Order) -> Result<(), ApiError> {
    match order.status {
        Status::Ready => Ok(()),
        s if s.rider_attached() || s.picked_up_or_later() => Err(already_taken()),
        s => Err(ApiError::conflict(
            "not_open",
            format!("the order is {s}, not open for riders"),
        )),
    }
}

/// Writes the assignment of a won grab with the store's version check; when
/// another field moved meanwhile it reads again and retries while still ready.
async fn write_grab(
    st: &AppState,
    mut order: Order,
    rider: &str,
    name: Option<&str>,
) -> Result<Order, ApiError> {
    for _ in 0..GRAB_WRITES {
        let now = st.deps.clock.now_ms();
        let exp = Expected {
            version: Some(order.version),
            status_version: None,
        };
        let Change::Changed {
            order: next,
            events,
        } = order.assign(rider, name, exp, now)?
        else {
            return Ok(order);
        };
        match write(st, &next, order.version, &events).await {
            Ok(()) => return Ok(*next),
            Err(StoreError::Conflict) => {
                order = st.deps.store.get_order(&order.id).await?;
                refuse_unless_ready(&order)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(already_taken())
}
