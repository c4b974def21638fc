//! The embedded dispatch index: two [`GeoSet`]s (open orders, riders) and the
//! claim records behind one lock each, so a claim is one critical section.

use super::geo::GeoSet;
use super::{Claim, Dispatch, DispatchError, NearbyOrder, OpenOrder, RiderPosition};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracker_domain::Point;

/// The in-process [`Dispatch`].
#[derive(Debug)]
pub struct MemoryDispatch {
    pool: Mutex<Pool>,
    riders: Mutex<GeoSet<i64>>,
    claim_ttl: Duration,
}

#[derive(Debug, Default)]
struct Pool {
    open: GeoSet<OpenOrder>,
    /// order → (rider, claimed at).
    claims: HashMap<String, (String, Instant)>,
}

impl Pool {
    fn claim_of(&mut self, order: &str, ttl: Duration) -> Option<&str> {
        if self
            .claims
            .get(order)
            .is_some_and(|(_, at)| at.elapsed() >= ttl)
        {
            self.claims.remove(order);
        }
        self.claims.get(order).map(|(r, _)| r.as_str())
    }
}

impl MemoryDispatch {
    /// An empty index whose claim records last `claim_ttl`.
    pub fn new(claim_ttl: Duration) -> Self {
        MemoryDispatch {
            pool: Mutex::default(),
            riders: Mutex::default(),
            claim_ttl,
        }
    }
}

#[async_trait]
impl Dispatch for MemoryDispatch {
    async fn open(&self, order: &OpenOrder) -> Result<(), DispatchError> {
        let mut p = self.pool.lock();
        p.claims.remove(&order.id);
        p.open.insert(&order.id, order.pickup, order.clone());
        Ok(())
    }

    async fn ensure_open(&self, order: &OpenOrder) -> Result<(), DispatchError> {
        let mut p = self.pool.lock();
        if !p.open.contains(&order.id) && p.claim_of(&order.id, self.claim_ttl).is_none() {
            p.open.insert(&order.id, order.pickup, order.clone());
        }
        Ok(())
    }

    async fn close(&self, order: &str) -> Result<(), DispatchError> {
        self.pool.lock().open.remove(order);
        Ok(())
    }

    async fn open_ids(&self) -> Result<Vec<String>, DispatchError> {
        Ok(self.pool.lock().open.ids().map(str::to_owned).collect())
    }

    async fn nearby(
        &self,
        at: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<Vec<NearbyOrder>, DispatchError> {
        let p = self.pool.lock();
        Ok(p.open
            .within(at, radius_m, limit, |_| true)
            .into_iter()
            .map(|(_, o, _, d)| NearbyOrder {
                order: o.clone(),
                dist_m: d,
            })
            .collect())
    }

    async fn claim(&self, order: &str, rider: &str) -> Result<Claim, DispatchError> {
        let mut p = self.pool.lock();
        if p.open.remove(order).is_some() {
            p.claims
                .insert(order.to_owned(), (rider.to_owned(), Instant::now()));
            return Ok(Claim::Won);
        }
        Ok(match p.claim_of(order, self.claim_ttl) {
            Some(by) => Claim::Taken { by: by.to_owned() },
            None => Claim::NotOpen,
        })
    }

    async fn release(&self, order: &str, rider: &str) -> Result<(), DispatchError> {
        let mut p = self.pool.lock();
        if p.claims.get(order).is_some_and(|(r, _)| r == rider) {
            p.claims.remove(order);
        }
        Ok(())
    }

    async fn rider_seen(&self, rider: &str, at: Point, ts: i64) -> Result<(), DispatchError> {
        let mut r = self.riders.lock();
        if r.get(rider).is_none_or(|(_, held)| *held < ts) {
            r.insert(rider, at, ts);
        }
        Ok(())
    }

    async fn riders_near(
        &self,
        at: Point,
        radius_m: f64,
        seen_since: i64,
        limit: usize,
    ) -> Result<Vec<RiderPosition>, DispatchError> {
        let r = self.riders.lock();
        Ok(r.within(at, radius_m, limit, |ts| *ts >= seen_since)
            .into_iter()
            .map(|(id, ts, p, d)| RiderPosition {
                rider_id: id.to_owned(),
                lat: p.lat,
                lon: p.lon,
                ts: *ts,
                dist_m: d,
            })
            .collect())
    }

    async fn forget_riders(&self, before: i64) -> Result<usize, DispatchError> {
        let mut r = self.riders.lock();
        let old: Vec<String> = r
            .ids()
            .filter(|id| r.get(id).is_some_and(|(_, ts)| *ts < before))
            .map(str::to_owned)
            .collect();
        for id in &old {
            r.remove(id);
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn memory_dispatch_meets_the_contract() {
        super::super::contract::run(|| Arc::new(MemoryDispatch::new(Duration::from_secs(30))))
            .await;
    }
}
