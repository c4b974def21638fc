//! The trip watcher's loop: follows the feed, reads each moved order's log
//! by `seq`, lets its [`Trip`] decide, and writes the decisions.
//!
//! Estimates go straight to the log (they are derived, and the next fix
//! brings a fresh one). Alerts and arrivals are order changes written with a
//! compare-and-set on the row, whose episodes say what was already written:
//! a decision another process (or this one before a restart) wrote is
//! unchanged and costs nothing, so each episode is raised and cleared once.
//! The loop never blocks on the feed while its clock work is due: a read
//! waits at most [`WAIT`].

use crate::model::Model;
use crate::settings::TripSettings;
use crate::trip::{Decision, Trip};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracker_backend::feed::Feed;
use tracker_backend::log::OrderKey;
use tracker_backend::relay::RelayWaker;
use tracker_backend::{EventLog, Store, StoreError};
use tracker_domain::event::EventFrame;
use tracker_domain::order::Change;
use tracker_domain::{Clock, EventBody, Order, Status};

/// Longest wait for the feed before the clock work runs.
const WAIT: Duration = Duration::from_millis(500);
/// Most entries one read of an order's log takes.
const READ_LIMIT: usize = 5000;
/// How often every followed trip is read again, for notices the feed lost.
const SWEEP: Duration = Duration::from_secs(15);
/// How often learned figures are stored, and what others learned read.
const SAVE_MODEL: Duration = Duration::from_secs(30);
const LOAD_MODEL: Duration = Duration::from_secs(300);
/// Orders taken up when a partition is taken over.
const MAX_ACTIVE: usize = 5000;

/// What the watcher needs.
pub struct TripWorker {
    /// Order rows: route, episodes, arrivals; where decisions are written.
    pub store: Arc<dyn Store>,
    /// The orders' logs: read by `seq`; estimates appended.
    pub log: Arc<dyn EventLog>,
    /// Which orders moved, and which partitions this process follows.
    pub feed: Arc<dyn Feed>,
    /// Woken after each written decision, so its event reaches the log at once.
    pub relay: RelayWaker,
    /// The thresholds.
    pub settings: TripSettings,
    /// Wall clock, for `rider_offline`.
    pub clock: Arc<dyn Clock>,
}

struct State {
    trips: HashMap<OrderKey, Trip>,
    model: Model,
}

impl TripWorker {
    /// Runs until `stop`; gives its partitions back on the way out.
    pub async fn run(self, stop: CancellationToken) {
        let model = match self.store.model_load().await {
            Ok(entries) => Model::from_entries(entries),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the ETA model; starting from defaults");
                Model::default()
            }
        };
        let mut st = State {
            trips: HashMap::new(),
            model,
        };
        let (mut tick, mut sweep, mut saved, mut loaded) = (
            Instant::now(),
            Instant::now(),
            Instant::now(),
            Instant::now(),
        );
        let mut first = true;
        while !stop.is_cancelled() {
            if first || tick.elapsed() >= Duration::from_secs(1) {
                tick = Instant::now();
                match self.feed.maintain().await {
                    Ok(changed) if changed || first => self.take_up(&mut st).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "trip partitions could not be kept");
                        metrics::counter!("tracker_trips_errors_total").increment(1);
                    }
                }
                first = false;
                self.offline(&mut st).await;
                metrics::gauge!("tracker_trips_followed").set(st.trips.len() as f64);
            }
            if sweep.elapsed() >= SWEEP {
                sweep = Instant::now();
                let all: Vec<OrderKey> = st.trips.keys().cloned().collect();
                for id in all {
                    self.catch_up(&mut st, &id).await;
                }
            }
            if saved.elapsed() >= SAVE_MODEL {
                saved = Instant::now();
                self.save_model(&mut st).await;
            }
            if loaded.elapsed() >= LOAD_MODEL {
                loaded = Instant::now();
                if let Ok(entries) = self.store.model_load().await {
                    st.model.merge_stored(entries);
                }
            }
            let batch = tokio::select! {
                b = self.feed.next(WAIT) => b,
                _ = stop.cancelled() => break,
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "the trip feed failed; retrying");
                    metrics::counter!("tracker_trips_errors_total").increment(1);
                    tokio::time::sleep(WAIT).await;
                    continue;
                }
            };
            if let Some(oldest) = batch.oldest_ms {
                let lag = (self.clock.now_ms() - oldest).max(0) as f64 / 1000.0;
                metrics::gauge!("tracker_trips_lag_seconds").set(lag);
            } else {
                metrics::gauge!("tracker_trips_lag_seconds").set(0.0);
            }
            let mut orders = batch.orders.clone();
            if batch.resync {
                orders.extend(st.trips.keys().cloned());
            }
            for id in orders {
                if self.feed.owns(&id) {
                    self.catch_up(&mut st, &id).await;
                }
            }
            if let Err(e) = self.feed.ack(&batch).await {
                tracing::warn!(error = %e, "trip feed items could not be acknowledged");
            }
        }
        self.save_model(&mut st).await;
        self.feed.release().await;
    }

    /// Follows the orders under way in the partitions this process holds,
    /// and forgets the trips of partitions it gave up.
    async fn take_up(&self, st: &mut State) {
        st.trips.retain(|id, _| self.feed.owns(id));
        let active = match self.store.active_orders(MAX_ACTIVE).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the orders under way");
                return;
            }
        };
        for o in active {
            let held = matches!(o.status, Status::Assigned | Status::PickedUp);
            let id: OrderKey = o.id.as_str().into();
            if held && self.feed.owns(&id) && !st.trips.contains_key(&id) {
                st.trips.insert(id.clone(), Trip::new(o, 0, None));
                self.catch_up(st, &id).await;
            }
        }
    }

    async fn save_model(&self, st: &mut State) {
        let changed = st.model.take_changed(self.clock.now_ms());
        if changed.is_empty() {
            return;
        }
        if let Err(e) = self.store.model_save(&changed).await {
            tracing::warn!(error = %e, "could not store the ETA model; keeping it for later");
            st.model.mark_changed(changed.into_iter().map(|e| e.key));
        }
    }

    /// `rider_offline` for every trip whose rider has gone quiet.
    async fn offline(&self, st: &mut State) {
        let now = self.clock.now_ms();
        let quiet: Vec<(OrderKey, Decision)> = st
            .trips
            .iter()
            .filter_map(|(id, t)| Some((id.clone(), t.check_offline(now, &self.settings)?)))
            .collect();
        for (id, d) in quiet {
            if let Some(trip) = st.trips.get_mut(&id) {
                self.apply(trip, d).await;
            }
        }
    }

    /// Reads what is new in `id`'s log and takes it in.
    async fn catch_up(&self, st: &mut State, id: &OrderKey) {
        if !st.trips.contains_key(id) {
            match self.store.get_order(id).await {
                Ok(o) if !o.status.is_terminal() => {
                    st.trips.insert(id.clone(), Trip::new(o, 0, None));
                }
                Ok(_) | Err(StoreError::NotFound) => return,
                Err(e) => {
                    tracing::warn!(error = %e, order = %id, "could not read an order for its trip");
                    return;
                }
            }
        }
        let Some(trip) = st.trips.get_mut(id) else {
            return;
        };
        let read = match self.log.read(id, Some(trip.cursor), READ_LIMIT).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, order = %id, "could not read an order's log");
                return;
            }
        };
        let Some(entries) = read.missed else {
            // History no longer reaches back (or the log was reset): go on
            // from its top with what the live state says.
            trip.cursor = read.state.seq;
            return;
        };
        let bodies: Vec<(u64, EventBody)> = entries
            .iter()
            .filter_map(|e| {
                let frame: EventFrame = serde_json::from_slice(&e.json).ok()?;
                Some((frame.seq, frame.body))
            })
            .collect();
        // Only the newest live fix of what was read gets an estimate (a
        // backlog re-sent after it must not leave the batch without one).
        let last_fix = bodies
            .iter()
            .rposition(|(_, b)| matches!(b, EventBody::Pos(p) if !p.backfill));
        let now = self.clock.now_ms();
        for (i, (seq, body)) in bodies.iter().enumerate() {
            let quiet = last_fix != Some(i);
            let decisions = trip.on_event(*seq, body, now, quiet, &self.settings, &st.model);
            for d in decisions {
                self.apply(trip, d).await;
            }
        }
        if read.state.seq > trip.cursor {
            trip.cursor = read.state.seq;
        }
        if trip.ended() {
            if let Some(lesson) = trip.lesson() {
                st.model.learn_trip(&lesson);
            }
            st.trips.remove(id);
        }
    }

    async fn apply(&self, trip: &mut Trip, d: Decision) {
        let now = self.clock.now_ms();
        match d {
            Decision::Eta(body) => match self.log.append(&trip.order.id, vec![body], None).await {
                Ok(_) => metrics::counter!("tracker_trips_etas_total").increment(1),
                Err(e) => tracing::warn!(error = %e, "could not append an estimate"),
            },
            Decision::Reload => match self.store.get_order(&trip.order.id).await {
                Ok(o) => trip.reload(o),
                Err(e) => tracing::warn!(error = %e, "could not re-read an order's route"),
            },
            Decision::Raise {
                kind,
                ts,
                detail,
                basis,
            } => {
                let f = |o: &Order| o.raise_alert(kind, ts, detail.clone(), basis, now);
                if self.commit(trip, f).await {
                    metrics::counter!("tracker_trips_alerts_total", "kind" => kind, "edge" => "raised")
                        .increment(1);
                }
            }
            Decision::Clear {
                kind,
                ts,
                detail,
                basis,
            } => {
                let f = |o: &Order| o.clear_alert(kind, ts, detail.clone(), basis, now);
                if self.commit(trip, f).await {
                    metrics::counter!("tracker_trips_alerts_total", "kind" => kind, "edge" => "cleared")
                        .increment(1);
                }
            }
            Decision::Arrive { stop, ts } => {
                if self.commit(trip, |o: &Order| o.arrive(stop, ts, now)).await {
                    metrics::counter!("tracker_trips_arrivals_total", "at" => stop.as_str())
                        .increment(1);
                }
            }
        }
    }

    /// Writes the change `decide` makes to the trip's row, re-reading it
    /// after a conflict; true when this call wrote it.
    async fn commit(&self, trip: &mut Trip, decide: impl Fn(&Order) -> Change) -> bool {
        for _ in 0..5 {
            let Change::Changed { order, events } = decide(&trip.order) else {
                return false;
            };
            match self
                .store
                .update_order(&order, trip.order.version, &events)
                .await
            {
                Ok(()) => {
                    trip.order = *order;
                    self.relay.wake();
                    return true;
                }
                Err(StoreError::Conflict) => match self.store.get_order(&trip.order.id).await {
                    Ok(fresh) => trip.reload(fresh),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not re-read an order after a conflict");
                        return false;
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, order = %trip.order.id, "could not write a trip decision");
                    metrics::counter!("tracker_trips_errors_total").increment(1);
                    return false;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracker_backend::background::Background;
    use tracker_backend::feed::memory::MemoryFeed;
    use tracker_backend::log::memory::{MemoryLog, MemoryLogConfig};
    use tracker_backend::store::sqlite::SqliteStore;
    use tracker_domain::event::kind_of;
    use tracker_domain::{NewOrder, Point, PosEvent, SystemClock};

    fn fix(lat: f64, lon: f64, ts: i64) -> EventBody {
        EventBody::Pos(PosEvent {
            lat,
            lon,
            ts,
            speed: None,
            heading: None,
            backfill: false,
            before_pickup: false,
        })
    }

    /// The loop itself, in process: a read that ends with a re-sent backlog
    /// still estimates on its newest live fix, and the arrival is written to
    /// the row.
    #[tokio::test]
    async fn the_worker_estimates_on_the_newest_live_fix_and_writes_arrivals() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&url).await.unwrap());
        let log: Arc<dyn EventLog> =
            MemoryLog::start(MemoryLogConfig::default(), &Background::detached());
        let (a, b) = (
            Point {
                lat: 23.10,
                lon: 113.20,
            },
            Point {
                lat: 23.10,
                lon: 113.23,
            },
        );
        let new = NewOrder {
            biz_order_no: "W-1".into(),
            biz_type: "food".into(),
            customer_id: "c".into(),
            pickup: a,
            dropoff: b,
            promised_at: None,
            route: None,
            ..Default::default()
        };
        let now = SystemClock.now_ms();
        let mut o = Order::new("77".into(), new, now);
        o.status = Status::PickedUp;
        o.rider_id = Some("r1".into());
        store.create_order(&o, &[]).await.unwrap();
        let worker = TripWorker {
            store: store.clone(),
            log: log.clone(),
            feed: Arc::new(MemoryFeed::new(&*log)),
            relay: RelayWaker::default(),
            settings: TripSettings::default(),
            clock: Arc::new(SystemClock),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(worker.run(stop.clone()));
        let picked = EventBody::Status {
            from: None,
            status: Status::PickedUp,
            version: 1,
            ts: now,
            reason: None,
            by: None,
        };
        // Live fixes to within 50 m of the drop-off, then the same again.
        let live: Vec<EventBody> = (0..5)
            .map(|i| fix(23.10, 113.20 + 0.0074 * i as f64, now + i * 60_000))
            .collect();
        let mut events = vec![picked];
        events.extend(live.iter().cloned());
        events.extend(live);
        log.append("77", events, None).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let read = log.read("77", Some(0), 100).await.unwrap();
            let kinds: Vec<String> = read
                .missed
                .unwrap()
                .iter()
                .filter_map(|e| kind_of(&e.json).map(|k| String::from_utf8_lossy(k).into_owned()))
                .collect();
            if kinds.iter().any(|k| k == "eta") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no estimate: {kinds:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let row = store.get_order("77").await.unwrap();
        assert!(row.arrived_pickup_at.is_some(), "the arrival is on the row");
        stop.cancel();
        task.await.unwrap();
    }
}
