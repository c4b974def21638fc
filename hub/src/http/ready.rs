//! `/readyz`: whether this process should be sent traffic now. It is not while
//! it drains before a stop, nor while one of its backends does not answer;
//! `/healthz` only says that the process is up.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One backend's check: `Err` names what failed.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long a backend may take to answer before it counts as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long an answer of the backends is reused: `/readyz` takes no token,
/// so however often it is asked, the backends are asked at most this often.
pub const ANSWER_KEPT: Duration = Duration::from_secs(1);

/// The process's readiness: its backends' probes and whether it drains.
/// Clones share it.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: AtomicBool,
    probes: Mutex<Vec<(&'static str, Probe)>>,
    /// The backends' last answer and when it came.
    last: Mutex<Option<(tokio::time::Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Ready, with no backend to ask yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the check of backend `name`.
    pub fn probe<F, Fut>(&self, name: &'static str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let probe: Probe = Arc::new(move || Box::pin(check()));
        self.inner
            .probes
            .lock()
            .expect("probes lock")
            .push((name, probe));
    }

    /// From now on the process is draining: `/readyz` answers 503.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    /// Whether [`Readiness::drain`] was called.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// `Ok` when the process is not draining and every backend answered
    /// within [`PROBE_TIMEOUT`]; else why not. The probes run together; their
    /// answer is reused for [`ANSWER_KEPT`].
    pub async fn check(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining before a stop".into());
        }
        let now = tokio::time::Instant::now();
        if let Some((at, answer)) = self.inner.last.lock().expect("answer lock").as_ref()
            && now.duration_since(*at) < ANSWER_KEPT
        {
            return answer.clone();
        }
        let answer = self.ask_backends().await;
        *self.inner.last.lock().expect("answer lock") = Some((now, answer.clone()));
        answer
    }

    /// Every probe, together, each within [`PROBE_TIMEOUT`].
    async fn ask_backends(&self) -> Result<(), String> {
        let probes: Vec<(&'static str, Probe)> =
            self.inner.probes.lock().expect("probes lock").clone();
        let answers =
            futures_util::future::join_all(probes.into_iter().map(|(name, probe)| async move {
                match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("{name}: {e}")),
                    Err(_) => Err(format!("{name}: no answer in {PROBE_TIMEOUT:?}")),
                }
            }))
            .await;
        let failed: Vec<String> = answers.into_iter().filter_map(Result::err).collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// `GET /readyz`: 200 `{"ready":true}`, or 503 `not_ready` with the reason.
pub async fn readyz(State(ready): State<Readiness>) -> Response {
    match ready.check().await {
        Ok(()) => Json(serde_json::json!({ "ready": true })).into_response(),
        Err(why) => {
            metrics::counter!("tracker_not_ready_total").increment(1);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "error": "not_ready", "message": why })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_until_a_backend_fails_or_times_out_or_the_process_drains() {
        let r = Readiness::new();
        assert_eq!(r.check().await, Ok(()));
        tokio::time::advance(ANSWER_KEPT).await;
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        r.probe("redis", move || {
            let up = flag.load(Ordering::Acquire);
            async move { if up { Ok(()) } else { Err("refused".into()) } }
        });
        assert_eq!(r.check().await, Ok(()));
        up.store(false, Ordering::Release);
        assert_eq!(r.check().await, Ok(()), "the answer of a moment ago");
        tokio::time::advance(ANSWER_KEPT).await;
        assert_eq!(r.check().await, Err("redis: refused".into()));
        up.store(true, Ordering::Release);
        r.drain();
        assert!(r.check().await.unwrap_err().contains("draining"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_hangs_counts_as_not_answering() {
        let r = Readiness::new();
        r.probe("store", std::future::pending);
        let why = r.check().await.unwrap_err();
        assert!(why.starts_with("store: no answer"), "{why}");
    }
}
