//! The riders' phones: MQTT connections that publish fixes
//! (`riders/{id}/pos` and `…/pos/batch`), each with TCP_NODELAY set (rumqttc
//! leaves Nagle on, which stalls small publishes by tens of ms). Either one
//! connection per rider, logged in with that rider's token as a real phone
//! is, or a small pool that publishes for any rider (a trusted network:
//! `TRACKER_MQTT_AUTH=none`, or a broker without ACLs).

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, NetworkOptions, QoS};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Connections shared by all simulated riders.
pub struct Phones {
    clients: Vec<AsyncClient>,
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

impl Phones {
    /// Opens the connections `logins` asks for; they reconnect by themselves
    /// until `stop`. Returns once every one has its ConnAck.
    pub async fn connect(
        broker: &Broker,
        logins: Logins,
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
            let mut opts = MqttOptions::new(
                format!("sim-{run:08x}-{i}"),
                broker.host.clone(),
                broker.port,
            );
            opts.set_keep_alive(Duration::from_secs(30))
                .set_max_packet_size(1 << 20, 1 << 20)
                .set_inflight(200)
                .set_request_channel_capacity(4096);
            let relogin = {
                let secret = secret.clone();
                move |opts: &mut MqttOptions| {
                    if let Some(rider) = &login {
                        opts.set_credentials(
                            rider.clone(),
                            crate::api::mint(&secret, rider, "rider"),
                        );
                    }
                }
            };
            relogin(&mut opts);
            let (client, mut ev) = AsyncClient::new(opts, 4096);
            let mut net = NetworkOptions::new();
            net.set_tcp_nodelay(true);
            net.set_connection_timeout(5);
            ev.set_network_options(net);
            let (tx, rx) = tokio::sync::oneshot::channel();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                loop {
                    let e = tokio::select! {
                        e = ev.poll() => e,
                        _ = stop.cancelled() => return,
                    };
                    match e {
                        Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "simulated phone lost the broker; reconnecting");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            relogin(&mut ev.mqtt_options);
                        }
                    }
                }
            });
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
        let client = &self.clients[rider_index % self.clients.len()];
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_ok()
    }
}
