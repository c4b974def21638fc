//! The IP block list: a file of addresses and CIDRs, one a line (`#` starts a
//! comment), re-read when it changes. A line that does not parse is reported
//! and skipped; the rest apply.

use ipnet::IpNet;
use parking_lot::RwLock;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A line of the file that is neither an address nor a CIDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What the line holds (trimmed, at most 80 characters).
    pub text: String,
}

/// The parsed entries of a block list's text, and the lines that were not entries.
pub fn parse(text: &str) -> (Vec<IpNet>, Vec<BadLine>) {
    let (mut nets, mut bad) = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line
            .parse::<IpNet>()
            .or_else(|_| line.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => bad.push(BadLine {
                line: i + 1,
                text: line.chars().take(80).collect(),
            }),
        }
    }
    (nets, bad)
}

/// IPv4 clients reached over an IPv6 socket appear as `::ffff:a.b.c.d`.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The block list in force, and the file it comes from.
#[derive(Debug, Default)]
pub struct Blocklist {
    path: Option<PathBuf>,
    nets: RwLock<Arc<Vec<IpNet>>>,
}

/// What the file holds now, as a hash (`None`: unreadable). Contents and not
/// times tell a change: two writes within one tick of the file system's clock
/// keep the same modification time.
fn stamp(path: &Path) -> std::io::Result<(u64, String)> {
    use std::hash::{Hash, Hasher};
    let text = std::fs::read_to_string(path)?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    Ok((h.finish(), text))
}

impl Blocklist {
    /// Nothing blocked, no file.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The list in `path`, read now: a missing or unreadable file is an error
    /// (a typo in the setting must not leave the doors open unnoticed).
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let b = Blocklist {
            path: Some(path.to_owned()),
            nets: RwLock::default(),
        };
        b.apply(&text);
        Ok(b)
    }

    /// Replaces the entries with those of `text`; returns the bad lines (also logged).
    pub fn apply(&self, text: &str) -> Vec<BadLine> {
        let (nets, bad) = parse(text);
        for b in &bad {
            tracing::warn!(line = b.line, text = %b.text, "block list: not an IP or CIDR; line skipped");
        }
        metrics::gauge!("tracker_blocklist_entries").set(nets.len() as f64);
        metrics::counter!("tracker_blocklist_bad_lines_total").increment(bad.len() as u64);
        tracing::info!(
            entries = nets.len(),
            skipped = bad.len(),
            "block list applied"
        );
        *self.nets.write() = Arc::new(nets);
        bad
    }

    /// Is `ip` on the list?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let nets = self.nets.read().clone();
        nets.iter().any(|n| n.contains(&ip))
    }

    /// Reads the file again every `every` and applies it when its contents
    /// changed, until `stop`. A file that disappears blocks nothing until it
    /// is back.
    pub async fn follow(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        // The first look applies the file again, so a change made between
        // `load` and now is not missed.
        let mut last = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            match stamp(&path) {
                Ok((h, _)) if Some(h) == last => {}
                Ok((h, text)) => {
                    last = Some(h);
                    self.apply(&text);
                }
                Err(e) if last != Some(0) => {
                    last = Some(0);
                    tracing::warn!(path = %path.display(), error = %e, "block list unreadable; nothing blocked until it is back");
                    self.apply("");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_lines_are_reported_and_the_rest_applied() {
        let (nets, bad) = parse(
            "# staff VPN\n10.0.0.0/8\n  192.0.2.7  # one host\nnot-an-ip\n2001:db8::/32\n300.1.1.1\n\n",
        );
        assert_eq!(nets.len(), 3);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![4, 6]);
        let b = Blocklist::empty();
        b.apply("10.0.0.0/8\n192.0.2.7\n2001:db8::/32\nnonsense\n");
        assert!(b.contains("10.1.2.3".parse().unwrap()));
        assert!(b.contains("192.0.2.7".parse().unwrap()));
        assert!(
            b.contains("::ffff:192.0.2.7".parse().unwrap()),
            "IPv4 over IPv6"
        );
        assert!(b.contains("2001:db8::1".parse().unwrap()));
        assert!(!b.contains("192.0.2.8".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_changed_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blocked.txt");
        std::fs::write(&path, "192.0.2.1\n").unwrap();
        let b = Arc::new(Blocklist::load(&path).unwrap());
        let stop = CancellationToken::new();
        let job = tokio::spawn(b.clone().follow(Duration::from_millis(20), stop.clone()));
        let ip = "192.0.2.1".parse().unwrap();
        assert!(b.contains(ip));
        std::fs::write(&path, "# emptied\n").unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while b.contains(ip) {
            assert!(tokio::time::Instant::now() < deadline, "never re-read");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        job.await.unwrap();
        assert!(Blocklist::load(&dir.path().join("missing")).is_err());
    }
}
