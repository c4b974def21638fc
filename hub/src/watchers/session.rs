//! One WebSocket connection: the socket loop around a [`Watcher`].
//!
//! The watcher owns subscriptions, resume and ordering (see [`super::watcher`]);
//! this task parses client frames, sends the watcher's frames with one flush per
//! batch, pings, and closes with the documented codes (idle, too big, slow,
//! restarting).
//!
//! Close codes the server sends:
//!
//! | code | meaning | client should |
//! |---|---|---|
//! | 1001 | idle: nothing heard for `idle_timeout` | reconnect with `since` |
//! | 1009 | a frame above `max_message` bytes | fix the client |
//! | 1012 | server shutting down or restarting | reconnect (another node) with `since` |
//! | 4001 | the token expired (`exp` plus 5 s leeway) or its share link was revoked | get a new token, reconnect with `since` |
//! | 4008 | too slow: a send did not finish within `write_timeout` | reconnect with `since` |
//!
//! A client's own Close frame is answered with one (its code echoed).

use super::Watchers;
use super::fanout::Delivery;
use super::frames::{self, ClientOp, FrameError};
use super::watcher::{SubError, Watcher};
use crate::auth::{Claims, LEEWAY_SECS};
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::fmt::Display;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Close code: idle connection.
pub const CLOSE_IDLE: u16 = 1001;
/// Close code: message too big.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code: server restarting; reconnect with `since`.
pub const CLOSE_RESTART: u16 = 1012;
/// Close code: the token expired or was revoked; get a new one, reconnect with `since`.
pub const CLOSE_TOKEN: u16 = 4001;
/// Close code: the client does not read fast enough; reconnect with `since`.
pub const CLOSE_SLOW: u16 = 4008;

/// When a token that expires at `exp` (Unix seconds) stops being accepted,
/// as an instant of this process's clock (at most a year ahead).
pub fn token_deadline(exp: u64) -> Instant {
    let end_ms = exp.saturating_add(LEEWAY_SECS).saturating_mul(1000);
    let now_ms = u64::try_from(tracker_domain::clock::now_ms()).unwrap_or(0);
    let left = std::time::Duration::from_millis(end_ms.saturating_sub(now_ms));
    Instant::now() + left.min(std::time::Duration::from_secs(365 * 24 * 3600))
}

/// Deliveries taken from the queue before the socket is flushed once.
const BATCH: usize = 64;

/// Serves one upgraded socket until the client leaves, it goes idle or slow,
/// its token ends, or the hub stops.
///
/// Not an `async fn`: the arguments are turned into the session first, so the
/// connection's future holds the socket, the claims and the hub's handles
/// once (an `async fn` keeps its arguments for its whole life, beside what
/// they were moved into), which is most of an idle socket's memory.
pub fn run<S, E>(
    socket: S,
    claims: Claims,
    hub: Watchers,
    admission: super::Admission,
) -> impl Future<Output = ()> + Send
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin + Send,
    E: Display + Send,
{
    let (w, rx) = Watcher::new(claims, hub);
    metrics::gauge!("tracker_ws_connections").increment(1.0);
    Session {
        w,
        control: Vec::new(),
        _admission: admission,
    }
    .serve(socket, rx)
}

struct Session {
    w: Watcher,
    /// Pings and close frames, sent after the watcher's frames.
    control: Vec<Message>,
    /// The connection's places in the caps, held until it ends.
    _admission: super::Admission,
}

impl Drop for Session {
    fn drop(&mut self) {
        metrics::gauge!("tracker_ws_connections").decrement(1.0);
    }
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

impl Session {
    async fn serve<S, E>(mut self, mut socket: S, mut rx: mpsc::Receiver<Arc<Delivery>>)
    where
        S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin + Send,
        E: Display + Send,
    {
        let cfg = self.w.hub().cfg.clone();
        let stop = self.w.hub().stop.clone();
        let signal = self.w.signal();
        let mut last_heard = Instant::now();
        // One timer for both the next ping and the token's end: an idle
        // socket's memory is mostly such per-connection state.
        let mut next_ping = Instant::now() + cfg.ping_every;
        let mut exp = self.w.expires_at();
        let mut deadline = token_deadline(exp);
        let timer = tokio::time::sleep_until(next_ping.min(deadline));
        tokio::pin!(timer);
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.control.push(close(CLOSE_RESTART, "server restarting; reconnect with since"));
                    self.flush(&mut socket).await;
                    return;
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= deadline {
                        metrics::counter!("tracker_ws_closed_expired_total").increment(1);
                        self.control.push(close(CLOSE_TOKEN, "token expired; reconnect with a new token and since"));
                        self.flush(&mut socket).await;
                        return;
                    }
                    if now >= next_ping {
                        if last_heard.elapsed() > cfg.idle_timeout {
                            self.control.push(close(CLOSE_IDLE, "idle"));
                            self.flush(&mut socket).await;
                            return;
                        }
                        self.control.push(Message::Ping(Default::default()));
                        next_ping = now + cfg.ping_every;
                    }
                    timer.as_mut().reset(next_ping.min(deadline));
                }
                msg = socket.next() => {
                    last_heard = Instant::now();
                    match msg {
                        // Boxed: client ops are rare, and a subscribe's state (store and
                        // log reads) would otherwise sit in every idle connection's future.
                        Some(Ok(Message::Text(t))) => Box::pin(self.on_text(&t)).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.reject(FrameError::Unsupported, "binary frames are not part of the protocol")
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) => {
                            // The socket has queued the answering Close frame (the
                            // client's code echoed); closing sends it, so the client
                            // sees a clean close and not 1006.
                            let _ = tokio::time::timeout(
                                std::time::Duration::from_millis(500),
                                SinkExt::close(&mut socket),
                            )
                            .await;
                            return;
                        }
                        None => return,
                        Some(Err(e)) => {
                            // Tungstenite refuses over-long messages before reading them; the
                            // stream cannot be resynchronised after that, so we say why and close.
                            tracing::debug!(conn = self.w.conn(), error = %e, "socket read failed");
                            metrics::counter!("tracker_ws_frames_rejected_total", "reason" => "read_error").increment(1);
                            self.control.push(close(CLOSE_TOO_BIG, "frame too large or malformed"));
                            self.flush(&mut socket).await;
                            return;
                        }
                    }
                }
                Some(d) = rx.recv() => {
                    self.w.on_delivery(d).await;
                    while self.w.pending() < BATCH {
                        match rx.try_recv() {
                            Ok(d) => self.w.on_delivery(d).await,
                            Err(_) => break,
                        }
                    }
                }
                _ = signal.woken() => {
                    if signal.take_lagged() {
                        self.w.catch_up_all().await;
                    }
                }
            }
            if self.w.revoked() {
                self.control.push(close(CLOSE_TOKEN, "share link revoked"));
                self.flush(&mut socket).await;
                return;
            }
            if self.w.expires_at() != exp {
                exp = self.w.expires_at();
                deadline = token_deadline(exp);
                timer.as_mut().reset(next_ping.min(deadline));
            }
            if !self.flush(&mut socket).await {
                return;
            }
        }
    }

    /// Sends queued frames with one flush; false when the socket is gone or too slow.
    async fn flush<S, E>(&mut self, socket: &mut S) -> bool
    where
        S: Sink<Message, Error = E> + Unpin,
        E: Display,
    {
        let frames = self.w.take();
        if frames.is_empty() && self.control.is_empty() {
            return true;
        }
        let n = (frames.len() + self.control.len()) as u64;
        let control = std::mem::take(&mut self.control);
        let send = async {
            for f in &frames {
                socket.feed(Message::Text(f.text.clone())).await?;
            }
            for m in control {
                socket.feed(m).await?;
            }
            socket.flush().await
        };
        match tokio::time::timeout(self.w.hub().cfg.write_timeout, send).await {
            Ok(Ok(())) => {
                metrics::counter!("tracker_ws_frames_sent_total").increment(n);
                Watcher::record_sent(&frames);
                true
            }
            Ok(Err(e)) => {
                tracing::debug!(conn = self.w.conn(), error = %e, "socket write failed");
                false
            }
            Err(_) => {
                metrics::counter!("tracker_ws_closed_slow_total").increment(1);
                let bye = socket.send(close(CLOSE_SLOW, "too slow; reconnect with since"));
                let _ = tokio::time::timeout(std::time::Duration::from_millis(100), bye).await;
                false
            }
        }
    }

    fn reject(&mut self, why: FrameError, msg: &str) {
        metrics::counter!("tracker_ws_frames_rejected_total", "reason" => why.code()).increment(1);
        self.w.push_text(frames::error(why.code(), None, msg));
    }

    async fn on_text(&mut self, text: &str) {
        match frames::parse(text, self.w.hub().cfg.max_text) {
            Ok(ClientOp::Ping) => self.w.push_text(frames::pong()),
            Ok(ClientOp::Sub {
                order,
                since,
                epoch,
            }) => {
                // A refusal is already queued as an error frame for the client;
                // a malformed order id counts as a rejected frame too.
                if let Err(SubError::BadRequest) =
                    self.w.subscribe(&order, since, epoch.as_deref()).await
                {
                    metrics::counter!("tracker_ws_frames_rejected_total", "reason" => "bad_request")
                        .increment(1);
                }
            }
            Ok(ClientOp::Unsub { order }) => self.w.unsubscribe(&order),
            Ok(ClientOp::Refresh { token }) => {
                // The answer (refreshed, or an error frame) is queued either way.
                let _ = self.w.refresh(&token);
            }
            Err((why, msg)) => self.reject(why, &msg),
        }
    }
}
