//! The embedded MQTT broker (rumqttd) of the one-process default.
//!
//! rumqttd's `start()` blocks and binds inside its own threads without telling
//! us the address or a bind failure, so we check the address is free first, run
//! it on a dedicated thread, and wait (bounded) until it accepts connections.
//! It has no shutdown: the broker lives as long as the process.

use anyhow::{Context, bail};
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Ingest's in-process connection to the embedded broker: riders' publishes
/// reach ingest without a loopback TCP hop (see [`crate::consumer::run_linked`]).
pub struct Link {
    /// Subscribes.
    pub tx: LinkTx,
    /// Receives forwarded publishes.
    pub rx: LinkRx,
}

/// Largest publish the embedded broker accepts (a batch of ~2000 fixes).
pub const MAX_PAYLOAD: usize = 512 * 1024;

/// Starts the broker on `addr` (port 0 picks a free one) and returns the address
/// it listens on (MQTT 3.1.1) once it accepts connections, with ingest's link.
pub fn start(addr: SocketAddr) -> anyhow::Result<(SocketAddr, Link)> {
    let probe = std::net::TcpListener::bind(addr)
        .with_context(|| format!("MQTT address {addr} is not free"))?;
    let addr = probe.local_addr()?;
    drop(probe);

    let server = ServerSettings {
        name: "tracker-v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: MAX_PAYLOAD,
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 100_000,
            max_outgoing_packet_count: 1000,
            max_segment_size: 4 * 1024 * 1024,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Default::default()
    };
    let mut broker = Broker::new(config);
    let (tx, rx) = broker
        .link("tracker-ingest")
        .map_err(|e| anyhow::anyhow!("linking ingest to the embedded broker: {e}"))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .context("spawning the broker thread")?;

    // Bounded readiness wait: the listener binds on the broker's own thread.
    for _ in 0..200 {
        if mqtt_handshake(addr).is_ok() {
            return Ok((addr, Link { tx, rx }));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("embedded MQTT broker did not start listening on {addr}")
}

/// One MQTT 3.1.1 CONNECT → CONNACK → PINGREQ → PINGRESP exchange: proves the broker
/// serves MQTT, not merely that a port is open (and a bare TCP probe would be
/// logged by rumqttd as a failed connection).
fn mqtt_handshake(addr: SocketAddr) -> std::io::Result<()> {
    use std::io::{Read, Write};
    const CONNECT: [u8; 20] = [
        0x10, 18, // CONNECT, remaining length
        0, 4, b'M', b'Q', b'T', b'T', 4, // protocol name and level 3.1.1
        0x02, 0, 10, // clean session, keep-alive 10 s
        0, 6, b'p', b'r', b'o', b'b', b'e', b'0', // client id
    ];
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    s.write_all(&CONNECT)?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack)?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(std::io::Error::other("broker refused the probe"));
    }
    // A ping round trip, then close without DISCONNECT: rumqttd handles a
    // DISCONNECT packet and the socket closing as two events and logs the second
    // as an error, so a plain close keeps its log honest.
    s.write_all(&[0xC0, 0])?;
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong)?;
    Ok(())
}
