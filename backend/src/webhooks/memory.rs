//! The in-process webhook queue, filled by the in-process log as it appends.
//! Lost with the process, like that log (`docs/reliability.md`).

use super::{Due, IDLE_GRACE, Queued, WebhookQueue, hooked};
use crate::log::{Entry, OrderKey};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracker_domain::clock::now_ms;
use tracker_domain::event::kind_of;

struct Slot {
    due_ms: i64,
    generation: i64,
    tries: u32,
    idle: bool,
}

#[derive(Default)]
struct Inner {
    queues: HashMap<OrderKey, VecDeque<String>>,
    schedule: HashMap<OrderKey, Slot>,
}

/// The [`WebhookQueue`] of one process.
#[derive(Default)]
pub struct MemoryWebhooks {
    inner: Mutex<Inner>,
    more: Notify,
}

impl MemoryWebhooks {
    /// An empty queue.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers `order` and queues its hooked `entries`: the log calls this
    /// while it holds the order, so queues keep `seq` order.
    pub fn enqueue(&self, order: &OrderKey, entries: &[Arc<Entry>]) {
        let hooked: Vec<&Arc<Entry>> = entries
            .iter()
            .filter(|e| {
                kind_of(&e.json)
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .is_some_and(hooked)
            })
            .collect();
        if hooked.is_empty() {
            return;
        }
        let now = now_ms();
        let mut inner = self.inner.lock();
        let queue = inner.queues.entry(order.clone()).or_default();
        for e in hooked {
            queue.push_back(Queued::stored(now, &String::from_utf8_lossy(&e.json)));
        }
        let slot = inner.schedule.entry(order.clone()).or_insert(Slot {
            due_ms: now,
            generation: 0,
            tries: 0,
            idle: false,
        });
        slot.generation += 1;
        slot.idle = false;
        if slot.tries == 0 {
            slot.due_ms = slot.due_ms.min(now);
        }
        drop(inner);
        self.more.notify_one();
    }

    /// Events queued in all (for tests and the gauge).
    pub fn queued(&self) -> usize {
        self.inner.lock().queues.values().map(VecDeque::len).sum()
    }
}

#[async_trait]
impl WebhookQueue for MemoryWebhooks {
    async fn due(&self, limit: usize) -> Result<Vec<Due>, crate::LogError> {
        let now = now_ms();
        let inner = self.inner.lock();
        let mut due: Vec<(i64, Due)> = inner
            .schedule
            .iter()
            .filter(|(_, s)| s.due_ms <= now)
            .map(|(o, s)| {
                let d = Due {
                    order: o.clone(),
                    tries: s.tries,
                    idle: s.idle,
                    generation: s.generation,
                };
                (s.due_ms, d)
            })
            .collect();
        due.sort_by_key(|(at, _)| *at);
        due.truncate(limit);
        Ok(due.into_iter().map(|(_, d)| d).collect())
    }

    async fn head(&self, order: &str, n: usize) -> Result<Vec<Queued>, crate::LogError> {
        let inner = self.inner.lock();
        Ok(inner
            .queues
            .get(order)
            .map(|q| {
                q.iter()
                    .take(n)
                    .cloned()
                    .filter_map(Queued::parse)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delivered(&self, order: &str, item: &Queued) -> Result<(), crate::LogError> {
        let mut inner = self.inner.lock();
        if let Some(q) = inner.queues.get_mut(order) {
            if q.front() == Some(&item.raw) {
                q.pop_front();
            }
            if q.is_empty() {
                inner.queues.remove(order);
            }
        }
        Ok(())
    }

    async fn retry(&self, due: &Due, delay: Duration, tries: u32) -> Result<(), crate::LogError> {
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.schedule.get_mut(&due.order) {
            slot.due_ms = now_ms() + delay.as_millis() as i64;
            slot.tries = tries;
            slot.idle = false;
        }
        Ok(())
    }

    async fn recovered(&self, due: &Due) -> Result<(), crate::LogError> {
        if let Some(slot) = self.inner.lock().schedule.get_mut(&due.order) {
            slot.tries = 0;
        }
        Ok(())
    }

    async fn settle(&self, due: &Due) -> Result<(), crate::LogError> {
        let mut inner = self.inner.lock();
        let Some(slot) = inner.schedule.get_mut(&due.order) else {
            return Ok(());
        };
        if slot.generation != due.generation {
            // Registered again since it was taken: due again now.
            slot.tries = 0;
            slot.idle = false;
            slot.due_ms = slot.due_ms.min(now_ms());
        } else if slot.idle {
            inner.schedule.remove(&due.order);
        } else {
            slot.tries = 0;
            slot.idle = true;
            slot.due_ms = now_ms() + IDLE_GRACE.as_millis() as i64;
        }
        Ok(())
    }

    fn owns(&self, _: &str) -> bool {
        true
    }

    async fn maintain(&self) -> Result<bool, crate::LogError> {
        Ok(false)
    }

    async fn wait(&self, wait: Duration) {
        let _ = tokio::time::timeout(wait, self.more.notified()).await;
    }
}
