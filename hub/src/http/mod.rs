//! The HTTP layer: routes, middleware, health and metrics, and the router's
//! state made of substates, so each handler takes only the parts it uses.
//!
//! - [`extract`]: who is calling (the token extractors) and JSON bodies.
//! - [`error`]: the one HTTP error type and every conversion into it.
//! - [`orders`], [`dispatch`], [`riders`]: the API's handlers, thin over
//!   the use cases of `hub/src/orders/`.
//! - [`web`]: the pages.
//!
//! The watcher transports (WebSocket, SSE, long-poll) are routed here and live
//! with the rest of the watcher side in `hub/src/watchers/`.

pub mod dispatch;
pub mod error;
pub mod extract;
pub mod orders;
pub mod riders;
pub mod web;

use crate::auth::Auth;
use crate::orders::Orders;
use crate::orders::nearby::Nearby;
use crate::watchers::{Watchers, long_poll, sse, ws};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Largest JSON body the API reads.
const MAX_BODY: usize = 64 * 1024;
/// Largest body of `POST /v1/riders/me/pos`, as for a fix payload over MQTT.
const FIXES_BODY: usize = 256 * 1024;

/// The router's state: one substate per kind of handler (`FromRef`).
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Token verification, for the extractors.
    pub auth: Arc<Auth>,
    /// The order use cases.
    pub orders: Orders,
    /// Position queries of dispatch.
    pub nearby: Nearby,
    /// The watcher side (WebSocket, SSE, long-poll).
    pub watchers: Watchers,
    /// Fix routing, for riders' fixes over HTTP.
    pub fixes: Arc<tracker_routing::Router>,
}

/// Every route of the hub; `timeout` bounds ordinary requests.
pub fn router(
    state: AppState,
    timeout: Duration,
    web: &web::WebConfig,
    metrics: Option<PrometheusHandle>,
) -> Router {
    let api = Router::new()
        .route("/v1/orders", post(orders::create).get(orders::list_active))
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/status", post(orders::change_status))
        .route("/v1/orders/{id}/assign", post(orders::assign))
        .route("/v1/orders/{id}/track", get(orders::track))
        .route("/v1/orders/{id}/grab", post(dispatch::grab))
        .route("/v1/dispatch/nearby", get(dispatch::nearby))
        .route("/v1/dispatch/riders", get(dispatch::riders))
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
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/orders/{id}/sse", get(sse::sse))
        .route("/v1/orders/{id}/events", get(long_poll::poll))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(web::router(web))
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
