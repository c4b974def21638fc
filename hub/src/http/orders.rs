//! The orders API (`docs/protocol.md`): create (idempotent), get, list and
//! look up, status transition, assign, package transition, refund, history, track
//! (as JSON, GPX or CSV) and the trip report. Each handler checks who calls, reads the request
//! and hands it to the use case in `hub/src/orders/`.

use super::error::ApiError;
use super::extract::{Admin, ApiJson, Caller};
use crate::auth::{Auth, Claims, Role};
use crate::orders::Orders;
use crate::orders::commands::{Assignment, PackageChange, StatusChange};
use crate::orders::queries::{History, Include, LookupQuery};
use crate::orders::shares::{Share, ShareRequest};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use tracker_domain::goods::Package;
use tracker_domain::refund::RefundRequest;
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

/// Query of `GET /v1/orders/{id}`.
#[derive(Debug, Deserialize)]
pub struct GetQuery {
    /// `items`, `packages` or both, comma-separated.
    pub include: Option<String>,
}

/// `GET /v1/orders/{id}`: admins, the order's customer (who gets the rider's
/// first name and not their id), its rider, a share link (no phones).
pub async fn get(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(q): Query<GetQuery>,
) -> OrderAnswer {
    let include = Include::parse(q.include.as_deref())?;
    Ok((
        StatusCode::OK,
        Json(orders.get(&claims, &id, include).await?),
    ))
}

/// `GET /v1/orders`: with `customer_id` or `biz_order_no`, one page of a
/// lookup (`{"orders","next"}`); without, the orders still under way, newest
/// first (operators): the operator page's list, which it then watches one by one.
pub async fn list(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Query(q): Query<LookupQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.customer_id.is_some() || q.biz_order_no.is_some() {
        let page = orders.lookup(&claims, q).await?;
        return Ok(Json(serde_json::json!(page)));
    }
    if claims.role != Role::Admin {
        return Err(ApiError::forbidden("this call needs an admin token"));
    }
    if q.cursor.is_some() || q.biz_type.is_some() {
        return Err(ApiError::bad_request(
            "`cursor` and `biz_type` go with `customer_id` or `biz_order_no`",
        ));
    }
    let orders = orders.active(q.limit).await?;
    Ok(Json(serde_json::json!({ "orders": orders })))
}

/// `GET /v1/orders/{id}/history`: every status change of the order and its
/// packages, oldest first; whoever may watch the order may read it.
pub async fn history(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<History>, ApiError> {
    Ok(Json(orders.history(&claims, &id).await?))
}

/// `POST /v1/orders/{id}/packages/{package_no}/status`: one package
/// transition (admins); answers the package; 409 stale version, 422 illegal.
pub async fn move_package(
    State(orders): State<Orders>,
    Admin(claims): Admin,
    Path((id, package_no)): Path<(String, String)>,
    ApiJson(body): ApiJson<PackageChange>,
) -> Result<Json<Package>, ApiError> {
    let actor = actor(&claims);
    Ok(Json(
        orders.move_package(&id, &package_no, body, &actor).await?,
    ))
}

/// `POST /v1/orders/{id}/refund` (admins, the payment system): 202
/// `{"refund":{…},"order":id,"status"}`, the refund `pending` or `done`
/// (or `refused`); the same `biz_refund_no` again is the same refund.
pub async fn refund(
    State(orders): State<Orders>,
    _: Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RefundRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let order = orders.refund(&id, body).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "refund": order.refund,
            "order": order.id,
            "status": order.status,
        })),
    ))
}

/// Who an admin's change is recorded as made by in the history.
fn actor(claims: &Claims) -> String {
    format!("admin:{}", claims.sub)
}

/// `POST /v1/orders/{id}/status`: one transition; 409 stale version, 422 illegal.
pub async fn change_status(
    State(orders): State<Orders>,
    Admin(claims): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StatusChange>,
) -> OrderAnswer {
    let order = orders.change_status(&id, body, &actor(&claims)).await?;
    Ok((StatusCode::OK, Json(order)))
}

/// `POST /v1/orders/{id}/assign`: `ready → assigned` to a rider (operators).
pub async fn assign(
    State(orders): State<Orders>,
    Admin(claims): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Assignment>,
) -> OrderAnswer {
    let order = orders.assign(&id, body, &actor(&claims)).await?;
    Ok((StatusCode::OK, Json(order)))
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

/// `?format=` of `GET /v1/orders/{id}/track`.
#[derive(Debug, Default, Deserialize)]
pub struct TrackQuery {
    /// `json` (the default), `gpx` or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /v1/orders/{id}/track`: the stored trip of the order's rider, oldest
/// first, as JSON, or as a GPX 1.1 or CSV file (`?format=gpx|csv`). Whoever
/// may watch the order may read it; its customer gets the part from pick-up
/// on only.
pub async fn track(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(q): Query<TrackQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "gpx" | "csv") {
        return Err(ApiError::bad_request("format must be json, gpx or csv"));
    }
    let trip = orders.trip(&claims, &id).await?;
    let file = |kind: &'static str, ext: &str, body: String| {
        let name = format!("attachment; filename=\"order-{}.{ext}\"", trip.order);
        (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&name).unwrap_or(HeaderValue::from_static("attachment")),
                ),
            ],
            body,
        )
            .into_response()
    };
    Ok(match format {
        "gpx" => file("application/gpx+xml", "gpx", super::track_files::gpx(&trip)),
        "csv" => file(
            "text/csv; charset=utf-8",
            "csv",
            super::track_files::csv(&trip),
        ),
        _ => Json(trip).into_response(),
    })
}

/// `GET /v1/orders/{id}/trip`: the trip summed up from the stored track
/// (distance, time moving and stopped, stops, speeds), for whoever may read
/// the track and with the same view.
pub async fn trip(
    State(orders): State<Orders>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<tracker_trips::report::TripReport>, ApiError> {
    let trip = orders.trip(&claims, &id).await?;
    Ok(Json(tracker_trips::report::report(
        &trip.order,
        &trip.points,
    )))
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
