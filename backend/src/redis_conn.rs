//! The one way every Redis-backed seam connects: to one server, or to a
//! Redis Cluster found from its seed nodes.
//!
//! A Redis URL (`TRACKER_REDIS_URL`) is one URL or a comma-separated list of
//! seed nodes. The first seed that answers says whether it runs in cluster
//! mode (`INFO cluster`); several seeds of a server that is not a cluster are
//! a start-up error, not a silent pick of the first.
//!
//! On a cluster every command and script must keep to one hash slot, and so
//! must a pipeline: [`RedisConn::pipelined`] sends a batch that spans slots
//! as one pipeline per slot, all at once, and answers in the batch's order.

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, RedisResult, Script, Value};
use std::collections::HashMap;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A reconnecting, multiplexed connection to the deployment's Redis: one
/// server, or every node of a cluster with commands routed by key slot.
/// Clones share the connection.
#[derive(Clone)]
pub enum RedisConn {
    /// One server (or a primary behind a fixed address).
    Single(ConnectionManager),
    /// A Redis Cluster; the client follows slot moves and failovers.
    Cluster(ClusterConnection),
}

/// The seed URLs of a Redis URL list: `a,b,c` → `[a, b, c]`, blanks dropped.
pub fn seeds(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// True when every seed of `url` is a Redis URL (`redis://` or `rediss://`).
pub fn is_redis_url(url: &str) -> bool {
    let s = seeds(url);
    !s.is_empty()
        && s.iter()
            .all(|u| u.starts_with("redis://") || u.starts_with("rediss://"))
}

fn config_error(msg: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "Redis URL", msg))
}

/// Whether the server behind `client` runs in cluster mode.
async fn cluster_enabled(client: &redis::Client) -> RedisResult<bool> {
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// What the seeds of `url` are: (is it a cluster, the first seed that answered).
/// Every seed is tried in turn; the last failure is the error.
pub async fn probe(url: &str) -> RedisResult<(bool, redis::Client)> {
    let list = seeds(url);
    let mut last = config_error("no Redis URL given".into());
    for seed in &list {
        let client = redis::Client::open(*seed)?;
        match cluster_enabled(&client).await {
            Ok(cluster) => {
                if !cluster && list.len() > 1 {
                    return Err(config_error(format!(
                        "{} seed URLs were given, but {} is not in cluster mode (give one URL for a single server)",
                        list.len(),
                        crate::select::redact(seed)
                    )));
                }
                return Ok((cluster, client));
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A reconnecting, multiplexed connection to `client`'s single server.
/// Reconnects later are the manager's job; the first connection fails fast,
/// so a wrong URL is a clear start-up error rather than a hang.
pub async fn manager(client: &redis::Client) -> RedisResult<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client.get_connection_manager_with_config(cfg).await
}

/// Connects to the Redis that `url` names: one server, or the cluster its
/// seeds belong to.
pub async fn connect(url: &str) -> RedisResult<RedisConn> {
    let (cluster, client) = probe(url).await?;
    if !cluster {
        return Ok(RedisConn::Single(manager(&client).await?));
    }
    let conn = ClusterClientBuilder::new(seeds(url))
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .build()?
        .get_async_connection()
        .await?;
    Ok(RedisConn::Cluster(conn))
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// `EVALSHA` of `script` on `keys`, as a plain command that a
/// [`RedisConn::pipelined`] batch can carry; its arguments follow with `arg`.
pub fn eval(script: &Script, keys: &[&str]) -> Cmd {
    let mut c = redis::cmd("EVALSHA");
    c.arg(script.get_hash()).arg(keys.len()).arg(keys);
    c
}

/// One answer of a [`RedisConn::pipelined`] batch, read as `T`.
pub fn parse<T: redis::FromRedisValue>(r: RedisResult<Value>) -> RedisResult<T> {
    Ok(redis::from_redis_value(r?)?)
}

/// True when `r` is the server's answer that it does not know the script.
pub fn no_script(r: &RedisResult<Value>) -> bool {
    matches!(r, Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript))
}

impl RedisConn {
    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }

    /// Runs `call`, an [`eval`] of `script`, loading the script first when
    /// the server does not know it yet.
    pub async fn run_script<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        call: &Cmd,
    ) -> RedisResult<T> {
        let mut conn = self.clone();
        match call.query_async(&mut conn).await {
            Err(e) if e.kind() == ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                script.load_async(&mut conn).await?;
                call.query_async(&mut conn).await
            }
            r => r,
        }
    }

    /// Runs `batch` (each command with the key that places it) in as few
    /// round trips as the deployment allows, and answers each command's own
    /// result in the batch's order: one pipeline on a single server, one per
    /// hash slot on a cluster, sent together (so no order holds between
    /// slots). A slot whose node fails answers its commands with the error;
    /// the others' answers stand. An `EVALSHA` of one of
    /// `scripts` that the server does not know yet is loaded and run again
    /// (that command alone: the others ran once).
    pub async fn pipelined(
        &self,
        batch: Vec<(String, Cmd)>,
        scripts: &[&Script],
    ) -> RedisResult<Vec<RedisResult<Value>>> {
        let mut out: Vec<RedisResult<Value>> = (0..batch.len())
            .map(|_| Err(config_error("a pipeline answered short".into())))
            .collect();
        let groups = self.group(batch);
        self.send(&groups, &mut out).await;
        // Only the calls the server did not know the script of run again.
        let redo: Vec<(Vec<usize>, redis::Pipeline)> = groups
            .iter()
            .filter_map(|(ids, pipe)| {
                let mut again = redis::pipe();
                again.ignore_errors();
                let mut which = Vec::new();
                for (&i, c) in ids.iter().zip(pipe.cmd_iter()) {
                    if no_script(&out[i]) {
                        again.add_command(c.clone());
                        which.push(i);
                    }
                }
                (!which.is_empty()).then_some((which, again))
            })
            .collect();
        if !redo.is_empty() {
            let mut conn = self.clone();
            for s in scripts {
                s.load_async(&mut conn).await?;
            }
            self.send(&redo, &mut out).await;
        }
        Ok(out)
    }

    /// `batch` as pipelines, each with the batch positions of its commands:
    /// one on a single server, one per hash slot on a cluster.
    fn group(&self, batch: Vec<(String, Cmd)>) -> Vec<(Vec<usize>, redis::Pipeline)> {
        let new_pipe = || {
            let mut p = redis::pipe();
            p.ignore_errors();
            p
        };
        match self {
            RedisConn::Single(_) => {
                let mut pipe = new_pipe();
                let ids = (0..batch.len()).collect();
                for (_, c) in batch {
                    pipe.add_command(c);
                }
                vec![(ids, pipe)]
            }
            RedisConn::Cluster(_) => {
                let mut at: HashMap<Slot, usize> = HashMap::new();
                let mut groups: Vec<(Vec<usize>, redis::Pipeline)> = Vec::new();
                for (i, (key, c)) in batch.into_iter().enumerate() {
                    let g = *at.entry(Slot::for_key(&key)).or_insert_with(|| {
                        groups.push((Vec::new(), new_pipe()));
                        groups.len() - 1
                    });
                    groups[g].0.push(i);
                    groups[g].1.add_command(c);
                }
                groups
            }
        }
    }

    /// Sends every pipeline of `groups` at once and puts each answer at its
    /// batch position in `out`. A slot whose node fails answers its commands
    /// with the error; the other slots' answers stand (they ran).
    async fn send(&self, groups: &[(Vec<usize>, redis::Pipeline)], out: &mut [RedisResult<Value>]) {
        let runs = groups.iter().map(|(_, pipe)| {
            let mut conn = self.clone();
            async move { pipe.query_async::<Vec<RedisResult<Value>>>(&mut conn).await }
        });
        for ((ids, _), r) in groups.iter().zip(join_all(runs).await) {
            match r {
                Ok(values) => {
                    for (&i, v) in ids.iter().zip(values) {
                        out[i] = v;
                    }
                }
                Err(e) => {
                    for &i in ids {
                        out[i] = Err(e.clone());
                    }
                }
            }
        }
    }
}

/// Clients for the pub/sub connections of `url`: the one server, or every
/// seed of a cluster (a plain `PUBLISH` reaches every node of a cluster, so a
/// subscriber on any one of them hears it; when that node goes, the next
/// seed is tried).
pub fn pubsub_clients(url: &str) -> RedisResult<Vec<redis::Client>> {
    seeds(url).into_iter().map(redis::Client::open).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_split_on_commas() {
        assert_eq!(seeds("redis://a:1"), ["redis://a:1"]);
        assert_eq!(
            seeds(" redis://a:1 , redis://b:2,,"),
            ["redis://a:1", "redis://b:2"]
        );
        assert!(is_redis_url("redis://a,rediss://b"));
        assert!(!is_redis_url("redis://a,memory://"));
        assert!(!is_redis_url(""));
    }

    #[tokio::test]
    async fn several_seeds_of_a_plain_server_are_refused() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        if probe(&url).await.unwrap().0 {
            return; // the suite runs on a cluster: nothing to refuse
        }
        let two = format!("{url},{url}");
        let e = connect(&two).await.err().expect("refused").to_string();
        assert!(e.contains("not in cluster mode"), "{e}");
    }

    #[tokio::test]
    async fn a_batch_answers_each_command_in_order_and_loads_missing_scripts() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let conn = connect(&url).await.unwrap();
        let p = format!("test-{:x}", rand::random::<u64>());
        // A script no server has seen yet: its code names this run's prefix.
        let script = Script::new(&format!(
            "-- {p}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
        ));
        let mut batch = Vec::new();
        for k in 0..20 {
            let key = format!("{p}:{{k{k}}}:n");
            let mut inc = eval(&script, &[&key]);
            inc.arg(2);
            batch.push((key.clone(), inc));
            let mut get = redis::cmd("GET");
            get.arg(&key);
            batch.push((key, get));
        }
        let out = conn.pipelined(batch, &[&script]).await.unwrap();
        assert_eq!(out.len(), 40);
        for pair in out.chunks(2) {
            assert_eq!(
                pair[0].as_ref().unwrap(),
                &Value::Int(2),
                "ran once, after the load"
            );
        }
        // The GETs ran before the script was loaded and its commands re-run: nil then.
        let again: Vec<RedisResult<Value>> = conn
            .pipelined(
                (0..20)
                    .map(|k| {
                        let key = format!("{p}:{{k{k}}}:n");
                        let mut get = redis::cmd("GET");
                        get.arg(&key);
                        (key, get)
                    })
                    .collect(),
                &[],
            )
            .await
            .unwrap();
        for v in again {
            assert_eq!(v.unwrap(), Value::BulkString(b"2".to_vec()));
        }
    }
}
