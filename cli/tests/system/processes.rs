//! Tracker processes and private servers of a test's own: `tracker <mode>`
//! started as users start it, a `redis-server` to freeze or kill, and the
//! clients the multi-process tests drive them with.

use crate::backends::backend_url;
use crate::helpers::{PATIENCE, free_port, redis_server, unique, wait_for_port};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tracker_backend::store::postgres::testing::TestDatabase;

pub(crate) const SECRET: &str = "nodes-test-secret-0123456789";

pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) base: String,
}

/// Starts `tracker <mode>` with exactly `env` (plus PATH), and waits for /healthz.
pub(crate) async fn start(mode: &str, env: &[(&str, String)]) -> Proc {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracker"));
    cmd.arg(mode)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "RUST_LOG",
            if std::env::var("TEST_LOG").is_ok() {
                "info"
            } else {
                "warn"
            },
        )
        .env("TRACKER_HTTP_ADDR", format!("127.0.0.1:{port}"))
        // No data folder here: the archive (a SQLite file in it by default)
        // is off, rather than left in the tests' working directory.
        .env("TRACKER_ARCHIVE", "off")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if std::env::var("TEST_LOG").is_err() {
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the tracker binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return Proc { child, base };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "tracker {mode} did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Proc {
    /// SIGTERM, as an orchestrator stops a node, then wait for the exit.
    pub(crate) async fn terminate(mut self) {
        let pid = self.child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exits on SIGTERM")
            .unwrap();
    }

    /// SIGKILL: the process dies wherever it is, as in a crash.
    pub(crate) async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

pub(crate) async fn post(base: &str, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// What every node of one test shares (Redis under the test's own prefix,
/// the database, the secret), and this node's id.
pub(crate) fn node_env(
    redis: &str,
    prefix: &str,
    db: &str,
    node: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("TRACKER_REDIS_URL", redis.to_owned()),
        ("TRACKER_REDIS_PREFIX", prefix.to_owned()),
        ("TRACKER_DATABASE_URL", db.to_owned()),
        ("TRACKER_JWT_SECRET", SECRET.to_owned()),
        ("TRACKER_NODE_ID", node.to_owned()),
    ]
}

/// An order of `customer` made on `base` and carried to `assigned` to
/// `rider`; its id and version.
pub(crate) async fn assigned_order(
    base: &str,
    admin: &str,
    customer: &str,
    rider: &str,
) -> (String, i64) {
    let body = json!({"biz_order_no": unique("S"), "biz_type": "grocery", "customer_id": customer,
        "pickup": {"lat": 23.1, "lon": 113.2}, "dropoff": {"lat": 23.2, "lon": 113.3}});
    order_to_assigned(base, admin, body, rider).await
}

/// An order of `customer` made on `base` and carried to `picked_up` by
/// `rider`; its id and version.
pub(crate) async fn picked_up_order(
    base: &str,
    admin: &str,
    customer: &str,
    rider: &str,
) -> (String, i64) {
    let (id, v) = assigned_order(base, admin, customer, rider).await;
    let path = format!("/v1/orders/{id}/status");
    let o = post(base, admin, &path, json!({"to": "picked_up", "version": v})).await;
    (id, o["version"].as_i64().unwrap_or(v + 1))
}

/// The order `body` describes, made on `base` and carried to `assigned` to
/// `rider`; its id and version.
pub(crate) async fn order_to_assigned(
    base: &str,
    admin: &str,
    body: Value,
    rider: &str,
) -> (String, i64) {
    let order = post(base, admin, "/v1/orders", body).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let mut v = 1;
    for to in ["paid", "preparing", "ready"] {
        let path = format!("/v1/orders/{id}/status");
        v = post(base, admin, &path, json!({"to": to, "version": v})).await["version"]
            .as_i64()
            .unwrap();
    }
    let path = format!("/v1/orders/{id}/assign");
    let assigned = post(base, admin, &path, json!({"rider_id": rider, "version": v})).await;
    (id, assigned["version"].as_i64().unwrap())
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame as JSON, within [`PATIENCE`]; `None` once the socket closed.
pub(crate) async fn next_frame(ws: &mut Ws) -> Option<Value> {
    tokio::time::timeout(PATIENCE, frame(ws))
        .await
        .expect("a frame in time")
}

/// The next text frame as JSON, however long it takes; `None` once the socket closed.
pub(crate) async fn frame(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// A private redis-server on a free port, for tests that freeze or kill it.
pub(crate) struct PrivateRedis {
    pub(crate) child: std::process::Child,
    pub(crate) url: String,
    port: u16,
}

impl PrivateRedis {
    pub(crate) async fn start() -> Self {
        let port = free_port();
        let child = redis_server(["--port", &port.to_string()]);
        let url = format!("redis://127.0.0.1:{port}");
        wait_for_port(port, "private redis").await;
        PrivateRedis { child, url, port }
    }

    /// `kill -9`, then a new server on the same port after `down`: a Redis
    /// that crashed and came back empty (it keeps nothing on disk).
    pub(crate) async fn crash_and_restart_empty(&mut self, down: Duration) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        tokio::time::sleep(down).await;
        self.child = redis_server(["--port", &self.port.to_string()]);
        wait_for_port(self.port, "private redis").await;
    }

    pub(crate) fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private three-master Redis Cluster on loopback, made by the project's
/// own `scripts/redis-cluster`; its nodes are stopped on drop.
pub(crate) struct PrivateRedisCluster {
    dir: tempfile::TempDir,
    /// The seed URLs, comma-separated, as `TRACKER_REDIS_URL` takes them.
    pub(crate) url: String,
}

impl PrivateRedisCluster {
    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster");

    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Three ports in a row and their bus ports (+10000), all below the
        // ephemeral range (32768); another try on another base if one is taken.
        for _ in 0..5 {
            let first = 20_000 + rand::random::<u16>() % 2_700;
            let out = Command::new(Self::SCRIPT)
                .args(["start", dir.path().to_str().unwrap(), &first.to_string()])
                .output()
                .await
                .expect("scripts/redis-cluster runs");
            if out.status.success() {
                let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
                return PrivateRedisCluster { dir, url };
            }
            eprintln!(
                "redis-cluster on {first}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::process::Command::new(Self::SCRIPT)
                .args(["stop", dir.path().to_str().unwrap()])
                .status();
        }
        panic!("no private Redis Cluster could be started");
    }
}

impl Drop for PrivateRedisCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(Self::SCRIPT)
            .args(["stop", self.dir.path().to_str().unwrap()])
            .status();
    }
}

/// A Redis of the test's own (to freeze with SIGSTOP) and a database of its
/// own, when the suite has backends (`None`: skipped).
pub(crate) async fn private_redis_and_database() -> Option<(PrivateRedis, TestDatabase)> {
    let admin_db = backend_url("TRACKER_TEST_DATABASE_URL")?;
    backend_url("TRACKER_TEST_REDIS_URL")?;
    Some((
        PrivateRedis::start().await,
        TestDatabase::create(&admin_db).await,
    ))
}

/// Opens a watcher on `base` for `order` with `token`; returns it after its snapshot.
pub(crate) async fn watch_on(base: &str, token: &str, order: &str) -> Ws {
    watch_from(base, token, order).await.0
}

/// [`watch_on`], and the snapshot's `seq`.
pub(crate) async fn watch_from(base: &str, token: &str, order: &str) -> (Ws, u64) {
    let url = format!("{}/v1/ws?token={token}", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let sub = json!({"op": "sub", "order": order}).to_string();
    ws.send(Message::Text(sub.into())).await.unwrap();
    let snap = next_frame(&mut ws).await.unwrap();
    assert_eq!(snap["t"], "snapshot", "{snap}");
    (ws, snap["seq"].as_u64().unwrap())
}

pub(crate) async fn get_json(base: &str, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// A private Mosquitto on a free port, for tests that stop and restart it (the
/// machine's shared broker must stay up for everyone else). Killed on drop.
pub(crate) struct PrivateBroker {
    child: std::process::Child,
    pub(crate) port: u16,
    conf: tempfile::NamedTempFile,
    _data: Option<tempfile::TempDir>,
}

impl PrivateBroker {
    fn spawn(conf: &tempfile::NamedTempFile) -> std::process::Child {
        std::process::Command::new("mosquitto")
            .arg("-c")
            .arg(conf.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed (CI installs it)")
    }

    fn with(extra: &str, data: Option<tempfile::TempDir>) -> Self {
        let port = free_port();
        let mut conf = tempfile::NamedTempFile::new().unwrap();
        use std::io::Write;
        writeln!(
            conf,
            "listener {port} 127.0.0.1\nallow_anonymous true\n{extra}"
        )
        .unwrap();
        PrivateBroker {
            child: Self::spawn(&conf),
            port,
            conf,
            _data: data,
        }
    }

    /// A broker that keeps nothing across a restart.
    pub(crate) fn start() -> Self {
        Self::with("persistence false", None)
    }

    /// A broker with the persistence lines of `docs/brokers/mosquitto.conf`:
    /// sessions and queued QoS 1 messages kept on disk across a restart.
    pub(crate) async fn persistent() -> Self {
        let data = tempfile::tempdir().unwrap();
        // Mosquitto started as root writes as the user `mosquitto`.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let extra: Vec<String> = include_str!("../../../docs/brokers/mosquitto.conf")
            .lines()
            .filter(|l| {
                ["persist", "autosave", "max_queued"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .map(|l| {
                l.replace(
                    "/var/lib/mosquitto/",
                    &format!("{}/", data.path().display()),
                )
            })
            .collect();
        assert!(
            extra.len() >= 4,
            "the documented persistence lines: {extra:?}"
        );
        let b = Self::with(&extra.join("\n"), Some(data));
        wait_for_port(b.port, "private mosquitto").await;
        b
    }

    /// Kills the broker and starts it again on the same port.
    pub(crate) fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.conf);
    }

    /// Stops the broker as an orchestrator does (SIGTERM: it saves what it
    /// holds), waits for its exit, and starts it again.
    pub(crate) async fn restart_gracefully(&mut self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.conf);
        wait_for_port(self.port, "private mosquitto").await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
