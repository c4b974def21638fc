//! `tracker run --demo`: simulated riders carrying orders of `demo-customer`
//! around the city, so a newcomer's map is alive. They are real clients of the
//! process (orders API over HTTP, fixes over MQTT) from the simulator crate.

use crate::settings::Settings;
use crate::system::Running;
use anyhow::Context;
use std::net::SocketAddr;
use std::time::Duration;
use tracker_sim::SimConfig;
use tracker_sim::phones::Broker;

/// A wildcard listen address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

/// Starts `riders` simulated riders against `running` until it stops.
pub fn start(settings: &Settings, running: &Running, riders: usize) -> anyhow::Result<()> {
    if running.tls {
        anyhow::bail!(
            "the demo riders speak plain HTTP and MQTT: run `--demo` without TRACKER_TLS_CERT"
        );
    }
    let http = reachable(running.http_addr.context("the demo needs the hub")?);
    let broker = match (running.mqtt_addr, &settings.mqtt.url) {
        (Some(addr), _) => {
            let addr = reachable(addr);
            Broker {
                host: addr.ip().to_string(),
                port: addr.port(),
            }
        }
        (None, Some(url)) => Broker::parse(url.as_str())?,
        (None, None) => anyhow::bail!("the demo needs an MQTT broker"),
    };
    let secret = running
        .generated_secret
        .clone()
        .or_else(|| settings.auth.secret().map(str::to_owned))
        .context("the demo needs the HS256 secret to mint its tokens")?;
    let mut cfg = SimConfig::new(&format!("http://{http}"), broker, &secret);
    cfg.riders = riders;
    cfg.interval = Duration::from_secs(2);
    cfg.speed_mps = 8.0;
    cfg.watchers_per_order = 0;
    cfg.customer = Some("demo-customer".into());
    cfg.duration = None;
    // Each demo rider logs in with its own token, as a real phone does.
    cfg.rider_logins = true;
    cfg.drain = Duration::ZERO;
    let stop = running.stop.clone();
    tokio::spawn(async move {
        if let Err(e) = tracker_sim::run(cfg, stop, |_, _| {}).await {
            tracing::warn!(error = %e, "the demo riders stopped");
        }
    });
    Ok(())
}
