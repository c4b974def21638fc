//! The hub service: its listener and its configuration.

use super::backends::Backends;
use super::services::Services;
use crate::settings::Settings;
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_backend::archive::Archive;
use tracker_backend::archive::mover::{Mover, MoverConfig};
use tracker_backend::archive::sql::SqlArchive;
use tracker_backend::ids::NodeIds;
use tracker_hub::http::ready::Readiness;
use tracker_hub::{Auth, HubConfig, HubDeps};
use tracker_routing::Router;

/// Binds the hub's listener and runs it as the service "hub".
/// Returns where it listens.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    s: &Settings,
    auth: Arc<Auth>,
    b: &Backends,
    fixes: Arc<Router>,
    gate: tracker_gate::Gate,
    metrics: Option<PrometheusHandle>,
    readiness: Readiness,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    // What the hub needs before it answers anyone: a node id and the archive.
    let node_ids = NodeIds::start(b.store.clone(), b.clock.clone(), s.node_id)
        .await
        .context("leasing a node id for order ids (TRACKER_NODE_ID)")?;
    let ids = node_ids.ids.clone();
    let lease_stop = stop.clone();
    services.spawn("order id lease", async move {
        node_ids.run(lease_stop).await;
        Ok(())
    });
    let archive = open_archive(s, b, services, stop).await?;
    let listener = super::bind(s.http.addr, "TRACKER_HTTP_ADDR").await?;
    let addr = listener.local_addr()?;
    let tls = super::tls::acceptor(s, &[b"http/1.1"])?;
    let deps = HubDeps {
        store: b.store.clone(),
        log: b.log.clone(),
        auth,
        ids,
        clock: b.clock.clone(),
        fixes,
        metrics,
        dispatch: b.dispatch.clone(),
        timers: b.timers.clone(),
        feed: s.trip_watcher.then(|| b.feed.clone()),
        archive,
        stock: b.stock.clone(),
        gate,
        readiness,
    };
    let cfg = HubConfig {
        ws: s.ws.clone(),
        web: s.web.clone(),
        dispatch: s.dispatch.clone(),
        trips: s.trips.clone(),
        serve: s.http.serve.clone(),
        api: tracker_hub::http::ApiLimits {
            max_in_flight: s.http.max_in_flight,
            ..Default::default()
        },
        ..HubConfig::default()
    };
    match tls {
        None => services.spawn("hub", tracker_hub::run(cfg, deps, listener, stop.clone())),
        Some(tls) => {
            let listener = super::tls::TlsListener::new(listener, tls, stop.clone())?;
            services.spawn("hub", tracker_hub::run(cfg, deps, listener, stop.clone()))
        }
    }
    Ok(addr)
}

/// Opens the archive (`TRACKER_ARCHIVE_DATABASE_URL`) unless `TRACKER_ARCHIVE=off`,
/// and runs its mover as the service "archive mover".
async fn open_archive(
    s: &Settings,
    b: &Backends,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Arc<dyn Archive>>> {
    if !s.archive.enabled {
        return Ok(None);
    }
    let url = s.archive.database_url(&s.data);
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&s.data.dir)
            .with_context(|| format!("creating TRACKER_DATA_DIR `{}`", s.data.dir.display()))?;
    }
    let archive: Arc<dyn Archive> = Arc::new(SqlArchive::open(&url).await.with_context(|| {
        format!(
            "opening the archive TRACKER_ARCHIVE_DATABASE_URL=`{}`",
            tracker_backend::select::redact(&url)
        )
    })?);
    let mover = Mover::new(
        b.store.clone(),
        archive.clone(),
        b.clock.clone(),
        MoverConfig {
            after: s.archive.after,
            batch: s.archive.batch,
            every: s.archive.every,
            ..MoverConfig::default()
        },
    );
    let stop = stop.clone();
    services.spawn("archive mover", async move {
        mover.run(stop).await;
        Ok(())
    });
    Ok(Some(archive))
}
