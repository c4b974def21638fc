//! The hub: the orders API for upstream systems and the WebSocket hub for watchers.
//!
//! # Layout
//! - [`auth`]: JWT verification and who may watch which order.
//! - [`error`]: the JSON error answer of every HTTP call.
//! - [`api`]: the orders API (create, get, status, assign) and health.
//! - [`fanout`]: per-order subscriber lists fed by one tail of the event log.
//! - [`watch`]: one client's subscriptions, resume and ordering, for any transport.
//! - [`ws`]: the WebSocket protocol and one task per connection.
//! - [`dispatch`]: open orders near riders, the atomic grab, rider positions, timeouts.
//! - [`web`]: the pages (customer map, operator view, trip replay) served from `web/`.
//!
//! Data path: an API write commits the order row and its events (outbox) in one
//! store transaction → the relay appends them to the event log → the hub's
//! tail hands each entry to [`fanout`] → each watcher's connection task sends it.

pub mod api;
pub mod auth;
pub mod dispatch;
pub mod error;
pub mod fanout;
pub mod watch;
pub mod web;
pub mod ws;

use anyhow::Context;
use axum::extract::FromRef;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracker_backend::dispatch::Dispatch;
use tracker_backend::relay::{self, RelayWaker};
use tracker_backend::timers::DelayQueue;
use tracker_backend::{EventLog, Store};
use tracker_domain::Clock;
use tracker_domain::ids::IdGenerator;

pub use auth::{Auth, Claims, Role};

/// Tunables of the hub; defaults suit a city on one node.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// WebSocket limits and buffers.
    pub ws: ws::WsConfig,
    /// How often the outbox relay looks for rows it was not woken for.
    pub relay_poll: Duration,
    /// Longest an ordinary HTTP request may take.
    pub http_timeout: Duration,
    /// How long shutdown waits for connections to close before giving up.
    pub shutdown_grace: Duration,
    /// The pages and their base map.
    pub web: web::WebConfig,
    /// Timeouts and rider freshness of dispatch.
    pub dispatch: dispatch::DispatchConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ws: ws::WsConfig::default(),
            relay_poll: Duration::from_millis(500),
            http_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            web: web::WebConfig::default(),
            dispatch: dispatch::DispatchConfig::default(),
        }
    }
}

/// What the hub runs on: the seams and the shared services.
#[derive(Clone)]
pub struct HubDeps {
    /// Orders and the outbox.
    pub store: Arc<dyn Store>,
    /// The per-order event log.
    pub log: Arc<dyn EventLog>,
    /// Token verification.
    pub auth: Arc<Auth>,
    /// Order ids.
    pub ids: Arc<IdGenerator>,
    /// Open orders and rider positions by distance, and the grab.
    pub dispatch: Arc<dyn Dispatch>,
    /// The delay queue of order timeouts.
    pub timers: Arc<dyn DelayQueue>,
    /// Wall-clock time for timestamps.
    pub clock: Arc<dyn Clock>,
    /// Validates and routes riders' fixes that arrive over HTTP (shared with MQTT ingest).
    pub fixes: Arc<tracker_ingest::Router>,
    /// Renders `/metrics` when a Prometheus recorder is installed.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The seams and services.
    pub deps: HubDeps,
    /// Subscriber lists.
    pub fanout: Arc<fanout::Fanout>,
    /// Wakes the relay after a write.
    pub relay: RelayWaker,
    /// Tunables.
    pub cfg: Arc<HubConfig>,
    /// Cancelled at shutdown; every connection task watches it.
    pub stop: CancellationToken,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(s: &AppState) -> Self {
        s.deps.auth.clone()
    }
}

impl AppState {
    /// Builds the state and starts the background tasks (log tail → fan-out,
    /// outbox relay, the timeouts) on `tasks`;
    /// they stop with `stop`.
    pub fn start(
        cfg: HubConfig,
        deps: HubDeps,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let fanout = Arc::new(fanout::Fanout::default());
        tasks.spawn(fanout::run_tail(
            fanout.clone(),
            deps.log.tail(),
            stop.clone(),
        ));
        let waker = RelayWaker::default();
        tasks.spawn(relay::run(
            deps.store.clone(),
            deps.log.clone(),
            waker.clone(),
            cfg.relay_poll,
            stop.clone(),
        ));
        let st = AppState {
            deps,
            fanout,
            relay: waker,
            cfg: Arc::new(cfg),
            stop,
            tasks,
        };
        st.tasks.spawn(dispatch::timeouts::run(st.clone()));
        st
    }
}

/// Serves the hub on `listener` until `stop` is cancelled, then closes every
/// WebSocket with a "reconnect" code and waits (up to the grace period) for
/// every task to finish.
pub async fn run(
    cfg: HubConfig,
    deps: HubDeps,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let tasks = TaskTracker::new();
    let grace = cfg.shutdown_grace;
    let state = AppState::start(cfg, deps, stop.clone(), tasks.clone());
    let app = api::router(state);
    tracing::info!(addr = %listener.local_addr()?, "hub listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .await
        .context("serving HTTP")?;
    stop.cancel();
    tasks.close();
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!("some connections did not close within the grace period");
    }
    Ok(())
}
