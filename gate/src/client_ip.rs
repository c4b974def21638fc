//! The client's IP: the peer's address, or, when the peer is one of the
//! trusted load balancers, the address `X-Forwarded-For` names. Entries are
//! read from the right (the nearest hop) and trusted proxies skipped, so a
//! client cannot pick its own address by sending the header itself.

use crate::blocklist::canonical;
use ipnet::IpNet;
use std::net::IpAddr;

/// The load balancers whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Reads a comma-separated list of CIDRs or addresses; empty = none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("`{part}` is not an IP address or CIDR"))?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a connection from `peer` carrying `forwarded` (every
    /// `X-Forwarded-For` value, in order).
    pub fn client_ip<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>().map(canonical) else {
                break; // garbage from further away: keep the last hop we could read
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("198.51.100.9"), ["203.0.113.5"].into_iter()),
            ip("198.51.100.9")
        );
        let lb = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap();
        assert_eq!(
            lb.client_ip(ip("10.1.1.1"), ["203.0.113.5"].into_iter()),
            ip("203.0.113.5")
        );
        assert_eq!(
            lb.client_ip(
                ip("10.1.1.1"),
                ["6.6.6.6, 203.0.113.5, 192.0.2.1"].into_iter()
            ),
            ip("203.0.113.5"),
            "the nearest untrusted hop, not what the client wrote first"
        );
        assert_eq!(
            lb.client_ip(ip("10.1.1.1"), std::iter::empty()),
            ip("10.1.1.1")
        );
        assert_eq!(
            lb.client_ip(ip("10.1.1.1"), ["junk"].into_iter()),
            ip("10.1.1.1")
        );
        assert_eq!(
            lb.client_ip(ip("203.0.113.7"), ["10.9.9.9"].into_iter()),
            ip("203.0.113.7"),
            "an untrusted peer's header is ignored"
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("").unwrap().is_empty());
    }
}
