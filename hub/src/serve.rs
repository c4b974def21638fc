//! The hub's accept loop: axum's router over hyper's HTTP/1.1 connections,
//! with the admission limits that `axum::serve` does not set.
//!
//! - A request's headers must arrive within `header_timeout` (hyper's header
//!   read timeout): a client that opens connections and sends half a request
//!   (the slow-loris way of holding WebSocket upgrades open) is dropped.
//! - Headers are bounded by `max_header_bytes` (431 above it).
//! - Each request carries its peer address (`ConnectInfo<SocketAddr>`), for
//!   the client IP of the limits and the block list.
//!
//! Stopping: no new connections; each open one finishes its request in
//! flight and closes (upgraded WebSockets are closed by their sessions).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Limits of the accept loop.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// A request's headers must all arrive within this long.
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), bytes.
    pub max_header_bytes: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Serves `app` on `listener` until `stop`; connection tasks are tracked on `conns`.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    cfg: ServeConfig,
    stop: CancellationToken,
    conns: TaskTracker,
) where
    L: Listener<Addr = SocketAddr>,
{
    loop {
        let (io, peer) = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => break,
        };
        let svc = app
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let svc = TowerToHyperService::new(svc);
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(cfg.header_timeout)
            .max_buf_size(cfg.max_header_bytes.max(8192));
        let stop = stop.clone();
        conns.spawn(async move {
            let conn = http.serve_connection(TokioIo::new(io), svc).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            metrics::counter!("tracker_http_header_timeouts_total").increment(1);
                        }
                        tracing::trace!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
}
