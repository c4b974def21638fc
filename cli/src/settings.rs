//! Configuration: one typed, nested [`Settings`] read from `TRACKER_*`
//! variables (`docs/protocol.md`, README) and an optional file.
//!
//! A file named by `TRACKER_CONFIG` may hold the same `KEY=value` lines (with
//! `#` comments); the environment wins over the file. Each variable is one row
//! of [`KEYS`]: its name, where it lands in [`Settings`], the kind of value it
//! holds, one doc line and the default it shows. The rows build a tree that
//! serde reads into the nested struct, so each component's defaults stay in
//! its own `Default` (the hub's `WsConfig`, `DispatchConfig`, `WebConfig`, the
//! backend's `LogSettings`). Unknown `TRACKER_` keys are refused, every value is
//! validated here at start-up into an error that names its variable, and
//! secrets never appear in `Debug` output. `tracker default-config` and the
//! README's table are made from [`KEYS`] (a test holds the README to it).
//!
//! A new setting is one field (in its component's config, or a section here)
//! and one row of [`KEYS`].

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use tracker_backend::select::{LogSettings, redact};
use tracker_gate::{Rate, TrustedProxies};
use tracker_hub::http::ApiLimits;
use tracker_hub::http::web::WebConfig;
use tracker_hub::orders::DispatchConfig;
use tracker_hub::serve::ServeConfig;
use tracker_hub::watchers::WsConfig;

/// Every setting of the binary, by component.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The hub's listener.
    #[serde(default)]
    pub http: HttpSettings,
    /// Riders' MQTT: our own listener, or an external broker.
    #[serde(default)]
    pub mqtt: MqttSettings,
    /// Redis, for everything shared between processes.
    #[serde(default)]
    pub redis: RedisSettings,
    /// Where the store and the embedded defaults' files live.
    #[serde(default)]
    pub data: DataSettings,
    /// Token verification.
    #[serde(default)]
    pub auth: AuthSettings,
    /// TLS for HTTPS / WSS and MQTT over TLS.
    #[serde(default)]
    pub tls: TlsSettings,
    /// This process's node id in generated order ids (0..=1023); `None`
    /// (`auto`): leased from the store (`backend/src/ids.rs`).
    #[serde(default)]
    pub node_id: Option<u16>,
    /// How much history the event log keeps.
    #[serde(default)]
    pub log: LogSettings,
    /// WebSocket limits and buffers.
    #[serde(default)]
    pub ws: WsConfig,
    /// The pages and their base map.
    #[serde(default)]
    pub web: WebConfig,
    /// Dispatch timeouts and rider freshness.
    #[serde(default)]
    pub dispatch: DispatchConfig,
    /// Connection rates and caps, the fix rate, the block list.
    #[serde(default)]
    pub limits: LimitSettings,
    /// The trip watcher's thresholds: stalls, detours, silence, arrival.
    #[serde(default)]
    pub trips: tracker_trips::TripSettings,
    /// Whether this process runs the trip watcher (with the hub).
    #[serde(default = "on")]
    pub trip_watcher: bool,
    /// The archive of finished orders and its mover.
    #[serde(default)]
    pub archive: ArchiveSettings,
    /// Where every order event but fixes is POSTed.
    #[serde(default)]
    pub webhook: WebhookSettings,
    /// How the process writes its logs.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Seconds between a stop signal and the stop, during which `/readyz`
    /// answers 503 so a load balancer stops sending new requests here.
    #[serde(default)]
    pub drain_secs: u64,
}

fn on() -> bool {
    true
}

/// `TRACKER_LOG_FORMAT`: the logs as text for people or as JSON lines for collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event; colours only when output is a terminal.
    #[default]
    Text,
    /// One JSON object per event.
    Json,
}

/// Who gets in and how fast (`docs/protocol.md`, "Limits and block list").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// New connections per second per client IP; `None` = off.
    #[serde(deserialize_with = "rate")]
    pub connect_rate: Option<Rate>,
    /// Open connections per process; `None` = from the open-file limit.
    pub max_connections: Option<usize>,
    /// Open watcher connections per token `sub`; `None` = off.
    pub max_connections_per_user: Option<usize>,
    /// Fix payloads per second per rider; `None` = off.
    #[serde(deserialize_with = "rate")]
    pub fix_rate: Option<Rate>,
    /// The IP/CIDR block list file.
    pub ip_blocklist: Option<PathBuf>,
    /// Load balancers whose `X-Forwarded-For` names the client.
    #[serde(deserialize_with = "proxies")]
    pub trusted_proxies: TrustedProxies,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            connect_rate: Rate::parse("100/1000").expect("a valid default"),
            max_connections: None,
            max_connections_per_user: Some(16),
            fix_rate: Rate::parse("10/100").expect("a valid default"),
            ip_blocklist: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

fn rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Rate>, D::Error> {
    let text = String::deserialize(d)?;
    Rate::parse(&text).map_err(serde::de::Error::custom)
}

fn proxies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrustedProxies, D::Error> {
    let text = String::deserialize(d)?;
    TrustedProxies::parse(&text).map_err(serde::de::Error::custom)
}

/// The hub's listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Where the hub listens (HTTP, WebSocket).
    pub addr: SocketAddr,
    /// The accept loop's limits (header read time, header size).
    pub serve: ServeConfig,
    /// API requests served at once; more are answered 503 at once.
    pub max_in_flight: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            serve: ServeConfig::default(),
            max_in_flight: ApiLimits::default().max_in_flight,
        }
    }
}

/// Riders' MQTT.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSettings {
    /// Where the embedded MQTT broker listens.
    pub addr: SocketAddr,
    /// An external broker; when set, no listener of ours starts.
    pub url: Option<Url>,
    /// MQTT shared-subscription group of ingest.
    pub share_group: String,
    /// Ingest's MQTT client id on an external broker: its persistent session,
    /// so it must stay the same across restarts and differ between instances.
    /// Unset: `tracker-ingest-<host name>`.
    pub client_id: Option<String>,
    /// How riders log in to the process's own MQTT listener.
    pub auth: MqttAuth,
    /// Where the listener also takes MQTT over TLS (when TLS is configured).
    pub tls_addr: SocketAddr,
}

impl MqttSettings {
    /// The shared-subscription group, `None` for `off` (a plain subscription).
    pub fn share_group(&self) -> Option<String> {
        (self.share_group != "off").then(|| self.share_group.clone())
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 1884)),
            url: None,
            share_group: "ingest".into(),
            client_id: None,
            auth: MqttAuth::Jwt,
            tls_addr: SocketAddr::from(([127, 0, 0, 1], 8883)),
        }
    }
}

/// `TRACKER_MQTT_AUTH`: how riders log in to the MQTT listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttAuth {
    /// Username = rider id, password = a rider token; each connection may
    /// publish for its own rider only.
    Jwt,
    /// A trusted network: anyone may connect and publish for any rider.
    None,
}

/// `TRACKER_TRACK_QUEUE`: how routed fixes reach the store when the log is on Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackQueueMode {
    /// The routing process stores them itself in batches; acks wait for the commit.
    Direct,
    /// Through the Redis stream `{prefix}:track` and the workers' consumer
    /// group; acks go out at once, and the store may be away for hours.
    #[default]
    Redis,
}

/// Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Redis for the log, dispatch and timers; unset = in process.
    pub url: Option<Url>,
    /// Prefix of every Redis key and channel (several deployments on one Redis).
    pub prefix: String,
    /// How track points reach the store on Redis.
    pub track_queue: TrackQueueMode,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: None,
            prefix: "tracker".into(),
            track_queue: TrackQueueMode::Redis,
        }
    }
}

/// Files and the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// Where the embedded defaults keep their files.
    pub dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; unset = SQLite in `dir`.
    pub database_url: Option<Url>,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            dir: PathBuf::from("./data"),
            database_url: None,
        }
    }
}

/// The archive: the cold store of finished orders, and when they move there.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArchiveSettings {
    /// Whether the hub moves finished orders and reads them back.
    pub enabled: bool,
    /// `sqlite://…` or `postgres://…`; unset = SQLite in the data folder.
    pub database_url: Option<Url>,
    /// An order moves once it has been finished this long.
    pub after: std::time::Duration,
    /// Orders per batch.
    pub batch: usize,
    /// How often the mover looks for orders due.
    pub every: std::time::Duration,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        let mover = tracker_backend::archive::mover::MoverConfig::default();
        ArchiveSettings {
            enabled: true,
            database_url: None,
            after: mover.after,
            batch: mover.batch,
            every: mover.every,
        }
    }
}

impl ArchiveSettings {
    /// The archive's URL: the configured one, or SQLite in `data`'s folder.
    pub fn database_url(&self, data: &DataSettings) -> String {
        match &self.database_url {
            Some(u) => u.0.clone(),
            None => format!("sqlite://{}/archive.db", data.dir.display()),
        }
    }
}

impl DataSettings {
    /// The store's URL: the configured one, or SQLite in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.0.clone(),
            None => format!("sqlite://{}/tracker.db", self.dir.display()),
        }
    }
}

/// The webhook (`docs/protocol.md`, "Webhooks"): off until a URL is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// The endpoint; `None`: no webhook.
    pub url: Option<Url>,
    /// The HMAC-SHA256 key of `X-Tracker-Signature`; required with a URL.
    pub secret: Option<SecretString>,
    /// How long one call may take.
    pub timeout: std::time::Duration,
    /// Orders sent at once per process.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let d = tracker_webhooks::WebhookSettings::new("", SecretString::from(""));
        WebhookSettings {
            url: None,
            secret: None,
            timeout: d.timeout,
            concurrency: d.concurrency,
        }
    }
}

impl WebhookSettings {
    /// What the sender needs, when a webhook is configured.
    pub fn sender(&self) -> Option<tracker_webhooks::WebhookSettings> {
        let url = self.url.as_ref()?;
        let secret = self.secret.clone()?;
        Some(tracker_webhooks::WebhookSettings {
            timeout: self.timeout,
            concurrency: self.concurrency,
            ..tracker_webhooks::WebhookSettings::new(url.as_str(), secret)
        })
    }
}

/// TLS: a certificate chain and its key, PEM files.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
}

/// Token verification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret; `None` = a random one (`tracker run` only).
    pub jwt_secret: Option<SecretString>,
    /// PEM file of an RS256 public key also accepted for tokens.
    pub jwt_public_key: Option<PathBuf>,
}

impl AuthSettings {
    /// The configured HS256 secret, when there is one.
    pub fn secret(&self) -> Option<&str> {
        self.jwt_secret.as_ref().map(|s| s.expose_secret())
    }
}

/// A backend URL, which may carry a password: `Debug` shows it redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Url(pub String);

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

impl Url {
    /// The URL itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a variable's text holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text as it is (addresses, URLs, paths, names).
    Text,
    /// A whole number.
    Number,
    /// A whole number of seconds.
    Secs,
    /// Text, or `off` for none.
    TextOrOff,
    /// A whole number, or `off` for none.
    NumberOrOff,
    /// A whole number, or `auto` to have one chosen.
    NumberOrAuto,
    /// `on` or `off`.
    Switch,
}

/// The default a variable shows in the README and in `tracker default-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// This value (what the component's `Default` holds; a test checks it).
    Value(&'static str),
    /// Unset by default; `example` is what a setting looks like.
    Unset {
        /// A sample value for the example file.
        example: &'static str,
    },
    /// Worked out when unset, as `text` says.
    Derived {
        /// What the README says of it.
        text: &'static str,
        /// A sample value for the example file.
        example: &'static str,
    },
}

/// One `TRACKER_*` variable.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The variable's name.
    pub env: &'static str,
    /// Where it lands in [`Settings`], dot-separated.
    pub path: &'static str,
    /// What its text holds.
    pub kind: Kind,
    /// One line on what it means (the README's "meaning" column).
    pub doc: &'static str,
    /// Its default.
    pub shown: Shown,
}

const fn key(
    env: &'static str,
    path: &'static str,
    kind: Kind,
    doc: &'static str,
    shown: Shown,
) -> Key {
    Key {
        env,
        path,
        kind,
        doc,
        shown,
    }
}

use Kind::{Number, NumberOrAuto, NumberOrOff, Secs, Switch, Text, TextOrOff};
use Shown::{Derived, Unset, Value as Is};

/// Every variable of the binary, in the README's order.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    key("TRACKER_HTTP_ADDR", "http.addr", Text, "where the hub listens (HTTP, WebSocket)", Is("127.0.0.1:8080")),
    key("TRACKER_MQTT_ADDR", "mqtt.addr", Text, "where riders' MQTT listener listens (3.1.1 and 5, a login per rider)", Is("127.0.0.1:1884")),
    key("TRACKER_MQTT_URL", "mqtt.url", Text, "an external broker, `mqtt://host:port`; when set, riders connect to it and no listener of ours starts", Unset { example: "mqtt://127.0.0.1:1883" }),
    key("TRACKER_REDIS_URL", "redis.url", Text, "Redis for the event log (streams + pub/sub), the dispatch geo index and the delay queue of timeouts: one URL, or a comma-separated list of a Redis Cluster's seed nodes; unset = in-process", Unset { example: "redis://127.0.0.1:6379" }),
    key("TRACKER_REDIS_PREFIX", "redis.prefix", Text, "prefix of every Redis key and channel, so deployments can share a Redis", Is("tracker")),
    key("TRACKER_TRACK_QUEUE", "redis.track_queue", Text, "with the log on Redis, how riders' track points reach the store: `redis` (through the stream `{prefix}:track` and the processes' workers: acks at once, and the store may be away for hours) or `direct` (the routing process stores them in batches and acks each fix after the commit: less CPU, nothing acked is lost when Redis loses its data, acks later; docs/scaling.md)", Is("redis")),
    key("TRACKER_DATA_DIR", "data.dir", Text, "where the embedded defaults keep their files (created if missing)", Is("./data")),
    key("TRACKER_DATABASE_URL", "data.database_url", Text, "`sqlite://…` or `postgres://…` (migrated at start); a SQLite file is created if missing", Derived { text: "`sqlite://$TRACKER_DATA_DIR/tracker.db`", example: "postgres://tracker@127.0.0.1:5432/tracker" }),
    key("TRACKER_JWT_SECRET", "auth.jwt_secret", Text, "HS256 secret for tokens, 16+ characters", Derived { text: "a random one, printed with demo tokens", example: "change-me-to-something-long" }),
    key("TRACKER_JWT_PUBLIC_KEY", "auth.jwt_public_key", Text, "PEM file of an RS256 public key whose tokens are also accepted", Unset { example: "/etc/tracker/jwt.pub.pem" }),
    key("TRACKER_TLS_CERT", "tls.cert", Text, "PEM certificate chain: with `TRACKER_TLS_KEY`, the hub serves HTTPS / WSS and riders may use MQTT over TLS", Unset { example: "/etc/tracker/tls.crt" }),
    key("TRACKER_TLS_KEY", "tls.key", Text, "PEM private key of `TRACKER_TLS_CERT`", Unset { example: "/etc/tracker/tls.key" }),
    key("TRACKER_MQTTS_ADDR", "mqtt.tls_addr", Text, "where riders' MQTT over TLS listens (with TLS configured)", Is("127.0.0.1:8883")),
    key("TRACKER_NODE_ID", "node_id", NumberOrAuto, "this process's node id inside generated order ids (0–1023), or `auto`: the lowest one free, leased in the store so two processes never share one", Is("auto")),
    key("TRACKER_MQTT_SHARE_GROUP", "mqtt.share_group", Text, "shared-subscription group of ingest on an external broker; `off`: a plain subscription, for one ingest per broker (on Mosquitto the only kind its persistence restores after a broker restart)", Is("ingest")),
    key("TRACKER_MQTT_CLIENT_ID", "mqtt.client_id", Text, "ingest's MQTT client id on an external broker, the name of its persistent session: the same across restarts (so unacknowledged fixes are redelivered to it), different for every instance", Derived { text: "`tracker-ingest-<host name>`", example: "tracker-ingest-0" }),
    key("TRACKER_MQTT_AUTH", "mqtt.auth", Text, "how riders log in to the MQTT listener: `jwt` (username = rider id, password = a rider token) or `none` (a trusted network: anyone may publish for any rider)", Is("jwt")),
    key("TRACKER_LOG_HISTORY", "log.history", Number, "events the log keeps per order (how far resume reaches)", Is("1000")),
    key("TRACKER_LOG_MAX_AGE_SECS", "log.max_age", Secs, "the oldest event the log keeps for a live order", Is("86400")),
    key("TRACKER_LOG_RETENTION_SECS", "log.retention", Secs, "how long the log keeps an order after it ended", Is("3600")),
    key("TRACKER_WS_QUEUE", "ws.queue", Number, "appends (one event, or a whole batch of fixes) queued per WebSocket or SSE stream before the connection catches up from the log", Is("256")),
    key("TRACKER_WEB_DIR", "web.dir", Text, "a folder of pages to serve instead of those built into the binary (`pages/`, `assets/`, Leaflet in `node_modules/`), to change them without a build", Unset { example: "web" }),
    key("TRACKER_TILE_URL", "web.tile_url", TextOrOff, "base-map tiles for the pages, a `{z}/{x}/{y}` URL template, or `off`", Is(tracker_hub::http::web::OSM_TILES)),
    key("TRACKER_PAYMENT_TIMEOUT_SECS", "dispatch.payment_timeout", Secs, "an unpaid order is cancelled (`payment_timeout`) this long after creation", Is("900")),
    key("TRACKER_PICKUP_TIMEOUT_SECS", "dispatch.pickup_timeout", Secs, "a grabbed order not picked up this long after goes back to the pool", Is("600")),
    key("TRACKER_TIMEOUT_SWEEP_SECS", "dispatch.sweep_every", Secs, "how often every process sweeps the store for timeouts the delay queue missed", Is("30")),
    key("TRACKER_RIDER_STALE_SECS", "dispatch.rider_stale", Secs, "riders silent this long drop out of `GET /v1/dispatch/riders`", Is("300")),
    key("TRACKER_TRIP_WATCHER", "trip_watcher", Switch, "every hub process follows its share of the orders under way: ETA, alerts, arrivals; `off` for none in this process", Is("on")),
    key("TRACKER_STALL_RADIUS_M", "trips.stall_radius_m", Number, "`stalled`: a picked-up rider who moved less than this many metres…", Is("50")),
    key("TRACKER_STALL_SECS", "trips.stall", Secs, "…over this many seconds of fix time", Is("300")),
    key("TRACKER_OFF_ROUTE_M", "trips.off_route_m", Number, "`off_route`: farther than this from the planned route (else the rectangle pick-up and drop-off span) for two fixes in a row", Is("250")),
    key("TRACKER_OFFLINE_SECS", "trips.offline", Secs, "`rider_offline`: no fix for this long from the rider holding an order", Is("120")),
    key("TRACKER_ARCHIVE", "archive.enabled", Switch, "hubs move finished orders to the archive and read them back from it; `off` keeps every order in the store", Is("on")),
    key("TRACKER_ARCHIVE_DATABASE_URL", "archive.database_url", Text, "the archive of finished orders (`sqlite://…` or `postgres://…`, migrated at start)", Derived { text: "`sqlite://$TRACKER_DATA_DIR/archive.db`", example: "postgres://tracker@127.0.0.1:5432/tracker_archive" }),
    key("TRACKER_ARCHIVE_AFTER_SECS", "archive.after", Secs, "an order moves to the archive once it has been finished (delivered, cancelled, returned) this long", Is("604800")),
    key("TRACKER_ARCHIVE_BATCH", "archive.batch", Number, "orders per archive batch (each one transaction in the archive, then one in the store)", Is("100")),
    key("TRACKER_ARCHIVE_EVERY_SECS", "archive.every", Secs, "how often each hub looks for orders due for the archive", Is("60")),
    key("TRACKER_WEBHOOK_URL", "webhook.url", Text, "every order event but fixes is POSTed here as its JSON frame, per order in `seq` order, at least once, retried with backoff for up to 24 h (`http://` or `https://`)", Unset { example: "https://example.com/tracker-events" }),
    key("TRACKER_WEBHOOK_SECRET", "webhook.secret", Text, "the HMAC-SHA256 key of each call's `X-Tracker-Signature: sha256=<hex>`, 16+ characters; required with `TRACKER_WEBHOOK_URL`", Unset { example: "another-long-shared-secret" }),
    key("TRACKER_WEBHOOK_TIMEOUT_SECS", "webhook.timeout", Secs, "one webhook call taking longer than this counts as failed and is retried", Is("10")),
    key("TRACKER_WEBHOOK_CONCURRENCY", "webhook.concurrency", Number, "orders each process sends at once (each order one event at a time)", Is("64")),
    key("TRACKER_ARRIVAL_M", "trips.arrival_m", Number, "`arrival`: the rider holding the order came this close to the pick-up or the drop-off", Is("100")),
    key("TRACKER_LOG_FORMAT", "log_format", Text, "`text` (colours only on a terminal) or `json` (one object per line, for log collectors)", Is("text")),
    key("TRACKER_DRAIN_SECS", "drain_secs", Number, "seconds between SIGTERM and the stop, while `/readyz` answers 503 so load balancers move away first", Is("0")),
    key("TRACKER_CONNECT_RATE", "limits.connect_rate", Text, "new connections per second per client IP (WebSocket, SSE, long-poll, MQTT), `RATE` or `RATE/BURST`; `off` for none", Is("100/1000")),
    key("TRACKER_MAX_CONNECTIONS", "limits.max_connections", Number, "open connections per process (WebSocket + SSE + long-poll + MQTT); more get 503 / CONNACK 0x89", Derived { text: "the open-file limit (raised to its maximum at start) less 256 for the backends", example: "50000" }),
    key("TRACKER_MAX_CONNECTIONS_PER_USER", "limits.max_connections_per_user", NumberOrOff, "open watcher connections per token `sub` (admins are not capped); `off` for none", Is("16")),
    key("TRACKER_FIX_RATE", "limits.fix_rate", Text, "fix payloads per second per rider (a batch counts once), `RATE/BURST`; `off` for none", Is("10/100")),
    key("TRACKER_IP_BLOCKLIST", "limits.ip_blocklist", Text, "a file of IPs and CIDRs, one a line (`#` comments), refused at every door; re-read when it changes", Unset { example: "/etc/tracker/blocklist.txt" }),
    key("TRACKER_TRUSTED_PROXIES", "limits.trusted_proxies", Text, "comma-separated CIDRs of load balancers whose `X-Forwarded-For` names the client", Unset { example: "10.0.0.0/8" }),
    key("TRACKER_HTTP_HEADER_TIMEOUT_SECS", "http.serve.header_timeout", Secs, "a request's headers (and so a WebSocket upgrade request) must arrive within this long", Is("10")),
    key("TRACKER_HTTP_MAX_HEADER_BYTES", "http.serve.max_header_bytes", Number, "largest request head, bytes (431 above it)", Is("16384")),
    key("TRACKER_HTTP_MAX_IN_FLIGHT", "http.max_in_flight", Number, "API requests served at once by the process; more are answered 503 `overloaded` at once", Is("1024")),
];

/// The variable that names the configuration file; not a setting itself.
pub const CONFIG_FILE_KEY: &str = "TRACKER_CONFIG";

/// The value of one variable as the tree serde reads.
fn leaf(k: &Key, text: &str) -> anyhow::Result<Value> {
    let number = || -> anyhow::Result<u64> {
        text.parse()
            .map_err(|_| anyhow::anyhow!("{}=`{text}`: not a whole number", k.env))
    };
    Ok(match k.kind {
        Text => Value::String(text.to_owned()),
        TextOrOff if text == "off" => Value::Null,
        TextOrOff => Value::String(text.to_owned()),
        Number => Value::from(number()?),
        NumberOrOff if text == "off" => Value::Null,
        NumberOrOff => Value::from(number()?),
        NumberOrAuto if text == "auto" => Value::Null,
        NumberOrAuto => Value::from(number()?),
        Switch => match text {
            "on" => Value::Bool(true),
            "off" => Value::Bool(false),
            _ => anyhow::bail!("{}=`{text}`: `on` or `off`", k.env),
        },
        // std's `Duration` as serde writes it.
        Secs => serde_json::json!({ "secs": number()?, "nanos": 0 }),
    })
}

/// Puts `value` at the dot-separated `path` of `tree`.
fn insert(tree: &mut Map<String, Value>, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            tree.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let sub = tree
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(sub) = sub {
                insert(sub, rest, value);
            }
        }
    }
}

impl Settings {
    /// Reads the process environment (and the `TRACKER_CONFIG` file, if named).
    pub fn from_env() -> anyhow::Result<Self> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TRACKER_"))
            .collect();
        let mut vars = HashMap::new();
        if let Some(path) = env.get(CONFIG_FILE_KEY) {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading TRACKER_CONFIG `{path}`"))?;
            vars = parse_file(&text).with_context(|| format!("in TRACKER_CONFIG `{path}`"))?;
        }
        vars.extend(env);
        Self::from_vars(&vars)
    }

    /// Builds settings from `KEY → value` pairs; unknown `TRACKER_` keys are errors
    /// (a typo should not silently fall back to a default).
    pub fn from_vars(vars: &HashMap<String, String>) -> anyhow::Result<Self> {
        let known = |k: &str| k == CONFIG_FILE_KEY || KEYS.iter().any(|key| key.env == k);
        // TRACKER_TEST_* belong to the test suites, not to the binary.
        if let Some(k) = vars
            .keys()
            .find(|k| k.starts_with("TRACKER_") && !k.starts_with("TRACKER_TEST_") && !known(k))
        {
            let names: Vec<&str> = KEYS.iter().map(|k| k.env).collect();
            bail!(
                "unknown setting {k}; known: {}, {CONFIG_FILE_KEY}",
                names.join(", ")
            );
        }
        let mut tree = Map::new();
        for k in KEYS {
            let Some(text) = vars.get(k.env).map(|v| v.trim()).filter(|v| !v.is_empty()) else {
                continue;
            };
            insert(&mut tree, k.path, leaf(k, text)?);
        }
        let settings: Settings =
            serde_path_to_error::deserialize(Value::Object(tree)).map_err(|e| {
                let path = e.path().to_string();
                match KEYS.iter().find(|k| path.starts_with(k.path)) {
                    Some(k) => {
                        let v = vars.get(k.env).map(|v| v.trim()).unwrap_or_default();
                        anyhow::anyhow!("{}=`{v}`: {}", k.env, e.inner())
                    }
                    None => anyhow::anyhow!("settings: {e}"),
                }
            })?;
        settings.validate()?;
        Ok(settings)
    }

    /// The checks serde cannot make, each naming its variable.
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(node) = self.node_id.filter(|n| *n > tracker_domain::ids::MAX_NODE) {
            bail!(
                "TRACKER_NODE_ID=`{node}`: must be at most {} (or `auto`)",
                tracker_domain::ids::MAX_NODE
            );
        }
        if !(1..=1000).contains(&self.archive.batch) {
            bail!("TRACKER_ARCHIVE_BATCH must be 1..=1000");
        }
        if self.archive.every.is_zero() {
            bail!("TRACKER_ARCHIVE_EVERY_SECS must be at least 1");
        }
        if self.log.history == 0 {
            bail!("TRACKER_LOG_HISTORY must be at least 1");
        }
        if self.ws.queue == 0 {
            bail!("TRACKER_WS_QUEUE must be at least 1");
        }
        let prefix = &self.redis.prefix;
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            bail!(
                "TRACKER_REDIS_PREFIX=`{prefix}`: not empty, no braces (they are Redis Cluster hash tags)"
            );
        }
        let group = &self.mqtt.share_group;
        if group.is_empty() || group.contains(['/', '+', '#']) {
            bail!("TRACKER_MQTT_SHARE_GROUP=`{group}`: no '/', '+' or '#'");
        }
        if let Some(id) = &self.mqtt.client_id
            && (id.is_empty() || id.len() > 128 || id.contains(['/', '+', '#']))
        {
            bail!("TRACKER_MQTT_CLIENT_ID=`{id}`: 1..=128 characters, no '/', '+' or '#'");
        }
        let hook = &self.webhook;
        if let Some(url) = &hook.url {
            let u = url.as_str();
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                bail!(
                    "TRACKER_WEBHOOK_URL=`{}`: an http:// or https:// URL",
                    redact(u)
                );
            }
            match &hook.secret {
                None => bail!(
                    "TRACKER_WEBHOOK_URL is set without TRACKER_WEBHOOK_SECRET: calls must be signed"
                ),
                Some(k) if k.expose_secret().len() < 16 => {
                    bail!("TRACKER_WEBHOOK_SECRET is too short: use at least 16 characters")
                }
                Some(_) => {}
            }
        }
        if hook.timeout.is_zero() {
            bail!("TRACKER_WEBHOOK_TIMEOUT_SECS must be at least 1");
        }
        if !(1..=10_000).contains(&hook.concurrency) {
            bail!("TRACKER_WEBHOOK_CONCURRENCY must be 1..=10000");
        }
        if self.auth.secret().is_some_and(|s| s.len() < 16) {
            bail!("TRACKER_JWT_SECRET is too short: use at least 16 characters");
        }
        let d = &self.dispatch;
        for (key, v) in [
            ("TRACKER_PAYMENT_TIMEOUT_SECS", d.payment_timeout),
            ("TRACKER_PICKUP_TIMEOUT_SECS", d.pickup_timeout),
            ("TRACKER_TIMEOUT_SWEEP_SECS", d.sweep_every),
            ("TRACKER_RIDER_STALE_SECS", d.rider_stale),
        ] {
            if v.is_zero() {
                bail!("{key} must be at least 1 second");
            }
        }
        let t = &self.trips;
        for (key, m) in [
            ("TRACKER_STALL_RADIUS_M", t.stall_radius_m),
            ("TRACKER_OFF_ROUTE_M", t.off_route_m),
            ("TRACKER_ARRIVAL_M", t.arrival_m),
        ] {
            if !(1.0..=100_000.0).contains(&m) {
                bail!("{key} must be 1..=100000 metres");
            }
        }
        for (key, v) in [
            ("TRACKER_STALL_SECS", t.stall),
            ("TRACKER_OFFLINE_SECS", t.offline),
        ] {
            if v.is_zero() {
                bail!("{key} must be at least 1 second");
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            bail!("TRACKER_TLS_CERT and TRACKER_TLS_KEY go together: set both, or neither");
        }
        match &self.web.tile_url {
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                bail!("TRACKER_TILE_URL=`{url}`: an http(s) URL template, or `off`")
            }
            _ => Ok(()),
        }
    }
}

/// The example configuration, printed by `tracker default-config`: every
/// variable with its doc line and its default (commented out where unset).
pub fn example_file() -> String {
    let mut out = String::from(
        "# tracker configuration: KEY=value lines, read from the file named by\n\
         # TRACKER_CONFIG; variables in the environment win over this file.\n\
         # Lines that are not commented out show the default.\n",
    );
    for k in KEYS {
        out.push_str(&format!("\n# {}\n", k.doc.replace('`', "")));
        match k.shown {
            Is(v) => out.push_str(&format!("{}={v}\n", k.env)),
            Unset { example } | Derived { example, .. } => {
                out.push_str(&format!("# {}={example}\n", k.env))
            }
        }
    }
    out
}

/// The settings for `tracker run --help` (and `hub`, `ingest`): each variable,
/// what it means and its default.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Settings: TRACKER_* environment variables, or KEY=value lines in the file named by\n\
         TRACKER_CONFIG (the environment wins; `tracker default-config` prints one):\n",
    );
    for k in KEYS {
        let default = match k.shown {
            Is(v) => format!("default: {v}"),
            Unset { example } => format!("unset; e.g. {example}"),
            Derived { text, .. } => format!("default: {}", text.replace('`', "")),
        };
        out.push_str(&format!(
            "\n  {}\n      {} [{default}]\n",
            k.env,
            k.doc.replace('`', "")
        ));
    }
    out
}

/// The README's table of variables, as [`KEYS`] has it.
pub fn readme_table() -> String {
    let mut out = String::from("| variable | meaning | default |\n|---|---|---|\n");
    for k in KEYS {
        let default = match k.shown {
            Is(v) => format!("`{v}`"),
            Unset { .. } => "unset".to_owned(),
            Derived { text, .. } => text.to_owned(),
        };
        out.push_str(&format!("| `{}` | {} | {default} |\n", k.env, k.doc));
    }
    out
}

/// Parses `KEY=value` lines; blank lines and `#` comments are skipped.
pub fn parse_file(text: &str) -> anyhow::Result<HashMap<String, String>> {
    let mut vars = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!("line {}: expected KEY=value", n + 1);
        };
        vars.insert(k.trim().to_owned(), v.trim().trim_matches('"').to_owned());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_protocol_table() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.mqtt.addr.to_string(), "127.0.0.1:1884");
        assert_eq!(s.data.database_url(), "sqlite://./data/tracker.db");
        assert!(s.mqtt.url.is_none() && s.redis.url.is_none() && s.auth.jwt_secret.is_none());
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let e = Settings::from_vars(&vars(&[("TRACKER_HTTP_ADDR", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TRACKER_HTTP_ADDR"), "{e}");
        assert!(
            Settings::from_vars(&vars(&[("TRACKER_HTTP_ADR", "x")])).is_err(),
            "typo"
        );
        assert!(Settings::from_vars(&vars(&[("TRACKER_TEST_REDIS_URL", "x")])).is_ok());
        assert!(Settings::from_vars(&vars(&[("TRACKER_NODE_ID", "5000")])).is_err());
        assert!(Settings::from_vars(&vars(&[("TRACKER_JWT_SECRET", "short")])).is_err());
        assert!(Settings::from_vars(&vars(&[("TRACKER_MQTT_SHARE_GROUP", "a/b")])).is_err());
        assert!(
            Settings::from_vars(&vars(&[("TRACKER_MQTT_CLIENT_ID", &"x".repeat(200))])).is_err()
        );
        assert!(Settings::from_vars(&vars(&[("TRACKER_MQTT_CLIENT_ID", "a#b")])).is_err());
        let e = Settings::from_vars(&vars(&[("TRACKER_MQTT_AUTH", "maybe")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TRACKER_MQTT_AUTH"), "{e}");
        let half = Settings::from_vars(&vars(&[("TRACKER_TLS_CERT", "/c.pem")]))
            .unwrap_err()
            .to_string();
        assert!(half.contains("TRACKER_TLS_KEY"), "{half}");
        let none = Settings::from_vars(&vars(&[("TRACKER_MQTT_AUTH", "none")])).unwrap();
        assert_eq!(none.mqtt.auth, MqttAuth::None);
    }

    #[test]
    fn numbers_and_seconds_name_their_variable_when_bad() {
        for (k, v) in [
            ("TRACKER_NODE_ID", "-1"),
            ("TRACKER_NODE_ID", "99999999"),
            ("TRACKER_WS_QUEUE", "lots"),
            ("TRACKER_PAYMENT_TIMEOUT_SECS", "1.5"),
            ("TRACKER_PAYMENT_TIMEOUT_SECS", "0"),
            ("TRACKER_LOG_HISTORY", "0"),
            ("TRACKER_REDIS_PREFIX", "{x}"),
            ("TRACKER_TRACK_QUEUE", "kafka"),
        ] {
            let e = Settings::from_vars(&vars(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        let s = Settings::from_vars(&vars(&[
            ("TRACKER_PICKUP_TIMEOUT_SECS", "42"),
            ("TRACKER_WS_QUEUE", "7"),
        ]))
        .unwrap();
        assert_eq!(
            s.dispatch.pickup_timeout,
            std::time::Duration::from_secs(42)
        );
        assert_eq!(s.ws.queue, 7);
    }

    #[test]
    fn trip_watcher_settings_name_their_variable_when_bad() {
        for (k, v) in [
            ("TRACKER_TRIP_WATCHER", "maybe"),
            ("TRACKER_STALL_RADIUS_M", "0"),
            ("TRACKER_STALL_RADIUS_M", "many"),
            ("TRACKER_OFF_ROUTE_M", "250.5"),
            ("TRACKER_ARRIVAL_M", "1000000"),
            ("TRACKER_STALL_SECS", "0"),
            ("TRACKER_OFFLINE_SECS", "0"),
        ] {
            let e = Settings::from_vars(&vars(&[(k, v)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        let s = Settings::from_vars(&vars(&[
            ("TRACKER_TRIP_WATCHER", "off"),
            ("TRACKER_STALL_SECS", "60"),
            ("TRACKER_OFF_ROUTE_M", "400"),
        ]))
        .unwrap();
        assert!(!s.trip_watcher);
        assert_eq!(s.trips.stall, std::time::Duration::from_secs(60));
        assert_eq!(s.trips.off_route_m, 400.0);
        let d = Settings::from_vars(&HashMap::new()).unwrap();
        assert!(d.trip_watcher, "on by default");
        assert_eq!(d.trips, tracker_trips::TripSettings::default());
    }

    #[test]
    fn tiles_default_to_openstreetmap_and_can_be_turned_off() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(
            s.web.tile_url.as_deref(),
            Some(tracker_hub::http::web::OSM_TILES)
        );
        assert_eq!(s.web.dir, None, "the pages built in");
        let off = Settings::from_vars(&vars(&[("TRACKER_TILE_URL", "off")])).unwrap();
        assert_eq!(off.web.tile_url, None);
        let e = Settings::from_vars(&vars(&[("TRACKER_TILE_URL", "tiles.local/{z}")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("TRACKER_TILE_URL"), "{e}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Settings::from_vars(&vars(&[
            ("TRACKER_JWT_SECRET", "a-very-secret-value"),
            ("TRACKER_DATABASE_URL", "postgres://u:pw@h/db"),
            ("TRACKER_REDIS_URL", "redis://:hunter2@h:6379"),
        ]))
        .unwrap();
        let d = format!("{s:?}");
        assert!(
            !d.contains("a-very-secret-value") && !d.contains("pw@") && !d.contains("hunter2"),
            "{d}"
        );
        assert_eq!(s.auth.secret(), Some("a-very-secret-value"));
    }

    #[test]
    fn a_webhook_needs_an_http_url_and_a_long_secret() {
        let url = ("TRACKER_WEBHOOK_URL", "https://example.com/hook");
        let err = |pairs: &[(&str, &str)]| {
            format!("{:#}", Settings::from_vars(&vars(pairs)).unwrap_err())
        };
        assert!(err(&[url]).contains("without TRACKER_WEBHOOK_SECRET"));
        assert!(err(&[url, ("TRACKER_WEBHOOK_SECRET", "short")]).contains("too short"));
        let ftp = ("TRACKER_WEBHOOK_URL", "ftp://example.com/hook");
        let secret = ("TRACKER_WEBHOOK_SECRET", "0123456789abcdef");
        assert!(err(&[ftp, secret]).contains("http:// or https://"));
        assert!(err(&[url, secret, ("TRACKER_WEBHOOK_CONCURRENCY", "0")]).contains("CONCURRENCY"));
        let s = Settings::from_vars(&vars(&[url, secret])).unwrap();
        let sender = s.webhook.sender().expect("configured");
        assert_eq!(sender.url, "https://example.com/hook");
        assert!(
            !format!("{s:?}").contains("0123456789abcdef"),
            "the secret is never shown"
        );
        assert!(
            Settings::from_vars(&vars(&[]))
                .unwrap()
                .webhook
                .sender()
                .is_none()
        );
    }

    #[test]
    fn the_example_file_parses_into_valid_settings() {
        let v = parse_file(&example_file()).unwrap();
        Settings::from_vars(&v).unwrap();
        assert!(parse_file("JUSTAWORD").is_err());
    }

    #[test]
    fn every_row_lands_in_a_field_and_shows_its_true_default() {
        let default = format!("{:?}", Settings::from_vars(&HashMap::new()).unwrap());
        for k in KEYS {
            let sample = match k.shown {
                Is(v) => v,
                Unset { example } | Derived { example, .. } => example,
            };
            // The TLS certificate and key only go together.
            let mut pairs = vec![(k.env, sample)];
            match k.env {
                "TRACKER_TLS_CERT" => pairs.push(("TRACKER_TLS_KEY", "/k.pem")),
                "TRACKER_TLS_KEY" => pairs.push(("TRACKER_TLS_CERT", "/c.pem")),
                // A webhook needs its secret.
                "TRACKER_WEBHOOK_URL" => {
                    pairs.push(("TRACKER_WEBHOOK_SECRET", "another-long-shared-secret"))
                }
                _ => {}
            }
            let s = Settings::from_vars(&vars(&pairs)).unwrap_or_else(|e| panic!("{}: {e}", k.env));
            let d = format!("{s:?}");
            match k.shown {
                Is(_) => assert_eq!(d, default, "{} shows a default it does not have", k.env),
                _ => assert_ne!(d, default, "{} changes nothing", k.env),
            }
        }
    }

    #[test]
    fn the_readme_table_is_the_one_the_keys_make() {
        let readme = include_str!("../../README.md");
        let want = readme_table();
        let start = readme
            .find("| variable | meaning | default |")
            .expect("the README has the table of variables");
        let have: String = readme[start..]
            .lines()
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(have, want, "README's table differs; paste this:\n{want}");
    }
}
