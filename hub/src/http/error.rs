//! The one HTTP error type: a status and `{"error":"<code>","message":"…"}`
//! (`docs/protocol.md`), and every conversion into it.
//!
//! Every backend outage is 503 `unavailable`, on every transport; internal
//! failures are 500. The detail of both is logged here, with its causes, and
//! answered with a generic message, so storage errors never leak to clients.

use crate::auth::AuthError;
use crate::orders::OrderError;
use crate::watchers::watcher::SubError;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::error::Error;
use std::fmt::Write;
use tracker_backend::LogError;
use tracker_domain::order::ChangeError;
use tracker_gate::Refusal;
use tracker_routing::RouteError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code (`bad_request`, `version_conflict`, …).
    pub code: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Seconds for a `Retry-After` header (rate limits, overload).
    pub retry_after: Option<u64>,
    /// The SKU an `out_of_stock` refusal names.
    pub sku: Option<String>,
}

/// `e` and its causes, `: `-separated, for the log.
fn chain(e: &dyn Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.ends_with(&text) {
            let _ = write!(out, ": {text}");
        }
        cause = c.source();
    }
    out
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            sku: None,
        }
    }
    /// 429 `rate_limited`, retry in a second.
    pub fn rate_limited(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
    /// 503 `overloaded`: a connection cap or the API's concurrency limit.
    pub fn overloaded(message: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message)
        }
    }
    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 403: authenticated, but not allowed this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404: no such order.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such order")
    }
    /// 404 of something other than an order.
    pub fn not_found_named(message: &'static str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 405: the route exists, the method does not.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }
    /// 409 with a code of its own (`already_taken`, `not_open`, `refund_required`).
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 503: a backend is unreachable; the detail goes to the log only.
    pub fn unavailable(detail: &dyn Error) -> Self {
        tracing::warn!(detail = %chain(detail), "backend unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a backend is unavailable; try again",
        )
    }
    /// 500: something broke on our side; the detail goes to the log only.
    pub fn internal(detail: &dyn Error) -> Self {
        tracing::error!(detail = %chain(detail), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some(sku) = self.sku {
            body["sku"] = sku.into();
        }
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Blocked => Self::new(StatusCode::FORBIDDEN, "blocked", r.to_string()),
            Refusal::RateLimited { .. } => ApiError {
                retry_after: Some(r.retry_after_secs()),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", r.to_string())
            },
            Refusal::Overloaded | Refusal::UserOverloaded => Self::overloaded(r.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
    }
}

impl From<OrderError> for ApiError {
    fn from(e: OrderError) -> Self {
        match e {
            OrderError::BadRequest(m) => ApiError::bad_request(m),
            OrderError::NotFound => ApiError::not_found(),
            OrderError::Forbidden(m) => ApiError::forbidden(m),
            OrderError::VersionConflict => {
                ApiError::conflict("version_conflict", OrderError::VersionConflict.to_string())
            }
            OrderError::Change(e) => e.into(),
            OrderError::Conflict { code, message } => ApiError::conflict(code, message),
            OrderError::OutOfStock { sku } => ApiError {
                sku: Some(sku.clone()),
                ..ApiError::conflict("out_of_stock", format!("`{sku}` is out of stock"))
            },
            OrderError::Unavailable(_) => ApiError::unavailable(&e),
            OrderError::Internal(_) => ApiError::internal(&e),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Stale { .. } => ApiError::conflict("version_conflict", e.to_string()),
            ChangeError::Illegal { .. } | ChangeError::Invalid(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "illegal_transition",
                e.to_string(),
            ),
        }
    }
}

impl From<SubError> for ApiError {
    fn from(e: SubError) -> Self {
        match e {
            SubError::BadRequest => ApiError::bad_request("order id must be 1..=128 characters"),
            SubError::NotFound => ApiError::not_found(),
            SubError::Forbidden => ApiError::forbidden("you may not watch this order"),
            // The cause was logged where it happened (the watcher).
            SubError::TooMany | SubError::Unavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
            }
        }
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> Self {
        ApiError::unavailable(&e)
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        tracing::warn!(error = %chain(&e), "routing fixes from HTTP failed");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
            }
            // axum answers 415/422 for some of these; the API says 400 for any bad input.
            _ => ApiError::bad_request(e.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(e.body_text())
    }
}
