//! Wires everything a mode needs: seams from their URLs, the hub, ingest, the broker.
//!
//! `run` is the one-process default (embedded broker unless `TRACKER_MQTT_URL`,
//! in-process log unless `TRACKER_REDIS_URL`, SQLite unless a Postgres URL).
//! `hub` and `ingest` run one service each and must share a log with their
//! peers, so they refuse the in-process log.

use crate::settings::Settings;
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracker_backend::select::{
    LogSettings, log_is_in_process, open_dispatch, open_log, open_store, open_track,
};
use tracker_backend::{EventLog, Store};
use tracker_domain::ids::IdGenerator;
use tracker_domain::{Clock, FixLimits, SystemClock};
use tracker_hub::{Auth, HubConfig, HubDeps};
use tracker_ingest::{IngestConfig, MqttTarget, Router, Stats};

/// Which services this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything in one process.
    Run,
    /// The hub only (API, WebSocket).
    Hub,
    /// Ingest only (MQTT consumer).
    Ingest,
}

/// A started process: its addresses and handles, and the way to stop it.
pub struct Running {
    /// Where the hub listens, when this mode runs one.
    pub http_addr: Option<SocketAddr>,
    /// Where the embedded broker listens, when one runs.
    pub mqtt_addr: Option<SocketAddr>,
    /// Token verification (and minting, for demo tokens), when a hub runs.
    pub auth: Option<Arc<Auth>>,
    /// The JWT secret, when it was generated here rather than configured.
    pub generated_secret: Option<String>,
    /// Counters of fixes taken in (MQTT and HTTP).
    pub ingest_stats: Option<Arc<Stats>>,
    /// The store in use.
    pub store: Arc<dyn Store>,
    /// The event log in use.
    pub log: Arc<dyn EventLog>,
    /// Cancel to stop every service of this process.
    pub stop: CancellationToken,
    services: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Stops every service and waits for them.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }

    /// Waits until every service has ended (after `stop` is cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        for s in self.services {
            s.await.context("service task panicked")??;
        }
        self.log.close().await;
        Ok(())
    }
}

/// Starts the services of `mode` as `s` configures them.
pub async fn start(
    s: &Settings,
    mode: Mode,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Running> {
    if mode != Mode::Run && log_is_in_process(s.redis_url.as_deref()) {
        bail!(
            "`tracker {}` shares its work with other processes through the event log: set TRACKER_REDIS_URL \
             (an in-process log cannot be shared); `tracker run` runs everything in one process",
            if mode == Mode::Hub { "hub" } else { "ingest" }
        );
    }
    if s.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&s.data_dir)
            .with_context(|| format!("creating TRACKER_DATA_DIR `{}`", s.data_dir.display()))?;
    }
    let store = open_store(&s.database_url).await?;
    let log_settings = LogSettings {
        history: s.log_history,
        retention: s.log_retention,
        max_age: s.log_max_age,
        redis_prefix: s.redis_prefix.clone(),
    };
    let log = open_log(s.redis_url.as_deref(), log_settings).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stop = CancellationToken::new();
    let mut running = Running {
        http_addr: None,
        mqtt_addr: None,
        auth: None,
        generated_secret: None,
        ingest_stats: None,
        store: store.clone(),
        log: log.clone(),
        stop: stop.clone(),
        services: Vec::new(),
    };

    // One router per process validates and routes fixes, from MQTT and from
    // HTTP alike; its track queue's writer (or Redis worker) runs here too.
    let (track, track_writer) = open_track(
        s.redis_url.as_deref(),
        &s.redis_prefix,
        store.clone(),
        stop.clone(),
    )
    .await?;
    running.services.push(tokio::spawn(async move {
        track_writer.await.context("track writer panicked")
    }));
    let (dispatch, timers) = open_dispatch(s.redis_url.as_deref(), &s.redis_prefix).await?;
    let stats = Arc::new(Stats::default());
    running.ingest_stats = Some(stats.clone());
    let router = Arc::new(
        Router::new(
            store.clone(),
            log.clone(),
            track,
            clock.clone(),
            FixLimits::default(),
            stats,
        )
        .with_rider_index(dispatch.clone()),
    );
    let cache = (router.clone(), stop.clone());
    running.services.push(tokio::spawn(async move {
        cache.0.cache_holders(cache.1).await;
        Ok(())
    }));

    if mode != Mode::Ingest {
        let secret = match (&s.jwt_secret, mode) {
            (Some(secret), _) => secret.clone(),
            (None, Mode::Run) => {
                let secret = format!("{:032x}", rand::random::<u128>());
                running.generated_secret = Some(secret.clone());
                secret
            }
            (None, _) => {
                bail!("`tracker hub` needs TRACKER_JWT_SECRET, the same on every hub node")
            }
        };
        let mut auth = Auth::hs256(secret.as_bytes());
        if let Some(path) = &s.jwt_public_key {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading TRACKER_JWT_PUBLIC_KEY `{}`", path.display()))?;
            auth = auth
                .with_rs256_public_key(&pem)
                .context("TRACKER_JWT_PUBLIC_KEY is not an RSA public key in PEM")?;
        }
        let auth = Arc::new(auth);
        let listener = tokio::net::TcpListener::bind(s.http_addr)
            .await
            .with_context(|| format!("binding TRACKER_HTTP_ADDR {}", s.http_addr))?;
        running.http_addr = Some(listener.local_addr()?);
        running.auth = Some(auth.clone());
        let deps = HubDeps {
            store: store.clone(),
            log: log.clone(),
            auth,
            ids: Arc::new(IdGenerator::new(s.node_id, clock.clone())),
            clock: clock.clone(),
            fixes: router.clone(),
            metrics: metrics.clone(),
            dispatch,
            timers,
        };
        let mut cfg = HubConfig::default();
        cfg.ws.queue = s.ws_queue;
        cfg.web.dir = s.web_dir.clone();
        cfg.web.tile_url = s.tile_url.clone();
        cfg.dispatch.payment_timeout = s.payment_timeout;
        cfg.dispatch.pickup_timeout = s.pickup_timeout;
        cfg.dispatch.sweep_every = s.timeout_sweep;
        cfg.dispatch.rider_stale = s.rider_stale;
        let hub = tracker_hub::run(cfg, deps, listener, stop.clone());
        running.services.push(tokio::spawn(hub));
    }

    if mode == Mode::Ingest {
        // Ingest has no API, but operators still scrape it and probe its health.
        let listener = tokio::net::TcpListener::bind(s.http_addr)
            .await
            .with_context(|| format!("binding TRACKER_HTTP_ADDR {}", s.http_addr))?;
        running.http_addr = Some(listener.local_addr()?);
        let ops = tracker_hub::api::ops_router(metrics.clone());
        let stop = stop.clone();
        running.services.push(tokio::spawn(async move {
            axum::serve(listener, ops)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .context("serving health and metrics")
        }));
    }

    if mode != Mode::Hub {
        // On an external broker ingest instances share the riders through a shared
        // subscription; the embedded broker has exactly one consumer, this one,
        // linked in process.
        match (&s.mqtt_url, mode) {
            (Some(url), _) => {
                let mut cfg =
                    IngestConfig::new(MqttTarget::parse(url).context("TRACKER_MQTT_URL")?);
                cfg.share_group = Some(s.share_group.clone());
                let ingest = tracker_ingest::consumer::run(cfg, router.clone(), stop.clone());
                running.services.push(tokio::spawn(async move {
                    ingest.await;
                    Ok(())
                }));
            }
            (None, Mode::Run) => {
                let addr = s.mqtt_addr;
                let (addr, link) =
                    tokio::task::spawn_blocking(move || tracker_ingest::broker::start(addr))
                        .await??;
                running.mqtt_addr = Some(addr);
                let ingest =
                    tracker_ingest::consumer::run_linked(link, router.clone(), stop.clone());
                running.services.push(tokio::spawn(async move {
                    ingest.await;
                    Ok(())
                }));
            }
            (None, _) => {
                bail!("`tracker ingest` needs TRACKER_MQTT_URL (the broker riders publish to)")
            }
        }
    }
    Ok(running)
}
