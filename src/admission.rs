//! Who gets a connection slot: the cap per remote address and the global cap, and which
//! connection makes room when the server is full. Pure bookkeeping, no sockets: `server.rs`
//! asks `Table::admit` at every accept and shuts down the socket it names.
//!
//! The policy, and why:
//! - **Per address**: one remote IP address may hold at most `per_addr` connections; the next
//!   one is refused (`ERR busy`). A LAN host runs a handful of peers and downloads, not a
//!   thousand connections, so one host can no longer fill the server by itself.
//! - **At the global cap** the newcomer is not refused: the address holding the *most*
//!   connections gives up its *longest-idle* one (idle = time since its last complete request
//!   line). An honest host holds few connections, so it is the last to be asked to give one
//!   up; among the heaviest address's connections the longest-idle one loses the least work
//!   (a download in progress sends a request line at every piece). Refusing the newcomer, as
//!   before, lets whoever came first keep the server for as long as it likes.
//!
//! What it must never do: touch a socket or a thread. It only says whom to close.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The two connection caps of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once.
    pub total: usize,
    /// Most connections open at once from one remote IP address.
    pub per_addr: usize,
}

/// When a connection last finished reading a request line, in ms since the process's epoch.
#[derive(Debug)]
pub struct Activity(AtomicU64);

impl Activity {
    fn now() -> Activity {
        Activity(AtomicU64::new(now_ms()))
    }
    /// Mark the connection busy now.
    pub fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }
    fn last(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

thread_local! {
    /// The activity clock of the connection this thread serves (set by the server before it
    /// runs the handler), so `server::line_loop` can mark a line without a new argument.
    static CURRENT: RefCell<Option<Arc<Activity>>> = const { RefCell::new(None) };
}

/// This thread serves the connection whose clock is `activity`.
pub fn serve_as(activity: Arc<Activity>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(activity));
}

/// The connection this thread serves has just read a request line.
pub fn touch() {
    CURRENT.with(|c| {
        if let Some(a) = &*c.borrow() {
            a.touch();
        }
    });
}

/// What to do with a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Room for it.
    Admit,
    /// Close this connection (already forgotten by the table), then admit the newcomer.
    Evict(u64),
    /// Its address already holds `per_addr` connections.
    RefuseAddr,
    /// Full, and nobody to make room (a cap of 0).
    RefuseFull,
}

struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
}

/// The connections being served, by serial number, and how many each address holds.
#[derive(Default)]
pub struct Table {
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    /// Connections counted against the caps.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// How many connections `ip` holds.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Decide about a newcomer from `ip`. On `Evict`, the victim is already removed.
    pub fn admit(&mut self, ip: IpAddr, limits: ConnLimits) -> Decision {
        if self.count(ip) >= limits.per_addr {
            return Decision::RefuseAddr;
        }
        if self.conns.len() < limits.total {
            return Decision::Admit;
        }
        // The heaviest address (ties: the one with the longest-idle connection), and its
        // longest-idle connection.
        let victim = self
            .conns
            .iter()
            .max_by_key(|(id, e)| (self.count(e.ip), u64::MAX - e.activity.last(), **id))
            .map(|(id, _)| *id);
        match victim {
            Some(id) => {
                self.remove(id);
                Decision::Evict(id)
            }
            None => Decision::RefuseFull,
        }
    }

    /// Count connection `id` from `ip`; returns its activity clock.
    pub fn add(&mut self, id: u64, ip: IpAddr) -> Arc<Activity> {
        let activity = Arc::new(Activity::now());
        let entry = Entry {
            ip,
            activity: activity.clone(),
        };
        if self.conns.insert(id, entry).is_none() {
            *self.per_ip.entry(ip).or_insert(0) += 1;
        }
        activity
    }

    /// Stop counting connection `id` (it ended, or was evicted). Unknown ids are ignored.
    pub fn remove(&mut self, id: u64) {
        if let Some(e) = self.conns.remove(&id)
            && let Some(n) = self.per_ip.get_mut(&e.ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&e.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
    }

    const LIMITS: ConnLimits = ConnLimits {
        total: 4,
        per_addr: 3,
    };

    #[test]
    fn an_address_at_its_cap_is_refused_and_others_still_come_in() {
        let mut t = Table::default();
        for id in 0..3 {
            assert_eq!(t.admit(ip(2), LIMITS), Decision::Admit);
            t.add(id, ip(2));
        }
        assert_eq!(t.admit(ip(2), LIMITS), Decision::RefuseAddr);
        assert_eq!(t.admit(ip(1), LIMITS), Decision::Admit);
        t.remove(0);
        assert_eq!((t.len(), t.count(ip(2))), (2, 2));
        assert_eq!(t.admit(ip(2), LIMITS), Decision::Admit);
    }

    #[test]
    fn when_full_the_heaviest_address_gives_up_its_longest_idle_connection() {
        let mut t = Table::default();
        let a = t.add(1, ip(2));
        let b = t.add(2, ip(2));
        t.add(3, ip(3));
        t.add(4, ip(2));
        // Connection 1 has been idle longest overall, but 2 is older on the heaviest address
        // once 1 speaks.
        a.0.store(100, Ordering::Relaxed);
        b.0.store(50, Ordering::Relaxed);
        t.conns[&4].activity.0.store(70, Ordering::Relaxed);
        t.conns[&3].activity.0.store(0, Ordering::Relaxed);
        assert_eq!(t.admit(ip(1), LIMITS), Decision::Evict(2));
        assert_eq!((t.len(), t.count(ip(2))), (3, 2));
        t.add(5, ip(1));
        // Now 127.0.0.2 holds 2 and the others 1 each: 127.0.0.2's longest idle goes.
        assert_eq!(t.admit(ip(9), LIMITS), Decision::Evict(4));
    }

    #[test]
    fn a_cap_of_zero_refuses_everyone() {
        let mut t = Table::default();
        let none = ConnLimits {
            total: 0,
            per_addr: 5,
        };
        assert_eq!(t.admit(ip(1), none), Decision::RefuseFull);
        assert!(t.is_empty());
    }

    #[test]
    fn touch_marks_the_current_threads_connection() {
        let mut t = Table::default();
        let a = t.add(1, ip(1));
        a.0.store(0, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(2));
        serve_as(a.clone());
        touch();
        assert!(a.last() > 0);
    }
}
