//! `GET /v1/ws`: the watchers' WebSocket (`docs/protocol.md`) and its limits.
//!
//! Admission ([`Watchers::admit`]: block list, connect rate, caps) and the
//! token are checked before the upgrade; each accepted socket gets one task,
//! [`session::run`], tracked for shutdown, which holds the connection's place
//! in the caps. The close codes it may end with are in [`session`].

use super::{Watchers, session};
use crate::http::error::ApiError;
use crate::http::extract::{Caller, ClientIp};
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Limits and buffers of each WebSocket connection.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsConfig {
    /// Deliveries queued per connection before it counts as lagging and catches up from the log.
    pub queue: usize,
    /// Orders one connection may watch at once.
    pub max_subs: usize,
    /// Largest client frame we parse; bigger ones up to `max_message` get an error frame.
    pub max_text: usize,
    /// Largest client message at all; above it the connection is closed with 1009.
    pub max_message: usize,
    /// Socket read buffer, bytes: allocated up front for every connection, so it is
    /// most of an idle socket's memory (tungstenite's default is 128 KiB). Client
    /// frames are small (ops, at most `max_text`); a larger one takes more reads.
    pub read_buffer: usize,
    /// Write buffer target, bytes.
    pub write_buffer: usize,
    /// Most events replayed on a resume; beyond it the client gets a fresh snapshot.
    pub resume_limit: usize,
    /// A send that takes longer closes the connection as slow (4008).
    pub write_timeout: Duration,
    /// How often the server pings.
    pub ping_every: Duration,
    /// With nothing heard from the client for this long, the connection is closed (1001).
    pub idle_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            queue: 256,
            max_subs: 64,
            max_text: 4096,
            max_message: 64 * 1024,
            read_buffer: 1024,
            write_buffer: 4096,
            resume_limit: 1000,
            write_timeout: Duration::from_secs(10),
            ping_every: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
        }
    }
}

/// Upgrades an authenticated request to a watcher connection.
pub async fn upgrade(
    State(w): State<Watchers>,
    ClientIp(ip): ClientIp,
    caller: Result<Caller, ApiError>,
    ws: WebSocketUpgrade,
) -> Response {
    let (claims, admission) = match w.admit(ip, caller) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if w.stop.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let c = &w.cfg;
    ws.read_buffer_size(c.read_buffer)
        .write_buffer_size(c.write_buffer)
        .max_write_buffer_size(c.write_buffer.max(c.max_message) * 4)
        .max_message_size(c.max_message)
        .max_frame_size(c.max_message)
        .on_upgrade(move |socket| {
            let tasks = w.tasks.clone();
            tasks.track_future(session::run(socket, claims, w, admission))
        })
}
