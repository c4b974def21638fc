//! The composition root: what each mode runs, started in order and supervised.
//!
//! `run` is the one-process default (its own riders' MQTT listener unless `TRACKER_MQTT_URL`,
//! in-process log unless `TRACKER_REDIS_URL`, SQLite unless a Postgres URL).
//! `hub` and `ingest` run one service each and must share a log with their
//! peers, so they refuse the in-process log.
//!
//! - [`backends`]: the seams from their URLs, and fix routing over them.
//! - [`hub`]: the hub service (tokens, listener, configuration).
//! - [`ingest`]: MQTT ingest (the riders' listener, or an external broker),
//!   and the health listener of `tracker ingest`.
//! - [`tokens`]: the token verifier every door shares, and riders' logins.
//! - [`tls`]: TLS for the hub's HTTPS / WSS and riders' MQTT over TLS.
//! - [`services`]: the supervisor: a service that dies stops the process with its error.

pub mod backends;
pub mod gate;
pub mod hub;
pub mod ingest;
pub mod services;
pub mod tls;
pub mod tokens;

use crate::settings::{MqttAuth, Settings};
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use services::Services;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracker_backend::background::Background;
use tracker_backend::select::log_is_in_process;
use tracker_backend::{EventLog, Store};
use tracker_hub::Auth;
use tracker_hub::http::ready::Readiness;
use tracker_routing::Stats;

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
    /// Where the riders' MQTT listener listens, when one runs.
    pub mqtt_addr: Option<SocketAddr>,
    /// Where it takes MQTT over TLS, when TLS is configured.
    pub mqtts_addr: Option<SocketAddr>,
    /// The hub serves HTTPS and WSS.
    pub tls: bool,
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
    /// What `/readyz` answers; [`Readiness::drain`] it before stopping.
    pub readiness: Readiness,
    /// Cancel to stop every service of this process.
    pub stop: CancellationToken,
    services: Services,
    /// The backends' own loops (log tail subscription, sweeper).
    backend_tasks: TaskTracker,
}

/// How long shutdown waits for the backends' own loops once the services ended.
const BACKEND_GRACE: Duration = Duration::from_secs(5);

impl Running {
    /// Stops every service and waits for them.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }

    /// Waits until every service has ended: after `stop` is cancelled, or
    /// after one died (then the others are stopped and its error returned).
    pub async fn wait(self) -> anyhow::Result<()> {
        let r = self.services.wait().await;
        self.log.close().await;
        self.backend_tasks.close();
        if tokio::time::timeout(BACKEND_GRACE, self.backend_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("the backends' own tasks did not end within {BACKEND_GRACE:?}");
        }
        r
    }
}

/// The process is ready while its store and its event log answer (the log on
/// Redis: a round trip; in process: always).
fn readiness_of(b: &backends::Backends) -> Readiness {
    let readiness = Readiness::new();
    let store = b.store.clone();
    readiness.probe("store", move || {
        let store = store.clone();
        async move { store.ping().await.map_err(|e| e.to_string()) }
    });
    let log = b.log.clone();
    readiness.probe("event log", move || {
        let log = log.clone();
        async move { log.ping().await.map_err(|e| e.to_string()) }
    });
    readiness
}

/// Binds `addr`, the value of the setting `var`, for a listener; a failure
/// names the setting.
async fn bind(addr: SocketAddr, var: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {var} {addr}"))
}

/// Starts the services of `mode` as `s` configures them.
pub async fn start(
    s: &Settings,
    mode: Mode,
    metrics: Option<PrometheusHandle>,
) -> anyhow::Result<Running> {
    let redis = s.redis.url.as_ref().map(|u| u.as_str());
    if mode != Mode::Run && log_is_in_process(redis) {
        bail!(
            "`tracker {}` shares its work with other processes through the event log: set TRACKER_REDIS_URL \
             (an in-process log cannot be shared); `tracker run` runs everything in one process",
            if mode == Mode::Hub { "hub" } else { "ingest" }
        );
    }
    let stop = CancellationToken::new();
    let mut services = Services::new(stop.clone());
    let backend_tasks = TaskTracker::new();
    let bg = Background::new(backend_tasks.clone(), stop.clone());
    let b = backends::open(s, &mut services, &bg, &stop).await?;
    let fixes = backends::fix_router(&b, s.limits.fix_rate, &mut services, &stop);
    let gate = gate::build(s, &mut services, &stop)?;
    let readiness = readiness_of(&b);
    let mut running = Running {
        http_addr: None,
        mqtt_addr: None,
        mqtts_addr: None,
        tls: s.tls.cert.is_some(),
        auth: None,
        generated_secret: None,
        ingest_stats: Some(fixes.stats().clone()),
        store: b.store.clone(),
        log: b.log.clone(),
        readiness: readiness.clone(),
        stop: stop.clone(),
        services,
        backend_tasks,
    };
    // One verifier for every door: the hub's, and riders' logins on the
    // MQTT listener (which `tracker ingest` runs without a hub).
    let own_listener = mode != Mode::Hub && s.mqtt.url.is_none();
    let auth = if mode != Mode::Ingest || (own_listener && s.mqtt.auth == MqttAuth::Jwt) {
        let (auth, generated) = tokens::verifier(s, mode)?;
        running.generated_secret = generated;
        Some(auth)
    } else {
        None
    };
    let services = &mut running.services;
    if mode != Mode::Ingest {
        let auth = auth.clone().expect("a hub has a verifier");
        let addr = hub::start(
            s,
            auth,
            &b,
            fixes.clone(),
            gate.clone(),
            metrics.clone(),
            readiness,
            services,
            &stop,
        )
        .await?;
        running.http_addr = Some(addr);
        backends::webhook_sender(s, &b, services, &stop)?;
    } else {
        running.http_addr = Some(ingest::serve_ops(s, metrics, readiness, services, &stop).await?);
    }
    if mode != Mode::Hub {
        // `tracker ingest` is ready only while it hears the broker; `tracker
        // run` serves its API and watchers without it.
        let ingest_ready = (mode == Mode::Ingest).then_some(&running.readiness);
        (running.mqtt_addr, running.mqtts_addr) =
            ingest::start(s, auth.clone(), fixes, gate, ingest_ready, services, &stop).await?;
    }
    running.auth = auth.filter(|_| mode != Mode::Ingest);
    Ok(running)
}
