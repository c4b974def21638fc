//! MQTT ingest: from an external broker through a shared subscription, or
//! linked in process to the embedded broker; and the health and metrics
//! listener of `tracker ingest`.

use super::Mode;
use super::services::Services;
use crate::settings::Settings;
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_ingest::{IngestConfig, MqttTarget};
use tracker_routing::Router;

/// Starts ingest as the service "ingest"; returns the embedded broker's
/// address when this process runs one.
pub async fn start(
    s: &Settings,
    mode: Mode,
    router: Arc<Router>,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    // On an external broker ingest instances share the riders through a shared
    // subscription; the embedded broker has exactly one consumer, this one,
    // linked in process.
    match (&s.mqtt.url, mode) {
        (Some(url), _) => {
            let mut cfg =
                IngestConfig::new(MqttTarget::parse(url.as_str()).context("TRACKER_MQTT_URL")?);
            cfg.share_group = Some(s.mqtt.share_group.clone());
            let ingest = tracker_ingest::consumer::run(cfg, router, stop.clone());
            services.spawn("ingest", async move {
                ingest.await;
                Ok(())
            });
            Ok(None)
        }
        (None, Mode::Run) => {
            let addr = s.mqtt.addr;
            let (addr, link) =
                tokio::task::spawn_blocking(move || tracker_ingest::broker::start(addr)).await??;
            let ingest = tracker_ingest::consumer::run_linked(link, router, stop.clone());
            services.spawn("ingest", async move {
                ingest.await;
                Ok(())
            });
            Ok(Some(addr))
        }
        (None, _) => {
            bail!("`tracker ingest` needs TRACKER_MQTT_URL (the broker riders publish to)")
        }
    }
}

/// `tracker ingest` has no API, but operators still scrape it and probe its
/// health: `/healthz` and `/metrics` as the service "ops listener".
pub async fn serve_ops(
    s: &Settings,
    metrics: Option<PrometheusHandle>,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(s.http.addr)
        .await
        .with_context(|| format!("binding TRACKER_HTTP_ADDR {}", s.http.addr))?;
    let addr = listener.local_addr()?;
    let ops = tracker_hub::http::ops_router(metrics);
    let stop = stop.clone();
    services.spawn("ops listener", async move {
        axum::serve(listener, ops)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("serving health and metrics")
    });
    Ok(addr)
}
