//! The hub's router: the router state made of substates, and every route.
//!
//! The API (`hub/src/http/`) and the watcher transports (`hub/src/watchers/`)
//! each declare their routes over any state that holds what their handlers
//! take; this file is the one place that knows both.

use crate::auth::Auth;
use crate::http::{self, web};
use crate::orders::Orders;
use crate::orders::nearby::Nearby;
use crate::watchers::{self, Watchers};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;

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

/// Every route of the hub; `timeout` bounds ordinary API requests.
pub fn router(
    state: AppState,
    timeout: Duration,
    web: &web::WebConfig,
    metrics: Option<PrometheusHandle>,
) -> Router {
    Router::new()
        .merge(watchers::routes())
        .merge(http::api_routes(timeout))
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(web::router(web))
        .merge(http::ops_router(metrics))
}
