//! `spawn_app()` and typed helpers: each test gets its own process state, ports,
//! data directory and MQTT client ids; nothing sleeps waiting for readiness.

use futures_util::{SinkExt, StreamExt};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracker_cli::settings::Settings;
use tracker_cli::system::{self, Mode, Running};
use tracker_hub::{Auth, Role};

/// How long any single expected thing may take before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

pub(crate) struct App {
    pub(crate) running: Running,
    pub(crate) base: String,
    pub(crate) ws_url: String,
    pub(crate) mqtt: (String, u16),
    pub(crate) auth: Arc<Auth>,
    pub(crate) http: reqwest::Client,
    vars: HashMap<String, String>,
    dir: tempfile::TempDir,
}

pub(crate) async fn spawn_app() -> App {
    spawn_app_with(&[]).await
}

/// Starts `tracker run` on ports 0 with extra `TRACKER_*` settings.
pub(crate) async fn spawn_app_with(extra: &[(&str, &str)]) -> App {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TRACKER_HTTP_ADDR".into(), "127.0.0.1:0".into()),
        ("TRACKER_MQTT_ADDR".into(), "127.0.0.1:0".into()),
        ("TRACKER_DATA_DIR".into(), dir.path().display().to_string()),
        ("TRACKER_JWT_SECRET".into(), "test-secret-0123456789".into()),
        // The suite's phones publish for many riders over one connection, as
        // a gateway on a trusted network does; `rider_logins.rs` tests `jwt`.
        ("TRACKER_MQTT_AUTH".into(), "none".into()),
        // The spine's tests count every event of an order; `trips.rs` turns
        // the trip watcher (estimates, alerts, arrivals in the same logs) on.
        ("TRACKER_TRIP_WATCHER".into(), "off".into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    start_app(vars, dir).await
}

async fn start_app(vars: HashMap<String, String>, dir: tempfile::TempDir) -> App {
    let settings = Settings::from_vars(&vars).unwrap();
    let running = system::start(&settings, Mode::Run, Some(recorder()))
        .await
        .unwrap();
    let http_addr = running.http_addr.unwrap();
    let mqtt = match (&settings.mqtt.url, running.mqtt_addr) {
        (Some(url), _) => {
            let t = tracker_ingest::MqttTarget::parse(url.as_str()).unwrap();
            (t.host, t.port)
        }
        (None, Some(addr)) => (addr.ip().to_string(), addr.port()),
        (None, None) => unreachable!("run mode has a broker"),
    };
    App {
        auth: running.auth.clone().unwrap(),
        base: format!("http://{http_addr}"),
        ws_url: format!("ws://{http_addr}/v1/ws"),
        mqtt,
        running,
        http: reqwest::Client::new(),
        vars,
        dir,
    }
}

/// The process-wide Prometheus recorder, installed once for all tests of this binary.
pub(crate) fn recorder() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| tracker_cli::telemetry::install().unwrap())
        .clone()
}

/// A loopback port free right now, for a private server of a test.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (within PATIENCE) until something accepts on loopback `port`.
/// A private `redis-server` of a test's own (bound to loopback, keeping
/// nothing on disk, quiet) with `args` added: the port, TLS, a folder.
pub(crate) fn redis_server<I, A>(args: I) -> std::process::Child
where
    I: IntoIterator<Item = A>,
    A: AsRef<std::ffi::OsStr>,
{
    std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed")
}

pub(crate) async fn wait_for_port(port: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{:x}", rand::random::<u64>())
}

impl App {
    /// Stops the process and starts it again on the same data directory and
    /// settings (new ports; the embedded event log starts empty).
    pub(crate) async fn restart(self) -> App {
        let App {
            running, vars, dir, ..
        } = self;
        running.shutdown().await.unwrap();
        start_app(vars, dir).await
    }

    pub(crate) fn token(&self, sub: &str, role: Role) -> String {
        self.auth.mint(sub, role, 3600)
    }

    /// A token of `sub` as `role` that expires `secs` from now.
    pub(crate) fn token_for_secs(&self, sub: &str, role: Role, secs: u64) -> String {
        self.auth.mint(sub, role, secs)
    }

    /// A GET of `path` with `token`: the status, the `Retry-After` header, the body.
    pub(crate) async fn read_as(&self, path: &str, token: &str) -> (u16, Option<String>, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry, r.json().await.unwrap_or(Value::Null))
    }

    /// The process's `/metrics` text.
    pub(crate) async fn metrics_text(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.base)).send();
        r.await.unwrap().text().await.unwrap()
    }

    pub(crate) fn admin(&self) -> String {
        self.token("ops", Role::Admin)
    }

    pub(crate) async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, body, &self.admin())
            .await
    }

    /// A `method` request of `path` with a JSON `body` and `token`: the status and the body.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        token: &str,
    ) -> (u16, Value) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates an order for `customer`; returns its JSON.
    pub(crate) async fn create_order(&self, customer: &str) -> Value {
        let body = json!({
            "biz_order_no": unique("S"), "biz_type": "grocery", "customer_id": customer,
            "pickup": {"lat": 23.1291, "lon": 113.2644}, "dropoff": {"lat": 23.14, "lon": 113.28},
            // A day ahead: no late alert during the test.
            "promised_at": now_ms() + 86_400_000,
        });
        let (status, order) = self.post("/v1/orders", &body).await;
        assert_eq!(status, 201, "{order}");
        order
    }

    /// One status transition that must succeed; returns the new version.
    pub(crate) async fn transition(&self, id: &str, to: &str, version: i64) -> i64 {
        let (status, o) = self
            .post(
                &format!("/v1/orders/{id}/status"),
                &json!({"to": to, "version": version}),
            )
            .await;
        assert_eq!(status, 200, "{to}: {o}");
        o["version"].as_i64().unwrap()
    }

    /// An order of `customer` carried to `assigned` to `rider`, its six events
    /// (created, paid, preparing, ready, assigned, assignment) in the log; returns (id, version).
    pub(crate) async fn assigned_order(&self, customer: &str, rider: &str) -> (String, i64) {
        let o = self.create_order(customer).await;
        let id = o["id"].as_str().unwrap().to_owned();
        let mut v = o["version"].as_i64().unwrap();
        for to in ["paid", "preparing", "ready"] {
            v = self.transition(&id, to, v).await;
        }
        let (status, o) = self
            .post(
                &format!("/v1/orders/{id}/assign"),
                &json!({"rider_id": rider, "version": v}),
            )
            .await;
        assert_eq!(status, 200, "{o}");
        self.wait_for_seq(&id, 6).await;
        (id, o["version"].as_i64().unwrap())
    }

    /// An order of `customer` carried on to `picked_up` by `rider`: seven events in
    /// the log, and from here on the customer sees the rider's fixes; returns (id, version).
    pub(crate) async fn picked_up_order(&self, customer: &str, rider: &str) -> (String, i64) {
        let (id, v) = self.assigned_order(customer, rider).await;
        let v = self.transition(&id, "picked_up", v).await;
        self.wait_for_seq(&id, 7).await;
        (id, v)
    }

    /// Waits until `order`'s log reaches `seq` (events are relayed asynchronously).
    pub(crate) async fn wait_for_seq(&self, order: &str, seq: u64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let top = self
                .running
                .log
                .read(order, None, 0)
                .await
                .unwrap()
                .state
                .seq;
            if top >= seq {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "log of {order} stuck at {top}, wanted {seq}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Publishes a burst through the broker, `per` fixes from each of `riders`
    /// riders interleaved, and checks that every order's log got exactly its
    /// rider's fixes, once each, in the order they were published (ingest
    /// routes bursts on lanes by rider, so each rider's order must survive).
    pub(crate) async fn burst_keeps_each_riders_order(&self, riders: usize, per: i64) {
        let phone = self.mqtt_client().await;
        let mut held = Vec::new();
        for i in 0..riders {
            let rider = unique(&format!("burst{i}"));
            let (order, _) = self.assigned_order("c1", &rider).await;
            held.push((rider, order));
        }
        // An external broker delivers once ingest has subscribed: prime the first
        // rider until a fix lands, bounded (earlier than the burst's fixes).
        let base = now_ms();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let (rider0, order0) = &held[0];
        loop {
            publish_fix(&phone, rider0, 23.0, 113.0, base - 1).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self
                .running
                .log
                .read(order0, None, 0)
                .await
                .unwrap()
                .state
                .seq
                > 6
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no fix came through"
            );
        }
        for k in 1..=per {
            for (rider, _) in &held {
                publish_fix(&phone, rider, 23.0, 113.0, base + k).await;
            }
        }
        for (_, order) in &held {
            let deadline = tokio::time::Instant::now() + PATIENCE;
            let got = loop {
                let read = self.running.log.read(order, Some(6), 10_000).await.unwrap();
                let burst: Vec<Value> = read
                    .missed
                    .unwrap()
                    .iter()
                    .map(|e| serde_json::from_slice::<Value>(&e.json).unwrap())
                    .filter(|f| f["ts"].as_i64().unwrap() >= base)
                    .collect();
                if burst.len() as i64 >= per || tokio::time::Instant::now() >= deadline {
                    break burst;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let ts: Vec<i64> = got.iter().map(|f| f["ts"].as_i64().unwrap()).collect();
            assert_eq!(
                ts,
                (1..=per).map(|k| base + k).collect::<Vec<_>>(),
                "{order}"
            );
            assert!(got.iter().all(|f| f.get("backfill").is_none()), "{order}");
        }
    }

    /// A socket of `token`'s holder watching `order`, its first snapshot received.
    pub(crate) async fn watch(&self, token: &str, order: &str) -> Ws {
        let mut ws = self.ws(token).await;
        ws.sub(order, None).await;
        let snap = ws.next().await;
        assert_eq!(snap["t"], "snapshot", "{snap}");
        ws
    }

    pub(crate) async fn ws(&self, token: &str) -> Ws {
        let (stream, _) =
            tokio_tungstenite::connect_async(format!("{}?token={token}", self.ws_url))
                .await
                .unwrap();
        Ws { stream }
    }

    /// A connected MQTT client (a rider's phone, or a load tool).
    pub(crate) async fn mqtt_client(&self) -> AsyncClient {
        mqtt_client_at(&self.mqtt.0, self.mqtt.1).await
    }
}

/// A connected MQTT client of the broker at `host:port`.
pub(crate) async fn mqtt_client_at(host: &str, port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(unique("test-phone"), host.to_owned(), port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut ev) = AsyncClient::new(opts, 1024);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(PATIENCE, ready_rx)
        .await
        .unwrap()
        .unwrap();
    client
}

pub(crate) async fn publish(client: &AsyncClient, topic: &str, payload: impl Into<Vec<u8>>) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
}

/// Publishes one fix of `rider` at (`lat`, `lon`) with phone time `ts`.
pub(crate) async fn publish_fix(client: &AsyncClient, rider: &str, lat: f64, lon: f64, ts: i64) {
    let fix = serde_json::json!({"lat": lat, "lon": lon, "ts": ts});
    publish(client, &format!("riders/{rider}/pos"), fix.to_string()).await;
}

pub(crate) fn now_ms() -> i64 {
    tracker_domain::clock::now_ms()
}

pub(crate) struct Ws {
    pub(crate) stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub(crate) async fn send(&mut self, v: Value) {
        self.stream
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    pub(crate) async fn sub(&mut self, order: &str, since: Option<u64>) {
        let mut v = json!({"op": "sub", "order": order});
        if let Some(s) = since {
            v["since"] = json!(s);
        }
        self.send(v).await;
    }

    /// The next JSON frame, skipping pings; fails after [`PATIENCE`].
    pub(crate) async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("a frame within the patience window")
                .expect("socket open")
                .expect("socket healthy");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Reads until the server closes; the close code, or `None` when the
    /// connection ended without a Close frame (a reset), within `wait`.
    pub(crate) async fn closed_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("the server closes the connection in time")
            {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Asserts nothing arrives for `ms` milliseconds.
    pub(crate) async fn silent_for(&mut self, ms: u64) {
        if let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await
        {
            panic!("expected silence, got {m:?}");
        }
    }
}

/// An open SSE stream, parsed into (id, data) events.
pub(crate) struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    pub(crate) async fn open(
        app: &App,
        order: &str,
        token: &str,
        last_event_id: Option<u64>,
    ) -> Result<Sse, u16> {
        let url = format!("{}/v1/orders/{order}/sse?token={token}", app.base);
        Sse::open_url(&url, last_event_id).await
    }

    /// Opens the stream at `url` (its query carries the token).
    pub(crate) async fn open_url(url: &str, last_event_id: Option<u64>) -> Result<Sse, u16> {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let r = req.send().await.unwrap();
        if !r.status().is_success() {
            return Err(r.status().as_u16());
        }
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Ok(Sse {
            body: Box::pin(r.bytes_stream()),
            buf: String::new(),
        })
    }

    /// The next event: its `id` and its JSON `data` (keep-alive comments skipped).
    pub(crate) async fn next(&mut self) -> (Option<u64>, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut data) = (None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim()).unwrap());
                    }
                }
                if let Some(data) = data {
                    return (id, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.body.next())
                .await
                .expect("an event in time");
            self.buf
                .push_str(std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap());
        }
    }
}

/// Ends the persistent session `client_id` left on the broker at
/// `host:port` (ingest keeps one across restarts): a connect with a clean
/// session discards it, so a test leaves nothing queued on a shared broker.
pub(crate) async fn forget_mqtt_session(host: &str, port: u16, client_id: &str) {
    let mut opts = MqttOptions::new(client_id, host.to_owned(), port);
    opts.set_clean_session(true);
    let (client, mut ev) = AsyncClient::new(opts, 10);
    let done = async {
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    let _ = client.disconnect().await;
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(PATIENCE, done).await;
}

impl App {
    /// Stops the process, then ends its ingest's session on the external
    /// broker (set by `TRACKER_MQTT_URL` and `TRACKER_MQTT_CLIENT_ID`).
    pub(crate) async fn stop_and_forget_mqtt_session(self) {
        let (host, port) = self.mqtt.clone();
        let id = self.vars.get("TRACKER_MQTT_CLIENT_ID").cloned();
        self.running.shutdown().await.unwrap();
        if let Some(id) = id {
            forget_mqtt_session(&host, port, &id).await;
        }
    }
}
