//! Rates as the settings write them (`RATE`, `RATE/BURST`, `off`) and a
//! limiter keyed by client IP or rider id, on governor's GCRA: memory is one
//! small cell per key seen lately, and [`Limiter::prune`] drops the idle ones.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

/// A sustained rate per second and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Events per second, sustained.
    pub per_sec: NonZeroU32,
    /// Events allowed at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl Rate {
    /// Reads `RATE`, `RATE/BURST` or `off` (`None`); a zero is refused (say `off`).
    pub fn parse(s: &str) -> Result<Option<Rate>, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let num = |part: &str, what: &str| -> Result<NonZeroU32, String> {
            part.trim()
                .parse::<u32>()
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| {
                    format!(
                        "`{s}`: {what} must be a whole number from 1 (or the whole value `off`)"
                    )
                })
        };
        let (rate, burst) = match s.split_once('/') {
            Some((r, b)) => (num(r, "the rate")?, num(b, "the burst")?),
            None => {
                let r = num(s, "the rate")?;
                (r, r)
            }
        };
        Ok(Some(Rate {
            per_sec: rate,
            burst,
        }))
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.per_sec, self.burst)
    }
}

/// A rate limit per key.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter allowing `rate` for each key.
    pub fn new(rate: Rate) -> Self {
        let quota = Quota::per_second(rate.per_sec).allow_burst(rate.burst);
        Limiter {
            inner: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one event for `key`; when over the rate, how long until one is allowed.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.inner
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose allowance is full again (they cost nothing to re-create).
    pub fn prune(&self) {
        self.inner.retain_recent();
        self.inner.shrink_to_fit();
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_forms_and_refuses_the_rest() {
        let r = |a, b| {
            Some(Rate {
                per_sec: NonZeroU32::new(a).unwrap(),
                burst: NonZeroU32::new(b).unwrap(),
            })
        };
        assert_eq!(Rate::parse("100/1000"), Ok(r(100, 1000)));
        assert_eq!(Rate::parse(" 5 "), Ok(r(5, 5)));
        assert_eq!(Rate::parse("OFF"), Ok(None));
        for bad in [
            "", "0", "0/5", "5/0", "-1", "1.5", "5/", "/5", "fast", "5/5/5",
        ] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_key_gets_its_own_burst() {
        let l = Limiter::new(Rate::parse("5/5").unwrap().unwrap());
        for _ in 0..5 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(200),
            "{wait:?}"
        );
        assert!(l.check(&"b").is_ok(), "another key is not held back");
    }
}
