//! TLS on every door: a throw-away certificate made here (rcgen), HTTPS and
//! a WSS watcher on the hub's address, a rider publishing over MQTT over TLS
//! with its token, and the fix reaching the watcher.

use crate::helpers::*;
use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tracker_domain::{NewOrder, Order, Point, Status};
use tracker_hub::Role;

/// A client that trusts only `cert`.
fn connector(cert: &CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(cfg))
}

async fn tls(c: &TlsConnector, addr: std::net::SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    c.connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

fn mqtt_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A packet of `kind` with `body`, its remaining length encoded.
fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// The next text frame of a WSS watcher, as JSON.
async fn next(
    ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
) -> serde_json::Value {
    match tokio::time::timeout(PATIENCE, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(&t).unwrap(),
        other => panic!("no frame: {other:?}"),
    }
}

#[tokio::test]
async fn a_wss_watcher_gets_a_fix_published_over_mqtt_over_tls() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, made.cert.pem()).unwrap();
    std::fs::write(&key_path, made.key_pair.serialize_pem()).unwrap();
    let (cert_s, key_s) = (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    );
    let app = spawn_app_with(&[
        ("TRACKER_TLS_CERT", cert_s.as_str()),
        ("TRACKER_TLS_KEY", key_s.as_str()),
        ("TRACKER_MQTTS_ADDR", "127.0.0.1:0"),
        ("TRACKER_MQTT_AUTH", "jwt"),
    ])
    .await;
    let http = app.running.http_addr.unwrap();
    let mqtts = app.running.mqtts_addr.expect("MQTT over TLS listens");
    let c = connector(made.cert.der());

    // HTTPS.
    let mut s = tls(&c, http).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // An order its rider holds, written straight to the store (the API's
    // client here speaks plain HTTP only); the relay moves its event on. Its
    // id is of the hub's own kind, made now: the hub's filter of known ids
    // waits for its next refresh and finds it (hub/src/orders/known.rs).
    let rider = unique("r");
    let p = Point {
        lat: 23.13,
        lon: 113.26,
    };
    let new = NewOrder {
        biz_order_no: unique("T"),
        biz_type: "t".into(),
        customer_id: "c1".into(),
        pickup: p,
        dropoff: p,
        promised_at: None,
        route: None,
        ..Default::default()
    };
    let id = tracker_domain::ids::IdGenerator::new(1000, Arc::new(tracker_domain::SystemClock))
        .next_id()
        .to_string();
    let mut order = Order::new(id, new, now_ms());
    order.status = Status::Assigned;
    order.rider_id = Some(rider.clone());
    app.running
        .store
        .create_order(&order, &[order.created_event()])
        .await
        .unwrap();
    app.wait_for_seq(&order.id, 1).await;

    // A WSS watcher.
    let stream = tls(&c, http).await;
    let url = format!(
        "wss://localhost:{}/v1/ws?token={}",
        http.port(),
        app.admin()
    );
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let sub = serde_json::json!({"op": "sub", "order": order.id}).to_string();
    futures_util::SinkExt::send(&mut ws, Message::Text(sub.into()))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["t"], "snapshot");

    // The rider over MQTT over TLS, logged in with its token: CONNECT,
    // CONNACK accepted, a QoS 1 PUBLISH, its PUBACK.
    let mut m = tls(&c, mqtts).await;
    let token = app.token(&rider, Role::Rider);
    let mut connect = Vec::new();
    mqtt_str(&mut connect, b"MQTT");
    connect.extend_from_slice(&[4, 0xC2, 0, 30]);
    mqtt_str(&mut connect, b"tls-phone");
    mqtt_str(&mut connect, rider.as_bytes());
    mqtt_str(&mut connect, token.as_bytes());
    m.write_all(&packet(0x10, &connect)).await.unwrap();
    let mut ack = [0u8; 4];
    m.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0], "CONNACK accepted");
    let mut publish = Vec::new();
    mqtt_str(&mut publish, format!("riders/{rider}/pos").as_bytes());
    publish.extend_from_slice(&7u16.to_be_bytes());
    let fix = serde_json::json!({"lat": 23.131, "lon": 113.261, "ts": now_ms()}).to_string();
    publish.extend_from_slice(fix.as_bytes());
    m.write_all(&packet(0x32, &publish)).await.unwrap();
    let mut puback = [0u8; 4];
    m.read_exact(&mut puback).await.unwrap();
    assert_eq!(puback, [0x40, 2, 0, 7], "PUBACK of packet 7");

    let pos = next(&mut ws).await;
    assert_eq!(
        (pos["t"].as_str(), pos["lat"].as_f64()),
        (Some("pos"), Some(23.131)),
        "{pos}"
    );
    app.running.shutdown().await.unwrap();
}

/// A private Redis that speaks TLS only, stopped (by PID) when dropped.
struct TlsRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn tls_redis() -> TlsRedis {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("r.crt"), dir.path().join("r.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let port_text = port.to_string();
    let tls = ["--tls-port", &port_text, "--tls-auth-clients", "no"];
    let child = redis_server(
        ["--port", "0"]
            .iter()
            .chain(&tls)
            .map(std::ffi::OsStr::new)
            .chain([
                "--tls-cert-file".as_ref(),
                cert.as_os_str(),
                "--tls-key-file".as_ref(),
                key.as_os_str(),
                "--dir".as_ref(),
                dir.path().as_os_str(),
            ]),
    );
    wait_for_port(port, "redis-server").await;
    TlsRedis {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_log_runs_on_rediss_and_the_store_on_postgres_with_sslmode_require() {
    use crate::backends::backend_url;
    let Some(admin) = backend_url("TRACKER_TEST_DATABASE_URL") else {
        return;
    };
    backend_url("TRACKER_TEST_REDIS_URL").expect("the machine's Redis binaries");
    let redis = tls_redis().await;
    let db = tracker_backend::store::postgres::testing::TestDatabase::create(&admin).await;
    // A self-signed certificate: `#insecure` tells the client not to verify it.
    let rediss = format!("rediss://127.0.0.1:{}/#insecure", redis.port);
    // The machine's PostgreSQL has SSL on (Debian's default, snakeoil
    // certificate); `require` encrypts without verifying, as in libpq.
    let pg = format!("{}?sslmode=require", db.url);
    let prefix = unique("tls");
    let app = spawn_app_with(&[
        ("TRACKER_REDIS_URL", rediss.as_str()),
        ("TRACKER_REDIS_PREFIX", prefix.as_str()),
        ("TRACKER_DATABASE_URL", pg.as_str()),
    ])
    .await;
    let rider = unique("r");
    let (order, _) = app.assigned_order("c1", &rider).await;
    let mut ws = app.watch(&app.admin(), &order).await;
    let phone = app.mqtt_client().await;
    publish_fix(&phone, &rider, 23.13, 113.26, now_ms()).await;
    let pos = ws.next().await;
    assert_eq!(pos["t"], "pos", "{pos}");
    app.running.shutdown().await.unwrap();
}
