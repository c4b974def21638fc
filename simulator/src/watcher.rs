//! Simulated watchers of one order, over WebSocket, SSE or long-poll, as the
//! pages would: subscribe, count every event by seq, measure each live fix's
//! delay from its `ts`, reconnect with `since` after a drop, and stop at the
//! order's terminal status (or when the run ends).

use crate::stats::now_ms;
use crate::stats::{Live, Tally};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How a watcher is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// `GET /v1/ws`.
    Ws,
    /// `GET /v1/orders/{id}/sse`.
    Sse,
    /// `GET /v1/orders/{id}/events`.
    LongPoll,
}

/// Where and how to watch.
#[derive(Clone)]
pub struct WatchTarget {
    /// `http://host:port` of the hubs it may watch on.
    pub bases: std::sync::Arc<[String]>,
    /// The one it starts on; it moves on to the next after each drop.
    pub first: usize,
    /// The watcher's token.
    pub token: String,
    /// The order.
    pub order: String,
    /// When set, a WebSocket watcher drops its connection about this often, to exercise resume.
    pub drop_every: Option<Duration>,
}

impl WatchTarget {
    /// The hub of connection attempt `n` (0 the first): the next one after each drop.
    pub fn base(&self, n: u64) -> &str {
        &self.bases[(self.first + n as usize) % self.bases.len().max(1)]
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    t: &'a str,
    seq: Option<u64>,
    ts: Option<i64>,
    #[serde(default)]
    backfill: bool,
    status: Option<&'a str>,
    recovered: Option<bool>,
    epoch: Option<&'a str>,
}

/// Takes one frame's text; true when the order reached its end.
fn take(text: &str, tally: &mut Tally, live: &Live) -> bool {
    let Ok(h) = serde_json::from_str::<Head>(text) else {
        return false;
    };
    let new = tally.frame(live, h.t, h.seq, h.recovered);
    if let Some(epoch) = h.epoch {
        tally.epoch = Some(epoch.to_owned());
    }
    if new
        && h.t == "pos"
        && !h.backfill
        && let Some(ts) = h.ts
        && ts
            >= live
                .measure_from_ms
                .load(std::sync::atomic::Ordering::Relaxed)
    {
        tally.delay(now_ms() - ts);
    }
    h.t == "status" && matches!(h.status, Some("delivered" | "cancelled" | "returned"))
}

/// Watches until the order ends or `stop`; returns the tally.
pub async fn watch(
    target: WatchTarget,
    transport: Transport,
    live: Arc<Live>,
    stop: CancellationToken,
) -> Tally {
    let mut tally = Tally::default();
    Live::add(&live.watching, 1);
    let mut failures = 0u32;
    loop {
        let ended = tokio::select! {
            r = once(&target, transport, &mut tally, &live) => r,
            _ = stop.cancelled() => break,
        };
        match ended {
            Ok(true) => break,
            Ok(false) => failures = 0,
            Err(e) => {
                tracing::debug!(error = %e, order = %target.order, "watcher connection failed");
                failures += 1;
            }
        }
        tally.dropped();
        tally.reconnects += 1;
        Live::add(&live.reconnects, 1);
        let wait = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => break,
        }
    }
    live.watching
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    tally
}

/// One connection: Ok(true) when the order ended, Ok(false) when it dropped.
async fn once(
    target: &WatchTarget,
    transport: Transport,
    tally: &mut Tally,
    live: &Live,
) -> anyhow::Result<bool> {
    match transport {
        Transport::Ws => ws(target, tally, live).await,
        Transport::Sse => sse(target, tally, live).await,
        Transport::LongPoll => long_poll(target, tally, live).await,
    }
}

async fn ws(target: &WatchTarget, tally: &mut Tally, live: &Live) -> anyhow::Result<bool> {
    let url = format!(
        "{}/v1/ws?token={}",
        target.base(tally.reconnects).replacen("http", "ws", 1),
        target.token
    );
    let (mut stream, _) = tokio_tungstenite::connect_async(url).await?;
    let mut sub = serde_json::json!({"op": "sub", "order": target.order});
    if let Some(last) = tally.last {
        sub["since"] = last.into();
        if let Some(epoch) = &tally.epoch {
            sub["epoch"] = epoch.as_str().into();
        }
    }
    stream.send(Message::text(sub.to_string())).await?;
    let drop_at = target.drop_every.map(|every| {
        let secs = every.as_secs_f64() * rand::rng().random_range(0.5..1.5);
        tokio::time::Instant::now() + Duration::from_secs_f64(secs)
    });
    loop {
        let msg = match drop_at {
            Some(at) => tokio::select! {
                m = stream.next() => m,
                _ = tokio::time::sleep_until(at) => return Ok(false),
            },
            None => stream.next().await,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                if take(&text, tally, live) {
                    let _ = stream.close(None).await;
                    return Ok(true);
                }
            }
            Some(Ok(Message::Close(_))) | None => return Ok(false),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// `&since=` (and the `&epoch=` of that seq) for SSE and long-poll.
fn resume_query(tally: &Tally) -> String {
    match (tally.last, &tally.epoch) {
        (Some(s), Some(e)) => format!("&since={s}&epoch={e}"),
        (Some(s), None) => format!("&since={s}"),
        (None, _) => String::new(),
    }
}

async fn sse(target: &WatchTarget, tally: &mut Tally, live: &Live) -> anyhow::Result<bool> {
    let url = format!(
        "{}/v1/orders/{}/sse?token={}{}",
        target.base(tally.reconnects),
        target.order,
        target.token,
        resume_query(tally)
    );
    let r = reqwest::get(url).await?.error_for_status()?;
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && take(data.trim(), tally, live)
                {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

async fn long_poll(target: &WatchTarget, tally: &mut Tally, live: &Live) -> anyhow::Result<bool> {
    let http = reqwest::Client::new();
    loop {
        let url = format!(
            "{}/v1/orders/{}/events?wait=25{}",
            target.base(tally.reconnects),
            target.order,
            resume_query(tally)
        );
        let v: serde_json::Value = http
            .get(url)
            .bearer_auth(&target.token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        tally.answered(); // an empty answer counts: the poll is back
        for e in v["events"].as_array().into_iter().flatten() {
            if take(&e.to_string(), tally, live) {
                return Ok(true);
            }
        }
        if let Some(epoch) = v["epoch"].as_str() {
            tally.epoch = Some(epoch.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watcher_moves_to_the_next_hub_after_each_drop() {
        let t = WatchTarget {
            bases: vec!["http://a".to_owned(), "http://b".to_owned()].into(),
            first: 1,
            token: "t".into(),
            order: "O1".into(),
            drop_every: None,
        };
        let seen: Vec<&str> = (0..4).map(|n| t.base(n)).collect();
        assert_eq!(seen, ["http://b", "http://a", "http://b", "http://a"]);
    }

    #[test]
    fn resume_sends_the_epoch_of_the_last_snapshot() {
        let live = Live::default();
        let mut tally = Tally::default();
        assert_eq!(resume_query(&tally), "");
        take(
            r#"{"t":"snapshot","order":"O1","seq":7,"epoch":"redis-1"}"#,
            &mut tally,
            &live,
        );
        assert_eq!(resume_query(&tally), "&since=7&epoch=redis-1");
    }
}
