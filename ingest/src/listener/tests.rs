//! The listener over real sockets: rumqttc's 3.1.1 and 5 clients, and raw
//! bytes for what no client library would send.

use super::*;
use rumqttc::v5;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
use tracker_backend::store::sqlite::SqliteStore;
use tracker_backend::track::memory::MemoryTrackQueue;
use tracker_backend::{EventLog, Store};
use tracker_domain::{FixLimits, NewOrder, Order, Point, Status, SystemClock};
use tracker_routing::Stats;

const PATIENCE: Duration = Duration::from_secs(10);

/// Logins for the tests: `pw-{rider}` proves a rider; `customer` is a valid
/// token of somebody who is not a rider; `brief-{rider}` ends in a second.
struct Logins;

impl RiderAuth for Logins {
    fn login(&self, user: &str, password: &str) -> Result<RiderLogin, LoginRefused> {
        let now = tracker_domain::clock::now_ms() as u64 / 1000;
        if password == "customer" {
            return Err(LoginRefused::NotAuthorized);
        }
        let expires_at = if password == format!("pw-{user}") {
            Some(now + 3600)
        } else if password == format!("brief-{user}") {
            Some(now + 2)
        } else {
            return Err(LoginRefused::BadCredentials);
        };
        Ok(RiderLogin {
            rider: Some(user.to_owned()),
            expires_at,
        })
    }
}

/// The in-process log, with every append held back for [`SLOW_APPEND`]: a
/// PUBACK that does not wait for the append would beat it.
struct SlowLog(Arc<MemoryLog>);

const SLOW_APPEND: Duration = Duration::from_millis(300);

#[async_trait::async_trait]
impl EventLog for SlowLog {
    async fn ping(&self) -> Result<(), tracker_backend::LogError> {
        self.0.ping().await
    }

    async fn append(
        &self,
        order: &str,
        events: Vec<tracker_domain::EventBody>,
        origin: Option<u64>,
    ) -> Result<Vec<Arc<tracker_backend::Entry>>, tracker_backend::LogError> {
        tokio::time::sleep(SLOW_APPEND).await;
        self.0.append(order, events, origin).await
    }

    async fn read(
        &self,
        order: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<tracker_backend::ReadResult, tracker_backend::LogError> {
        self.0.read(order, since, limit).await
    }

    fn tail(&self) -> tokio::sync::broadcast::Receiver<tracker_backend::TailEvent> {
        self.0.tail()
    }
}

struct Fixture {
    addr: SocketAddr,
    log: Arc<MemoryLog>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

/// A listener over a real router; riders r1 and r2 each hold one order
/// (its log empty: no relay runs here).
async fn start(cfg: ListenerConfig) -> Fixture {
    start_with(cfg, Arc::new(Logins)).await
}

async fn start_with(cfg: ListenerConfig, auth: Arc<dyn RiderAuth>) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
    for rider in ["r1", "r2"] {
        let p = Point { lat: 1.0, lon: 1.0 };
        let new = NewOrder {
            biz_order_no: format!("L-{rider}"),
            biz_type: "t".into(),
            customer_id: "c1".into(),
            pickup: p,
            dropoff: p,
            promised_at: None,
            route: None,
            ..Default::default()
        };
        let mut o = Order::new(format!("order-{rider}"), new, 1_000);
        o.status = Status::Assigned;
        o.rider_id = Some(rider.into());
        store.create_order(&o, &[o.created_event()]).await.unwrap();
    }
    let log = MemoryLog::new(MemoryLogConfig::default());
    let stop = CancellationToken::new();
    let (track, _writer) = MemoryTrackQueue::start(store.clone(), stop.clone());
    let router = Arc::new(Router::new(
        store,
        Arc::new(SlowLog(log.clone())),
        Arc::new(track),
        Arc::new(SystemClock),
        FixLimits::default(),
        Arc::new(Stats::default()),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let door = Door {
        listener,
        tls: None,
    };
    tokio::spawn(serve(
        vec![door],
        cfg,
        Gate::open(),
        auth,
        router,
        stop.clone(),
    ));
    Fixture {
        addr,
        log,
        stop,
        _dir: dir,
    }
}

fn fix() -> Vec<u8> {
    let ts = tracker_domain::clock::now_ms();
    format!(r#"{{"lat":1.5,"lon":2.5,"ts":{ts}}}"#).into_bytes()
}

impl Fixture {
    async fn seq(&self, order: &str) -> u64 {
        self.log.read(order, None, 0).await.unwrap().state.seq
    }

    fn v4(
        &self,
        id: &str,
        user: &str,
        password: &str,
    ) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
        let mut o = rumqttc::MqttOptions::new(id, self.addr.ip().to_string(), self.addr.port());
        o.set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5));
        rumqttc::AsyncClient::new(o, 16)
    }

    fn v5(&self, id: &str, user: &str, password: &str) -> (v5::AsyncClient, v5::EventLoop) {
        let mut o = v5::MqttOptions::new(id, self.addr.ip().to_string(), self.addr.port());
        o.set_credentials(user, password)
            .set_keep_alive(Duration::from_secs(5));
        v5::AsyncClient::new(o, 16)
    }
}

/// Polls a 3.1.1 event loop until `want` matches an incoming packet.
async fn until4(
    ev: &mut rumqttc::EventLoop,
    want: impl Fn(&rumqttc::Packet) -> bool,
) -> rumqttc::Packet {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ev.poll().await {
                Ok(rumqttc::Event::Incoming(p)) if want(&p) => return p,
                Ok(_) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .expect("the packet came")
}

/// Polls a 5 event loop until `want` matches an incoming packet.
async fn until5(
    ev: &mut v5::EventLoop,
    want: impl Fn(&v5::mqttbytes::v5::Packet) -> bool,
) -> v5::mqttbytes::v5::Packet {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match ev.poll().await {
                Ok(v5::Event::Incoming(p)) if want(&p) => return p,
                Ok(_) => {}
                Err(e) => panic!("connection failed: {e}"),
            }
        }
    })
    .await
    .expect("the packet came")
}

#[tokio::test]
async fn both_versions_publish_and_the_puback_comes_after_the_append() {
    let f = start(ListenerConfig::default()).await;
    let (c4, mut e4) = f.v4("phone-4", "r1", "pw-r1");
    until4(&mut e4, |p| matches!(p, rumqttc::Packet::ConnAck(_))).await;
    let sent = tokio::time::Instant::now();
    c4.publish("riders/r1/pos", rumqttc::QoS::AtLeastOnce, false, fix())
        .await
        .unwrap();
    until4(&mut e4, |p| matches!(p, rumqttc::Packet::PubAck(_))).await;
    assert!(
        sent.elapsed() >= SLOW_APPEND,
        "the PUBACK waited for the append"
    );
    assert_eq!(
        f.seq("order-r1").await,
        1,
        "in the log by the time of the PUBACK"
    );

    let (c5, mut e5) = f.v5("phone-5", "r2", "pw-r2");
    c5.publish(
        "riders/r2/pos",
        v5::mqttbytes::QoS::AtLeastOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    let ack = until5(&mut e5, |p| {
        matches!(p, v5::mqttbytes::v5::Packet::PubAck(_))
    })
    .await;
    let v5::mqttbytes::v5::Packet::PubAck(ack) = ack else {
        unreachable!()
    };
    assert_eq!(ack.reason, v5::mqttbytes::v5::PubAckReason::Success);
    assert_eq!(f.seq("order-r2").await, 1);

    // QoS 2, once, however often it is sent.
    c5.publish(
        "riders/r2/pos",
        v5::mqttbytes::QoS::ExactlyOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    until5(&mut e5, |p| {
        matches!(p, v5::mqttbytes::v5::Packet::PubComp(_))
    })
    .await;
    assert_eq!(f.seq("order-r2").await, 2);
    f.stop.cancel();
}

#[tokio::test]
async fn logins_that_prove_no_rider_are_refused_at_connect() {
    let f = start(ListenerConfig::default()).await;
    for (user, password, want) in [
        (
            "r1",
            "wrong",
            rumqttc::ConnectReturnCode::BadUserNamePassword,
        ),
        ("r1", "customer", rumqttc::ConnectReturnCode::NotAuthorized),
    ] {
        let (_c, mut e) = f.v4("x", user, password);
        match tokio::time::timeout(PATIENCE, e.poll()).await.unwrap() {
            Err(rumqttc::ConnectionError::ConnectionRefused(code)) => assert_eq!(code, want),
            other => panic!("{user}/{password}: {other:?}"),
        }
    }
    // Anonymous: no username at all.
    let o = rumqttc::MqttOptions::new("anon", f.addr.ip().to_string(), f.addr.port());
    let (_c, mut e) = rumqttc::AsyncClient::new(o, 4);
    assert!(matches!(
        tokio::time::timeout(PATIENCE, e.poll()).await.unwrap(),
        Err(rumqttc::ConnectionError::ConnectionRefused(
            rumqttc::ConnectReturnCode::BadUserNamePassword
        ))
    ));
    let (_c, mut e) = f.v5("x5", "r1", "wrong");
    assert!(
        tokio::time::timeout(PATIENCE, e.poll())
            .await
            .unwrap()
            .is_err()
    );
    f.stop.cancel();
}

#[tokio::test]
async fn another_riders_topic_changes_nothing_and_their_subtree_is_closed() {
    let f = start(ListenerConfig::default()).await;
    let (c, mut e) = f.v5("intruder", "r1", "pw-r1");
    c.publish(
        "riders/r2/pos",
        v5::mqttbytes::QoS::AtLeastOnce,
        false,
        fix(),
    )
    .await
    .unwrap();
    let ack = until5(&mut e, |p| {
        matches!(p, v5::mqttbytes::v5::Packet::PubAck(_))
    })
    .await;
    let v5::mqttbytes::v5::Packet::PubAck(ack) = ack else {
        unreachable!()
    };
    assert_eq!(ack.reason, v5::mqttbytes::v5::PubAckReason::NotAuthorized);
    assert_eq!(f.seq("order-r2").await, 0, "r2's log is untouched");

    c.subscribe("riders/#", v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let sub = until5(&mut e, |p| {
        matches!(p, v5::mqttbytes::v5::Packet::SubAck(_))
    })
    .await;
    let v5::mqttbytes::v5::Packet::SubAck(sub) = sub else {
        unreachable!()
    };
    assert_eq!(
        sub.return_codes,
        [v5::mqttbytes::v5::SubscribeReasonCode::Unspecified],
        "SUBACK 0x80"
    );
    c.subscribe("riders/r1/#", v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let sub = until5(&mut e, |p| {
        matches!(p, v5::mqttbytes::v5::Packet::SubAck(_))
    })
    .await;
    let v5::mqttbytes::v5::Packet::SubAck(sub) = sub else {
        unreachable!()
    };
    assert!(matches!(
        sub.return_codes[..],
        [v5::mqttbytes::v5::SubscribeReasonCode::Success(_)]
    ));
    f.stop.cancel();
}

#[tokio::test]
async fn a_connection_ends_with_its_token() {
    let f = start(ListenerConfig::default()).await;
    let (_c, mut e) = f.v5("brief", "r1", "brief-r1");
    let started = tokio::time::Instant::now();
    let ended = tokio::time::timeout(PATIENCE, async {
        loop {
            match e.poll().await {
                Ok(_) => {}
                Err(rumqttc::v5::ConnectionError::MqttState(
                    rumqttc::v5::StateError::ServerDisconnect { reason_code, .. },
                )) => return Some(reason_code),
                Err(e) => panic!("ended without a reason: {e:?}"),
            }
        }
    })
    .await
    .expect("closed at the token's end");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before it"
    );
    assert_eq!(
        ended,
        Some(v5::mqttbytes::v5::DisconnectReasonCode::NotAuthorized),
        "a v5 client is told why"
    );
    f.stop.cancel();
}

/// Writes `bytes` on a fresh socket and reads until the server closes it (or
/// PATIENCE runs out); returns what the server sent.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(bytes).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server closed the socket");
    got
}

#[tokio::test]
async fn bad_input_is_answered_and_closed_and_other_riders_carry_on() {
    let f = start(ListenerConfig {
        connect_timeout: Duration::from_millis(300),
        ..ListenerConfig::default()
    })
    .await;
    assert!(
        raw(f.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_empty(),
        "garbage"
    );
    assert!(
        raw(f.addr, &[0x30, 0x05, 0, 1, b'a', b'x', b'y'])
            .await
            .is_empty(),
        "PUBLISH before CONNECT"
    );
    let mut mqtt31 = vec![0x10, 12, 0, 6];
    mqtt31.extend_from_slice(b"MQIsdp");
    mqtt31.extend_from_slice(&[3, 2, 0, 10]);
    assert_eq!(
        raw(f.addr, &mqtt31).await,
        [0x20, 2, 0, 1],
        "MQTT 3.1: unacceptable protocol version"
    );
    let mut huge = vec![0x10, 0xff, 0xff, 0x03];
    huge.extend(std::iter::repeat_n(0u8, 1024));
    assert!(
        raw(f.addr, &huge).await.is_empty(),
        "a CONNECT over the limit"
    );
    assert!(
        raw(f.addr, &[]).await.is_empty(),
        "no CONNECT at all: closed after the timeout"
    );

    // A 10 MB publish from a logged-in rider closes that rider only.
    let (c, mut e) = f.v4("big", "r1", "pw-r1");
    until4(&mut e, |p| matches!(p, rumqttc::Packet::ConnAck(_))).await;
    c.publish(
        "riders/r1/pos",
        rumqttc::QoS::AtMostOnce,
        false,
        vec![b' '; 10 << 20],
    )
    .await
    .unwrap();
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            if e.poll().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the oversized publish ended the connection");
    assert_eq!(f.seq("order-r1").await, 0);

    let (c2, mut e2) = f.v4("fine", "r2", "pw-r2");
    c2.publish("riders/r2/pos", rumqttc::QoS::AtLeastOnce, false, fix())
        .await
        .unwrap();
    until4(&mut e2, |p| matches!(p, rumqttc::Packet::PubAck(_))).await;
    assert_eq!(f.seq("order-r2").await, 1, "another rider is unaffected");
    f.stop.cancel();
}

#[tokio::test]
async fn a_trusted_network_takes_anyone_for_any_rider() {
    let f = start_with(ListenerConfig::default(), Arc::new(Trusted)).await;
    let o = rumqttc::MqttOptions::new("gateway", f.addr.ip().to_string(), f.addr.port());
    let (c, mut e) = rumqttc::AsyncClient::new(o, 16);
    for rider in ["r1", "r2"] {
        c.publish(
            format!("riders/{rider}/pos"),
            rumqttc::QoS::AtLeastOnce,
            false,
            fix(),
        )
        .await
        .unwrap();
        until4(&mut e, |p| matches!(p, rumqttc::Packet::PubAck(_))).await;
    }
    assert_eq!((f.seq("order-r1").await, f.seq("order-r2").await), (1, 1));
    f.stop.cancel();
}
