//! The hub's accept loop: axum's router over hyper's HTTP/1.1 connections,
//! with the admission limits that `axum::serve` does not set.
//!
//! - A request's headers must arrive within `header_timeout` (hyper's header
//!   read timeout): a client that opens connections and sends half a request
//!   (the slow-loris way of holding WebSocket upgrades open) is dropped.
//! - Headers are bounded by `max_header_bytes` (431 above it).
//! - Each request carries its peer address (`ConnectInfo<SocketAddr>`), for
//!   the client IP of the limits and the block list.
//! - Closes linger ([`Lingering`]): a connection we end while the client is
//!   still sending (a 16 MB WebSocket frame refused with 1009, say) is shut
//!   for writing and drained for a moment instead of dropped, so the client
//!   reads our last frame instead of a TCP reset.
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
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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
            let io = TokioIo::new(Lingering(Some(io)));
            let conn = http.serve_connection(io, svc).with_upgrades();
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

/// How long a closed connection is drained at most.
const LINGER: Duration = Duration::from_secs(2);

/// A connection that, when dropped, is shut for writing and read to its end
/// (for at most [`LINGER`]) on a task of its own: what the kernel would
/// otherwise answer to the client's unread bytes is a reset, which discards
/// the close frame or response we sent last.
pub struct Lingering<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static>(Option<IO>);

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Lingering<IO> {
    fn io(&mut self) -> &mut IO {
        self.0.as_mut().expect("only taken in drop")
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for Lingering<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for Lingering<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.io()).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.io()).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.io()).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(|io| io.is_write_vectored())
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for Lingering<IO> {
    fn drop(&mut self) {
        let (Some(mut io), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        rt.spawn(async move {
            let drain = async {
                let _ = io.shutdown().await;
                let mut buf = [0u8; 8192];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}
