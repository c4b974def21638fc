//! From a rider's payload to `pos` events in the logs of the orders they hold.
//!
//! Bad input is counted by reason and dropped; it never fails the caller. Only a
//! backend failure (store or log unreachable) is an error, and the caller retries
//! it, because the fix was valid and must not be lost.

use crate::stats::Stats;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracker_backend::log::OrderKey;
use tracker_backend::retry::Backoff;
use tracker_backend::track::{Stored, TrackQueue};
use tracker_backend::{EventLog, LogError, Store, StoreError, TrackPoint};
use tracker_domain::fix::{parse_batch, parse_fix};
use tracker_domain::{Clock, EventBody, Fix, FixLimits, PosEvent, RejectReason};
use tracker_gate::{Limiter, Rate};

/// A backend failure while routing valid fixes; worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The store could not say which orders the rider holds.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The log refused the append.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The fixes are in the log but their track points were never stored (the
    /// writer stopped): not acknowledged, so the sender tries again.
    #[error("the track writer stopped before storing the fixes")]
    NotStored,
}

/// What a rider sent: one fix, or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One fix (a JSON object).
    Single,
    /// An array of fixes, possibly old and out of order.
    Batch,
}

/// What became of one payload's fixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Valid fixes, routed (or counted as unrouted when the rider holds no order).
    pub accepted: usize,
    /// A reason for each refused fix, or one for a payload refused whole.
    pub rejected: Vec<RejectReason>,
}

/// Validates fixes and appends them to the rider's orders.
pub struct Router {
    store: Arc<dyn Store>,
    log: Arc<dyn EventLog>,
    track: Arc<dyn TrackQueue>,
    clock: Arc<dyn Clock>,
    limits: FixLimits,
    stats: Arc<Stats>,
    holders: crate::holders::Holders,
    riders: Option<crate::riders::RiderIndex>,
    fix_rate: Option<Limiter<String>>,
}

fn pos_event(f: &Fix) -> EventBody {
    EventBody::Pos(PosEvent {
        lat: f.lat,
        lon: f.lon,
        ts: f.ts,
        speed: f.speed,
        heading: f.heading,
        backfill: false,
        before_pickup: false,
    })
}

impl Router {
    /// A router over these backends.
    pub fn new(
        store: Arc<dyn Store>,
        log: Arc<dyn EventLog>,
        track: Arc<dyn TrackQueue>,
        clock: Arc<dyn Clock>,
        limits: FixLimits,
        stats: Arc<Stats>,
    ) -> Self {
        Router {
            store,
            log,
            track,
            clock,
            limits,
            stats,
            holders: Default::default(),
            riders: None,
            fix_rate: None,
        }
    }

    /// Refuses a rider's payloads (one fix or one batch each) above `rate`,
    /// with reason `rate_limited`.
    pub fn with_fix_rate(mut self, rate: Option<Rate>) -> Self {
        self.fix_rate = rate.map(Limiter::new);
        self
    }

    /// Forgets riders whose fix allowance is full again (run now and then).
    pub fn prune_fix_rate(&self) {
        if let Some(l) = &self.fix_rate {
            l.prune();
        }
    }

    /// True when `rider` may send one more payload now; a refusal is counted.
    fn within_rate(&self, rider: &str) -> bool {
        let Some(l) = &self.fix_rate else {
            return true;
        };
        if l.check(&rider.to_owned()).is_ok() {
            return true;
        }
        self.stats.reject(RejectReason::RateLimited);
        tracker_gate::count_refusal("fix_rate");
        false
    }

    /// Also keeps every rider's newest position in `dispatch` (for operators'
    /// "riders near a point"), at most one write per rider every 2 s.
    pub fn with_rider_index(
        mut self,
        dispatch: Arc<dyn tracker_backend::dispatch::Dispatch>,
    ) -> Self {
        self.riders = Some(crate::riders::RiderIndex::new(
            dispatch,
            crate::riders::DEFAULT_EVERY_MS,
        ));
        self
    }

    /// Caches which orders each rider holds, kept honest by the log's tail,
    /// until `stop`: a fix then costs no store read (see [`crate::holders`]).
    pub async fn cache_holders(&self, stop: CancellationToken) {
        self.holders.follow(self.log.changes(), stop).await
    }

    /// The counters this router updates.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Handles a burst of payloads (`(rider, kind, payload)`, oldest first) as
    /// one: each payload is parsed, refusals are counted, and the valid fixes
    /// are routed together by [`Router::route_many`].
    pub async fn handle_many(
        &self,
        payloads: &[(&str, Kind, &[u8])],
    ) -> Result<Stored, RouteError> {
        let riders = payloads
            .iter()
            .filter(|&&(rider, _, _)| self.within_rate(rider))
            .map(|&(rider, kind, payload)| (rider, self.parse(kind, payload).0))
            .collect();
        self.route_many(riders).await
    }

    /// Validates one payload of `rider` (one fix, or a batch), counts each
    /// refusal, routes the valid fixes, and says what happened to each once
    /// the accepted ones are durable.
    pub async fn handle_payload(
        &self,
        rider: &str,
        kind: Kind,
        payload: &[u8],
    ) -> Result<Outcome, RouteError> {
        if !self.within_rate(rider) {
            return Ok(Outcome {
                accepted: 0,
                rejected: vec![RejectReason::RateLimited],
            });
        }
        let (fixes, rejected) = self.parse(kind, payload);
        let accepted = fixes.len();
        if !self.route(rider, fixes).await?.wait().await {
            return Err(RouteError::NotStored);
        }
        Ok(Outcome { accepted, rejected })
    }

    /// The valid fixes of one payload, and a counted reason for each refusal.
    fn parse(&self, kind: Kind, payload: &[u8]) -> (Vec<Fix>, Vec<RejectReason>) {
        let now = self.clock.now_ms();
        let (fixes, rejected) = match kind {
            Kind::Single => match parse_fix(payload, now, &self.limits) {
                Ok(f) => (vec![f], vec![]),
                Err(r) => (vec![], vec![r]),
            },
            Kind::Batch => match parse_batch(payload, now, &self.limits) {
                Ok((good, bad)) => (good, bad),
                Err(r) => (vec![], vec![r]),
            },
        };
        rejected.iter().for_each(|r| self.stats.reject(*r));
        (fixes, rejected)
    }

    /// Appends valid `fixes` of `rider`, oldest first, to every order the rider
    /// holds, and queues them as track points of those orders.
    ///
    /// A batch is kept whole in each log; the log's fold moves the live position
    /// only for a fix newer than the current one and marks the rest `backfill`.
    pub async fn route(&self, rider: &str, fixes: Vec<Fix>) -> Result<Stored, RouteError> {
        self.route_many(vec![(rider, fixes)]).await
    }

    /// [`Router::route`] for several riders' fixes at once: one
    /// [`EventLog::append_many`] for every order they hold (a rider's fixes
    /// keep their order within each order's log) and one push of track points.
    /// Returns when the fixes are in the logs; the answer resolves once their
    /// track points are durable too (what an ack waits for).
    pub async fn route_many(&self, riders: Vec<(&str, Vec<Fix>)>) -> Result<Stored, RouteError> {
        let mut batch: Vec<(OrderKey, Vec<EventBody>)> = Vec::new();
        let mut points = Vec::new();
        for (rider, mut fixes) in riders {
            if fixes.is_empty() {
                continue;
            }
            let n = fixes.len() as u64;
            self.stats.accept(n);
            fixes.sort_by_key(|f| f.ts);
            if let (Some(riders), Some(newest)) = (&self.riders, fixes.last()) {
                riders.seen(rider, newest, self.clock.now_ms()).await;
            }
            let orders = match self.holders.get(rider) {
                Some(orders) => orders,
                None => {
                    let orders = self.store.rider_orders(rider).await?;
                    self.holders.put(rider, &orders);
                    orders
                }
            };
            if orders.is_empty() {
                self.stats.unrouted(n);
                continue;
            }
            for order in orders {
                let events = fixes.iter().map(pos_event);
                match batch.iter_mut().find(|(o, _)| **o == *order) {
                    Some((_, queued)) => queued.extend(events),
                    None => batch.push((order.as_str().into(), events.collect())),
                }
                points.extend(fixes.iter().map(|f| TrackPoint {
                    order_id: order.clone(),
                    rider_id: rider.to_owned(),
                    ts: f.ts,
                    lat: f.lat,
                    lon: f.lon,
                    speed: f.speed,
                    heading: f.heading,
                    acc: f.acc,
                }));
            }
        }
        if batch.is_empty() {
            return Ok(Stored::now());
        }
        let appended = self.log.append_many(batch).await?;
        self.stats.appended(appended as u64);
        // Queued before the caller acks the publish: a crash here redelivers it,
        // and storing is idempotent.
        Ok(self.track.push(points).await?)
    }

    /// [`Router::handle_many`], retried with capped exponential backoff until it
    /// succeeds or `stop` is cancelled (`None` then). A retry routes the whole
    /// burst again: delivery is at least once.
    pub async fn handle_until_done(
        &self,
        payloads: &[(&str, Kind, &[u8])],
        stop: &CancellationToken,
    ) -> Option<Stored> {
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            match self.handle_many(payloads).await {
                Ok(stored) => return Some(stored),
                Err(e) => {
                    tracing::warn!(error = %e, payloads = payloads.len(), "routing fixes failed; retrying");
                    metrics::counter!("tracker_ingest_retries_total").increment(1);
                }
            }
            if !backoff.wait(stop).await {
                return None;
            }
        }
    }
}
