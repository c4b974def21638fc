//! Opens N WebSocket watchers that each subscribe to one order and then stay idle;
//! used by `bench/idle-ws-rss.sh` and `bench/idle-ws-cluster.sh` to measure the
//! hubs' memory per idle connection.
//!
//! usage: idle_watchers WS_URL TOKEN ORDER_ID N HOLD_SECS [SOURCE_IP]
//!
//! With SOURCE_IP (say 127.0.0.3) the sockets are bound to that local address,
//! so several client processes can each use a full range of ephemeral ports.
//! The client's own buffers are kept small (4 KiB read) so that 100k of them fit
//! beside the hubs on one machine.

use futures_util::{SinkExt, StreamExt};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpSocket, lookup_host};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (url, token, order, n, hold, source) = match args.as_slice() {
        [_, url, token, order, n, hold] => (url, token, order, n, hold, None),
        [_, url, token, order, n, hold, ip] => (url, token, order, n, hold, Some(ip)),
        _ => anyhow::bail!("usage: idle_watchers WS_URL TOKEN ORDER_ID N HOLD_SECS [SOURCE_IP]"),
    };
    let (n, hold): (usize, u64) = (n.parse()?, hold.parse()?);
    let source: Option<IpAddr> = source.map(|s| s.parse()).transpose()?;
    let host = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .ok_or_else(|| anyhow::anyhow!("WS_URL must be ws://host:port/…"))?;
    let addr: SocketAddr = lookup_host(host)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{host} does not resolve"))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let mut socks = tokio::task::JoinSet::new();
    for i in 0..n {
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = sock.connect(addr).await?;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            format!("{url}?token={token}"),
            stream,
            Some(config),
        )
        .await?;
        let sub = format!(r#"{{"op":"sub","order":"{order}"}}"#);
        ws.send(Message::Text(sub.into())).await?;
        // Wait for the snapshot so the subscription is complete before counting.
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {}
            other => anyhow::bail!("connection {i}: no snapshot ({other:?})"),
        }
        // Read (and so answer the hub's pings) while the others connect and
        // during the hold, so no connection is closed as idle.
        socks.spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
    println!("ready {n}");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    socks.abort_all();
    Ok(())
}
