//! The tracker's soft state about accounts: who is logged in on which connection (with the
//! ticket key of that login), which logged-in peer holds which group file, and who has failed
//! to log in lately. Nothing here is journaled: after a restart peers log in again and
//! re-announce, as they re-register.
//!
//! Pure maps and rules, no sockets; the clock comes in as an `Instant` argument. The caller
//! holds one mutex around it for a few map operations at a time.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::auth::ticket::TicketKey;
use crate::tracker::registry::PeerId;

/// Failed logins for one user after which the next try gets `slow-down`.
pub const USER_FAILURES: u32 = 3;
/// Failed logins from one address after which the next try gets `slow-down` (higher: a classroom shares one NAT).
pub const ADDR_FAILURES: u32 = 20;
/// The first pause after the limit; it doubles with each further failure, up to `MAX_PAUSE`.
pub const FIRST_PAUSE: Duration = Duration::from_secs(2);
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// One live login.
#[derive(Debug)]
pub struct Live {
    /// The connection it belongs to (a serial number the tracker gives each connection).
    pub conn: u64,
    pub key: TicketKey,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// How long to wait after the last failure, once past `limit`.
    fn pause(&self, limit: u32) -> Option<Duration> {
        let over = self.count.checked_sub(limit)?;
        Some(FIRST_PAUSE.saturating_mul(1 << over.min(5)).min(MAX_PAUSE))
    }
}

/// Logins, group holders and failure counters.
#[derive(Debug, Default)]
pub struct Sessions {
    live: HashMap<String, Live>,
    /// (group, name) → holder id → the user logged in on that holder.
    holders: BTreeMap<(String, String), BTreeMap<PeerId, String>>,
    by_user: HashMap<String, Failures>,
    by_addr: HashMap<IpAddr, Failures>,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Is `user` logged in on a connection other than `conn`?
    pub fn busy(&self, user: &str, conn: u64) -> bool {
        self.live.get(user).is_some_and(|l| l.conn != conn)
    }

    /// `user` is logged in on `conn` (refused if another connection has it).
    pub fn login(&mut self, user: &str, conn: u64, key: TicketKey) -> bool {
        if self.busy(user, conn) {
            return false;
        }
        self.live.insert(user.to_string(), Live { conn, key });
        true
    }

    /// End `user`'s login on `conn` and drop the group files it held there. Returns how many.
    pub fn logout(&mut self, user: &str, conn: u64) -> usize {
        if self.live.get(user).is_none_or(|l| l.conn != conn) {
            return 0;
        }
        self.live.remove(user);
        let mut dropped = 0;
        self.holders.retain(|_, holders| {
            let before = holders.len();
            holders.retain(|_, u| u != user);
            dropped += before - holders.len();
            !holders.is_empty()
        });
        dropped
    }

    /// `holder` (logged in as `user`) holds `group`'s `name`.
    pub fn hold(&mut self, group: &str, name: &str, holder: &str, user: &str) {
        let key = (group.to_string(), name.to_string());
        let holders = self.holders.entry(key).or_default();
        holders.insert(holder.to_string(), user.to_string());
    }

    /// `holder` stops holding `group`'s `name`; false if it did not.
    pub fn unhold(&mut self, group: &str, name: &str, holder: &str) -> bool {
        let key = (group.to_string(), name.to_string());
        let Some(holders) = self.holders.get_mut(&key) else {
            return false;
        };
        let had = holders.remove(holder).is_some();
        if holders.is_empty() {
            self.holders.remove(&key);
        }
        had
    }

    /// `user` left `group`: none of their peers is listed for its files any more.
    pub fn left(&mut self, group: &str, user: &str) {
        self.holders.retain(|(g, _), holders| {
            if g == group {
                holders.retain(|_, u| u != user);
            }
            !holders.is_empty()
        });
    }

    /// The holders of a group file, in id order.
    pub fn holders(&self, group: &str, name: &str) -> Vec<PeerId> {
        let key = (group.to_string(), name.to_string());
        self.holders
            .get(&key)
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The ticket key of the login on `holder`, if it holds that group file right now.
    pub fn holder_key(&self, group: &str, name: &str, holder: &str) -> Option<&TicketKey> {
        let key = (group.to_string(), name.to_string());
        let user = self.holders.get(&key)?.get(holder)?;
        self.live.get(user).map(|l| &l.key)
    }

    /// Must a login attempt for `user` from `ip` wait? How long, if so.
    pub fn slow_down(&self, user: &str, ip: IpAddr, now: Instant) -> Option<Duration> {
        let wait = |f: Option<&Failures>, limit| {
            let f = f?;
            let pause = f.pause(limit)?;
            pause.checked_sub(now.saturating_duration_since(f.last))
        };
        let a = wait(self.by_user.get(user), USER_FAILURES);
        let b = wait(self.by_addr.get(&ip), ADDR_FAILURES);
        a.max(b).filter(|d| !d.is_zero())
    }

    /// A wrong password for `user` from `ip`.
    pub fn failed(&mut self, user: &str, ip: IpAddr, now: Instant) {
        for f in [
            self.by_user.entry(user.to_string()).or_insert(Failures {
                count: 0,
                last: now,
            }),
            self.by_addr.entry(ip).or_insert(Failures {
                count: 0,
                last: now,
            }),
        ] {
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
    }

    /// A successful login clears the user's count (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.by_user.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn key() -> TicketKey {
        TicketKey::from_bytes([1; 20])
    }

    #[test]
    fn one_live_login_per_user_and_logout_drops_its_files() {
        let mut s = Sessions::new();
        assert!(s.login("alice", 1, key()));
        assert!(
            !s.login("alice", 2, key()),
            "a second connection is refused"
        );
        assert!(
            s.login("alice", 1, key()),
            "the same connection may log in again"
        );
        s.hold("g1", "notes.txt", "127.0.0.1:9000", "alice");
        s.hold("g2", "notes.txt", "127.0.0.1:9000", "alice");
        assert_eq!(s.holders("g1", "notes.txt"), ["127.0.0.1:9000"]);
        assert!(s.holder_key("g1", "notes.txt", "127.0.0.1:9000").is_some());
        assert_eq!(s.logout("alice", 2), 0, "another connection cannot end it");
        assert_eq!(s.logout("alice", 1), 2);
        assert!(s.holders("g1", "notes.txt").is_empty());
        assert!(s.login("alice", 2, key()));
    }

    #[test]
    fn leaving_a_group_unlists_only_that_group() {
        let mut s = Sessions::new();
        s.login("bob", 1, key());
        s.hold("g1", "a", "p1", "bob");
        s.hold("g2", "a", "p1", "bob");
        s.left("g1", "bob");
        assert!(s.holders("g1", "a").is_empty());
        assert_eq!(s.holders("g2", "a"), ["p1"]);
        assert!(s.unhold("g2", "a", "p1"));
        assert!(!s.unhold("g2", "a", "p1"));
    }

    #[test]
    fn failures_slow_down_that_user_not_others() {
        let mut s = Sessions::new();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        for _ in 0..USER_FAILURES {
            assert_eq!(s.slow_down("alice", ip, t0), None);
            s.failed("alice", ip, t0);
        }
        assert_eq!(s.slow_down("alice", ip, t0), Some(FIRST_PAUSE));
        assert_eq!(s.slow_down("bob", ip, t0), None);
        assert_eq!(
            s.slow_down("alice", ip, t0 + FIRST_PAUSE),
            None,
            "the pause ends"
        );
        s.succeeded("alice");
        assert_eq!(s.slow_down("alice", ip, t0), None);
        // Many users from one address: the address is slowed too.
        for i in 0..ADDR_FAILURES {
            s.failed(&format!("u{i}"), ip, t0);
        }
        assert!(s.slow_down("zed", ip, t0).is_some());
    }
}
