//! The HTTP surface: routes, middleware, health and metrics.

pub mod orders;

use crate::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest JSON body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// Every route of the hub.
pub fn router(state: AppState) -> Router {
    let timeout = state.cfg.http_timeout;
    let api = Router::new()
        .route("/v1/orders", post(orders::create))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/status", post(orders::change_status))
        .route("/v1/orders/{id}/assign", post(orders::assign))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    // WebSockets live outside the request timeout: they are long by design.
    Router::new()
        .route("/v1/ws", get(crate::ws::upgrade))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match &state.deps.metrics {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::NOT_FOUND,
            "metrics recorder not installed".to_owned(),
        ),
    }
}
