//! The dispatch index on Redis GEO, shared by every hub process.
//!
//! The pool and the rider index are each split into [`REDIS_SHARDS`] shards
//! by id ([`partition`]), each shard its own hash tag, so a Redis Cluster
//! spreads them over its nodes. Keys, under the deployment's prefix, for
//! shard `k`: `{p}:{dispatch:k}:open` (a GEO set of open orders at their
//! pickup), `{p}:{dispatch:k}:info` (a hash: order → its pool entry as JSON),
//! `{p}:{dispatch:k}:claim:<order>` (the winner of a grab, expiring after the
//! claim TTL), and `{p}:{riders:k}:geo` / `{p}:{riders:k}:seen` (riders' last
//! positions and fix times). An order's keys share its shard's tag, so a
//! grab's Lua script runs on one node; a search asks every shard at once
//! (one pipeline per slot) and merges by distance.
//!
//! Redis GEO takes latitudes within ±85.05°; points nearer the poles are
//! stored at that limit (no delivery happens there).

use super::{Claim, Dispatch, DispatchError, NearbyOrder, OpenOrder, RiderPosition};
use crate::redis_conn::{RedisConn, parse};
use crate::shard::{REDIS_SHARDS, partition};
use async_trait::async_trait;
use redis::{Cmd, Script};
use std::time::Duration;
use tracker_domain::Point;

const MAX_GEO_LAT: f64 = 85.051_128;

/// The Redis [`Dispatch`].
pub struct RedisDispatch {
    conn: RedisConn,
    prefix: String,
    claim_ttl: Duration,
    claim: Script,
    ensure_open: Script,
    release: Script,
    rider_seen: Script,
    forget: Script,
}

fn unavailable(e: impl Into<crate::BoxError>) -> DispatchError {
    DispatchError::Unavailable(e.into())
}

fn geo_lat(lat: f64) -> f64 {
    lat.clamp(-MAX_GEO_LAT, MAX_GEO_LAT)
}

impl RedisDispatch {
    /// Connects to `url`; keys go under `prefix`, claim records last `claim_ttl`.
    pub async fn connect(
        url: &str,
        prefix: &str,
        claim_ttl: Duration,
    ) -> Result<Self, DispatchError> {
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        Ok(RedisDispatch {
            conn,
            prefix: prefix.to_owned(),
            claim_ttl,
            claim: Script::new(
                r"
                if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
                  redis.call('HDEL', KEYS[2], ARGV[1])
                  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
                  return {1, ARGV[2]}
                end
                local by = redis.call('GET', KEYS[3])
                if by then return {0, by} end
                return {-1, ''}",
            ),
            ensure_open: Script::new(
                r"
                if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('EXISTS', KEYS[3]) == 1 then
                  return 0
                end
                redis.call('GEOADD', KEYS[1], ARGV[2], ARGV[3], ARGV[1])
                redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
                return 1",
            ),
            release: Script::new(
                r"
                if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
                return 0",
            ),
            rider_seen: Script::new(
                r"
                local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
                if held and tonumber(held) >= tonumber(ARGV[4]) then return 0 end
                redis.call('GEOADD', KEYS[1], ARGV[2], ARGV[3], ARGV[1])
                redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
                return 1",
            ),
            forget: Script::new(
                r"
                local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
                for i = 1, #old, 500 do
                  local chunk = {unpack(old, i, math.min(i + 499, #old))}
                  redis.call('ZREM', KEYS[1], unpack(chunk))
                  redis.call('ZREM', KEYS[2], unpack(chunk))
                end
                return #old",
            ),
        })
    }

    /// The pool shard holding `order`: its GEO set, its info hash, its claim key.
    fn pool(&self, order: &str) -> (String, String, String) {
        let k = partition(order, REDIS_SHARDS);
        let (open, info) = self.pool_shard(k);
        (
            open,
            info,
            format!("{}:{{dispatch:{k}}}:claim:{order}", self.prefix),
        )
    }

    /// Pool shard `k`: its GEO set and its info hash.
    fn pool_shard(&self, k: usize) -> (String, String) {
        let p = &self.prefix;
        (
            format!("{p}:{{dispatch:{k}}}:open"),
            format!("{p}:{{dispatch:{k}}}:info"),
        )
    }

    /// Rider shard `k`: the positions' GEO set and the fix times.
    fn rider_shard(&self, k: usize) -> (String, String) {
        let p = &self.prefix;
        (
            format!("{p}:{{riders:{k}}}:geo"),
            format!("{p}:{{riders:{k}}}:seen"),
        )
    }

    /// One command per shard, sent together; each shard's answer as `T`.
    async fn every_shard<T: redis::FromRedisValue>(
        &self,
        per_shard: impl Fn(usize) -> (String, Cmd),
        scripts: &[&Script],
    ) -> Result<Vec<T>, DispatchError> {
        let batch = (0..REDIS_SHARDS).map(per_shard).collect();
        self.conn
            .pipelined(batch, scripts)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|r| parse(r).map_err(unavailable))
            .collect()
    }
}

/// `GEOSEARCH key` for members within `radius_m` of `at`, nearest first.
fn geosearch(key: &str, at: Point, radius_m: f64) -> redis::Cmd {
    let mut c = redis::cmd("GEOSEARCH");
    c.arg(key)
        .arg("FROMLONLAT")
        .arg(at.lon)
        .arg(geo_lat(at.lat))
        .arg("BYRADIUS")
        .arg(radius_m)
        .arg("m")
        .arg("ASC");
    c
}

fn entry_json(order: &OpenOrder) -> Result<String, DispatchError> {
    serde_json::to_string(order).map_err(unavailable)
}

#[async_trait]
impl Dispatch for RedisDispatch {
    async fn open(&self, order: &OpenOrder) -> Result<(), DispatchError> {
        let (open, info, claim) = self.pool(&order.id);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("GEOADD")
            .arg(&open)
            .arg(order.pickup.lon)
            .arg(geo_lat(order.pickup.lat))
            .arg(&order.id)
            .ignore()
            .hset(&info, &order.id, entry_json(order)?)
            .ignore()
            .del(claim)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn ensure_open(&self, order: &OpenOrder) -> Result<(), DispatchError> {
        let (open, info, claim) = self.pool(&order.id);
        let mut c = self.conn.clone();
        self.ensure_open
            .key(&open)
            .key(&info)
            .key(claim)
            .arg(&order.id)
            .arg(order.pickup.lon)
            .arg(geo_lat(order.pickup.lat))
            .arg(entry_json(order)?)
            .invoke_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn close(&self, order: &str) -> Result<(), DispatchError> {
        let (open, info, _) = self.pool(order);
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(&open, order)
            .ignore()
            .hdel(&info, order)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn open_ids(&self) -> Result<Vec<String>, DispatchError> {
        let shards: Vec<Vec<String>> = self
            .every_shard(
                |k| {
                    let (open, _) = self.pool_shard(k);
                    let mut c = redis::cmd("ZRANGE");
                    c.arg(&open).arg(0).arg(-1);
                    (open, c)
                },
                &[],
            )
            .await?;
        Ok(shards.into_iter().flatten().collect())
    }

    async fn nearby(
        &self,
        at: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyOrder>, DispatchError> {
        let shards: Vec<Vec<(String, f64)>> = self
            .every_shard(
                |k| {
                    let (open, _) = self.pool_shard(k);
                    let mut c = geosearch(&open, at, radius_m);
                    c.arg("COUNT").arg(limit.max(1)).arg("WITHDIST");
                    (open, c)
                },
                &[],
            )
            .await?;
        // The nearest `limit` over every shard, each with its shard.
        let mut found: Vec<(usize, String, f64)> = shards
            .into_iter()
            .enumerate()
            .flat_map(|(k, hits)| hits.into_iter().map(move |(id, d)| (k, id, d)))
            .collect();
        found.sort_by(|a, b| a.2.total_cmp(&b.2));
        found.truncate(limit.max(1));
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let batch = found
            .iter()
            .map(|(k, id, _)| {
                let (_, info) = self.pool_shard(*k);
                let mut c = redis::cmd("HGET");
                c.arg(&info).arg(id);
                (info, c)
            })
            .collect();
        let infos = self.conn.pipelined(batch, &[]).await.map_err(unavailable)?;
        // An entry without info was claimed between the two calls: not open any more.
        let mut out = Vec::with_capacity(found.len());
        for ((_, _, dist_m), info) in found.into_iter().zip(infos) {
            let info: Option<String> = parse(info).map_err(unavailable)?;
            if let Some(order) = info.and_then(|i| serde_json::from_str(&i).ok()) {
                out.push(NearbyOrder { order, dist_m });
            }
        }
        Ok(out)
    }

    async fn claim(&self, order: &str, rider: &str) -> Result<Claim, DispatchError> {
        let (open, info, claim) = self.pool(order);
        let mut c = self.conn.clone();
        let (code, by): (i64, String) = self
            .claim
            .key(&open)
            .key(&info)
            .key(claim)
            .arg(order)
            .arg(rider)
            .arg(self.claim_ttl.as_millis().max(1) as u64)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(match code {
            1 => Claim::Won,
            0 => Claim::Taken { by },
            _ => Claim::NotOpen,
        })
    }

    async fn release(&self, order: &str, rider: &str) -> Result<(), DispatchError> {
        let (_, _, claim) = self.pool(order);
        let mut c = self.conn.clone();
        self.release
            .key(claim)
            .arg(rider)
            .invoke_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn rider_seen(&self, rider: &str, at: Point, ts: i64) -> Result<(), DispatchError> {
        let (geo, seen) = self.rider_shard(partition(rider, REDIS_SHARDS));
        let mut c = self.conn.clone();
        self.rider_seen
            .key(&geo)
            .key(&seen)
            .arg(rider)
            .arg(at.lon)
            .arg(geo_lat(at.lat))
            .arg(ts)
            .invoke_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn riders_near(
        &self,
        at: Point,
        radius_m: f64,
        seen_since: i64,
        limit: usize,
    ) -> Result<Vec<RiderPosition>, DispatchError> {
        let shards: Vec<Vec<(String, f64, (f64, f64))>> = self
            .every_shard(
                |k| {
                    let (geo, _) = self.rider_shard(k);
                    let mut c = geosearch(&geo, at, radius_m);
                    c.arg("WITHDIST").arg("WITHCOORD");
                    (geo, c)
                },
                &[],
            )
            .await?;
        let batch: Vec<(String, Cmd)> = shards
            .iter()
            .enumerate()
            .filter(|(_, hits)| !hits.is_empty())
            .map(|(k, hits)| {
                let (_, seen) = self.rider_shard(k);
                let mut c = redis::cmd("ZMSCORE");
                c.arg(&seen);
                for h in hits {
                    c.arg(&h.0);
                }
                (seen, c)
            })
            .collect();
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let times = self.conn.pipelined(batch, &[]).await.map_err(unavailable)?;
        let mut found = Vec::new();
        for (hits, ts) in shards.into_iter().filter(|h| !h.is_empty()).zip(times) {
            let ts: Vec<Option<f64>> = parse(ts).map_err(unavailable)?;
            for ((rider_id, dist_m, (lon, lat)), ts) in hits.into_iter().zip(ts) {
                let Some(ts) = ts.map(|t| t as i64) else {
                    continue;
                };
                if ts >= seen_since {
                    found.push(RiderPosition {
                        rider_id,
                        lat,
                        lon,
                        ts,
                        dist_m,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.dist_m.total_cmp(&b.dist_m));
        found.truncate(limit);
        Ok(found)
    }

    async fn forget_riders(&self, before: i64) -> Result<usize, DispatchError> {
        let forgotten: Vec<usize> = self
            .every_shard(
                |k| {
                    let (geo, seen) = self.rider_shard(k);
                    let mut c = crate::redis_conn::eval(&self.forget, &[&geo, &seen]);
                    c.arg(before);
                    (geo, c)
                },
                &[&self.forget],
            )
            .await?;
        Ok(forgotten.into_iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn redis_dispatch_meets_the_contract() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        // One index per clause under its own prefix, made before the clauses run.
        let mut all = Vec::new();
        for _ in 0..super::super::contract::CLAUSES {
            let prefix = format!("test-{:x}", rand::random::<u64>());
            all.push(Arc::new(
                RedisDispatch::connect(&url, &prefix, Duration::from_secs(30))
                    .await
                    .unwrap(),
            ));
        }
        let all = std::sync::Mutex::new(all);
        super::super::contract::run(|| all.lock().unwrap().pop().expect("one per clause")).await;
    }

    #[tokio::test]
    async fn unreachable_redis_is_an_error_not_a_hang() {
        let r = RedisDispatch::connect("redis://127.0.0.1:1", "x", Duration::from_secs(1)).await;
        assert!(r.is_err());
    }
}
