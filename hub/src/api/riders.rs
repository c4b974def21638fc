//! `POST /v1/riders/me/pos`: a rider's fixes over HTTP, for apps and networks
//! where MQTT is not possible.
//!
//! The body is one fix (a JSON object) or a batch (a JSON array), exactly as on
//! `riders/{id}/pos` and `…/pos/batch`; the rider is the token's `sub`. The same
//! validation, counters and routing as MQTT ingest run on it (one `Router`).

use crate::AppState;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use std::collections::BTreeMap;
use tracker_ingest::topic::{self, Kind};

/// Takes one fix or a batch from the calling rider.
pub async fn post_fixes(
    State(st): State<AppState>,
    Caller(claims): Caller,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    if claims.role != Role::Rider {
        return Err(ApiError::forbidden("only riders report positions"));
    }
    if topic::parse(&format!("riders/{}/pos", claims.sub)).is_none() {
        return Err(ApiError::bad_request(
            "the token's rider id is not 1..=64 of [A-Za-z0-9_.-]",
        ));
    }
    let batch = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let kind = if batch { Kind::Batch } else { Kind::Single };
    let outcome = st
        .deps
        .fixes
        .handle_payload(&claims.sub, kind, &body)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "routing fixes from HTTP failed");
            ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: "try again".into(),
            }
        })?;
    if outcome.accepted == 0
        && let Some(reason) = outcome
            .rejected
            .first()
            .filter(|_| outcome.rejected.len() == 1)
    {
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
