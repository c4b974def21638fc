//! Every metric the processes emit, with its kind and the help line
//! Prometheus shows (`# HELP`), in one list: the emitting crates only name
//! them. A test holds the list to the sources, so a new metric without a line
//! here fails the build's tests, and `promtool check metrics` (CI) passes.
//!
//! Conventions (docs/protocol.md, "Health and metrics"): counters end in
//! `_total`, durations are in seconds (`_seconds`), and no counter shares its
//! name less `_total` with a gauge.

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (buckets, sum, count).
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// `(name, kind, help)` of every metric.
#[rustfmt::skip]
pub const METRICS: &[(&str, Kind, &str)] = &[
    ("tracker_archive_batches_total", Counter, "Batches of finished orders moved to the archive."),
    ("tracker_archive_errors_total", Counter, "Archive batches that failed (retried on the next round)."),
    ("tracker_archive_orders_total", Counter, "Finished orders moved to the archive."),
    ("tracker_blocklist_bad_lines_total", Counter, "Lines of the block list file that were not an address or a network."),
    ("tracker_blocklist_entries", Gauge, "Addresses and networks on the block list."),
    ("tracker_connections_open", Gauge, "Open connections of this process (WebSocket, SSE, long-poll, MQTT)."),
    ("tracker_delivery_latency_seconds", Histogram, "Event time (a fix's phone time) to the flush to a watcher's socket."),
    ("tracker_event_age_at_fanout_seconds", Histogram, "Event time to the hand-over to the watchers' queues."),
    ("tracker_events_appended_total", Counter, "Events appended to the log, by source (ingest: fixes; outbox: order changes)."),
    ("tracker_events_delivered_total", Counter, "Live events sent to watchers."),
    ("tracker_events_replayed_total", Counter, "Events sent to watchers from the log on resume or catch-up."),
    ("tracker_fanout_queued_total", Counter, "Appends queued to watchers' queues by the fan-out."),
    ("tracker_fixes_accepted_total", Counter, "Rider fixes accepted (MQTT and HTTP)."),
    ("tracker_fixes_rejected_total", Counter, "Rider fixes rejected, by reason."),
    ("tracker_fixes_unrouted_total", Counter, "Valid fixes of riders holding no order."),
    ("tracker_grabs_total", Counter, "Grabs of open orders, by outcome."),
    ("tracker_http_header_timeouts_total", Counter, "HTTP connections closed for sending no complete request head in time."),
    ("tracker_id_lease_errors_total", Counter, "Failed renewals of this process's node id lease."),
    ("tracker_id_lease_lost_total", Counter, "Node id leases lost to another process."),
    ("tracker_id_node", Gauge, "The node id this process puts into order ids."),
    ("tracker_ids_past_reservation", Gauge, "Order ids issued past the stored reservation (the store could not be written)."),
    ("tracker_ingest_burst_publishes", Histogram, "Publishes a routing lane took together in one burst (one pipelined append)."),
    ("tracker_ingest_retries_total", Counter, "Appends of fixes retried after a backend error."),
    ("tracker_known_ids", Gauge, "Ids in the filter of known order ids or SKUs, by what."),
    ("tracker_known_ids_checks_total", Counter, "Checks of the filters of known order ids and SKUs, by what and outcome."),
    ("tracker_known_ids_refresh_failures_total", Counter, "Refreshes of the filters of known ids that failed."),
    ("tracker_mqtt_acks_skipped_total", Counter, "Acks not sent for publishes of an earlier connection (the session redelivers them)."),
    ("tracker_mqtt_publishes_received_total", Counter, "Publishes ingest received from the external broker."),
    ("tracker_mqtt_reconnects_total", Counter, "Reconnections of ingest to the external broker."),
    ("tracker_mqtt_refused_total", Counter, "Connections refused by the riders' MQTT listener, by reason."),
    ("tracker_mqtt_riders_connected", Gauge, "Riders connected to the riders' MQTT listener."),
    ("tracker_not_ready_total", Counter, "Answers of 503 from /readyz (a backend did not answer, or draining)."),
    ("tracker_orders_created_total", Counter, "Orders created."),
    ("tracker_outbox_backlog", Gauge, "Outbox rows waiting at the relay's last round."),
    ("tracker_outbox_relay_errors_total", Counter, "Relay rounds that failed."),
    ("tracker_outbox_relayed_total", Counter, "Outbox rows relayed to the log."),
    ("tracker_package_changes_total", Counter, "Package status changes."),
    ("tracker_pool_repairs_total", Counter, "Dispatch pool entries repaired from the store."),
    ("tracker_pool_updates_total", Counter, "Dispatch pool entries opened or closed from the log."),
    ("tracker_refunds_required_total", Counter, "Payments that arrived after the payment timeout (a refund is due)."),
    ("tracker_refunds_total", Counter, "Refunds by step (requested, waited, done, refused)."),
    ("tracker_refused_total", Counter, "Requests and connections refused by admission, by reason."),
    ("tracker_rider_index_failures_total", Counter, "Rider positions that could not be indexed for dispatch."),
    ("tracker_shares_created_total", Counter, "Share links made."),
    ("tracker_shares_revoked_total", Counter, "Orders whose share links were revoked."),
    ("tracker_sse_closed_expired_total", Counter, "SSE streams closed when their token expired."),
    ("tracker_sse_connections", Gauge, "Open SSE streams."),
    ("tracker_stock_reservations_total", Counter, "Orders' stock reservations made."),
    ("tracker_stock_settled_total", Counter, "Stock reservations settled, by how and via."),
    ("tracker_tail_backlog", Gauge, "Entries waiting in the hub's log tail (fan-out lag)."),
    ("tracker_tail_entries_total", Counter, "Log entries the hub's tail handed to the fan-out."),
    ("tracker_tail_gaps_total", Counter, "Gaps found in the tail by seq (every watcher of the order resynced)."),
    ("tracker_tail_lagged_total", Counter, "Times the tail fell behind its buffer (every watcher resynced)."),
    ("tracker_tail_malformed_total", Counter, "Tail messages from Redis that could not be read."),
    ("tracker_tail_resubscribes_total", Counter, "Resubscriptions of the tail to Redis."),
    ("tracker_tail_subscribed_orders", Gauge, "Orders whose channels this process subscribes to on Redis."),
    ("tracker_timeouts_total", Counter, "Order timeouts, by kind, outcome and via."),
    ("tracker_timers_malformed_total", Counter, "Delay queue entries that could not be read."),
    ("tracker_timers_waiting", Gauge, "Timers in the delay queue at the last sweep."),
    ("tracker_tls_handshakes_failed_total", Counter, "TLS handshakes that failed or timed out."),
    ("tracker_track_group_recreated_total", Counter, "Track queue consumer groups made again after Redis lost them."),
    ("tracker_track_lag", Gauge, "Track points not yet read by the consumer group."),
    ("tracker_track_pending", Gauge, "Track points read but not yet stored."),
    ("tracker_track_points_malformed_total", Counter, "Track queue entries that could not be read."),
    ("tracker_track_points_reclaimed_total", Counter, "Track points taken over from a consumer that stopped."),
    ("tracker_track_points_stored_total", Counter, "Track points written to the store."),
    ("tracker_track_write_errors_total", Counter, "Batches of track points the store refused (retried)."),
    ("tracker_trips_alerts_total", Counter, "Alert edges raised or cleared by the trip watcher, by kind and edge."),
    ("tracker_trips_arrivals_total", Counter, "Arrivals noted by the trip watcher, at pick-up or drop-off."),
    ("tracker_trips_errors_total", Counter, "Trip watcher rounds that failed."),
    ("tracker_trips_etas_total", Counter, "Estimates of arrival appended."),
    ("tracker_trips_feed_resyncs_total", Counter, "Times the trip feed was read again from the start."),
    ("tracker_trips_followed", Gauge, "Orders the trip watcher follows in this process."),
    ("tracker_trips_lag_seconds", Gauge, "Age of the feed items the trip watcher takes."),
    ("tracker_trips_partitions_owned", Gauge, "Feed partitions this process's trip watcher owns."),
    ("tracker_webhooks_dropped_total", Counter, "Webhook events given up after the retry period (24 h)."),
    ("tracker_webhooks_errors_total", Counter, "Webhook sender rounds that failed on the backend (retried)."),
    ("tracker_webhooks_failed_total", Counter, "Webhook calls that failed, by reason (status, timeout, connect); each is retried."),
    ("tracker_webhooks_in_flight", Gauge, "Orders this process is sending webhook events of now."),
    ("tracker_webhooks_lag_seconds", Histogram, "From the log taking an event to the webhook endpoint accepting it."),
    ("tracker_webhooks_partitions_owned", Gauge, "Webhook queue partitions this process sends."),
    ("tracker_webhooks_retrying", Gauge, "Orders whose webhook calls failed and wait for their retry, in this process's partitions."),
    ("tracker_webhooks_sent_total", Counter, "Webhook events the endpoint accepted (2xx)."),
    ("tracker_ws_access_ended_total", Counter, "Subscriptions ended because access ended, by reason."),
    ("tracker_ws_catch_ups_total", Counter, "Watchers caught up from the log after their queue overflowed."),
    ("tracker_ws_closed_expired_total", Counter, "WebSockets closed when their token expired."),
    ("tracker_ws_closed_slow_total", Counter, "WebSockets closed for reading too slowly."),
    ("tracker_ws_connections", Gauge, "Open WebSockets."),
    ("tracker_ws_epoch_changes_total", Counter, "Catch-ups that found the order's log in another epoch (recovered:false)."),
    ("tracker_ws_forbidden_total", Counter, "Subscriptions refused for lack of access."),
    ("tracker_ws_frames_rejected_total", Counter, "WebSocket frames rejected, by reason."),
    ("tracker_ws_frames_sent_total", Counter, "WebSocket frames sent."),
    ("tracker_ws_queue_overflows_total", Counter, "Watchers' queues that overflowed."),
    ("tracker_ws_refreshes_total", Counter, "Token refreshes on open WebSockets, by result."),
    ("tracker_ws_resumes_total", Counter, "Resumes by since and epoch, by whether they recovered."),
    ("tracker_ws_subscriptions", Gauge, "Order subscriptions of open watchers."),
];

/// Names emitted before the metric conventions, and what they are now.
pub const RENAMED: &[(&str, &str)] = &[
    (
        "tracker_delivery_latency_ms",
        "tracker_delivery_latency_seconds",
    ),
    (
        "tracker_event_age_at_fanout_ms",
        "tracker_event_age_at_fanout_seconds",
    ),
    ("tracker_known_ids_total", "tracker_known_ids_checks_total"),
];

/// Registers every help line with the installed recorder.
pub fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Counter => metrics::describe_counter!(name, help),
            Gauge => metrics::describe_gauge!(name, help),
            Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// Every `counter!("tracker_…")`, `gauge!(…)` and `histogram!(…)` of the
    /// workspace's sources, with its kind.
    fn emitted() -> BTreeMap<String, Kind> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = BTreeMap::new();
        let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("src")))
            .filter(|p| p.is_dir())
            .collect();
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (macro_name, kind) in [
                    ("counter!(", Counter),
                    ("gauge!(", Gauge),
                    ("histogram!(", Histogram),
                ] {
                    for part in text.split(macro_name).skip(1) {
                        let rest = part.trim_start();
                        if let Some(name) = rest
                            .strip_prefix('"')
                            .and_then(|r| r.split('"').next())
                            .filter(|n| {
                                n.starts_with("tracker_")
                                    && n.bytes().all(|b| {
                                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
                                    })
                            })
                        {
                            found.insert(name.to_owned(), kind);
                        }
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_metric_in_the_sources_is_described_with_its_kind_and_nothing_else() {
        let emitted = emitted();
        assert!(
            emitted.len() > 50,
            "the scan found {} metrics",
            emitted.len()
        );
        let listed: BTreeMap<String, Kind> =
            METRICS.iter().map(|&(n, k, _)| (n.to_owned(), k)).collect();
        assert_eq!(listed.len(), METRICS.len(), "a name listed twice");
        for (name, kind) in &emitted {
            assert_eq!(
                listed.get(name),
                Some(kind),
                "{name}: not described as {kind:?}"
            );
        }
        for name in listed.keys() {
            assert!(
                emitted.contains_key(name),
                "{name} is described but never emitted"
            );
        }
    }

    #[test]
    fn the_grafana_dashboard_uses_only_metrics_that_exist() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/tracker.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut used = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for part in expr.split("tracker_").skip(1) {
                    let tail: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    let name = format!("tracker_{tail}");
                    let base = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(&name);
                    assert!(
                        METRICS.iter().any(|&(n, _, _)| n == base),
                        "{base} in the dashboard is no metric"
                    );
                    used += 1;
                }
            }
        }
        assert!(used >= 20, "{used}");
    }

    #[test]
    fn names_follow_the_conventions() {
        for &(name, kind, help) in METRICS {
            assert!(!help.is_empty() && help.ends_with('.'), "{name}: {help:?}");
            assert_eq!(kind == Counter, name.ends_with("_total"), "{name}");
            assert!(!name.ends_with("_ms"), "{name}: durations are in seconds");
            if kind == Counter {
                let bare = name.trim_end_matches("_total");
                assert!(
                    !METRICS.iter().any(|&(n, k, _)| n == bare && k == Gauge),
                    "{name} clashes with the gauge {bare}"
                );
            }
        }
        for (old, new) in RENAMED {
            assert!(METRICS.iter().any(|&(n, _, _)| n == *new), "{new}");
            assert!(!METRICS.iter().any(|&(n, _, _)| n == *old), "{old}");
        }
    }
}
