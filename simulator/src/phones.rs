//! The riders' phones: MQTT connections that publish fixes
//! (`riders/{id}/pos` and `…/pos/batch`), each with TCP_NODELAY set (rumqttc
//! leaves Nagle on, which stalls small publishes by tens of ms). Either one
//! connection per rider, logged in with that rider's token as a real phone
//! is, or a small pool that publishes for any rider (a trusted network:
//! `TRACKER_MQTT_AUTH=none`, or a broker without ACLs).

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, NetworkOptions, QoS, v5};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The riders' connections.
pub struct Phones {
    clients: Vec<Client>,
}

/// Where the broker is: `host:port`.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Broker {
    /// Parses `mqtt://host:port` or `host:port`.
    pub fn parse(s: &str) -> anyhow::Result<Broker> {
        let rest = s.strip_prefix("mqtt://").unwrap_or(s);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("`{s}`: expected mqtt://host:port"))?;
        Ok(Broker {
            host: host.to_owned(),
            port: port
                .trim_end_matches('/')
                .parse()
                .map_err(|e| anyhow::anyhow!("`{s}`: bad port: {e}"))?,
        })
    }
}

/// How the phones log in.
#[derive(Debug, Clone)]
pub enum Logins {
    /// `n` shared connections, no login.
    Shared(usize),
    /// One connection per rider id, username = the id, password = a rider
    /// token minted with `secret` (again at every reconnect).
    PerRider {
        /// The riders, in the order their index names them.
        riders: Vec<String>,
        /// The hub's HS256 secret.
        secret: String,
    },
}

/// One phone connection, in the protocol version it speaks.
enum Client {
    V4(AsyncClient),
    V5(v5::AsyncClient),
}

/// The version the phones speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1.
    V311,
    /// MQTT 5 (the default).
    V5,
}

/// Sets (again) the rider login of a connection: username = the rider id,
/// password = a fresh rider token.
fn login_of(login: &Option<String>, secret: &str) -> Option<(String, String)> {
    login
        .as_ref()
        .map(|rider| (rider.clone(), crate::api::mint(secret, rider, "rider")))
}

fn net() -> NetworkOptions {
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    net
}

/// Opens one 3.1.1 connection; `ready` fires at its first ConnAck.
fn open_v4(
    id: String,
    broker: &Broker,
    login: Option<String>,
    secret: String,
    ready: oneshot::Sender<()>,
    stop: CancellationToken,
) -> Client {
    let mut opts = MqttOptions::new(id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20)
        .set_inflight(200)
        .set_request_channel_capacity(4096);
    if let Some((u, p)) = login_of(&login, &secret) {
        opts.set_credentials(u, p);
    }
    let (client, mut ev) = AsyncClient::new(opts, 4096);
    ev.set_network_options(net());
    tokio::spawn(async move {
        let mut ready = Some(ready);
        loop {
            let e = tokio::select! {
                e = ev.poll() => e,
                _ = stop.cancelled() => return,
            };
            match e {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "simulated phone lost the broker; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Some((u, p)) = login_of(&login, &secret) {
                        ev.mqtt_options.set_credentials(u, p);
                    }
                }
            }
        }
    });
    Client::V4(client)
}

/// Opens one MQTT 5 connection; `ready` fires at its first ConnAck.
fn open_v5(
    id: String,
    broker: &Broker,
    login: Option<String>,
    secret: String,
    ready: oneshot::Sender<()>,
    stop: CancellationToken,
) -> Client {
    let mut opts = v5::MqttOptions::new(id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(1 << 20))
        .set_outgoing_inflight_upper_limit(200)
        .set_request_channel_capacity(4096)
        .set_network_options(net());
    if let Some((u, p)) = login_of(&login, &secret) {
        opts.set_credentials(u, p);
    }
    let (client, mut ev) = v5::AsyncClient::new(opts, 4096);
    tokio::spawn(async move {
        let mut ready = Some(ready);
        loop {
            let e = tokio::select! {
                e = ev.poll() => e,
                _ = stop.cancelled() => return,
            };
            match e {
                Ok(v5::Event::Incoming(v5::Incoming::ConnAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "simulated phone lost the broker; reconnecting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Some((u, p)) = login_of(&login, &secret) {
                        ev.options.set_credentials(u, p);
                    }
                }
            }
        }
    });
    Client::V5(client)
}

impl Phones {
    /// Opens the connections `logins` asks for, in `version`; they reconnect
    /// by themselves until `stop`. Returns once every one has its ConnAck.
    pub async fn connect(
        broker: &Broker,
        logins: Logins,
        version: Version,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let (n, riders, secret) = match logins {
            Logins::Shared(n) => (n.max(1), None, String::new()),
            Logins::PerRider { riders, secret } => (riders.len().max(1), Some(riders), secret),
        };
        let mut clients = Vec::with_capacity(n);
        let mut ready = Vec::with_capacity(n);
        let run = rand::random::<u32>();
        for i in 0..n {
            let login = riders.as_ref().and_then(|r| r.get(i)).cloned();
            let id = format!("sim-{run:08x}-{i}");
            let (tx, rx) = oneshot::channel();
            let client = match version {
                Version::V311 => open_v4(id, broker, login, secret.clone(), tx, stop.clone()),
                Version::V5 => open_v5(id, broker, login, secret.clone(), tx, stop.clone()),
            };
            clients.push(client);
            ready.push(rx);
        }
        for rx in ready {
            tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "no ConnAck from mqtt://{}:{} in 10 s",
                        broker.host,
                        broker.port
                    )
                })?
                .map_err(|_| anyhow::anyhow!("the MQTT connection ended before its ConnAck"))?;
        }
        Ok(Phones { clients })
    }

    /// Publishes `payload` for `rider` (`batch`: to `…/pos/batch`).
    pub async fn publish(
        &self,
        rider_index: usize,
        rider: &str,
        batch: bool,
        payload: Vec<u8>,
    ) -> bool {
        let topic = if batch {
            format!("riders/{rider}/pos/batch")
        } else {
            format!("riders/{rider}/pos")
        };
        match &self.clients[rider_index % self.clients.len()] {
            Client::V4(c) => c
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .is_ok(),
            Client::V5(c) => c
                .publish(topic, v5::mqttbytes::QoS::AtLeastOnce, false, payload)
                .await
                .is_ok(),
        }
    }
}
