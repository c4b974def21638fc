//! The HTTP layer: the API's routes and handlers, health and metrics. Each
//! handler takes only the substates it uses (`FromRef`).
//!
//! - [`extract`]: who is calling (the token extractors) and JSON bodies.
//! - [`error`]: the one HTTP error type and every conversion into it.
//! - [`orders`], [`dispatch`], [`riders`], [`stock`]: the API's handlers, thin over
//!   the use cases of `hub/src/orders/`.
//! - [`track_files`]: a stored trip as GPX or CSV.
//! - [`web`]: the pages.
//! - [`ready`]: `/readyz`, whether the process should get traffic now.
//!
//! The watcher transports (WebSocket, SSE, long-poll) live with the rest of the
//! watcher side in `hub/src/watchers/`, which uses this layer's extractors and
//! error type; `hub/src/app.rs` puts both sets of routes together.

pub mod dispatch;
pub mod error;
pub mod extract;
pub mod orders;
pub mod ready;
pub mod riders;
pub mod stock;
pub mod track_files;
pub mod web;

use crate::auth::Auth;
use crate::orders::Orders;
use crate::orders::nearby::Nearby;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest JSON body any route reads.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest body of `POST /v1/riders/me/pos`, as for a fix payload over MQTT.
const FIXES_BODY: usize = 256 * 1024;
/// Bodies that may carry a route: 5000 points at full precision are ~250 KiB,
/// and twice the allowed points must still reach validation (400, not 413).
const ROUTE_BODY: usize = 1024 * 1024;

/// Bounds of the API's ordinary requests.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Longest an API request may take (408 after it).
    pub timeout: Duration,
    /// API requests served at once by the process; more are answered 503
    /// `overloaded` at once instead of queueing without bound.
    pub max_in_flight: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            timeout: Duration::from_secs(30),
            max_in_flight: 1024,
        }
    }
}

/// A request over the API's concurrency limit: 503 at once, counted.
async fn shed(_: tower::BoxError) -> ApiError {
    tracker_gate::count_refusal("http_overloaded");
    ApiError::overloaded("too many requests in flight; retry shortly")
}

/// The API's routes, bounded by `limits`, over any state that holds what
/// the handlers take (`FromRef`).
pub fn api_routes<S>(limits: &ApiLimits) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Orders: FromRef<S>,
    Nearby: FromRef<S>,
    Arc<Auth>: FromRef<S>,
    Arc<tracker_routing::Router>: FromRef<S>,
{
    let routes = Router::new()
        .route(
            "/v1/orders",
            post(orders::create)
                .layer(DefaultBodyLimit::max(ROUTE_BODY))
                .get(orders::list),
        )
        .route("/v1/orders/{id}", get(orders::get))
        .route("/v1/orders/{id}/history", get(orders::history))
        .route(
            "/v1/orders/{id}/packages/{package_no}/status",
            post(orders::move_package),
        )
        .route("/v1/orders/{id}/status", post(orders::change_status))
        .route("/v1/orders/{id}/assign", post(orders::assign))
        .route("/v1/orders/{id}/refund", post(orders::refund))
        .route("/v1/orders/{id}/track", get(orders::track))
        .route("/v1/orders/{id}/trip", get(orders::trip))
        .route(
            "/v1/orders/{id}/route",
            put(orders::set_route).layer(DefaultBodyLimit::max(ROUTE_BODY)),
        )
        .route("/v1/alerts", get(orders::alerts))
        .route("/v1/stock/{sku}", get(stock::get).put(stock::put))
        .route(
            "/v1/orders/{id}/share",
            post(orders::share).delete(orders::revoke_shares),
        )
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
            limits.timeout,
        ));
    limit_in_flight(routes, limits.max_in_flight)
}

/// At most `max` requests of `routes` at once, across all of them; the rest
/// are answered 503 `overloaded` at once (load shedding) rather than queued.
fn limit_in_flight<S>(routes: Router<S>, max: usize) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    routes.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(shed))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(max.max(1))),
    )
}

/// `/healthz`, `/readyz` and `/metrics`: what every process serves, the hub
/// and `tracker ingest` alike.
pub fn ops_router(metrics: Option<PrometheusHandle>, readiness: ready::Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready::readyz).with_state(readiness))
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

/// Any path no route serves: 404 with the JSON error body.
pub async fn no_route() -> ApiError {
    ApiError::not_found_named("no such route")
}

/// A route called with a method it does not take: 405 with the JSON error body.
pub async fn wrong_method() -> ApiError {
    ApiError::method_not_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_burst_over_the_limit_is_answered_503_at_once() {
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let slow = Router::new().route(
            "/slow",
            get(move || {
                let mut open = gate_rx.clone();
                async move {
                    let _ = open.wait_for(|o| *o).await;
                    "done"
                }
            }),
        );
        let app = limit_in_flight(slow, 1);
        let req = || {
            axum::http::Request::get("/slow")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let first = tokio::spawn(app.clone().oneshot(req()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = app.clone().oneshot(req()).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()["retry-after"], "1");
        gate_tx.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        let third = app.oneshot(req()).await.unwrap();
        assert_eq!(third.status(), StatusCode::OK, "the place is free again");
    }
}
