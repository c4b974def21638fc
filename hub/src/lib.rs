//! The hub: the orders API for upstream systems and the watcher side that
//! pushes every change of an order to the people watching it.
//!
//! # Layout
//! - [`orders`]: the use-case layer (order commands and queries, the grab, the
//!   one write path and what follows it, the pool, the timeouts). No axum.
//! - [`watchers`]: the fan-out, one client's subscriptions, the frames, and
//!   the transports (WebSocket, SSE, long-poll).
//! - [`http`]: the API's routes and handlers, the token extractors, the one
//!   HTTP error type, the pages.
//! - [`app`]: the router state (substates) and every route, API and watchers.
//! - [`serve`]: the accept loop (header read timeout, header size, peer address).
//! - [`auth`]: tokens, roles, who may watch which order.
//!
//! Data path: a write (API or job) commits the order row and its events
//! (outbox) in one store transaction ([`orders::write`]) → the relay appends
//! them to the event log → the hub's tail hands each entry to
//! [`watchers::fanout`] → each watcher's transport sends it.

pub mod app;
pub mod auth;
pub mod http;
pub mod orders;
pub mod serve;
pub mod watchers;

#[cfg(test)]
mod test_support;

use metrics_exporter_prometheus::PrometheusHandle;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
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
    pub ws: watchers::WsConfig,
    /// How often the outbox relay looks for rows it was not woken for.
    pub relay_poll: Duration,
    /// Bounds of ordinary API requests (time, how many at once).
    pub api: http::ApiLimits,
    /// The accept loop's limits (header read time, header size).
    pub serve: serve::ServeConfig,
    /// How long shutdown waits for connections to close before giving up.
    pub shutdown_grace: Duration,
    /// The pages and their base map.
    pub web: http::web::WebConfig,
    /// Timeouts and rider freshness of dispatch.
    pub dispatch: orders::DispatchConfig,
    /// The trip watcher's thresholds.
    pub trips: tracker_trips::TripSettings,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ws: watchers::WsConfig::default(),
            relay_poll: Duration::from_millis(500),
            api: http::ApiLimits::default(),
            serve: serve::ServeConfig::default(),
            shutdown_grace: Duration::from_secs(5),
            web: http::web::WebConfig::default(),
            dispatch: orders::DispatchConfig::default(),
            trips: tracker_trips::TripSettings::default(),
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
    pub fixes: Arc<tracker_routing::Router>,
    /// Renders `/metrics` when a Prometheus recorder is installed.
    pub metrics: Option<PrometheusHandle>,
    /// Admission of the process (shared with its MQTT listener, if any).
    pub gate: tracker_gate::Gate,
    /// The feed of orders that moved: with it, the hub runs the trip watcher
    /// (ETA, alerts, arrivals) on its share of the orders.
    pub feed: Option<Arc<dyn tracker_backend::feed::Feed>>,
    /// The cold store of finished orders, when archiving is on: reads
    /// answer for archived orders from it (the mover runs beside the hub).
    pub archive: Option<Arc<dyn tracker_backend::archive::Archive>>,
    /// Stock levels and the orders' reservations.
    pub stock: Arc<dyn tracker_backend::stock::Stock>,
    /// What `/readyz` answers: the process's backends and whether it drains.
    pub readiness: http::ready::Readiness,
}

/// The hub's background jobs; each yields its name when it ends, which
/// before `stop` means it died.
pub type Jobs = JoinSet<&'static str>;

fn job(jobs: &mut Jobs, name: &'static str, f: impl Future<Output = ()> + Send + 'static) {
    jobs.spawn(async move {
        f.await;
        name
    });
}

/// Builds the router's state and starts the hub's background jobs on `jobs`:
/// the log tail feeding the fan-out, the outbox relay and the timeouts. They
/// stop with `stop`; connection tasks are tracked on `tasks`.
pub fn start(
    cfg: &HubConfig,
    deps: HubDeps,
    stop: CancellationToken,
    tasks: &TaskTracker,
    jobs: &mut Jobs,
) -> app::AppState {
    let fanout = Arc::new(watchers::Fanout::for_log(deps.log.clone()));
    job(
        jobs,
        "the log tail of the fan-out",
        watchers::fanout::run_tail(fanout.clone(), deps.log.tail(), stop.clone()),
    );
    let relay = RelayWaker::default();
    job(
        jobs,
        "the outbox relay",
        relay::run(
            deps.store.clone(),
            deps.log.clone(),
            relay.clone(),
            cfg.relay_poll,
            stop.clone(),
        ),
    );
    if let Some(feed) = deps.feed.clone() {
        let worker = tracker_trips::TripWorker {
            store: deps.store.clone(),
            log: deps.log.clone(),
            feed,
            relay: relay.clone(),
            settings: cfg.trips.clone(),
            clock: deps.clock.clone(),
        };
        job(jobs, "the trip watcher", worker.run(stop.clone()));
    }
    let orders = orders::Orders::new(
        orders::OrdersDeps {
            store: deps.store.clone(),
            ids: deps.ids,
            clock: deps.clock.clone(),
            dispatch: deps.dispatch.clone(),
            timers: deps.timers,
            stock: deps.stock,
        },
        relay,
        cfg.dispatch.clone(),
    )
    .with_archive(deps.archive.clone());
    job(
        jobs,
        "the timeouts job",
        orders::timeouts::run(orders.clone(), stop.clone()),
    );
    job(
        jobs,
        "the filter of known order ids",
        orders::known::run(
            orders.known().clone(),
            orders::known::Source::Orders {
                store: deps.store.clone(),
                archive: deps.archive.clone(),
            },
            stop.clone(),
        ),
    );
    job(
        jobs,
        "the filter of known SKUs",
        orders::known::run(
            orders.known_skus().clone(),
            orders::known::Source::Skus(orders.stock.clone()),
            stop.clone(),
        ),
    );
    let reads = orders.reads();
    app::AppState {
        auth: deps.auth.clone(),
        nearby: orders::nearby::Nearby::new(deps.dispatch, deps.clock, cfg.dispatch.rider_stale),
        orders,
        gate: deps.gate.clone(),
        watchers: watchers::Watchers::new(
            fanout,
            deps.auth,
            deps.gate,
            reads,
            deps.log,
            cfg.ws.clone(),
            stop,
            tasks.clone(),
        ),
        fixes: deps.fixes,
    }
}

/// Serves the hub on `listener` (a TCP listener, or one that speaks TLS) until `stop` is cancelled, then closes every
/// WebSocket with a "reconnect" code and waits (up to the grace period) for
/// every task to finish. A background job that ends before `stop` stops the
/// hub, and is its error.
pub async fn run<L>(
    cfg: HubConfig,
    deps: HubDeps,
    listener: L,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let tasks = TaskTracker::new();
    let conns = TaskTracker::new();
    let mut jobs = Jobs::new();
    let metrics = deps.metrics.clone();
    let readiness = deps.readiness.clone();
    let state = start(&cfg, deps, stop.clone(), &tasks, &mut jobs);
    let app = app::router(state, &cfg.api, &cfg.web, metrics, readiness);
    tracing::info!(addr = ?listener.local_addr()?, "hub listening");
    let serve = serve::serve(
        listener,
        app,
        cfg.serve.clone(),
        stop.clone(),
        conns.clone(),
    );
    tokio::pin!(serve);
    let mut died: Option<anyhow::Error> = None;
    loop {
        tokio::select! {
            () = &mut serve => break,
            Some(ended) = jobs.join_next() => {
                if !stop.is_cancelled() && died.is_none() {
                    let e = match ended {
                        Ok(name) => anyhow::anyhow!("{name} stopped"),
                        Err(e) => anyhow::anyhow!("a background job panicked: {e}"),
                    };
                    died = Some(e);
                    stop.cancel();
                }
            }
        }
    }
    stop.cancel();
    tasks.close();
    conns.close();
    let grace = tokio::time::timeout(cfg.shutdown_grace, async {
        tasks.wait().await;
        conns.wait().await;
        while jobs.join_next().await.is_some() {}
    });
    if grace.await.is_err() {
        tracing::warn!("some connections did not close within the grace period");
    }
    died.map_or(Ok(()), Err)
}
