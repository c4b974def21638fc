//! Opens N WebSocket watchers that each subscribe to one order and then stay idle;
//! used by `bench/idle-ws-rss.sh` to measure the hub's memory per idle connection.
//!
//! usage: idle_watchers WS_URL TOKEN ORDER_ID N HOLD_SECS

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, token, order, n, hold] = args.as_slice() else {
        anyhow::bail!("usage: idle_watchers WS_URL TOKEN ORDER_ID N HOLD_SECS");
    };
    let (n, hold): (usize, u64) = (n.parse()?, hold.parse()?);
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?token={token}")).await?;
        let sub = format!(r#"{{"op":"sub","order":"{order}"}}"#);
        ws.send(Message::Text(sub.into())).await?;
        // Wait for the snapshot so the subscription is complete before counting.
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => {}
            other => anyhow::bail!("connection {i}: no snapshot ({other:?})"),
        }
        socks.push(ws);
    }
    println!("ready {n}");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(socks);
    Ok(())
}
