//! The in-process delay queue: a sorted set behind one lock.

use super::{DelayQueue, Timer, TimerError};
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};

/// The embedded [`DelayQueue`].
#[derive(Debug, Default)]
pub struct MemoryDelayQueue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// (due, member) in due order.
    by_due: BTreeSet<(i64, String)>,
    /// member → due, so a reschedule finds the old entry.
    due_of: HashMap<String, i64>,
}

#[async_trait]
impl DelayQueue for MemoryDelayQueue {
    async fn schedule(&self, timer: &Timer) -> Result<(), TimerError> {
        let member = timer.member();
        let mut q = self.inner.lock();
        if let Some(old) = q.due_of.insert(member.clone(), timer.due) {
            q.by_due.remove(&(old, member.clone()));
        }
        q.by_due.insert((timer.due, member));
        Ok(())
    }

    async fn claim_due(&self, now: i64, limit: usize) -> Result<Vec<Timer>, TimerError> {
        let mut q = self.inner.lock();
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((due, _)) = q.by_due.first() else {
                break;
            };
            if *due > now {
                break;
            }
            let (due, member) = q.by_due.pop_first().expect("just seen");
            q.due_of.remove(&member);
            if let Some(t) = Timer::from_member(&member, due) {
                out.push(t);
            }
        }
        Ok(out)
    }

    async fn waiting(&self) -> Result<usize, TimerError> {
        Ok(self.inner.lock().by_due.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn memory_queue_meets_the_contract() {
        super::super::contract::run(|| Arc::new(MemoryDelayQueue::default())).await;
    }
}
