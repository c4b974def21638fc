//! `GET /v1/orders/{id}/sse`: the watcher protocol as Server-Sent Events, for
//! networks that block WebSocket.
//!
//! Each frame is one event whose `data` is the same JSON as on the WebSocket and
//! whose `id` is the order's `seq`, so a browser's `EventSource` resumes by
//! itself: it sends `Last-Event-ID`, which is taken as `since` (or `?since=`).
//! The same [`Watcher`] as the WebSocket decides what is sent, so resume, gap
//! catch-up and slow-client bounds are identical. Comments every 15 s keep
//! proxies from closing an idle stream. The stream ends when the token
//! expires (`exp` plus the leeway), its share link is revoked, or the order
//! leaves the rider watching it (after the `forbidden` frame): the browser
//! reconnects with a fresh token and `Last-Event-ID`.

use super::Watchers;
use super::fanout::{ConnSignal, Delivery};
use super::watcher::{Outgoing, Watcher};
use crate::http::error::ApiError;
use crate::http::extract::{Caller, ClientIp};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Query of the SSE endpoint.
#[derive(Debug, Deserialize)]
pub struct SseQuery {
    /// Resume after this seq (when the client cannot send `Last-Event-ID`).
    pub since: Option<u64>,
    /// The epoch of that seq, from an earlier snapshot.
    pub epoch: Option<String>,
}

/// Everything one SSE stream owns; dropping it unregisters the watcher.
struct Feed {
    w: Watcher,
    rx: mpsc::Receiver<Arc<Delivery>>,
    signal: Arc<ConnSignal>,
    stop: CancellationToken,
    ready: VecDeque<Outgoing>,
    expiry: std::pin::Pin<Box<tokio::time::Sleep>>,
    _admission: super::Admission,
}

impl Drop for Feed {
    fn drop(&mut self) {
        metrics::gauge!("tracker_sse_connections").decrement(1.0);
    }
}

fn event_of(o: &Outgoing) -> Event {
    let e = Event::default().data(o.text.as_str());
    match o.seq {
        Some(seq) => e.id(seq.to_string()),
        None => e,
    }
}

/// Opens the stream of one order.
pub async fn sse(
    State(hub): State<Watchers>,
    ClientIp(ip): ClientIp,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
    Query(q): Query<SseQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let since = last_event_id.or(q.since);
    let (claims, admission) = hub.admit(ip, caller)?;
    let stop = hub.stop.clone();
    let (mut w, rx) = Watcher::new(claims, hub);
    w.subscribe(&id, since, q.epoch.as_deref()).await?;
    metrics::gauge!("tracker_sse_connections").increment(1.0);
    let feed = Feed {
        _admission: admission,
        expiry: Box::pin(tokio::time::sleep_until(super::session::token_deadline(
            w.expires_at(),
        ))),
        signal: w.signal(),
        ready: w.take().into(),
        w,
        rx,
        stop,
    };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        loop {
            if let Some(o) = f.ready.pop_front() {
                Watcher::record_sent(std::slice::from_ref(&o));
                return Some((Ok(event_of(&o)), f));
            }
            // The one order of the stream is no longer the caller's (its
            // `forbidden` frame went out just before): the stream ends.
            if f.w.watching() == 0 {
                return None;
            }
            tokio::select! {
                d = f.rx.recv() => match d {
                    Some(d) => f.w.on_delivery(d).await,
                    None => return None,
                },
                _ = f.signal.woken() => {
                    if f.signal.take_lagged() {
                        f.w.catch_up_all().await;
                    }
                }
                _ = f.stop.cancelled() => return None,
                _ = &mut f.expiry => {
                    metrics::counter!("tracker_sse_closed_expired_total").increment(1);
                    return None;
                }
            }
            if f.w.revoked() {
                return None;
            }
            f.ready.extend(f.w.take());
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
