//! `GET` and `PUT /v1/stock/{sku}` (admins): a SKU's stock, thin over
//! `hub/src/orders/stock.rs`.

use super::error::ApiError;
use super::extract::{Admin, ApiJson};
use crate::orders::stock::SetStock;
use crate::orders::{OrderError, Orders};
use axum::Json;
use axum::extract::{Path, State};
use tracker_backend::stock::StockLevel;

/// `GET /v1/stock/{sku}`: `{"sku","available","reserved","sold"}`; 404 for a
/// SKU that is not stock-controlled.
pub async fn get(
    State(orders): State<Orders>,
    _: Admin,
    Path(sku): Path<String>,
) -> Result<Json<StockLevel>, ApiError> {
    match orders.stock_level(&sku).await {
        Ok(level) => Ok(Json(level)),
        Err(OrderError::NotFound) => {
            Err(ApiError::not_found_named("no stock is kept for this SKU"))
        }
        Err(e) => Err(e.into()),
    }
}

/// `PUT /v1/stock/{sku}` `{"available":N}`: sets the units that may be
/// reserved; what is reserved or sold stays.
pub async fn put(
    State(orders): State<Orders>,
    _: Admin,
    Path(sku): Path<String>,
    ApiJson(body): ApiJson<SetStock>,
) -> Result<Json<StockLevel>, ApiError> {
    Ok(Json(orders.set_stock(&sku, body).await?))
}
