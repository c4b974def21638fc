//! Stock in Redis: a hash per SKU (`{p}:{stock}:sku:<sku>`: available,
//! reserved, sold), a hash per reservation (`{p}:{stock}:res:<key>`: state,
//! lines) and a sorted set of the open ones (`{p}:{stock}:open`, by time).
//! Every key carries the hash tag `{stock}`, so each step is one Lua script
//! on one slot of a cluster, atomic against every other process.
//!
//! A settled reservation is kept for [`SETTLED_TTL`] so a repeated create
//! finds it; after that a repeat reserves anew, and the hub gives it back at
//! once when the store answers with the existing order.

use super::{
    OpenReservation, ReservationKey, ReservationState, Reserved, Settle, Stock, StockError,
    StockLevel, StockLine, check_level, check_sku, sorted_lines,
};
use crate::redis_conn::RedisConn;
use async_trait::async_trait;
use redis::Script;
use std::time::Duration;

/// How long a settled reservation is remembered.
pub const SETTLED_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The Redis [`Stock`].
pub struct RedisStock {
    conn: RedisConn,
    prefix: String,
    set: Script,
    reserve: Script,
    settle: Script,
}

fn unavailable(e: impl Into<crate::BoxError>) -> StockError {
    StockError::Unavailable(e.into())
}

/// The member naming `key` in the open set and in its hash's name:
/// `<len of biz_type>:<biz_type><biz_order_no>`, which reads back unambiguously.
fn member(key: &ReservationKey) -> String {
    format!(
        "{}:{}{}",
        key.biz_type.len(),
        key.biz_type,
        key.biz_order_no
    )
}

fn from_member(m: &str) -> Option<ReservationKey> {
    let (len, rest) = m.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if len > rest.len() || !rest.is_char_boundary(len) {
        return None;
    }
    let (biz_type, biz_order_no) = rest.split_at(len);
    Some(ReservationKey {
        biz_type: biz_type.to_owned(),
        biz_order_no: biz_order_no.to_owned(),
    })
}

impl RedisStock {
    /// Connects to `url`; the keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StockError> {
        let conn = crate::redis_conn::connect(url).await.map_err(unavailable)?;
        Ok(RedisStock {
            conn,
            prefix: prefix.to_owned(),
            set: Script::new(
                r"
                redis.call('HSET', KEYS[1], 'available', ARGV[1])
                redis.call('HSETNX', KEYS[1], 'reserved', 0)
                redis.call('HSETNX', KEYS[1], 'sold', 0)
                redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
                return redis.call('HMGET', KEYS[1], 'available', 'reserved', 'sold')",
            ),
            // KEYS: the reservation, the open set, the SKUs (sorted).
            // ARGV: now, member, then each SKU's quantity, then each SKU's name.
            reserve: Script::new(
                r"
                local st = redis.call('HGET', KEYS[1], 'state')
                if st then return {'already', st} end
                local n = #KEYS - 2
                for i = 1, n do
                  local a = redis.call('HGET', KEYS[i + 2], 'available')
                  if a and tonumber(a) < tonumber(ARGV[2 + i]) then
                    return {'short', ARGV[2 + n + i]}
                  end
                end
                local held = {}
                for i = 1, n do
                  if redis.call('HEXISTS', KEYS[i + 2], 'available') == 1 then
                    local q = tonumber(ARGV[2 + i])
                    redis.call('HINCRBY', KEYS[i + 2], 'available', -q)
                    redis.call('HINCRBY', KEYS[i + 2], 'reserved', q)
                    held[#held + 1] = {ARGV[2 + n + i], q}
                  end
                end
                if #held == 0 then return {'uncontrolled', ''} end
                redis.call('HSET', KEYS[1], 'state', 'reserved', 'lines', cjson.encode(held), 'at', ARGV[1])
                redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
                return {'reserved', ''}",
            ),
            // KEYS: the reservation, the open set, its SKUs.
            // ARGV: how, now, member, the lines as read, the TTL (ms), each SKU's quantity.
            settle: Script::new(
                r"
                if redis.call('HGET', KEYS[1], 'state') ~= 'reserved' then return 0 end
                if redis.call('HGET', KEYS[1], 'lines') ~= ARGV[4] then return -1 end
                for i = 3, #KEYS do
                  local q = tonumber(ARGV[i + 3])
                  redis.call('HINCRBY', KEYS[i], 'reserved', -q)
                  if ARGV[1] == 'sell' then
                    redis.call('HINCRBY', KEYS[i], 'sold', q)
                  else
                    redis.call('HINCRBY', KEYS[i], 'available', q)
                  end
                end
                redis.call('ZREM', KEYS[2], ARGV[3])
                if ARGV[1] == 'forget' then
                  redis.call('DEL', KEYS[1])
                else
                  local to = 'released'
                  if ARGV[1] == 'sell' then to = 'sold' end
                  redis.call('HSET', KEYS[1], 'state', to, 'settled', ARGV[2])
                  redis.call('PEXPIRE', KEYS[1], ARGV[5])
                end
                return 1",
            ),
        })
    }

    fn sku_key(&self, sku: &str) -> String {
        format!("{}:{{stock}}:sku:{sku}", self.prefix)
    }

    fn res_key(&self, member: &str) -> String {
        format!("{}:{{stock}}:res:{member}", self.prefix)
    }

    /// Every SKU ever set, scored by when it was first set.
    fn skus_key(&self) -> String {
        format!("{}:{{stock}}:skus", self.prefix)
    }

    fn open_key(&self) -> String {
        format!("{}:{{stock}}:open", self.prefix)
    }
}

fn level(sku: &str, v: [Option<i64>; 3]) -> Option<StockLevel> {
    Some(StockLevel {
        sku: sku.to_owned(),
        available: v[0]?,
        reserved: v[1].unwrap_or(0),
        sold: v[2].unwrap_or(0),
    })
}

#[async_trait]
impl Stock for RedisStock {
    async fn set(&self, sku: &str, available: i64, now: i64) -> Result<StockLevel, StockError> {
        check_sku(sku)?;
        check_level(available)?;
        let mut c = self.conn.clone();
        let v: [Option<i64>; 3] = self
            .set
            .key(self.sku_key(sku))
            .key(self.skus_key())
            .arg(available)
            .arg(now)
            .arg(sku)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        level(sku, v).ok_or_else(|| unavailable("the stock level vanished as it was set"))
    }

    async fn get(&self, sku: &str) -> Result<Option<StockLevel>, StockError> {
        check_sku(sku)?;
        let mut c = self.conn.clone();
        let v: [Option<i64>; 3] = redis::cmd("HMGET")
            .arg(self.sku_key(sku))
            .arg(&["available", "reserved", "sold"])
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(level(sku, v))
    }

    async fn reserve(
        &self,
        key: &ReservationKey,
        lines: &[StockLine],
        now: i64,
    ) -> Result<Reserved, StockError> {
        let lines = sorted_lines(lines)?;
        if lines.is_empty() {
            return Ok(Reserved::Uncontrolled);
        }
        let m = member(key);
        let mut inv = self.reserve.prepare_invoke();
        inv.key(self.res_key(&m)).key(self.open_key());
        for l in &lines {
            inv.key(self.sku_key(&l.sku));
        }
        inv.arg(now).arg(&m);
        for l in &lines {
            inv.arg(l.qty);
        }
        for l in &lines {
            inv.arg(&l.sku);
        }
        let mut c = self.conn.clone();
        let (what, detail): (String, String) =
            inv.invoke_async(&mut c).await.map_err(unavailable)?;
        match what.as_str() {
            "reserved" => Ok(Reserved::New),
            "uncontrolled" => Ok(Reserved::Uncontrolled),
            "short" => Err(StockError::OutOfStock { sku: detail }),
            "already" => ReservationState::parse(&detail)
                .map(Reserved::Already)
                .ok_or_else(|| unavailable(format!("a reservation in state `{detail}`"))),
            other => Err(unavailable(format!("the reserve script said `{other}`"))),
        }
    }

    async fn settle(
        &self,
        key: &ReservationKey,
        how: Settle,
        now: i64,
    ) -> Result<bool, StockError> {
        let m = member(key);
        let res = self.res_key(&m);
        let mut c = self.conn.clone();
        let raw: Option<String> = redis::cmd("HGET")
            .arg(&res)
            .arg("lines")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let Some(raw) = raw else { return Ok(false) };
        let lines: Vec<(String, i64)> = serde_json::from_str(&raw)
            .map_err(|e| unavailable(format!("reservation `{m}` lines: {e}")))?;
        let how_name = match how {
            Settle::Release => "release",
            Settle::Sell => "sell",
            Settle::Forget => "forget",
        };
        let mut inv = self.settle.prepare_invoke();
        inv.key(&res).key(self.open_key());
        for (sku, _) in &lines {
            inv.key(self.sku_key(sku));
        }
        inv.arg(how_name)
            .arg(now)
            .arg(&m)
            .arg(&raw)
            .arg(SETTLED_TTL.as_millis() as u64);
        for (_, qty) in &lines {
            inv.arg(*qty);
        }
        let done: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        match done {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(unavailable(format!(
                "reservation `{m}` changed its lines while it was settled"
            ))),
        }
    }

    async fn open_reservations(
        &self,
        before: i64,
        limit: usize,
    ) -> Result<Vec<OpenReservation>, StockError> {
        let mut c = self.conn.clone();
        let found: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(self.open_key())
            .arg("-inf")
            .arg(format!("({before}"))
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.max(1))
            .arg("WITHSCORES")
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut out = Vec::with_capacity(found.len());
        for (m, at) in found {
            match from_member(&m) {
                Some(key) => out.push(OpenReservation { key, at: at as i64 }),
                None => {
                    tracing::warn!(member = m, "skipped a malformed open reservation");
                }
            }
        }
        Ok(out)
    }

    async fn skus(&self, since: i64, skip: usize, limit: usize) -> Result<Vec<String>, StockError> {
        let mut c = self.conn.clone();
        redis::cmd("ZRANGEBYSCORE")
            .arg(self.skus_key())
            .arg(since)
            .arg("+inf")
            .arg("LIMIT")
            .arg(skip)
            .arg(limit)
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_back_whatever_the_key_holds() {
        for (t, n) in [
            ("grocery", "S-1"),
            ("a:b", ":c"),
            ("", "x"),
            ("日本", "注文"),
        ] {
            let k = ReservationKey {
                biz_type: t.into(),
                biz_order_no: n.into(),
            };
            assert_eq!(from_member(&member(&k)), Some(k));
        }
        assert_eq!(from_member("9:ab"), None);
        assert_eq!(from_member("x:ab"), None);
    }

    #[tokio::test]
    async fn redis_stock_meets_the_contract() {
        let Some(url) = crate::log::redis::test_url() else {
            return;
        };
        let prefix = format!("test-{:x}", rand::random::<u64>());
        let stock = std::sync::Arc::new(RedisStock::connect(&url, &prefix).await.unwrap());
        super::super::contract::run(|| stock.clone()).await;
    }
}
