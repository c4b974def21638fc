//! The dispatch endpoints: open orders near a rider, the grab, riders near a point.

use super::error::ApiError;
use super::extract::{Admin, Caller};
use crate::orders::Orders;
use crate::orders::nearby::{NearQuery, Nearby, may_see_open_orders};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use tracker_domain::Order;

/// `GET /v1/dispatch/nearby`: open orders by distance of their pickup (riders, operators).
pub async fn nearby(
    State(near): State<Nearby>,
    Caller(claims): Caller,
    q: Result<Query<NearQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    may_see_open_orders(&claims)?;
    let Query(q) = q?;
    let orders = near.orders(&q).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

/// `GET /v1/dispatch/riders`: riders heard from lately, by distance (operators).
pub async fn riders(
    State(near): State<Nearby>,
    _: Admin,
    q: Result<Query<NearQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q?;
    let riders = near.riders(&q).await?;
    Ok(Json(serde_json::json!({ "riders": riders })))
}

/// `POST /v1/orders/{id}/grab`: the calling rider takes an open order. Exactly
/// one of any number of concurrent grabs wins (200 with the order); the rest
/// get 409 `already_taken`; an order not open for riders gets 409 `not_open`.
pub async fn grab(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    Ok((StatusCode::OK, Json(orders.grab(&claims, &id).await?)))
}
