//! The end of a run: counts checked against each order's final seq, delay
//! percentiles, a summary table for people and one JSON line for scripts.

use crate::SimConfig;
use crate::stats::{Gap, Live, Tally, delay_histogram};
use crate::watcher::Transport;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// Delay percentiles, ms.
#[derive(Debug, Serialize)]
pub struct Delay {
    /// Fixes measured.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Worst.
    pub max: u64,
}

impl Delay {
    /// The percentiles of `h`.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Delay {
        Delay {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Most watchers listed in [`Report::losses`].
pub const LOSSES_LISTED: usize = 50;

/// What one watcher missed, to tell which fault it belongs to.
#[derive(Debug, Serialize)]
pub struct Loss {
    /// The order watched.
    pub order: String,
    /// How.
    pub transport: Transport,
    /// Events skipped over while watching (the first few gaps, by seq).
    pub gaps: Vec<Gap>,
    /// The seq of the watcher's first snapshot (0: it subscribed before the
    /// order's log had any event).
    pub first_seen: Option<u64>,
    /// The last seq the watcher saw.
    pub last_seen: Option<u64>,
    /// The order's last seq at the end of the run: above `last_seen`, the
    /// watcher stopped before the order's last events.
    pub final_seq: Option<u64>,
}

/// Everything a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Seconds the riders rode.
    pub seconds: f64,
    /// Riders.
    pub riders: usize,
    /// Fix interval per rider, ms.
    pub interval_ms: u64,
    /// Orders created.
    pub orders: usize,
    /// Orders carried to `delivered`.
    pub orders_delivered: u64,
    /// Fixes published.
    pub fixes: u64,
    /// Fixes published per second.
    pub fixes_per_s: f64,
    /// Watchers started, by transport.
    pub watchers: HashMap<&'static str, u64>,
    /// Watchers that never got a snapshot.
    pub watchers_without_snapshot: u64,
    /// Events the watchers should have seen (from their first snapshot to the order's final seq).
    pub expected: u64,
    /// Events seen, each once and in order.
    pub delivered: u64,
    /// Deliveries per second.
    pub delivered_per_s: f64,
    /// Events never seen (`expected - delivered`).
    pub lost: u64,
    /// Events seen twice.
    pub duplicated: u64,
    /// Watcher reconnects.
    pub reconnects: u64,
    /// Reconnects resumed with a full replay.
    pub resumed: u64,
    /// Fix time → watcher, ms (live fixes, first sighting).
    pub delay_ms: Delay,
    /// A watcher's drop → the first answer of its next connection, ms; the
    /// simulator's own backoff before each attempt (100 ms, doubling after a
    /// failed one) is part of it.
    pub recover_ms: Delay,
    /// Watchers that missed events, each with where (the first
    /// [`LOSSES_LISTED`]); empty when nothing was lost.
    pub losses: Vec<Loss>,
    /// Orders API calls that failed.
    pub api_errors: u64,
    /// Fixes that could not be published.
    pub publish_errors: u64,
}

/// The last seq of each order, read as a snapshot over long-poll (no `since`).
pub async fn final_seqs(base: &str, admin: &str, orders: &[String]) -> HashMap<String, u64> {
    let http = reqwest::Client::new();
    let mut out = HashMap::new();
    for id in orders {
        let r = http
            .get(format!("{base}/v1/orders/{id}/events"))
            .bearer_auth(admin)
            .send()
            .await;
        if let Ok(r) = r
            && let Ok(v) = r.json::<serde_json::Value>().await
            && let Some(seq) = v["next"].as_u64()
        {
            out.insert(id.clone(), seq);
        }
    }
    out
}

impl Report {
    /// Puts the tallies together.
    pub fn build(
        cfg: &SimConfig,
        live: &Live,
        ridden: Duration,
        tallies: &[(String, Transport, Tally)],
        finals: &HashMap<String, u64>,
        orders: usize,
    ) -> Report {
        let mut all = Tally {
            delay_ms: delay_histogram(),
            ..Tally::default()
        };
        let mut watchers: HashMap<&'static str, u64> = HashMap::new();
        let (mut expected, mut without) = (0u64, 0u64);
        let mut losses = Vec::new();
        for (order, transport, t) in tallies {
            let final_seq = finals.get(order).copied();
            let short_at_end = matches!((t.last, final_seq), (Some(l), Some(f)) if f > l);
            if (t.lost > 0 || short_at_end) && losses.len() < LOSSES_LISTED {
                losses.push(Loss {
                    order: order.clone(),
                    transport: *transport,
                    gaps: t.gaps.clone(),
                    first_seen: t.first,
                    last_seen: t.last,
                    final_seq,
                });
            }
            let name = match transport {
                Transport::Ws => "ws",
                Transport::Sse => "sse",
                Transport::LongPoll => "long_poll",
            };
            *watchers.entry(name).or_default() += 1;
            all.merge(t);
            match (t.first, finals.get(order)) {
                (Some(first), Some(&last)) => expected += last.saturating_sub(first),
                (Some(first), None) => expected += t.last.unwrap_or(first) - first,
                (None, _) => without += 1,
            }
        }
        let secs = ridden.as_secs_f64().max(1e-3);
        let fixes = Live::get(&live.fixes);
        Report {
            seconds: (secs * 10.0).round() / 10.0,
            riders: cfg.riders,
            interval_ms: cfg.interval.as_millis() as u64,
            orders,
            orders_delivered: Live::get(&live.orders_delivered),
            fixes,
            fixes_per_s: (fixes as f64 / secs).round(),
            watchers,
            watchers_without_snapshot: without,
            expected,
            delivered: all.delivered,
            delivered_per_s: (all.delivered as f64 / secs).round(),
            lost: expected.saturating_sub(all.delivered),
            duplicated: all.duplicated,
            reconnects: all.reconnects,
            resumed: all.resumed,
            delay_ms: Delay::of(&all.delay_ms),
            recover_ms: Delay::of(&all.recover_ms),
            losses,
            api_errors: Live::get(&live.api_errors),
            publish_errors: Live::get(&live.publish_errors),
        }
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let w = |k: &str| self.watchers.get(k).copied().unwrap_or(0);
        let d = &self.delay_ms;
        let rows = [
            ("ran", format!("{:.1} s", self.seconds)),
            (
                "riders",
                format!("{} (a fix every {} ms)", self.riders, self.interval_ms),
            ),
            (
                "orders",
                format!(
                    "{} created, {} delivered",
                    self.orders, self.orders_delivered
                ),
            ),
            ("fixes", format!("{} ({}/s)", self.fixes, self.fixes_per_s)),
            (
                "watchers",
                format!(
                    "{} ws, {} sse, {} long-poll",
                    w("ws"),
                    w("sse"),
                    w("long_poll")
                ),
            ),
            ("events expected", self.expected.to_string()),
            (
                "delivered",
                format!("{} ({}/s)", self.delivered, self.delivered_per_s),
            ),
            ("lost", self.lost.to_string()),
            ("duplicated", self.duplicated.to_string()),
            (
                "reconnects",
                format!(
                    "{} ({} resumed with a replay)",
                    self.reconnects, self.resumed
                ),
            ),
            (
                "fix → watcher",
                format!(
                    "p50 {} ms, p90 {} ms, p99 {} ms, p99.9 {} ms, max {} ms ({} fixes)",
                    d.p50, d.p90, d.p99, d.p999, d.max, d.count
                ),
            ),
            (
                "recovery",
                format!(
                    "drop → next answer p50 {} ms, p99 {} ms, max {} ms ({} reconnects)",
                    self.recover_ms.p50,
                    self.recover_ms.p99,
                    self.recover_ms.max,
                    self.recover_ms.count
                ),
            ),
            (
                "errors",
                format!(
                    "{} API, {} publish, {} watchers never subscribed",
                    self.api_errors, self.publish_errors, self.watchers_without_snapshot
                ),
            ),
        ];
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("  {k:<16} {v}\n"));
        }
        out
    }
}
