//! MQTT ingest: riders on the process's own listener, or an external broker
//! through a shared subscription; and the health and metrics listener of
//! `tracker ingest`.

use super::services::Services;
use super::tokens::RiderTokens;
use crate::settings::{MqttAuth, Settings};
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_hub::Auth;
use tracker_ingest::listener::{self, ListenerConfig, RiderAuth, Trusted};
use tracker_ingest::{IngestConfig, MqttTarget};
use tracker_routing::Router;

/// Starts ingest as the service "ingest"; returns the address of the riders'
/// listener when this process runs one.
pub async fn start(
    s: &Settings,
    auth: Option<Arc<Auth>>,
    router: Arc<Router>,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    // On an external broker ingest instances share the riders through a shared
    // subscription; without one, riders connect to this process.
    match &s.mqtt.url {
        Some(url) => {
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
        None => {
            let riders: Arc<dyn RiderAuth> = match (s.mqtt.auth, auth) {
                (MqttAuth::Jwt, Some(auth)) => Arc::new(RiderTokens(auth)),
                (MqttAuth::Jwt, None) => {
                    bail!("riders' tokens cannot be checked without a verifier")
                }
                (MqttAuth::None, _) => {
                    tracing::warn!(
                        "TRACKER_MQTT_AUTH=none: anyone who reaches {} may publish positions for any rider; \
                         use it on a trusted network only",
                        s.mqtt.addr
                    );
                    Arc::new(Trusted)
                }
            };
            let listener = tokio::net::TcpListener::bind(s.mqtt.addr)
                .await
                .with_context(|| format!("binding TRACKER_MQTT_ADDR {}", s.mqtt.addr))?;
            let addr = listener.local_addr()?;
            let serve = listener::serve(
                listener,
                ListenerConfig::default(),
                riders,
                router,
                stop.clone(),
            );
            services.spawn("rider listener", async move {
                serve.await;
                Ok(())
            });
            Ok(Some(addr))
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
