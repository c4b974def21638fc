//! The riders' own MQTT listener, on the process's runtime: MQTT 3.1.1 and 5
//! on one port, every connection logged in as one rider (username = rider id,
//! password = the rider's token, checked by a [`RiderAuth`]), publishing only
//! to that rider's topics, each publish routed straight to the rider's lane
//! with no broker in between and acknowledged once it is in the log.
//!
//! - [`auth`]: what a CONNECT's login proves.
//! - `codec`: the two protocol versions over the rumqtt project's codecs.
//! - `connection`: one rider's session.
//!
//! Refusals and forced ends are counted in `tracker_mqtt_refused_total{reason}`
//! (`not_connect`, `bad_protocol`, `too_large`, `connect_timeout`, `gate`,
//! `unauthorized`, `bad_packet`, `forbidden_subscription`, `topic_alias`,
//! `keepalive_timeout`, `token_expired`); a publish to another rider's topic
//! in `tracker_fixes_rejected_total{reason="forbidden"}`; connected riders in
//! the gauge `tracker_mqtt_riders_connected`. The process's gate (block list,
//! connect rate per IP, connection cap) is asked first; its refusals are
//! counted in `tracker_refused_total{reason}` and answered in the CONNACK
//! (v5 0x97 over the rate, 0x89 at the cap; 3.1.1 code 3), or, for a
//! blocked address, by closing the socket.

pub mod auth;
mod codec;
mod connection;

#[cfg(test)]
mod tests;

pub use auth::{LoginRefused, RiderAuth, RiderLogin, Trusted};

use crate::lanes::Lanes;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracker_gate::{Gate, Refusal};
use tracker_routing::Router;

/// Limits of the listener.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Largest CONNECT, bytes (a token is well under 2 KiB).
    pub max_connect: usize,
    /// Largest packet after CONNECT, bytes: a batch of 2000 fixes and headers.
    pub max_packet: usize,
    /// A socket that sends no CONNECT within this is closed.
    pub connect_timeout: Duration,
    /// How long shutdown waits for connections to say goodbye.
    pub shutdown_grace: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            max_connect: 8 * 1024,
            max_packet: crate::topic::MAX_PAYLOAD + 1024,
            connect_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// What every connection shares.
struct Shared {
    cfg: ListenerConfig,
    gate: Gate,
    auth: Arc<dyn RiderAuth>,
    stats: Arc<tracker_routing::Stats>,
    lanes: Lanes,
    stop: CancellationToken,
}

/// One port riders connect to: plain MQTT, or MQTT over TLS.
pub struct Door {
    /// The bound socket.
    pub listener: TcpListener,
    /// The TLS side, for MQTT over TLS.
    pub tls: Option<TlsAcceptor>,
}

/// Reads `bytes` as the listener reads what a rider's client sends: the
/// opening CONNECT decides the protocol version, then packet after packet
/// until the bytes run out or one is refused. Returns how many packets were
/// read. For the fuzz targets and properties: no byte sequence may panic it.
pub fn read_client_bytes(bytes: &[u8]) -> usize {
    let cfg = ListenerConfig::default();
    let Ok(Some(version)) = codec::peek_version(bytes, cfg.max_connect) else {
        return 0;
    };
    let mut buf = bytes::BytesMut::from(bytes);
    let mut read = 0;
    while let Ok(Some(packet)) = codec::read(version, &mut buf, cfg.max_packet) {
        if let codec::In::Publish { topic, .. } = &packet {
            let _ = std::str::from_utf8(topic)
                .ok()
                .and_then(crate::topic::parse);
        }
        read += 1;
    }
    read
}

/// Accepts riders on every door until `stop`, then lets every connection
/// end and the lanes (one set for all doors) finish what they hold.
pub async fn serve(
    doors: Vec<Door>,
    cfg: ListenerConfig,
    gate: Gate,
    auth: Arc<dyn RiderAuth>,
    router: Arc<Router>,
    stop: CancellationToken,
) {
    let grace = cfg.shutdown_grace;
    let shared = Arc::new(Shared {
        cfg,
        gate,
        auth,
        stats: router.stats().clone(),
        lanes: Lanes::start(router, stop.clone()),
        stop: stop.clone(),
    });
    let conns = TaskTracker::new();
    let accepting = TaskTracker::new();
    for door in doors {
        accepting.spawn(accept(door, shared.clone(), conns.clone()));
    }
    accepting.close();
    accepting.wait().await;
    conns.close();
    let _ = tokio::time::timeout(grace, conns.wait()).await;
    if let Ok(shared) = Arc::try_unwrap(shared) {
        shared.lanes.close().await;
    }
}

/// Accepts on one door until the stop signal; a TLS door finishes each
/// handshake in the connection's own task, bounded by the CONNECT timeout.
async fn accept(door: Door, shared: Arc<Shared>, conns: TaskTracker) {
    let Door { listener, tls } = door;
    if let Ok(addr) = listener.local_addr() {
        let tls = if tls.is_some() { " over TLS" } else { "" };
        tracing::info!(%addr, "rider MQTT listener ready{tls}");
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shared.stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                // A blocked address is closed at once; one over the rate or
                // the process's cap is told so in its CONNACK.
                let admission = shared.gate.admit(peer.ip());
                if admission.as_ref().err() == Some(&Refusal::Blocked) {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                match &tls {
                    None => {
                        conns.spawn(connection::run(stream, admission, shared));
                    }
                    Some(tls) => {
                        let handshake = tls.accept(stream);
                        conns.spawn(async move {
                            let timeout = shared.cfg.connect_timeout;
                            match tokio::time::timeout(timeout, handshake).await {
                                Ok(Ok(stream)) => connection::run(stream, admission, shared).await,
                                _ => metrics::counter!("tracker_mqtt_refused_total", "reason" => "tls_handshake").increment(1),
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                tracing::warn!(error = %e, "accepting a rider connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
