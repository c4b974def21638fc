//! Where a backend runs its own loops (the Redis log's tail subscription, the
//! in-process log's sweeper): on the process's task tracker, ended by the
//! process's stop signal, so shutdown waits for them like for any other task.

use std::future::Future;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A task tracker and the signal that ends the tasks on it.
#[derive(Clone, Debug, Default)]
pub struct Background {
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    /// Loops on `tasks`, ended by `stop`.
    pub fn new(tasks: TaskTracker, stop: CancellationToken) -> Self {
        Background { tasks, stop }
    }

    /// A tracker of its own that nothing stops: for tests and tools whose
    /// backends end when they are dropped.
    pub fn detached() -> Self {
        Background::default()
    }

    /// Cancelled when the process stops.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Runs `f` on the tracker.
    pub fn spawn<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(f);
    }
}
