//! Configuration: the `TRACKER_*` variables of PROTOCOL.md, defaults set in code.
//!
//! A file named by `TRACKER_CONFIG` may hold the same `KEY=value` lines (with `#`
//! comments); the environment wins over the file. Everything is validated here,
//! at start-up, into a clear error; secrets never appear in `Debug` output.

use anyhow::{Context, bail};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tracker_backend::select::redact;

/// Every setting of the binary.
#[derive(Clone)]
pub struct Settings {
    /// Where the hub listens (HTTP, WebSocket).
    pub http_addr: SocketAddr,
    /// Where the embedded MQTT broker listens.
    pub mqtt_addr: SocketAddr,
    /// An external broker; when set no embedded broker starts.
    pub mqtt_url: Option<String>,
    /// Redis for the event log; unset = in process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (several deployments on one Redis).
    pub redis_prefix: String,
    /// Where the embedded defaults keep their files.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// HS256 secret; `None` = a random one (`tracker run` only).
    pub jwt_secret: Option<String>,
    /// PEM file of an RS256 public key also accepted for tokens.
    pub jwt_public_key: Option<PathBuf>,
    /// This process's node id in generated order ids (0..=1023).
    pub node_id: u16,
    /// MQTT shared-subscription group of ingest.
    pub share_group: String,
    /// Entries the in-process log keeps per order.
    pub log_history: usize,
    /// How long the log keeps an order after it ended.
    pub log_retention: Duration,
    /// The oldest entry the log keeps for a live order (resume reaches no further back).
    pub log_max_age: Duration,
    /// Deliveries queued per WebSocket before it catches up from the log instead.
    pub ws_queue: usize,
    /// The folder of the pages (`web/`).
    pub web_dir: PathBuf,
    /// Base-map tiles for the pages; `None` (`off`) draws a plain background.
    pub tile_url: Option<String>,
    /// Unpaid orders are cancelled this long after creation.
    pub payment_timeout: Duration,
    /// Grabbed orders not picked up this long after go back to the pool.
    pub pickup_timeout: Duration,
    /// How often the store is swept for timeouts the delay queue missed.
    pub timeout_sweep: Duration,
    /// Riders silent this long drop out of position queries.
    pub rider_stale: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("http_addr", &self.http_addr)
            .field("mqtt_addr", &self.mqtt_addr)
            .field("mqtt_url", &self.mqtt_url.as_deref().map(redact))
            .field("redis_url", &self.redis_url.as_deref().map(redact))
            .field("redis_prefix", &self.redis_prefix)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact(&self.database_url))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("jwt_public_key", &self.jwt_public_key)
            .field("node_id", &self.node_id)
            .field("share_group", &self.share_group)
            .field("log_history", &self.log_history)
            .field("log_retention", &self.log_retention)
            .field("log_max_age", &self.log_max_age)
            .field("ws_queue", &self.ws_queue)
            .field("web_dir", &self.web_dir)
            .field("tile_url", &self.tile_url)
            .field("payment_timeout", &self.payment_timeout)
            .field("pickup_timeout", &self.pickup_timeout)
            .field("timeout_sweep", &self.timeout_sweep)
            .field("rider_stale", &self.rider_stale)
            .finish()
    }
}

/// The example configuration, printed by `tracker default-config`.
pub const EXAMPLE: &str = include_str!("../tracker.env.example");

fn parse<T: std::str::FromStr>(
    vars: &HashMap<String, String>,
    key: &str,
    default: T,
) -> anyhow::Result<T>
where
    T::Err: fmt::Display,
{
    match vars.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|e| anyhow::anyhow!("{key}=`{v}`: {e}")),
    }
}

fn opt(vars: &HashMap<String, String>, key: &str) -> Option<String> {
    vars.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Settings {
    /// Reads the process environment (and the `TRACKER_CONFIG` file, if named).
    pub fn from_env() -> anyhow::Result<Self> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TRACKER_"))
            .collect();
        let mut vars = HashMap::new();
        if let Some(path) = env.get("TRACKER_CONFIG") {
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
        const KNOWN: [&str; 22] = [
            "TRACKER_HTTP_ADDR",
            "TRACKER_MQTT_ADDR",
            "TRACKER_MQTT_URL",
            "TRACKER_REDIS_URL",
            "TRACKER_REDIS_PREFIX",
            "TRACKER_DATA_DIR",
            "TRACKER_DATABASE_URL",
            "TRACKER_JWT_SECRET",
            "TRACKER_JWT_PUBLIC_KEY",
            "TRACKER_NODE_ID",
            "TRACKER_MQTT_SHARE_GROUP",
            "TRACKER_LOG_HISTORY",
            "TRACKER_LOG_RETENTION_SECS",
            "TRACKER_LOG_MAX_AGE_SECS",
            "TRACKER_WS_QUEUE",
            "TRACKER_WEB_DIR",
            "TRACKER_TILE_URL",
            "TRACKER_CONFIG",
            "TRACKER_PAYMENT_TIMEOUT_SECS",
            "TRACKER_PICKUP_TIMEOUT_SECS",
            "TRACKER_TIMEOUT_SWEEP_SECS",
            "TRACKER_RIDER_STALE_SECS",
        ];
        if let Some(k) = vars
            .keys()
            // TRACKER_TEST_* belong to the test suites, not to the binary.
            .find(|k| {
                k.starts_with("TRACKER_")
                    && !k.starts_with("TRACKER_TEST_")
                    && !KNOWN.contains(&k.as_str())
            })
        {
            bail!("unknown setting {k}; known: {}", KNOWN.join(", "));
        }
        let data_dir: PathBuf = parse(vars, "TRACKER_DATA_DIR", PathBuf::from("./data"))?;
        let database_url = opt(vars, "TRACKER_DATABASE_URL")
            .unwrap_or_else(|| format!("sqlite://{}/tracker.db", data_dir.display()));
        let node_id: u16 = parse(vars, "TRACKER_NODE_ID", 0)?;
        if node_id > tracker_domain::ids::MAX_NODE {
            bail!(
                "TRACKER_NODE_ID=`{node_id}`: must be at most {}",
                tracker_domain::ids::MAX_NODE
            );
        }
        let log_history: usize = parse(vars, "TRACKER_LOG_HISTORY", 1000)?;
        if log_history == 0 {
            bail!("TRACKER_LOG_HISTORY must be at least 1");
        }
        let ws_queue: usize = parse(vars, "TRACKER_WS_QUEUE", 256)?;
        if ws_queue == 0 {
            bail!("TRACKER_WS_QUEUE must be at least 1");
        }
        let redis_prefix = parse(vars, "TRACKER_REDIS_PREFIX", "tracker".to_owned())?;
        if redis_prefix.is_empty() || redis_prefix.contains(['{', '}']) {
            bail!(
                "TRACKER_REDIS_PREFIX=`{redis_prefix}`: not empty, no braces (they are Redis Cluster hash tags)"
            );
        }
        let share_group = parse(vars, "TRACKER_MQTT_SHARE_GROUP", "ingest".to_owned())?;
        if share_group.is_empty() || share_group.contains(['/', '+', '#']) {
            bail!("TRACKER_MQTT_SHARE_GROUP=`{share_group}`: no '/', '+' or '#'");
        }
        if let Some(s) = opt(vars, "TRACKER_JWT_SECRET")
            && s.len() < 16
        {
            bail!("TRACKER_JWT_SECRET is too short: use at least 16 characters");
        }
        let secs = |key: &str, default: u64| -> anyhow::Result<Duration> {
            let v: u64 = parse(vars, key, default)?;
            if v == 0 {
                bail!("{key} must be at least 1 second");
            }
            Ok(Duration::from_secs(v))
        };
        let payment_timeout = secs("TRACKER_PAYMENT_TIMEOUT_SECS", 900)?;
        let pickup_timeout = secs("TRACKER_PICKUP_TIMEOUT_SECS", 600)?;
        let timeout_sweep = secs("TRACKER_TIMEOUT_SWEEP_SECS", 30)?;
        let rider_stale = secs("TRACKER_RIDER_STALE_SECS", 300)?;
        Ok(Settings {
            payment_timeout,
            pickup_timeout,
            timeout_sweep,
            rider_stale,
            http_addr: parse(
                vars,
                "TRACKER_HTTP_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
            )?,
            mqtt_addr: parse(
                vars,
                "TRACKER_MQTT_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 1884)),
            )?,
            mqtt_url: opt(vars, "TRACKER_MQTT_URL"),
            redis_url: opt(vars, "TRACKER_REDIS_URL"),
            redis_prefix,
            data_dir,
            database_url,
            jwt_secret: opt(vars, "TRACKER_JWT_SECRET"),
            jwt_public_key: opt(vars, "TRACKER_JWT_PUBLIC_KEY").map(PathBuf::from),
            node_id,
            share_group,
            log_history,
            log_retention: Duration::from_secs(parse(vars, "TRACKER_LOG_RETENTION_SECS", 3600)?),
            log_max_age: Duration::from_secs(parse(vars, "TRACKER_LOG_MAX_AGE_SECS", 86_400)?),
            ws_queue,
            web_dir: parse(vars, "TRACKER_WEB_DIR", PathBuf::from("web"))?,
            tile_url: match opt(vars, "TRACKER_TILE_URL") {
                None => Some(tracker_hub::web::OSM_TILES.to_owned()),
                Some(off) if off == "off" => None,
                Some(url) if url.starts_with("http://") || url.starts_with("https://") => Some(url),
                Some(bad) => bail!("TRACKER_TILE_URL=`{bad}`: an http(s) URL template, or `off`"),
            },
        })
    }
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
        assert_eq!(s.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.mqtt_addr.to_string(), "127.0.0.1:1884");
        assert_eq!(s.database_url, "sqlite://./data/tracker.db");
        assert!(s.mqtt_url.is_none() && s.redis_url.is_none() && s.jwt_secret.is_none());
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
    }

    #[test]
    fn tiles_default_to_openstreetmap_and_can_be_turned_off() {
        let s = Settings::from_vars(&HashMap::new()).unwrap();
        assert_eq!(s.tile_url.as_deref(), Some(tracker_hub::web::OSM_TILES));
        assert_eq!(s.web_dir, PathBuf::from("web"));
        let off = Settings::from_vars(&vars(&[("TRACKER_TILE_URL", "off")])).unwrap();
        assert_eq!(off.tile_url, None);
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
        ]))
        .unwrap();
        let d = format!("{s:?}");
        assert!(
            !d.contains("a-very-secret-value") && !d.contains("pw@"),
            "{d}"
        );
    }

    #[test]
    fn the_example_file_parses_into_valid_settings() {
        let v = parse_file(EXAMPLE).unwrap();
        Settings::from_vars(&v).unwrap();
        assert!(parse_file("JUSTAWORD").is_err());
    }
}
