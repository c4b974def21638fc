//! `POST /v1/riders/me/pos`: a rider's fixes over HTTP, for apps and networks
//! where MQTT is not possible.
//!
//! The body is one fix (a JSON object) or a batch (a JSON array), exactly as on
//! `riders/{id}/pos` and `…/pos/batch`; the rider is the token's `sub`. The same
//! validation, counters and routing as MQTT ingest run on it (one
//! `tracker_routing::Router`).

use super::error::ApiError;
use super::extract::Caller;
use crate::auth::Role;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use tracker_domain::RejectReason;
use tracker_domain::rider::is_valid_rider_id;
use tracker_routing::{Kind, Router};

/// Takes one fix or a batch from the calling rider.
pub async fn post_fixes(
    State(fixes): State<Arc<Router>>,
    Caller(claims): Caller,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if claims.role != Role::Rider {
        return Err(ApiError::forbidden("only riders report positions"));
    }
    if !is_valid_rider_id(&claims.sub) {
        return Err(ApiError::bad_request(
            "the token's rider id is not 1..=64 of [A-Za-z0-9_.-]",
        ));
    }
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let kind = if batch { Kind::Batch } else { Kind::Single };
    let outcome = fixes.handle_payload(&claims.sub, kind, &body).await?;
    if outcome.accepted == 0
        && let Some(reason) = outcome
            .rejected
            .first()
            .filter(|_| outcome.rejected.len() == 1)
    {
        if *reason == RejectReason::RateLimited {
            return Err(ApiError::rate_limited(
                "more fixes than this rider's rate allows (TRACKER_FIX_RATE)",
            ));
        }
        return Err(ApiError::bad_request(format!(
            "fix rejected: {}",
            reason.as_str()
        )));
    }
    let mut rejected: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &outcome.rejected {
        *rejected.entry(r.as_str()).or_default() += 1;
    }
    Ok(Json(
        serde_json::json!({ "accepted": outcome.accepted, "rejected": rejected }),
    ))
}
