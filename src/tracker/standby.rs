//! The standby list: which registered peers can run an interim tracker, and where.
//!
//! A peer offers itself with `STANDBY <port>` on its registered connection; the tracker keeps
//! `ip:port` (the peer's listed address with that port) for as long as the connection lives
//! and answers every `STANDBY` with the list, lowest address first. Every peer asks with its
//! heartbeat, so all of them hold the same list within one heartbeat, and when every tracker
//! is gone they elect the same interim tracker from it (`peer/interim.rs`).
//!
//! Pure state: it never sees a socket; the lock is held for one map operation.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

/// Most addresses one `STANDBY` reply names: the election needs the lowest live one, and if
/// the tracker's host dies with the peers on it, the lowest listed may all be gone: 128 (a
/// line of about 3 KB) leaves room for that, and stays short with thousands of peers.
pub const MAX_LISTED: usize = 128;

/// The standby addresses offered, each with the connection that offered it.
#[derive(Debug, Default)]
pub struct Standbys {
    by_addr: Mutex<BTreeMap<SocketAddr, u64>>,
}

impl Standbys {
    /// Connection `conn` offers `addr` (replacing what it offered before, `old`).
    pub fn offer(&self, conn: u64, old: Option<SocketAddr>, addr: SocketAddr) {
        let mut map = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = old
            && map.get(&old) == Some(&conn)
        {
            map.remove(&old);
        }
        map.insert(addr, conn);
    }

    /// Connection `conn` ended: forget what it offered (unless another connection took the
    /// address over since).
    pub fn withdraw(&self, conn: u64, addr: SocketAddr) {
        let mut map = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&addr) == Some(&conn) {
            map.remove(&addr);
        }
    }

    /// The `STANDBY` reply's words: the lowest `MAX_LISTED` addresses the asker may be given
    /// (`usable`: the loopback rule), IPv4 before IPv6, then by address, then by port
    /// (`SocketAddr`'s order, the one every peer sorts by too). Filtered before the cut, so
    /// loopback standbys, which sort first, never crowd a LAN peer's list out.
    pub fn list(&self, usable: impl Fn(&SocketAddr) -> bool) -> Vec<SocketAddr> {
        let map = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        map.keys()
            .filter(|a| usable(a))
            .take(MAX_LISTED)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn lowest_first_and_gone_with_their_connection() {
        let s = Standbys::default();
        s.offer(1, None, a("127.0.0.1:9000"));
        s.offer(2, None, a("127.0.0.1:800"));
        s.offer(3, None, a("[::1]:10"));
        s.offer(4, None, a("10.0.0.1:5"));
        assert_eq!(
            s.list(|_| true),
            vec![
                a("10.0.0.1:5"),
                a("127.0.0.1:800"),
                a("127.0.0.1:9000"),
                a("[::1]:10")
            ]
        );
        s.withdraw(2, a("127.0.0.1:800"));
        s.withdraw(9, a("127.0.0.1:9000")); // not its connection's: kept
        s.offer(1, Some(a("127.0.0.1:9000")), a("127.0.0.1:9001"));
        assert_eq!(
            s.list(|_| true),
            vec![a("10.0.0.1:5"), a("127.0.0.1:9001"), a("[::1]:10")]
        );
        for i in 0..200 {
            s.offer(100 + i, None, a(&format!("127.0.0.2:{}", 1000 + i)));
        }
        assert_eq!(s.list(|_| true).len(), MAX_LISTED);
        // Filtered before the cut: a LAN asker still sees the LAN standby.
        let lan = s.list(|a| !a.ip().is_loopback());
        assert_eq!(
            lan,
            vec![a("10.0.0.1:5"), a("[::1]:10")]
                .into_iter()
                .filter(|a| !a.ip().is_loopback())
                .collect::<Vec<_>>()
        );
    }
}
