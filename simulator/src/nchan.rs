//! The same fan-out load against nginx + Nchan, the hub users would otherwise
//! pick: messages published by HTTP POST to `/pub/{channel}`, watchers
//! subscribed over WebSocket to `/sub/{channel}`. Each message carries its
//! publish time and a per-channel seq, so delay, lost and duplicated are
//! measured exactly as for the tracker (bench/fanout.sh runs both).

use crate::report::{Delay, Report};
use crate::stats::now_ms;
use crate::stats::{Live, Tally, delay_histogram};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// An Nchan run.
#[derive(Debug, Clone)]
pub struct NchanConfig {
    /// nginx, `http://host:port` (locations `/pub/{id}` and `/sub/{id}`).
    pub url: String,
    /// Channels (the orders' stand-ins).
    pub channels: usize,
    /// WebSocket subscribers per channel.
    pub watchers_per_channel: usize,
    /// Messages per second over all channels.
    pub rate: u64,
    /// How long to publish.
    pub duration: Duration,
    /// Concurrent publishers.
    pub publishers: usize,
}

/// Subscribes, publishes at the rate for the duration, drains 2 s, reports.
pub async fn run(
    cfg: NchanConfig,
    stop: CancellationToken,
    mut on_tick: impl FnMut(&Live, Duration) + Send + 'static,
) -> anyhow::Result<Report> {
    let live = Arc::new(Live::default());
    let watch_stop = CancellationToken::new();
    let mut subs = tokio::task::JoinSet::new();
    let ws_base = cfg.url.replacen("http", "ws", 1);
    for ch in 0..cfg.channels {
        for _ in 0..cfg.watchers_per_channel {
            let (url, live, stop) = (
                format!("{ws_base}/sub/c{ch}"),
                live.clone(),
                watch_stop.clone(),
            );
            subs.spawn(async move { (ch, subscribe(url, live, stop).await) });
        }
    }
    // Every subscriber connected before the first message, as the tracker's watchers are.
    let want = (cfg.channels * cfg.watchers_per_channel) as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Live::get(&live.watching) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seqs: Arc<Vec<AtomicU64>> =
        Arc::new((0..cfg.channels).map(|_| AtomicU64::new(0)).collect());
    let started = Instant::now();
    let pub_stop = CancellationToken::new();
    let mut pubs = tokio::task::JoinSet::new();
    let per = (cfg.rate as f64 / cfg.publishers.max(1) as f64).max(0.001);
    for p in 0..cfg.publishers.max(1) {
        let (cfg, live, seqs, stop) = (cfg.clone(), live.clone(), seqs.clone(), pub_stop.clone());
        pubs.spawn(async move {
            let http = reqwest::Client::new();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = p;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => return,
                }
                let ch = n % cfg.channels;
                n += cfg.publishers.max(1);
                let seq = seqs[ch].fetch_add(1, Ordering::Relaxed) + 1;
                let body = format!("{{\"seq\":{seq},\"ts\":{}}}", now_ms());
                let ok = http
                    .post(format!("{}/pub/c{ch}", cfg.url))
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                Live::add(
                    if ok {
                        &live.fixes
                    } else {
                        &live.publish_errors
                    },
                    1,
                );
            }
        });
    }
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    let end = tokio::time::Instant::now() + cfg.duration;
    loop {
        tokio::select! {
            _ = ticker.tick() => on_tick(&live, started.elapsed()),
            _ = tokio::time::sleep_until(end) => break,
            _ = stop.cancelled() => break,
        }
    }
    let ridden = started.elapsed();
    pub_stop.cancel();
    while pubs.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch_stop.cancel();
    let mut all = Tally {
        delay_ms: delay_histogram(),
        ..Tally::default()
    };
    let (mut expected, mut without) = (0u64, 0u64);
    while let Some(r) = subs.join_next().await {
        let (ch, t) = r?;
        let published = seqs[ch].load(Ordering::Relaxed);
        match t.first {
            Some(first) => expected += published.saturating_sub(first),
            None => {
                without += 1;
                expected += published;
            }
        }
        all.merge(&t);
    }
    let secs = ridden.as_secs_f64().max(1e-3);
    let fixes = Live::get(&live.fixes);
    Ok(Report {
        seconds: (secs * 10.0).round() / 10.0,
        riders: cfg.channels,
        interval_ms: (cfg.channels as u64 * 1000)
            .checked_div(cfg.rate)
            .unwrap_or(0),
        orders: cfg.channels,
        orders_delivered: 0,
        fixes,
        fixes_per_s: (fixes as f64 / secs).round(),
        watchers: HashMap::from([("ws", want)]),
        watchers_without_snapshot: without,
        expected,
        delivered: all.delivered,
        delivered_per_s: (all.delivered as f64 / secs).round(),
        lost: expected.saturating_sub(all.delivered),
        duplicated: all.duplicated,
        reconnects: all.reconnects,
        resumed: 0,
        delay_ms: Delay::of(&all.delay_ms),
        recover_ms: Delay::of(&all.recover_ms), // Nchan subscribers do not reconnect
        losses: Vec::new(),
        api_errors: 0,
        publish_errors: Live::get(&live.publish_errors),
    })
}

#[derive(serde::Deserialize)]
struct Msg {
    seq: u64,
    ts: i64,
}

/// One subscriber: counts by the channel's seq from the first message it sees
/// (it subscribed before publishing began, so that is seq 1 unless lost).
async fn subscribe(url: String, live: Arc<Live>, stop: CancellationToken) -> Tally {
    let mut t = Tally::default();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return t;
    };
    t.first = Some(0);
    t.last = Some(0);
    Live::add(&live.watching, 1);
    loop {
        let m = tokio::select! {
            m = ws.next() => m,
            _ = stop.cancelled() => break,
        };
        match m {
            Some(Ok(Message::Text(text))) => {
                if let Ok(msg) = serde_json::from_str::<Msg>(&text)
                    && t.frame(&live, "msg", Some(msg.seq), None)
                {
                    t.delay(now_ms() - msg.ts);
                }
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    live.watching.fetch_sub(1, Ordering::Relaxed);
    t
}
