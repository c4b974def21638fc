//! The hub service: token verification, its listener, its configuration.

use super::Mode;
use super::backends::Backends;
use super::services::Services;
use crate::settings::Settings;
use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracker_domain::ids::IdGenerator;
use tracker_hub::{Auth, HubConfig, HubDeps};
use tracker_routing::Router;

/// What starting the hub tells the rest of the process.
pub struct Started {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Token verification (and minting, for demo tokens).
    pub auth: Arc<Auth>,
    /// The JWT secret, when it was generated here rather than configured.
    pub generated_secret: Option<String>,
}

/// Token verification as configured; `tracker run` makes up a secret when
/// none is set, `tracker hub` refuses to.
fn auth(s: &Settings, mode: Mode) -> anyhow::Result<(Auth, Option<String>)> {
    let (secret, generated) = match (s.auth.secret(), mode) {
        (Some(secret), _) => (secret.to_owned(), None),
        (None, Mode::Run) => {
            let secret = format!("{:032x}", rand::random::<u128>());
            (secret.clone(), Some(secret))
        }
        (None, _) => bail!("`tracker hub` needs TRACKER_JWT_SECRET, the same on every hub node"),
    };
    let mut auth = Auth::hs256(secret.as_bytes());
    if let Some(path) = &s.auth.jwt_public_key {
        let pem = std::fs::read(path)
            .with_context(|| format!("reading TRACKER_JWT_PUBLIC_KEY `{}`", path.display()))?;
        auth = auth
            .with_rs256_public_key(&pem)
            .context("TRACKER_JWT_PUBLIC_KEY is not an RSA public key in PEM")?;
    }
    Ok((auth, generated))
}

/// Binds the hub's listener and runs it as the service "hub".
pub async fn start(
    s: &Settings,
    mode: Mode,
    b: &Backends,
    fixes: Arc<Router>,
    metrics: Option<PrometheusHandle>,
    services: &mut Services,
    stop: &CancellationToken,
) -> anyhow::Result<Started> {
    let (auth, generated_secret) = auth(s, mode)?;
    let auth = Arc::new(auth);
    let listener = tokio::net::TcpListener::bind(s.http.addr)
        .await
        .with_context(|| format!("binding TRACKER_HTTP_ADDR {}", s.http.addr))?;
    let addr = listener.local_addr()?;
    let deps = HubDeps {
        store: b.store.clone(),
        log: b.log.clone(),
        auth: auth.clone(),
        ids: Arc::new(IdGenerator::new(s.node_id, b.clock.clone())),
        clock: b.clock.clone(),
        fixes,
        metrics,
        dispatch: b.dispatch.clone(),
        timers: b.timers.clone(),
    };
    let cfg = HubConfig {
        ws: s.ws.clone(),
        web: s.web.clone(),
        dispatch: s.dispatch.clone(),
        ..HubConfig::default()
    };
    services.spawn("hub", tracker_hub::run(cfg, deps, listener, stop.clone()));
    Ok(Started {
        addr,
        auth,
        generated_secret,
    })
}
