//! The delay-queue seam: order timeouts due at a time, each handed to exactly
//! one claimer however many processes poll (a Redis sorted set emptied by a
//! Lua script, or one lock in process).
//!
//! A claimed timer that is lost (its process died before acting) is caught by
//! the periodic sweep over the store; acting twice is harmless because every
//! timeout is a compare-and-set on the order's versions.

#[cfg(any(test, feature = "contract"))]
pub mod contract;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use std::fmt;
use std::str::FromStr;

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// Still unpaid: cancel with reason `payment_timeout`.
    Payment,
    /// Grabbed but not picked up: back to `ready` and the pool.
    Pickup,
    /// Past `promised_at` and not delivered: raise a `late` alert.
    Late,
    /// A refund waiting for the order's earlier changes to reach the log:
    /// look again (the timer's `status_version` counts the attempts).
    Refund,
}

impl TimerKind {
    /// The name used in metrics and in the queue's member encoding.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Payment => "payment",
            TimerKind::Pickup => "pickup",
            TimerKind::Late => "late",
            TimerKind::Refund => "refund",
        }
    }
}

/// One scheduled timeout.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timer {
    /// What it does.
    pub kind: TimerKind,
    /// The order it concerns.
    pub order: String,
    /// The order's `status_version` when it was scheduled: a timer for a
    /// status the order has since left does nothing.
    pub status_version: i64,
    /// When it is due, Unix ms.
    pub due: i64,
}

impl Timer {
    /// The queue member: one per kind, order and status version, so
    /// scheduling the same timer twice keeps one.
    fn member(&self) -> String {
        format!(
            "{}|{}|{}",
            self.kind.as_str(),
            self.status_version,
            self.order
        )
    }

    fn from_member(member: &str, due: i64) -> Option<Timer> {
        let mut parts = member.splitn(3, '|');
        let kind = parts.next()?.parse().ok()?;
        let status_version = parts.next()?.parse().ok()?;
        let order = parts.next()?.to_owned();
        Some(Timer {
            kind,
            order,
            status_version,
            due,
        })
    }
}

/// A timer kind name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown timer kind `{0}`")]
pub struct UnknownKind(String);

impl FromStr for TimerKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, UnknownKind> {
        match s {
            "payment" => Ok(TimerKind::Payment),
            "pickup" => Ok(TimerKind::Pickup),
            "late" => Ok(TimerKind::Late),
            "refund" => Ok(TimerKind::Refund),
            other => Err(UnknownKind(other.to_owned())),
        }
    }
}

impl fmt::Display for TimerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a delay-queue call failed.
#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    /// The backend could not be reached or answered nonsense; the call may be retried.
    #[error("delay queue unavailable: {0}")]
    Unavailable(#[source] crate::BoxError),
}

/// Timeouts waiting for their time, shared by every process.
#[async_trait]
pub trait DelayQueue: Send + Sync + 'static {
    /// Schedules `timer`; the same kind, order and status version again
    /// replaces the due time rather than adding a second timer.
    async fn schedule(&self, timer: &Timer) -> Result<(), TimerError>;

    /// Takes up to `limit` timers due at or before `now`, earliest first; each
    /// timer is returned to exactly one caller across all processes.
    async fn claim_due(&self, now: i64, limit: usize) -> Result<Vec<Timer>, TimerError>;

    /// How many timers wait, due or not (a gauge for operators).
    async fn waiting(&self) -> Result<usize, TimerError>;
}
