//! Capped exponential backoff for every loop that retries a backend: the relay,
//! the tails, the track writers, ingest's MQTT loop and its appends.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait before the next retry: doubles from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first`, never waits longer than `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next retry; each call doubles the one after it.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Sleeps for [`Backoff::next_delay`]; false when `stop` was cancelled first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let d = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stop.cancelled() => false,
        }
    }
}

/// The wait before retry number `n` (1 = the first) of a backoff that
/// doubles from `first` up to `max`: what [`Backoff`] gives, for a count kept
/// elsewhere (the webhook schedule keeps it in the backend).
pub fn nth_delay(first: Duration, max: Duration, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(32);
    first.saturating_mul(1u32 << doublings.min(31)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_delay_is_what_the_backoff_gives() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        for n in 1..=6 {
            assert_eq!(nth_delay(ms(50), ms(300), n), b.next_delay());
        }
        assert_eq!(nth_delay(ms(50), ms(300), 1000), ms(300));
    }

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(50), ms(300));
        let waits: Vec<_> = (0..5).map(|_| b.next_delay()).collect();
        assert_eq!(waits, vec![ms(50), ms(100), ms(200), ms(300), ms(300)]);
        b.reset();
        assert_eq!(b.next_delay(), ms(50));
    }

    #[tokio::test]
    async fn wait_ends_early_when_stopped() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut b = Backoff::new(Duration::from_secs(60), Duration::from_secs(60));
        assert!(!b.wait(&stop).await);
    }
}
