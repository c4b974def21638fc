//! `GET /v1/orders/{id}/events?since=SEQ&wait=SECONDS`: long-poll, the last fallback.
//!
//! Answers at once with every event after `since` the log still holds; with
//! none, waits (default 25 s, at most 55 s) for the order's next event and
//! answers with what the log then holds, possibly nothing. Where history no
//! longer reaches back (or `epoch` differs, or `since` is absent) the answer is
//! one snapshot, with `"recovered":false` when a `since` was given. `next` is the
//! seq to send as `since` next time, `epoch` the one to send beside it. The
//! fan-out registration wakes the request; what is returned comes from the log,
//! so it is complete and in order, except when one append held more events
//! than the log keeps (a rider's 2000-fix offline batch against a history of
//! 1000): then the deliveries that woke the request, when they continue
//! `since` without a hole up to the log's top, are the answer.

use super::Watchers;
use super::fanout::{ConnSignal, Delivery, Subscriber};
use super::watcher::{event_text, next_conn_id, same_history, snapshot_text};
use crate::http::error::ApiError;
use crate::http::extract::{Caller, ClientIp};
use crate::orders::queries::watchable;
use axum::extract::ws::Utf8Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracker_backend::log::OrderKey;

/// Longest wait a client may ask for, seconds.
pub const MAX_WAIT: u64 = 55;
/// Wait when the client names none, seconds.
pub const DEFAULT_WAIT: u64 = 25;

/// Query of the long-poll endpoint.
#[derive(Debug, Deserialize)]
pub struct PollQuery {
    /// The last seq the client holds.
    pub since: Option<u64>,
    /// Seconds to wait for something new (default 25, at most 55).
    pub wait: Option<u64>,
    /// The epoch of `since`, from an earlier snapshot.
    pub epoch: Option<String>,
}

/// Removes a one-order fan-out registration when the request ends.
struct Registration {
    hub: Watchers,
    order: OrderKey,
    conn: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.fanout.remove(&self.order, self.conn);
    }
}

fn answer(events: &[Utf8Bytes], next: u64, epoch: &str) -> Response {
    let body = format!(
        "{{\"events\":[{}],\"next\":{next},\"epoch\":{}}}",
        events
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(","),
        serde_json::Value::from(epoch)
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// One long-poll request.
pub async fn poll(
    State(hub): State<Watchers>,
    ClientIp(ip): ClientIp,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
    Query(q): Query<PollQuery>,
) -> Result<Response, ApiError> {
    // Every request is a connection of its own: admitted, and its token checked, anew.
    let (claims, _admission) = hub.admit(ip, caller)?;
    let row = watchable(&hub.reads, &claims, &id).await?;
    let wait = Duration::from_secs(q.wait.unwrap_or(DEFAULT_WAIT).min(MAX_WAIT));
    // Registered before the first read, so an event appended meanwhile still wakes us.
    let (tx, mut rx) = mpsc::channel(8);
    let signal = Arc::new(ConnSignal::default());
    let reg = Registration {
        hub: hub.clone(),
        order: Arc::from(id.as_str()),
        conn: next_conn_id(),
    };
    hub.fanout
        .add(
            reg.order.clone(),
            Subscriber {
                conn: reg.conn,
                tx,
                signal: signal.clone(),
                view: claims.view(),
            },
        )
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let limit = hub.cfg.resume_limit;
    // What the fan-out handed over while we waited: the answer when the log
    // no longer holds it all (one append of more events than the history keeps).
    let mut woken_by: Vec<Arc<Delivery>> = Vec::new();
    loop {
        let read = hub.log.read(&id, q.since, limit).await?;
        let same_epoch = same_history(q.since, q.epoch.as_deref(), &read.epoch);
        let missed = match (q.since, read.missed) {
            (Some(since), None) if same_epoch => following(&woken_by, since, read.state.seq),
            (_, missed) => missed.map(Missed::Logged),
        };
        match (q.since, missed) {
            (Some(since), Some(missed)) if same_epoch => {
                if let Some((texts, last)) = missed.texts(claims.view()) {
                    return Ok(answer(&texts, last, &read.epoch));
                }
                let woken = tokio::select! {
                    d = rx.recv() => {
                        woken_by.extend(d);
                        while let Ok(d) = rx.try_recv() {
                            woken_by.push(d);
                        }
                        true
                    }
                    _ = signal.woken() => true,
                    _ = tokio::time::sleep_until(deadline) => false,
                    _ = hub.stop.cancelled() => false,
                };
                if !woken {
                    return Ok(answer(&[], since, &read.epoch));
                }
            }
            (since, _) => {
                let recovered = since.map(|_| false);
                let (text, seq) = snapshot_text(
                    &id,
                    read.state,
                    &read.epoch,
                    recovered,
                    Some(&row),
                    claims.view(),
                );
                return Ok(answer(&[text], seq, &read.epoch));
            }
        }
    }
}

/// The events after the client's `since`, from the log or from the fan-out.
enum Missed {
    Logged(Vec<Arc<tracker_backend::Entry>>),
    /// Runs of the fan-out, and the `since` before them.
    Delivered(u64, Vec<Arc<Delivery>>),
}

impl Missed {
    /// Their frames as `view` sees them and the last seq; `None` when there are none.
    fn texts(&self, view: tracker_domain::view::View) -> Option<(Vec<Utf8Bytes>, u64)> {
        match self {
            Missed::Logged(entries) => {
                let last = entries.last()?.seq;
                let texts = entries
                    .iter()
                    .filter_map(|e| event_text(view, &e.json))
                    .collect();
                Some((texts, last))
            }
            Missed::Delivered(since, runs) => {
                // Each seq once, in order, however the runs overlap.
                let mut next = since + 1;
                let mut texts = Vec::new();
                for e in runs.iter().flat_map(|d| d.events.iter()) {
                    if e.seq == next {
                        texts.push(e.text_for(view).clone());
                        next += 1;
                    }
                }
                (!texts.is_empty()).then(|| (texts, next - 1))
            }
        }
    }
}

/// The fan-out's deliveries that continue `since` without a hole exactly up
/// to the log's `top`, when the log itself no longer reaches back.
fn following(woken_by: &[Arc<Delivery>], since: u64, top: u64) -> Option<Missed> {
    if since >= top {
        return None;
    }
    let mut next = since.checked_add(1)?;
    let mut runs = Vec::new();
    for d in woken_by {
        let (Some(first), Some(last)) = (d.events.first(), d.events.last()) else {
            continue;
        };
        if last.seq < next {
            continue; // already covered
        }
        if first.seq > next {
            return None; // a hole
        }
        next = last.seq.checked_add(1)?;
        runs.push(d.clone());
    }
    // Ending past the log's top would be another history's events.
    (next == top + 1).then_some(Missed::Delivered(since, runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watchers::fanout::LiveEvent;
    use tracker_domain::view::View;

    fn run(seqs: std::ops::RangeInclusive<u64>) -> Arc<Delivery> {
        Arc::new(Delivery {
            order: "O1".into(),
            events: seqs
                .map(|seq| LiveEvent {
                    seq,
                    ts: 0,
                    text: format!("{{\"seq\":{seq}}}").into(),
                    customer: None,
                    access: None,
                })
                .collect(),
        })
    }

    fn answer_of(woken_by: &[Arc<Delivery>], since: u64, top: u64) -> Option<(Vec<String>, u64)> {
        let (texts, last) = following(woken_by, since, top)?.texts(View::Full)?;
        Some((texts.iter().map(|t| t.as_str().to_owned()).collect(), last))
    }

    #[test]
    fn deliveries_answer_only_when_they_continue_since_to_the_top() {
        let (texts, last) = answer_of(&[run(5..=7), run(8..=10)], 4, 10).unwrap();
        assert_eq!((texts.len(), last), (6, 10));
        assert!(
            answer_of(&[run(5..=7), run(9..=10)], 4, 10).is_none(),
            "a hole"
        );
        assert!(
            answer_of(&[run(5..=7)], 4, 10).is_none(),
            "short of the top"
        );
        assert!(
            answer_of(&[run(5..=12)], 4, 10).is_none(),
            "past the top: another history"
        );
        assert!(
            answer_of(&[run(1..=3)], 10, 0).is_none(),
            "since above the top"
        );
        assert!(
            answer_of(&[run(1..=3)], u64::MAX, 3).is_none(),
            "no overflow"
        );
    }

    #[test]
    fn overlapping_runs_give_each_event_once_in_order() {
        let (texts, last) = answer_of(&[run(3..=6), run(5..=8), run(2..=4)], 4, 8).unwrap();
        assert_eq!(last, 8);
        let want: Vec<String> = (5..=8).map(|s| format!("{{\"seq\":{s}}}")).collect();
        assert_eq!(texts, want);
    }
}
