//! The embedded event log: history and live state in process memory.
//!
//! One map entry per order holds its live state and a ring of recent entries,
//! capped by count and by age (entries older than `max_age` are dropped at the
//! next append); orders that reached a terminal status are dropped after a
//! retention period. History does not survive a restart: every process start
//! gets a new epoch, so a client resuming with an old `seq` is told
//! `recovered:false` instead of being replayed the wrong events.

use super::{Entry, EventLog, LogError, OrderKey, ReadResult, TailEvent};
use crate::background::Background;
use async_trait::async_trait;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracker_domain::event::encode;
use tracker_domain::{EventBody, LiveState};

/// Bounds of the embedded log.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLogConfig {
    /// Entries kept per order; older ones fall off and resuming past them gives a fresh snapshot.
    pub history: usize,
    /// How long an order's log is kept after it reached a terminal status.
    pub retention: Duration,
    /// Entries older than this are dropped (zero: no age cap).
    pub max_age: Duration,
    /// Entries a tail may fall behind before it gets `Lagged`.
    pub tail_capacity: usize,
}

impl Default for MemoryLogConfig {
    fn default() -> Self {
        MemoryLogConfig {
            history: 1000,
            retention: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
            tail_capacity: 65_536,
        }
    }
}

#[derive(Default)]
struct OrderLog {
    state: LiveState,
    /// Recent entries with the moment each was appended.
    history: VecDeque<(Instant, Arc<Entry>)>,
    last_origin: u64,
    ended_at: Option<Instant>,
}

/// The in-process [`EventLog`].
pub struct MemoryLog {
    orders: DashMap<OrderKey, OrderLog>,
    tail: broadcast::Sender<TailEvent>,
    epoch: Arc<str>,
    cfg: MemoryLogConfig,
    /// Where hooked events are queued, once webhooks are on.
    webhooks: OnceLock<Arc<crate::webhooks::memory::MemoryWebhooks>>,
}

impl MemoryLog {
    /// A new, empty log with a fresh epoch; its sweeper of ended orders runs
    /// detached and stops when the log is dropped.
    pub fn new(cfg: MemoryLogConfig) -> Arc<Self> {
        Self::start(cfg, &Background::detached())
    }

    /// [`MemoryLog::new`] with the sweeper on `bg`: it stops when the log is
    /// dropped or `bg` stops.
    pub fn start(cfg: MemoryLogConfig, bg: &Background) -> Arc<Self> {
        let (tail, _) = broadcast::channel(cfg.tail_capacity.max(16));
        let log = Arc::new(MemoryLog {
            orders: DashMap::new(),
            tail,
            epoch: format!("mem-{:016x}", rand::random::<u64>()).into(),
            cfg,
            webhooks: OnceLock::new(),
        });
        let weak = Arc::downgrade(&log);
        let every = (cfg.retention / 4).clamp(Duration::from_millis(50), Duration::from_secs(60));
        bg.spawn(sweep_loop(weak, every, bg.stop().clone()));
        log
    }

    /// Drops orders that ended longer than the retention period ago.
    pub fn sweep(&self) {
        let keep = self.cfg.retention;
        self.orders
            .retain(|_, log| log.ended_at.is_none_or(|t| t.elapsed() < keep));
    }

    /// The webhook queue this log fills from now on, in the step of each append.
    pub fn webhooks(&self) -> Arc<crate::webhooks::memory::MemoryWebhooks> {
        self.webhooks
            .get_or_init(crate::webhooks::memory::MemoryWebhooks::new)
            .clone()
    }

    /// How many orders the log holds now.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// True when the log holds no order.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }
}

async fn sweep_loop(log: Weak<MemoryLog>, every: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match log.upgrade() {
            Some(log) => log.sweep(),
            None => return,
        }
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    /// In this process: it answers whenever the process does.
    async fn ping(&self) -> Result<(), LogError> {
        Ok(())
    }

    async fn append(
        &self,
        order: &str,
        events: Vec<EventBody>,
        origin: Option<u64>,
    ) -> Result<Vec<Arc<Entry>>, LogError> {
        let mut out = Vec::with_capacity(events.len());
        let key: OrderKey = match self.orders.get(order) {
            Some(e) => e.key().clone(),
            None => Arc::from(order),
        };
        // The shard lock is held for the whole append, so seq allocation, the fold
        // and publication to the tail happen in one step per order.
        let mut log = self.orders.entry(key.clone()).or_default();
        if let Some(origin) = origin {
            if origin <= log.last_origin {
                return Ok(out);
            }
            log.last_origin = origin;
        }
        if !self.cfg.max_age.is_zero() {
            while log
                .history
                .front()
                .is_some_and(|(at, _)| at.elapsed() > self.cfg.max_age)
            {
                log.history.pop_front();
            }
        }
        for mut body in events {
            let seq = log.state.seq + 1;
            log.state.apply(seq, &mut body);
            if let EventBody::Status { status, .. } = &body {
                log.ended_at = status.is_terminal().then(Instant::now);
            }
            let ts = body.ts();
            let entry = Arc::new(Entry {
                order: key.clone(),
                seq,
                ts,
                json: encode(&key, seq, &body).into(),
            });
            if log.history.len() >= self.cfg.history {
                log.history.pop_front();
            }
            if self.cfg.history > 0 {
                log.history.push_back((Instant::now(), entry.clone()));
            }
            out.push(entry);
        }
        if let Some(hooks) = self.webhooks.get() {
            hooks.enqueue(&key, &out);
        }
        if !out.is_empty() {
            // No receiver is fine: nobody is watching yet.
            let _ = self.tail.send(TailEvent::Entries(out.clone().into()));
        }
        Ok(out)
    }

    async fn read(
        &self,
        order: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Result<ReadResult, LogError> {
        let Some(log) = self.orders.get(order) else {
            let missed = since.and_then(|s| (s == 0).then(Vec::new));
            return Ok(ReadResult {
                state: LiveState::default(),
                epoch: self.epoch.clone(),
                missed,
            });
        };
        let top = log.state.seq;
        let missed = since.and_then(|since| {
            if since > top {
                return None;
            }
            let want = (top - since) as usize;
            if want == 0 {
                return Some(Vec::new());
            }
            if want > limit {
                return None;
            }
            let first = log.history.front()?.1.seq;
            if first > since + 1 {
                return None;
            }
            let skip = (since + 1 - first) as usize;
            Some(
                log.history
                    .iter()
                    .skip(skip)
                    .map(|(_, e)| e.clone())
                    .collect(),
            )
        });
        Ok(ReadResult {
            state: log.state.clone(),
            epoch: self.epoch.clone(),
            missed,
        })
    }

    fn tail(&self) -> broadcast::Receiver<TailEvent> {
        self.tail.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::contract;
    use tokio_util::task::TaskTracker;

    #[tokio::test]
    async fn the_sweeper_ends_with_the_process_while_the_log_lives_on() {
        let (tasks, stop) = (TaskTracker::new(), CancellationToken::new());
        let log = MemoryLog::start(
            MemoryLogConfig::default(),
            &Background::new(tasks.clone(), stop.clone()),
        );
        tasks.close();
        assert_eq!(tasks.len(), 1, "the sweeper runs on the process's tracker");
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), tasks.wait())
            .await
            .expect("the sweeper stopped");
        assert!(log.append("O1", vec![], None).await.is_ok());
    }

    #[tokio::test]
    async fn memory_log_caps_history_by_age() {
        contract::history_is_capped_by_age(&*MemoryLog::new(MemoryLogConfig {
            max_age: contract::AGE_CAP,
            ..Default::default()
        }))
        .await;
    }

    #[tokio::test]
    async fn memory_log_meets_the_contract() {
        contract::run(|| {
            MemoryLog::new(MemoryLogConfig {
                history: 50,
                ..Default::default()
            })
        })
        .await;
    }

    #[tokio::test]
    async fn ended_orders_are_swept_after_retention() {
        let log = MemoryLog::new(MemoryLogConfig {
            retention: Duration::ZERO,
            ..Default::default()
        });
        let done = EventBody::Status {
            from: None,
            status: tracker_domain::Status::Delivered,
            version: 2,
            ts: 1,
            reason: None,
            by: None,
        };
        log.append("O1", vec![done], None).await.unwrap();
        log.append("O2", vec![EventBody::eta(1, 1)], None)
            .await
            .unwrap();
        log.sweep();
        assert_eq!(log.len(), 1);
        assert_eq!(log.read("O1", None, 10).await.unwrap().state.seq, 0);
    }
}
