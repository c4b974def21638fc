//! Who gets in, at every door of a process (the hub's WebSocket, SSE and
//! long-poll; the riders' MQTT listener): the block list, new connections per
//! second per client IP, open connections per process and per user. Each
//! refusal is counted in `tracker_refused_total{reason}` (`docs/protocol.md`).
//!
//! - [`rate`]: rates as settings write them, and a keyed limiter (governor).
//! - [`blocklist`]: the IP/CIDR file, re-read when it changes.
//! - [`client_ip`]: the client's address behind trusted load balancers.

pub mod blocklist;
pub mod client_ip;
pub mod rate;

pub use blocklist::Blocklist;
pub use client_ip::TrustedProxies;
pub use rate::{Limiter, Rate};

use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the gate is set.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// New connections per second per client IP; `None` = no limit.
    pub connect_rate: Option<Rate>,
    /// Open connections per process.
    pub max_connections: usize,
    /// Open watcher connections per user (token `sub`); `None` = no cap.
    pub max_per_user: Option<usize>,
    /// Load balancers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            connect_rate: Rate::parse("100/1000").expect("a valid default"),
            max_connections: 10_000,
            max_per_user: Some(16),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client's IP is on the block list (HTTP 403 `blocked`).
    #[error("this address is blocked")]
    Blocked,
    /// Too many new connections from this IP (HTTP 429 `rate_limited`, MQTT 0x97).
    #[error("too many new connections from this address; retry later")]
    RateLimited {
        /// When one would be allowed.
        retry_after: Duration,
    },
    /// The process holds as many connections as it may (HTTP 503 `overloaded`).
    #[error("this server is at its connection limit; try another or retry later")]
    Overloaded,
    /// This user holds as many connections as they may (HTTP 503 `overloaded`).
    #[error("too many open connections for this user")]
    UserOverloaded,
}

impl Refusal {
    /// The `reason` label of `tracker_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Blocked => "blocked",
            Refusal::RateLimited { .. } => "connect_rate",
            Refusal::Overloaded => "max_connections",
            Refusal::UserOverloaded => "max_connections_per_user",
        }
    }

    /// Seconds to put in `Retry-After`, rounded up (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::RateLimited { retry_after } => {
                retry_after.as_secs_f64().ceil().max(1.0) as u64
            }
            _ => 1,
        }
    }
}

/// Counts a refusal by reason (also for refusals decided elsewhere: the fix rate, load shedding).
pub fn count_refusal(reason: &'static str) {
    metrics::counter!("tracker_refused_total", "reason" => reason).increment(1);
}

struct Inner {
    cfg: GateConfig,
    connect: Option<Limiter<IpAddr>>,
    open: AtomicUsize,
    per_user: DashMap<String, usize>,
    blocklist: Arc<Blocklist>,
}

/// The admission state of one process, shared by all its doors.
#[derive(Clone)]
pub struct Gate(Arc<Inner>);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("cfg", &self.0.cfg)
            .field("open", &self.0.open.load(Ordering::Relaxed))
            .finish()
    }
}

impl Gate {
    /// A gate as `cfg` says, over `blocklist`.
    pub fn new(cfg: GateConfig, blocklist: Arc<Blocklist>) -> Self {
        Gate(Arc::new(Inner {
            connect: cfg.connect_rate.map(Limiter::new),
            cfg,
            open: AtomicUsize::new(0),
            per_user: DashMap::new(),
            blocklist,
        }))
    }

    /// No limits at all (tests, and tools on a trusted network).
    pub fn open() -> Self {
        Self::new(
            GateConfig {
                connect_rate: None,
                max_connections: usize::MAX,
                max_per_user: None,
                trusted_proxies: TrustedProxies::default(),
            },
            Arc::new(Blocklist::empty()),
        )
    }

    /// The client's address of a connection from `peer` with these `X-Forwarded-For` values.
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        self.0.cfg.trusted_proxies.client_ip(peer, forwarded)
    }

    /// Refuses a blocked address (counted).
    pub fn check_blocked(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.0.blocklist.contains(ip) {
            count_refusal(Refusal::Blocked.reason());
            return Err(Refusal::Blocked);
        }
        Ok(())
    }

    /// A new connection from `ip`: refused when blocked, over the rate, or
    /// when the process is full (each refusal counted). The permit holds a
    /// place until dropped.
    pub fn admit(&self, ip: IpAddr) -> Result<Permit, Refusal> {
        self.check_blocked(ip)?;
        if let Some(limiter) = &self.0.connect
            && let Err(retry_after) = limiter.check(&blocklist::canonical(ip))
        {
            let r = Refusal::RateLimited { retry_after };
            count_refusal(r.reason());
            return Err(r);
        }
        let max = self.0.cfg.max_connections;
        let admitted = self
            .0
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            count_refusal(Refusal::Overloaded.reason());
            return Err(Refusal::Overloaded);
        }
        metrics::gauge!("tracker_connections_open").increment(1.0);
        Ok(Permit(self.0.clone()))
    }

    /// A watcher connection of user `sub` (admins are not capped: pass
    /// `capped = false`); the permit holds its place until dropped.
    pub fn admit_user(&self, sub: &str, capped: bool) -> Result<UserPermit, Refusal> {
        let Some(max) = self.0.cfg.max_per_user.filter(|_| capped) else {
            return Ok(UserPermit(None));
        };
        let mut n = self.0.per_user.entry(sub.to_owned()).or_insert(0);
        if *n >= max {
            drop(n);
            count_refusal(Refusal::UserOverloaded.reason());
            return Err(Refusal::UserOverloaded);
        }
        *n += 1;
        Ok(UserPermit(Some((self.0.clone(), sub.to_owned()))))
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.0.open.load(Ordering::Acquire)
    }

    /// Keeps the gate tidy until `stop`: re-reads the block list when its
    /// file changes, and forgets addresses whose rate allowance is full again.
    pub async fn maintain(self, stop: CancellationToken) {
        let follow = self
            .0
            .blocklist
            .clone()
            .follow(Duration::from_secs(1), stop.clone());
        let prune = async {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                    _ = stop.cancelled() => return,
                }
                if let Some(l) = &self.0.connect {
                    l.prune();
                }
            }
        };
        tokio::join!(follow, prune);
    }
}

/// A place among the process's open connections.
pub struct Permit(Arc<Inner>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("tracker_connections_open").decrement(1.0);
    }
}

/// A place among a user's open watcher connections (none held for uncapped users).
pub struct UserPermit(Option<(Arc<Inner>, String)>);

impl Drop for UserPermit {
    fn drop(&mut self) {
        if let Some((inner, sub)) = self.0.take() {
            inner.per_user.remove_if_mut(&sub, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(rate: &str, max: usize, per_user: usize) -> Gate {
        Gate::new(
            GateConfig {
                connect_rate: Rate::parse(rate).unwrap(),
                max_connections: max,
                max_per_user: Some(per_user),
                trusted_proxies: TrustedProxies::default(),
            },
            Arc::new(Blocklist::empty()),
        )
    }

    #[test]
    fn the_rate_is_per_address_and_the_cap_per_process() {
        let g = gate("5/5", 100, 16);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| g.admit(a).unwrap()).collect();
        assert!(matches!(g.admit(a), Err(Refusal::RateLimited { .. })));
        assert!(g.admit(b).is_ok(), "another address still connects");
        assert_eq!(g.open_connections(), 5, "b's permit was dropped at once");
        drop(held);
        assert_eq!(g.open_connections(), 0);

        let full = gate("off", 2, 16);
        let _one = full.admit(a).unwrap();
        let two = full.admit(b).unwrap();
        assert_eq!(full.admit(b).err(), Some(Refusal::Overloaded));
        drop(two);
        assert!(full.admit(b).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn users_are_capped_but_admins_are_not() {
        let g = gate("off", 100, 2);
        let p1 = g.admit_user("c1", true).unwrap();
        let _p2 = g.admit_user("c1", true).unwrap();
        assert_eq!(
            g.admit_user("c1", true).err(),
            Some(Refusal::UserOverloaded)
        );
        assert!(g.admit_user("c2", true).is_ok());
        assert!(g.admit_user("c1", false).is_ok(), "uncapped");
        drop(p1);
        assert!(g.admit_user("c1", true).is_ok());
    }

    #[test]
    fn a_blocked_address_is_refused_first() {
        let list = Arc::new(Blocklist::empty());
        list.apply("192.0.2.0/24\n");
        let g = Gate::new(GateConfig::default(), list);
        assert_eq!(
            g.admit("192.0.2.9".parse().unwrap()).err(),
            Some(Refusal::Blocked)
        );
        assert!(g.admit("198.51.100.1".parse().unwrap()).is_ok());
    }
}
