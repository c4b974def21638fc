//! The orders API (`docs/protocol.md`): create (idempotent), get, list, status
//! transition, assign, track. Each handler checks who calls, reads the request
//! and hands it to the use case in `hub/src/orders/`.

use super::error::ApiError;
use super::extract::{Admin, ApiJson, Caller};
use crate::auth::Auth;
use crate::orders::Orders;
use crate::orders::commands::{Assignment, StatusChange};
use crate::orders::shares::{Share, ShareRequest};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use std::sync::Arc;
use tracker_domain::{NewOrder, Order};

type OrderAnswer = Result<(StatusCode, Json<Order>), ApiError>;

/// `POST /v1/orders`: 201 with a new order, 200 with the existing one for a repeated key.
pub async fn create(
    State(orders): State<Orders>,
    _: Admin,
    ApiJson(new): ApiJson<NewOrder>,
) -> OrderAnswer {
    let (order, created) = orders.create(new).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(order)))
}

/// `GET /v1/orders/{id}`: admins, the order's customer (who gets the rider's
/// first name and not their id), its rider.
pub async fn get(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> OrderAnswer {
    Ok((StatusCode::OK, Json(orders.get(&claims, &id).await?)))
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
    State(orders): State<Orders>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let orders = orders.active(q.limit).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

/// `POST /v1/orders/{id}/status`: one transition; 409 stale version, 422 illegal.
pub async fn change_status(
    State(orders): State<Orders>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusChange>,
) -> OrderAnswer {
    Ok((StatusCode::OK, Json(orders.change_status(&id, body).await?)))
}

/// `POST /v1/orders/{id}/assign`: `ready → assigned` to a rider (operators).
pub async fn assign(
    State(orders): State<Orders>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Assignment>,
) -> OrderAnswer {
    Ok((StatusCode::OK, Json(orders.assign(&id, body).await?)))
}

/// `PUT /v1/orders/{id}/route`: sets (or with `null` removes) the planned route (admins).
pub async fn set_route(
    State(orders): State<Orders>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<crate::orders::trips::RouteBody>,
) -> OrderAnswer {
    Ok((StatusCode::OK, Json(orders.set_route(&id, body).await?)))
}

/// `GET /v1/alerts`: the open alerts of all orders (admins).
pub async fn alerts(
    State(orders): State<Orders>,
    _: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let alerts = orders.open_alerts().await?;
    Ok(Json(serde_json::json!({ "alerts": alerts })))
}

/// `GET /v1/orders/{id}/track`: the stored trip of the order's rider, oldest
/// first. Whoever may watch the order may read it; its customer gets the part
/// from pick-up on only.
pub async fn track(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<crate::orders::queries::Trip>, ApiError> {
    Ok(Json(orders.trip(&claims, &id).await?))
}

/// `POST /v1/orders/{id}/share`: a viewer token for the order (admins and
/// its customer); the body `{"ttl_secs":N}` may be left out.
pub async fn share(
    State(orders): State<Orders>,
    State(auth): State<Arc<Auth>>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Share>), ApiError> {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        ShareRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    let share = orders.share(&auth, &claims, &id, req).await?;
    Ok((StatusCode::CREATED, Json(share)))
}

/// `DELETE /v1/orders/{id}/share`: revokes every share link of the order;
/// their sockets close with 4001 on every hub node.
pub async fn revoke_shares(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    orders.revoke_shares(&claims, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
