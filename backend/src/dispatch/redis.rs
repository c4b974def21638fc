//! The dispatch index on Redis GEO, shared by every hub process.
//!
//! Keys, under the deployment's prefix: `{p}:{dispatch}:open` (a GEO set of
//! open orders at their pickup), `{p}:{dispatch}:info` (a hash: order → its
//! pool entry as JSON), `{p}:{dispatch}:claim:<order>` (the winner of a grab,
//! expiring after the claim TTL), and `{p}:{riders}:geo` / `{p}:{riders}:seen`
//! (riders' last positions and fix times). The `{dispatch}` hash tag keeps a
//! grab's keys in one Redis Cluster slot, so its Lua script runs on one node.
//!
//! Redis GEO takes latitudes within ±85.05°; points nearer the poles are
//! stored at that limit (no delivery happens there).

use super::{Claim, Dispatch, DispatchError, NearbyOrder, OpenOrder, RiderPosition};
use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;
use std::time::Duration;
use tracker_domain::Point;

const MAX_GEO_LAT: f64 = 85.051_128;

/// The Redis [`Dispatch`].
pub struct RedisDispatch {
    conn: ConnectionManager,
    open: String,
    info: String,
    claim_prefix: String,
    riders: String,
    seen: String,
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
            open: format!("{prefix}:{{dispatch}}:open"),
            info: format!("{prefix}:{{dispatch}}:info"),
            claim_prefix: format!("{prefix}:{{dispatch}}:claim:"),
            riders: format!("{prefix}:{{riders}}:geo"),
            seen: format!("{prefix}:{{riders}}:seen"),
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

    fn claim_key(&self, order: &str) -> String {
        format!("{}{order}", self.claim_prefix)
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
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("GEOADD")
            .arg(&self.open)
            .arg(order.pickup.lon)
            .arg(geo_lat(order.pickup.lat))
            .arg(&order.id)
            .ignore()
            .hset(&self.info, &order.id, entry_json(order)?)
            .ignore()
            .del(self.claim_key(&order.id))
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn ensure_open(&self, order: &OpenOrder) -> Result<(), DispatchError> {
        let mut c = self.conn.clone();
        self.ensure_open
            .key(&self.open)
            .key(&self.info)
            .key(self.claim_key(&order.id))
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
        let mut c = self.conn.clone();
        redis::pipe()
            .atomic()
            .zrem(&self.open, order)
            .ignore()
            .hdel(&self.info, order)
            .ignore()
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn open_ids(&self) -> Result<Vec<String>, DispatchError> {
        let mut c = self.conn.clone();
        redis::cmd("ZRANGE")
            .arg(&self.open)
            .arg(0)
            .arg(-1)
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn nearby(
        &self,
        at: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyOrder>, DispatchError> {
        let mut c = self.conn.clone();
        let found: Vec<(String, f64)> = geosearch(&self.open, at, radius_m)
            .arg("COUNT")
            .arg(limit.max(1))
            .arg("WITHDIST")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        let infos: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.info)
            .arg(&ids)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        // An entry without info was claimed between the two calls: not open any more.
        Ok(found
            .into_iter()
            .zip(infos)
            .filter_map(|((_, dist_m), info)| {
                let order = serde_json::from_str(info.as_deref()?).ok()?;
                Some(NearbyOrder { order, dist_m })
            })
            .collect())
    }

    async fn claim(&self, order: &str, rider: &str) -> Result<Claim, DispatchError> {
        let mut c = self.conn.clone();
        let (code, by): (i64, String) = self
            .claim
            .key(&self.open)
            .key(&self.info)
            .key(self.claim_key(order))
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
        let mut c = self.conn.clone();
        self.release
            .key(self.claim_key(order))
            .arg(rider)
            .invoke_async::<i64>(&mut c)
            .await
            .map(drop)
            .map_err(unavailable)
    }

    async fn rider_seen(&self, rider: &str, at: Point, ts: i64) -> Result<(), DispatchError> {
        let mut c = self.conn.clone();
        self.rider_seen
            .key(&self.riders)
            .key(&self.seen)
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
        let mut c = self.conn.clone();
        let found: Vec<(String, f64, (f64, f64))> = geosearch(&self.riders, at, radius_m)
            .arg("WITHDIST")
            .arg("WITHCOORD")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = found.iter().map(|f| f.0.as_str()).collect();
        let seen: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg(&self.seen)
            .arg(&ids)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(found
            .into_iter()
            .zip(seen)
            .filter_map(|((rider_id, dist_m, (lon, lat)), ts)| {
                let ts = ts? as i64;
                (ts >= seen_since).then_some(RiderPosition {
                    rider_id,
                    lat,
                    lon,
                    ts,
                    dist_m,
                })
            })
            .take(limit)
            .collect())
    }

    async fn forget_riders(&self, before: i64) -> Result<usize, DispatchError> {
        let mut c = self.conn.clone();
        self.forget
            .key(&self.riders)
            .key(&self.seen)
            .arg(before)
            .invoke_async::<usize>(&mut c)
            .await
            .map_err(unavailable)
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
