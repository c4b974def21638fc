//! The hub's router: the router state made of substates, and every route.
//!
//! The API (`hub/src/http/`) and the watcher transports (`hub/src/watchers/`)
//! each declare their routes over any state that holds what their handlers
//! take; this file is the one place that knows both.

use crate::auth::Auth;
use crate::http::error::ApiError;
use crate::http::extract::ClientIp;
use crate::http::ready::Readiness;
use crate::http::{self, web};
use crate::orders::Orders;
use crate::orders::nearby::Nearby;
use crate::watchers::{self, Watchers};
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use tracker_gate::Gate;

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
    /// Admission: the block list, connection rates and caps.
    pub gate: Gate,
}

/// Every request from a blocked address is answered 403 `blocked`.
async fn refuse_blocked(
    State(gate): State<Gate>,
    ClientIp(ip): ClientIp,
    req: Request,
    next: Next,
) -> Response {
    match gate.check_blocked(ip) {
        Ok(()) => next.run(req).await,
        Err(r) => ApiError::from(r).into_response(),
    }
}

/// Every route of the hub: `api` bounds ordinary API requests; every route
/// but `/healthz`, `/readyz` and `/metrics` refuses blocked addresses. A path
/// no route serves, or a method a route does not take, gets the JSON error body.
pub fn router(
    state: AppState,
    api: &http::ApiLimits,
    web: &web::WebConfig,
    metrics: Option<PrometheusHandle>,
    readiness: Readiness,
) -> Router {
    let gate = state.gate.clone();
    Router::new()
        .merge(watchers::routes())
        .merge(http::api_routes(api))
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .with_state(state)
        .merge(web::router(web))
        .layer(middleware::from_fn_with_state(gate, refuse_blocked))
        .layer(TraceLayer::new_for_http().make_span_with(redacted_span))
        .merge(http::ops_router(metrics, readiness))
        .fallback(http::no_route)
        .method_not_allowed_fallback(http::wrong_method)
}

/// The request span without secrets: a `token` in the query is shown as
/// `token=<redacted>` (browsers put tokens there), and no header is recorded.
fn redacted_span(req: &Request) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redact_token(req.uri()),
        version = ?req.version(),
    )
}

/// `uri` with the value of every `token=` query parameter replaced.
pub fn redact_token(uri: &axum::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("token") => format!("{k}=<redacted>"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_in_the_query_are_redacted() {
        let uri: axum::http::Uri = "/v1/ws?since=3&token=eyJhbGciOi.x.y&x=1".parse().unwrap();
        let shown = super::redact_token(&uri);
        assert_eq!(shown, "/v1/ws?since=3&token=<redacted>&x=1");
        assert!(!shown.contains("eyJ"));
    }
}
