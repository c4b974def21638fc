//! Dispatch: the pool of open orders near riders, the atomic grab, riders'
//! positions for operators, and the timeouts that keep orders moving.
//!
//! - [`api`]: `GET /v1/dispatch/nearby`, `POST /v1/orders/{id}/grab`,
//!   `GET /v1/dispatch/riders`.
//! - [`pool`]: keeps the pool in step with every write (an order entering
//!   `ready` joins at its pickup; leaving it removes it), and repairs it from
//!   the store.
//! - [`timeouts`]: schedules payment, pick-up and late timers on every write,
//!   fires them from the shared delay queue, and sweeps the store for any the
//!   queue lost. Every timeout is a compare-and-set write, so two processes
//!   acting on one timer (or the sweep and the queue) change the order once.

pub mod api;
pub mod pool;
pub mod timeouts;

use std::time::Duration;

/// Durations of dispatch; tests shorten them to seconds.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// An unpaid order is cancelled (`payment_timeout`) this long after creation.
    pub payment_timeout: Duration,
    /// A grabbed order not picked up this long after assignment goes back to the pool.
    pub pickup_timeout: Duration,
    /// How often the store is swept for timeouts the queue missed, and the pool repaired.
    pub sweep_every: Duration,
    /// How often the delay queue is polled for due timers.
    pub poll_every: Duration,
    /// Riders not heard from for this long are left out of position queries
    /// (and forgotten after ten times as long).
    pub rider_stale: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            payment_timeout: Duration::from_secs(15 * 60),
            pickup_timeout: Duration::from_secs(10 * 60),
            sweep_every: Duration::from_secs(30),
            poll_every: Duration::from_millis(250),
            rider_stale: Duration::from_secs(5 * 60),
        }
    }
}
