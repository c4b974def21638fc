//! The HTTP surface: routes, middleware, health and metrics.

pub mod long_poll;
pub mod orders;
pub mod riders;
pub mod sse;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest JSON body the API reads.
const MAX_BODY: usize = 64 * 1024;
/// Largest body of `POST /v1/riders/me/pos`, as for a fix payload over MQTT.
const FIXES_BODY: usize = 256 * 1024;

/// Every route of the hub.
pub fn router(state: AppState) -> Router {
    let timeout = state.cfg.http_timeout;
    let metrics = state.deps.metrics.clone();
    let web = state.cfg.web.clone();
    let api = Router::new()
        .route("/v1/orders", post(orders::create).get(orders::list_active))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/status", post(orders::change_status))
        .route("/v1/orders/{id}/assign", post(orders::assign))
        .route("/v1/orders/{id}/track", get(orders::track))
        .route("/v1/orders/{id}/grab", post(crate::dispatch::api::grab))
        .route("/v1/dispatch/nearby", get(crate::dispatch::api::nearby))
        .route("/v1/dispatch/riders", get(crate::dispatch::api::riders))
        .route(
            "/v1/riders/me/pos",
            // A batch of 2000 fixes is ~100 KiB: the same bound as MQTT payloads.
            post(riders::post_fixes).layer(DefaultBodyLimit::max(FIXES_BODY)),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ));
    // WebSockets, SSE and long-polls live outside the request timeout: they are
    // long by design, and bound their own waits.
    Router::new()
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/v1/orders/{id}/sse", get(sse::sse))
        .route("/v1/orders/{id}/events", get(long_poll::poll))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(crate::web::router(&web))
        .merge(ops_router(metrics))
}

/// `/healthz` and `/metrics`: what every process serves, the hub and `tracker ingest` alike.
pub fn ops_router(metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    match metrics {
                        Some(h) => (StatusCode::OK, h.render()),
                        None => (
                            StatusCode::NOT_FOUND,
                            "metrics recorder not installed".to_owned(),
                        ),
                    }
                }
            }),
        )
}
