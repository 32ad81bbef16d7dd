//! The list of trackers a peer may talk to, and which one it talks to now.
//!
//! Pure: it parses lists (from `--tracker`, repeated, or a `--trackers FILE`), orders them by
//! BEP 12's rules for one tier, and computes backoff; it never opens a socket or a file. The
//! link (`link.rs`) asks it where to connect, and tells it what happened:
//!
//! - the list is shuffled once, when the peer starts (so a crowd of peers spreads its first
//!   tries instead of all hammering the first line);
//! - the trackers are tried in that order; the first that works is moved to the front and kept
//!   (BEP 12: "if a connection succeeds, move that tracker to the front of its tier");
//! - a tracker that answers `ERR not-leader ADDR` sends the peer to `ADDR` at once (the cluster
//!   leader; added to the front if the list did not have it);
//! - when a whole round has failed, the peer waits a capped, jittered backoff before the next.
//!
//! A trackers file has one `host:port` a line and `#` comments, or Mini-Torrent's
//! `tracker_info.txt` layout, where the address and the port stand on separate lines:
//!
//! ```text
//! # ours                     # Mini-Torrent's
//! 127.0.0.1:8001             127.0.0.1
//! 127.0.0.1:8002             5000
//!                            127.0.0.1
//!                            6000
//! ```

use std::time::Duration;

use crate::protocol::{ErrCode, Reply};
use crate::util::Rng;

/// First wait after a round in which no tracker answered, and the cap; each wait is
/// jittered to 50-100 % of its value so that peers restarted together do not retry together.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Check one `host:port`.
pub fn check_addr(addr: &str) -> Result<(), String> {
    let ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{addr:?} is not HOST:PORT (e.g. 127.0.0.1:8000 or [::1]:8000)"
        ))
    }
}

fn is_port(word: &str) -> bool {
    word.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Parse a trackers file; `file` names it in errors (`trackers.txt line 3: ...`).
pub fn parse_file(text: &str, file: &str) -> Result<Vec<String>, String> {
    let mut addrs: Vec<String> = Vec::new();
    // A bare host waiting for its port on the next line (Mini-Torrent's layout).
    let mut host: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let n = n + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |why: String| format!("{file} line {n}: {why}");
        if line.contains(char::is_whitespace) {
            return Err(at(format!(
                "{line:?} is more than one word: write one HOST:PORT a line"
            )));
        }
        if let Some((_, h)) = host.take() {
            if !is_port(line) {
                return Err(at(format!(
                    "expected the port of {h} on this line (Mini-Torrent's layout), found {line:?}"
                )));
            }
            let addr = if h.contains(':') {
                format!("[{h}]:{line}")
            } else {
                format!("{h}:{line}")
            };
            addrs.push(addr);
        } else if is_port(line) {
            return Err(at(format!(
                "{line} is a port with no host on the line before it"
            )));
        } else if check_addr(line).is_ok() && !is_bare_ipv6(line) {
            addrs.push(line.to_string());
        } else if !line.contains(':') || is_bare_ipv6(line) {
            host = Some((n, line.to_string()));
        } else {
            return Err(at(check_addr(line).unwrap_err()));
        }
    }
    if let Some((n, h)) = host {
        return Err(format!(
            "{file} line {n}: {h:?} has no port: write HOST:PORT, or the port alone on the next line"
        ));
    }
    dedup(&mut addrs);
    if addrs.is_empty() {
        return Err(format!(
            "{file} lists no tracker: write one HOST:PORT a line"
        ));
    }
    Ok(addrs)
}

/// `::1` or `fe80::1` without brackets: a host, not `host:port`.
fn is_bare_ipv6(word: &str) -> bool {
    word.matches(':').count() > 1 && !word.starts_with('[')
}

fn dedup(addrs: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    addrs.retain(|a| seen.insert(a.clone()));
}

/// Where a reply says the leader is: `Some(Some(addr))` for `ERR not-leader ADDR ...`,
/// `Some(None)` for `ERR not-leader none...`, `None` for any other reply.
pub fn leader_hint(reply: &Reply) -> Option<Option<String>> {
    match reply {
        Reply::Err(ErrCode::NotLeader, message) => {
            let first = message.split_whitespace().next().unwrap_or("");
            Some(check_addr(first).is_ok().then(|| first.to_string()))
        }
        _ => None,
    }
}

/// The trackers in the order they are tried, and where we are in it.
#[derive(Debug)]
pub struct TrackerList {
    addrs: Vec<String>,
    current: usize,
    /// Failures since the last tracker that worked.
    failures: usize,
    backoff: Duration,
    rng: Rng,
}

impl TrackerList {
    /// Shuffle `addrs` once (BEP 12) with `rng`. `addrs` must not be empty.
    pub fn new(mut addrs: Vec<String>, mut rng: Rng) -> TrackerList {
        dedup(&mut addrs);
        rng.shuffle(&mut addrs);
        TrackerList {
            addrs,
            current: 0,
            failures: 0,
            backoff: BACKOFF_MIN,
            rng,
        }
    }

    /// The tracker to talk to now.
    pub fn current(&self) -> &str {
        self.addrs.get(self.current).map_or("", |a| a.as_str())
    }

    /// Every tracker, in the order they are tried.
    pub fn all(&self) -> &[String] {
        &self.addrs
    }

    /// The current tracker works: move it to the front, forget past failures.
    pub fn works(&mut self) {
        let addr = self.addrs.remove(self.current);
        self.addrs.insert(0, addr);
        self.current = 0;
        self.failures = 0;
        self.backoff = BACKOFF_MIN;
    }

    /// The current tracker failed: move on to the next. Returns how long to wait first: zero
    /// within a round, a jittered backoff (doubling up to the cap) after a whole round failed.
    pub fn failed(&mut self) -> Duration {
        self.failures += 1;
        self.current = (self.current + 1) % self.addrs.len().max(1);
        if !self.failures.is_multiple_of(self.addrs.len().max(1)) {
            return Duration::ZERO;
        }
        let wait = self
            .backoff
            .mul_f64(0.5 + self.rng.below(1001) as f64 / 2000.0);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        wait
    }

    /// A tracker said another one leads: go there next (without waiting), or, when it named
    /// none, to the next in the list.
    pub fn redirect(&mut self, leader: Option<&str>) -> Duration {
        let Some(addr) = leader else {
            return self.failed();
        };
        match self.addrs.iter().position(|a| a == addr) {
            Some(i) => self.current = i,
            None => {
                self.addrs.insert(0, addr.to_string());
                self.current = 0;
            }
        }
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(addrs: &[&str]) -> Vec<String> {
        addrs.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn one_address_a_line_with_comments() {
        let text = "# trackers\n127.0.0.1:8001\n\n  127.0.0.1:8002  # second\n[::1]:8003\n127.0.0.1:8001\n";
        assert_eq!(
            parse_file(text, "t").unwrap(),
            list(&["127.0.0.1:8001", "127.0.0.1:8002", "[::1]:8003"])
        );
    }

    #[test]
    fn mini_torrents_tracker_info_layout() {
        let text = "127.0.0.1\n5000\n127.0.0.1\n6000\n";
        assert_eq!(
            parse_file(text, "tracker_info.txt").unwrap(),
            list(&["127.0.0.1:5000", "127.0.0.1:6000"])
        );
        // Mixed, and a bare IPv6 host.
        let text = "localhost\n7000\n::1\n7001\n127.0.0.1:7002\n";
        assert_eq!(
            parse_file(text, "t").unwrap(),
            list(&["localhost:7000", "[::1]:7001", "127.0.0.1:7002"])
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            (
                "127.0.0.1:8001\n5000\n",
                "t line 2: 5000 is a port with no host on the line before it",
            ),
            (
                "127.0.0.1\nabc\n",
                "t line 2: expected the port of 127.0.0.1 on this line (Mini-Torrent's layout), found \"abc\"",
            ),
            (
                "127.0.0.1:8001\n127.0.0.1\n",
                "t line 2: \"127.0.0.1\" has no port: write HOST:PORT, or the port alone on the next line",
            ),
            (
                "127.0.0.1:0\n",
                "t line 1: \"127.0.0.1:0\" is not HOST:PORT (e.g. 127.0.0.1:8000 or [::1]:8000)",
            ),
            (
                "a:1 b:2\n",
                "t line 1: \"a:1 b:2\" is more than one word: write one HOST:PORT a line",
            ),
            ("# none\n", "t lists no tracker: write one HOST:PORT a line"),
        ];
        for (text, want) in cases {
            assert_eq!(parse_file(text, "t").unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn shuffled_once_then_the_one_that_works_stays_first() {
        let addrs = list(&["a:1", "b:2", "c:3", "d:4"]);
        let mut t = TrackerList::new(addrs.clone(), Rng::new(7));
        let order = t.all().to_vec();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, addrs, "the same trackers");
        // The first fails, the second works: it moves to the front and is kept.
        assert_eq!(t.failed(), Duration::ZERO);
        assert_eq!(t.current(), order[1]);
        t.works();
        assert_eq!(t.all()[0], order[1]);
        assert_eq!(t.current(), order[1]);
        assert_eq!(
            &t.all()[1..],
            &[order[0].clone(), order[2].clone(), order[3].clone()]
        );
    }

    #[test]
    fn a_failed_round_backs_off_capped_and_jittered() {
        let mut t = TrackerList::new(list(&["a:1", "b:2"]), Rng::new(1));
        let mut waits = Vec::new();
        for _ in 0..20 {
            assert_eq!(
                t.failed(),
                Duration::ZERO,
                "the rest of the round is tried at once"
            );
            waits.push(t.failed());
        }
        assert!(
            waits[0] >= BACKOFF_MIN / 2 && waits[0] <= BACKOFF_MIN,
            "{waits:?}"
        );
        assert!(
            waits[1] >= BACKOFF_MIN && waits[1] <= BACKOFF_MIN * 2,
            "{waits:?}"
        );
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX), "{waits:?}");
        assert!(waits[19] >= BACKOFF_MAX / 2, "{waits:?}");
        t.works();
        t.failed();
        assert!(t.failed() <= BACKOFF_MIN, "success resets the backoff");
    }

    #[test]
    fn not_leader_sends_the_peer_to_the_leader() {
        let reply = Reply::Err(
            ErrCode::NotLeader,
            "127.0.0.1:8002 leads this cluster; ask it".into(),
        );
        assert_eq!(
            leader_hint(&reply),
            Some(Some("127.0.0.1:8002".to_string()))
        );
        let none = Reply::Err(ErrCode::NotLeader, "none: no leader is known yet".into());
        assert_eq!(leader_hint(&none), Some(None));
        assert_eq!(leader_hint(&Reply::Pong), None);
        let mut t = TrackerList::new(list(&["a:1", "b:2"]), Rng::new(3));
        assert_eq!(t.redirect(Some("b:2")), Duration::ZERO);
        assert_eq!(t.current(), "b:2");
        t.redirect(Some("z:9"));
        assert_eq!(t.current(), "z:9");
        assert_eq!(t.all().len(), 3);
    }
}
