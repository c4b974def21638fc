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
use tracker_ingest::listener::{self, Door, ListenerConfig, RiderAuth, Trusted};
use tracker_ingest::{IngestConfig, MqttTarget};
use tracker_routing::Router;

/// Starts ingest as the service "ingest"; returns the addresses of the
/// riders' listener (plain, and over TLS when configured) when this process
/// runs one. With `readiness` (`tracker ingest`), an ingest consuming from an
/// external broker is ready only while connected to it.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    s: &Settings,
    auth: Option<Arc<Auth>>,
    router: Arc<Router>,
    gate: tracker_gate::Gate,
    readiness: Option<&tracker_hub::http::ready::Readiness>,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<(Option<SocketAddr>, Option<SocketAddr>)> {
    // On an external broker ingest instances share the riders through a shared
    // subscription; without one, riders connect to this process.
    match &s.mqtt.url {
        Some(url) => {
            let mut cfg =
                IngestConfig::new(MqttTarget::parse(url.as_str()).context("TRACKER_MQTT_URL")?);
            cfg.share_group = s.mqtt.share_group();
            if let Some(id) = &s.mqtt.client_id {
                cfg.client_id = id.clone();
            }
            if let Some(readiness) = readiness {
                let connected = cfg.connected.clone();
                readiness.probe("broker", move || {
                    let up = connected.load(std::sync::atomic::Ordering::Acquire);
                    async move {
                        if up {
                            Ok(())
                        } else {
                            Err("not connected to the MQTT broker".to_owned())
                        }
                    }
                });
            }
            let ingest = tracker_ingest::consumer::run(cfg, router, stop.clone());
            services.spawn("ingest", async move {
                ingest.await;
                Ok(())
            });
            Ok((None, None))
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
            let listener = super::bind(s.mqtt.addr, "TRACKER_MQTT_ADDR").await?;
            let addr = listener.local_addr()?;
            let mut doors = vec![Door {
                listener,
                tls: None,
            }];
            let mut tls_addr = None;
            if let Some(tls) = super::tls::acceptor(s, &[b"mqtt"])? {
                let listener = super::bind(s.mqtt.tls_addr, "TRACKER_MQTTS_ADDR").await?;
                tls_addr = Some(listener.local_addr()?);
                doors.push(Door {
                    listener,
                    tls: Some(tls),
                });
            }
            let serve = listener::serve(
                doors,
                ListenerConfig::default(),
                gate,
                riders,
                router,
                stop.clone(),
            );
            services.spawn("rider listener", async move {
                serve.await;
                Ok(())
            });
            Ok((Some(addr), tls_addr))
        }
    }
}

/// `tracker ingest` has no API, but operators still scrape it and probe its
/// health: `/healthz`, `/readyz` and `/metrics` as the service "ops listener".
pub async fn serve_ops(
    s: &Settings,
    metrics: Option<PrometheusHandle>,
    readiness: tracker_hub::http::ready::Readiness,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = super::bind(s.http.addr, "TRACKER_HTTP_ADDR").await?;
    let addr = listener.local_addr()?;
    let ops = tracker_hub::http::ops_router(metrics, readiness);
    let stop = stop.clone();
    services.spawn("ops listener", async move {
        axum::serve(listener, ops)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .context("serving health and metrics")
    });
    Ok(addr)
}
