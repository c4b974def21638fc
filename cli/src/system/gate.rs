//! The process's gate (block list, connect rate, connection caps), built from
//! the settings and shared by every door of the process: the hub's WebSocket,
//! SSE and long-poll, and the riders' MQTT listener. Its upkeep (re-reading
//! the block list, forgetting idle addresses) runs as the service "gate upkeep".

use super::services::Services;
use crate::settings::Settings;
use anyhow::Context;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_gate::{Blocklist, Gate, GateConfig};

/// File descriptors kept back from the connection cap for the backends,
/// the listeners and the data files.
const RESERVED_FDS: u64 = 256;

/// The gate as `s` configures it, its upkeep started on `services`.
pub fn build(
    s: &Settings,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<Gate> {
    let l = &s.limits;
    let max_connections = match l.max_connections {
        Some(n) => n,
        None => derived_max_connections(),
    };
    let blocklist = match &l.ip_blocklist {
        Some(path) => Blocklist::load(path)
            .with_context(|| format!("reading TRACKER_IP_BLOCKLIST `{}`", path.display()))?,
        None => Blocklist::empty(),
    };
    let gate = Gate::new(
        GateConfig {
            connect_rate: l.connect_rate,
            max_connections,
            max_per_user: l.max_connections_per_user.filter(|n| *n > 0),
            trusted_proxies: l.trusted_proxies.clone(),
        },
        Arc::new(blocklist),
    );
    match l.connect_rate {
        Some(r) => tracing::info!(connect_rate = %r, max_connections, "connection limits on"),
        None => tracing::warn!(
            max_connections,
            "TRACKER_CONNECT_RATE=off: no limit on new connections per address"
        ),
    }
    let (g, stop) = (gate.clone(), stop.clone());
    services.spawn("gate upkeep", async move {
        g.maintain(stop).await;
        Ok(())
    });
    Ok(gate)
}

/// Raises the soft open-file limit to the hard one and leaves room for the
/// backends: what the process can hold without running out of descriptors.
fn derived_max_connections() -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    usize::try_from(soft.saturating_sub(RESERVED_FDS).max(64)).unwrap_or(usize::MAX)
}
