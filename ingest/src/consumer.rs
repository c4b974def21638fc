//! Ingest from an external broker, by rumqttc's rules: one task owns the event loop and
//! only forwards publishes; a second task routes them and acks each one after
//! its append succeeded (manual acks: at-least-once).
//!
//! The session is MQTT 5: its Receive Maximum tells the broker how many
//! unacked fixes it may send ahead. Over MQTT 3.1.1 that window is the
//! broker's own (Mosquitto's `max_inflight_messages`, 20 by default), which
//! ingest's acks after the append cannot keep full, so fixes queued in the
//! broker and reached watchers hundreds of milliseconds late under load
//! (docs/benchmarks.md).
//!
//! rumqttc has no reconnect backoff of its own (a bare poll loop against a down
//! broker spins), so errors sleep with capped exponential backoff here, and
//! subscriptions are made again on every ConnAck. TCP_NODELAY is on: with Nagle,
//! small publishes and acks stall for tens of milliseconds at the tail.

use crate::lanes::Lanes;
use crate::topic;
use anyhow::{Context, bail};
use rumqttc::NetworkOptions;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish};
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracker_backend::retry::Backoff;
use tracker_backend::track::Stored;
use tracker_routing::Router;

/// The largest packet ingest takes from the broker: a fix at its size limit
/// with room for the topic and the packet's header.
const MAX_PACKET: u32 = crate::topic::MAX_PAYLOAD as u32 + 1024;

/// Where the broker is, and how ingest logs in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Ingest's own credentials on the broker, from `user:password@`.
    pub login: Option<BrokerLogin>,
}

/// A username and password; `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerLogin {
    /// Username.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for BrokerLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BrokerLogin({:?}, ***)", self.user)
    }
}

impl MqttTarget {
    /// Parses `mqtt://[user:password@]host:port` (port defaults to 1883).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
        else {
            bail!("MQTT URL must start with mqtt://");
        };
        let rest = rest.trim_end_matches('/');
        let (login, rest) = match rest.rsplit_once('@') {
            Some((creds, hostport)) => {
                let Some((user, password)) = creds.split_once(':') else {
                    bail!("MQTT URL credentials must be user:password@");
                };
                let login = BrokerLogin {
                    user: user.to_owned(),
                    password: password.to_owned(),
                };
                (Some(login), hostport)
            }
            None => (None, rest),
        };
        // From here on `url` may name a password: errors quote host and port only.
        let url = rest;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .with_context(|| format!("bad port in MQTT URL `{url}`"))?,
            ),
            None => (rest, 1883),
        };
        if host.is_empty() {
            bail!("MQTT URL `{url}` has no host");
        }
        Ok(MqttTarget {
            host: host.trim_matches(['[', ']']).to_owned(),
            port,
            login,
        })
    }
}

/// How an ingest instance connects and consumes.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The broker.
    pub target: MqttTarget,
    /// MQTT client id: the name of ingest's persistent session on the broker,
    /// so the same across restarts of one instance and unique between them.
    pub client_id: String,
    /// Shared-subscription group: instances in one group split the riders.
    /// `None` subscribes without a group, for a broker with one consumer.
    pub share_group: Option<String>,
    /// Publishes buffered between the event loop and the router.
    pub queue: usize,
    /// Unacked publishes the broker may send ahead (MQTT 5 Receive Maximum).
    pub receive_maximum: u16,
    /// How long the broker keeps the session while ingest is away.
    pub session_expiry: Duration,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// True while ingest is connected to the broker (for `/readyz`).
    pub connected: Arc<AtomicBool>,
}

impl IngestConfig {
    /// Defaults for `target`, with the client id of this host ([`default_client_id`]).
    pub fn new(target: MqttTarget) -> Self {
        IngestConfig {
            target,
            client_id: default_client_id(),
            share_group: Some("ingest".into()),
            queue: 1024,
            receive_maximum: 1000,
            session_expiry: Duration::from_secs(24 * 3600),
            keep_alive: Duration::from_secs(30),
            connected: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// `tracker-ingest-<host name>`: stable across restarts on one host (a pod of
/// a StatefulSet keeps its name); a host without a readable name gets a
/// random id, whose session a restart cannot take back (warned).
pub fn default_client_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && !h.contains(['/', '+', '#']));
    match host {
        Some(h) => format!("tracker-ingest-{h}"),
        None => {
            tracing::warn!(
                "no host name: ingest's MQTT client id is random, so a restart cannot resume its session; set TRACKER_MQTT_CLIENT_ID"
            );
            format!("tracker-ingest-{:08x}", rand::random::<u32>())
        }
    }
}

/// Consumes rider fixes until `stop` is cancelled.
///
/// The session is persistent (clean start off, kept for
/// [`IngestConfig::session_expiry`]) under a stable client id: the broker
/// keeps the subscription and every QoS 1 fix not yet acked while ingest is
/// down or reconnecting, and redelivers them when it is back.
pub async fn run(cfg: IngestConfig, router: Arc<Router>, stop: CancellationToken) {
    let mut opts = MqttOptions::new(
        cfg.client_id.clone(),
        cfg.target.host.clone(),
        cfg.target.port,
    );
    opts.set_keep_alive(cfg.keep_alive)
        .set_manual_acks(true)
        // Persistent: what the broker holds for us outlives this connection and process.
        .set_clean_start(false)
        .set_session_expiry_interval(Some(
            u32::try_from(cfg.session_expiry.as_secs()).unwrap_or(u32::MAX),
        ))
        .set_receive_maximum(Some(cfg.receive_maximum.max(1)))
        // The broker drops a larger publish for us instead of sending it: an
        // oversized fix cannot end the connection and come back forever.
        .set_max_packet_size(Some(MAX_PACKET))
        // Acks and subscribes go through this channel; it must never fill while
        // the event loop waits for the router (unacked publishes are capped by
        // the Receive Maximum, below this).
        .set_request_channel_capacity(8192);
    if let Some(login) = &cfg.target.login {
        opts.set_credentials(login.user.clone(), login.password.clone());
    }
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    opts.set_network_options(net);
    let (client, mut eventloop) = AsyncClient::new(opts, 8192);

    let (tx, rx) = mpsc::channel::<Received>(cfg.queue.max(1));
    // Which connection a publish came on: its ack is only sent on that one.
    let connection = Arc::new(AtomicU64::new(0));
    let worker = tokio::spawn(route_loop(
        rx,
        client.clone(),
        connection.clone(),
        router,
        stop.clone(),
    ));
    let filters: Vec<Filter> = topic::filters(cfg.share_group.as_deref())
        .into_iter()
        .map(|f| Filter::new(f, QoS::AtLeastOnce))
        .collect();

    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    loop {
        let event = tokio::select! {
            e = eventloop.poll() => e,
            _ = stop.cancelled() => break,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                connection.fetch_add(1, Ordering::AcqRel);
                cfg.connected.store(true, Ordering::Release);
                backoff.reset();
                tracing::info!(broker = %format!("{}:{}", cfg.target.host, cfg.target.port), group = cfg.share_group.as_deref().unwrap_or("-"), client_id = %cfg.client_id, "ingest connected");
                if let Err(e) = client.try_subscribe_many(filters.clone()) {
                    tracing::error!(error = %e, "could not queue the subscription");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                metrics::counter!("tracker_mqtt_publishes_received_total").increment(1);
                // Waiting here is the back-pressure: the broker stops sending once
                // the Receive Maximum of unacked publishes is reached.
                tokio::select! {
                    r = tx.send((p, connection.load(Ordering::Acquire))) => if r.is_err() { break },
                    _ = stop.cancelled() => break,
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Publishes of the connection that just failed are not acked
                // from now on: their acks would go out on the next connection,
                // where the session redelivers them under packet ids that may
                // by then name other messages.
                connection.fetch_add(1, Ordering::AcqRel);
                cfg.connected.store(false, Ordering::Release);
                tracing::warn!(error = %e, "MQTT connection failed; retrying with backoff");
                metrics::counter!("tracker_mqtt_reconnects_total").increment(1);
                if !backoff.wait(&stop).await {
                    break;
                }
            }
        }
    }
    cfg.connected.store(false, Ordering::Release);
    drop(tx);
    // The acks of what was stored before the stop still go out, then the
    // DISCONNECT: the event loop is polled until both are sent (bounded), or
    // the broker would send all of it again after a restart.
    let mut worker = worker;
    let flushed = tokio::time::timeout(SHUTDOWN_FLUSH, async {
        loop {
            tokio::select! {
                _ = &mut worker => break,
                e = eventloop.poll() => if e.is_err() { return },
            }
        }
        let _ = client.try_disconnect();
        while let Ok(e) = eventloop.poll().await {
            if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!(
            "ingest stopped before its last acks went out; the broker sends those fixes again"
        );
    }
}

/// How long a stopping ingest keeps its connection to send its last acks.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// A publish and the number of the connection it came on.
type Received = (Publish, u64);

/// Routes publishes on [`Lanes`] and acks each once routed, in the order they
/// arrived (MQTT 3.1.1 wants PUBACKs in order): a publish whose lane is still
/// busy holds back the acks of later ones, never their routing.
async fn route_loop(
    mut rx: mpsc::Receiver<Received>,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
    router: Arc<Router>,
    stop: CancellationToken,
) {
    let lanes = Lanes::start(router.clone(), stop.clone());
    let (ack_tx, ack_rx) = mpsc::channel::<(oneshot::Receiver<Stored>, Received)>(4096);
    let acker = tokio::spawn(ack_in_order(ack_rx, client, connection));
    while let Some(r) = rx.recv().await {
        let (done_tx, done_rx) = oneshot::channel();
        // A topic that is not UTF-8 names no rider: `send` counts it as a bad
        // topic and it is acked, so the broker does not send it again.
        let topic = std::str::from_utf8(&r.0.topic).unwrap_or("");
        if !lanes.send(topic, r.0.payload.clone(), Some(done_tx)).await {
            break;
        }
        if ack_tx.send((done_rx, r)).await.is_err() {
            break;
        }
    }
    drop(ack_tx);
    lanes.close().await;
    let _ = acker.await;
}

/// Acks publishes in arrival order as each is routed and durable; stops at
/// the first that never will be (stopping: it stays unacked so the broker
/// redelivers it).
///
/// A publish that came on an earlier connection is not acked: the session
/// redelivers it on the new one, where that copy is acked, and its packet id
/// may meanwhile name another message, which an old ack would ack unstored.
async fn ack_in_order(
    mut rx: mpsc::Receiver<(oneshot::Receiver<Stored>, Received)>,
    client: AsyncClient,
    connection: Arc<AtomicU64>,
) {
    while let Some((done, (p, came_on))) = rx.recv().await {
        if !crate::lanes::routed_and_stored(done).await {
            return;
        }
        if came_on != connection.load(Ordering::Acquire) {
            metrics::counter!("tracker_mqtt_acks_skipped_total").increment(1);
            continue;
        }
        if p.qos != QoS::AtMostOnce
            && let Err(e) = client.ack(&p).await
        {
            tracing::debug!(error = %e, "ack not sent (connection closing)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_broker_urls() {
        assert_eq!(
            MqttTarget::parse("mqtt://127.0.0.1:1883").unwrap(),
            MqttTarget {
                host: "127.0.0.1".into(),
                port: 1883,
                login: None,
            }
        );
        let t = MqttTarget::parse("mqtt://ingest:s3cret@broker:1884").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("broker", 1884));
        assert_eq!(t.login.as_ref().map(|l| l.user.as_str()), Some("ingest"));
        assert_eq!(
            t.login.as_ref().map(|l| l.password.as_str()),
            Some("s3cret")
        );
        assert!(
            !format!("{t:?}").contains("s3cret"),
            "Debug hides the password"
        );
        let e = MqttTarget::parse("mqtt://ingest:s3cret@broker:nope").unwrap_err();
        assert!(!format!("{e:#}").contains("s3cret"), "{e:#}");
        assert_eq!(MqttTarget::parse("mqtt://broker").unwrap().port, 1883);
        assert!(MqttTarget::parse("http://x").is_err());
        assert!(MqttTarget::parse("mqtt://x:notaport").is_err());
        assert!(MqttTarget::parse("mqtt://:1883").is_err());
    }
}
