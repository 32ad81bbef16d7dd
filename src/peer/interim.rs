//! When every tracker is gone: the peers elect one of themselves to run an interim tracker for
//! public files, and hand back when a configured tracker returns.
//!
//! - Each peer runs a *standby*: a tracker of its own (the real tracker code, soft state, no
//!   accounts) on a port of its own, dormant. A dormant standby answers `PING`, `HELP` and
//!   `BYE`, and every other request `ERR not-leader ADDR`, naming where its own peer's link is
//!   registered (a configured tracker, or the interim it follows), or `none`.
//! - The peer offers that port to its tracker (`STANDBY <port>`, with every heartbeat) and
//!   keeps the list the tracker answers: the live peers' standby addresses, lowest first.
//! - The rule (`elect`, pure): once a whole round over the configured trackers has failed
//!   for `GRACE`, the interim tracker is the lowest address of that list (with this peer's own
//!   standby added) whose standby answers `PING`. Every peer holds the same list and sees the
//!   same standbys alive, so every peer computes the same answer; the one that finds itself
//!   opens its standby (`become_interim`), the others re-register there and re-announce, as
//!   after a tracker restart.
//! - Disagreement (lists a heartbeat apart, a standby slow to answer) heals itself: a peer on
//!   an interim runs the rule again every `CHECK_EVERY` and moves to a lower live standby; a
//!   standby left by its own peer points at where that peer went, and its clients follow the
//!   `ERR not-leader` on their next heartbeat. A dormant standby asked to `REGISTER` while its
//!   own peer has also lost every tracker opens: it was elected.
//! - Hand-back: every peer on an interim also tries the configured trackers every
//!   `CHECK_EVERY`; when one answers, it goes back there, and the interim's own peer points
//!   its standby at that tracker, so the rest are told `ERR not-leader <tracker>`.
//!
//! This file owns the rule and the standby; the link (`link/interim.rs`) decides when to
//! apply them. It never holds a lock across I/O (the gate only flips a flag).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::conn::{Conn, Timeouts, Trace};
use crate::protocol::{ErrCode, ProtoError, Reply, Request};
use crate::tracker::{Gate, Tracker, TrackerConfig};

/// How long a whole round over the configured trackers must have been failing before the
/// peers elect an interim tracker (a tracker restarting or a leader being elected is back
/// within it).
pub const GRACE: Duration = Duration::from_secs(2);

/// How often a peer on an interim tracker looks for a configured tracker that is back, and for
/// a lower standby that is alive.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// How long a probe (`connect` + `PING`) may take before that standby or tracker counts as
/// gone. On one LAN an answer takes well under a millisecond.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// The standby tracker's idle timeout: its clients ping every third of it.
const STANDBY_IDLE: Duration = Duration::from_secs(6);

/// The election rule, pure: the lowest address of `candidates` (by `SocketAddr`'s order:
/// IPv4 before IPv6, then address, then port) for which `alive` says yes. Words that are not
/// addresses are skipped; each address is asked at most once, lowest first, and no further
/// once one answers.
pub fn elect(candidates: &[String], mut alive: impl FnMut(&str) -> bool) -> Option<String> {
    let mut addrs: Vec<SocketAddr> = candidates.iter().filter_map(|c| c.parse().ok()).collect();
    addrs.sort();
    addrs.dedup();
    addrs.into_iter().map(|a| a.to_string()).find(|a| alive(a))
}

/// The addresses of a `STANDBY` reply (`ACK standby ADDR...`); `None` for another reply.
pub fn parse_list(reply: &Reply) -> Option<Vec<String>> {
    let Reply::Ack(text) = reply else {
        return None;
    };
    let mut words = text.split_ascii_whitespace();
    (words.next() == Some("standby")).then(|| {
        words
            .filter(|w| w.parse::<SocketAddr>().is_ok())
            .map(str::to_string)
            .collect()
    })
}

/// Whether `addr` answers `PING` within `PROBE_TIMEOUT`.
pub fn answers_ping(addr: &str, trace: &Trace) -> bool {
    let Ok(mut conn) = Conn::connect(addr, Timeouts::uniform(PROBE_TIMEOUT), trace.clone()) else {
        return false;
    };
    let pong = matches!(conn.request(&Request::Ping), Ok(Reply::Pong));
    let _ = conn.request(&Request::Bye);
    pong
}

/// Whether the tracker at `addr` serves (a lone tracker, or a cluster's leader): it answers a
/// read with anything but `ERR not-leader` (a follower, or a dormant standby, refuses reads).
pub fn serves(addr: &str, trace: &Trace) -> bool {
    let Ok(mut conn) = Conn::connect(addr, Timeouts::uniform(PROBE_TIMEOUT), trace.clone()) else {
        return false;
    };
    let probe = Request::WhoHas {
        name: "interim-probe".into(),
    };
    let serving = matches!(conn.request(&probe), Ok(reply) if !matches!(reply, Reply::Err(ErrCode::NotLeader, _)));
    let _ = conn.request(&Request::Bye);
    serving
}

/// Send `requests` to `addr` on one connection and keep it open for `hold` (pinging), then
/// say `BYE`: an offer that lives as long as its connection, for a while. Runs on a thread of
/// its own (the link's must not wait).
pub fn offer_for(addr: &str, requests: &[Request], hold: Duration, trace: &Trace) {
    let Ok(mut conn) = Conn::connect(addr, Timeouts::uniform(PROBE_TIMEOUT), trace.clone()) else {
        return;
    };
    for request in requests {
        if !matches!(conn.request(request), Ok(Reply::Ack(_))) {
            return;
        }
    }
    let end = std::time::Instant::now() + hold;
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(500));
        if !matches!(conn.request(&Request::Ping), Ok(Reply::Pong)) {
            return;
        }
    }
    let _ = conn.request(&Request::Bye);
}

/// A standby bound to `bound` as the standby list names it: at `listed_ip`, the address a
/// configured tracker lists its peer at (the bound address is `0.0.0.0` on a LAN peer, and
/// would sort below every real one); the bound address itself until the peer is listed.
pub fn listed_standby(listed_ip: Option<IpAddr>, bound: SocketAddr) -> Option<String> {
    let ip = match listed_ip {
        Some(ip) => ip,
        None if !bound.ip().is_unspecified() => bound.ip(),
        None => return None,
    };
    Some(SocketAddr::new(ip, bound.port()).to_string())
}

/// What a standby does now.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Refuses all but `PING HELP BYE` with `ERR not-leader`, naming this address (`None`:
    /// `none`).
    Dormant(Option<String>),
    /// Serves as the interim tracker.
    Interim,
}

struct Shared {
    mode: Mutex<Mode>,
    /// This peer's link has lost every configured tracker and holds a list to elect from: a
    /// `REGISTER` here means another peer elected us.
    trackers_gone: AtomicBool,
    label: String,
}

impl Shared {
    fn mode(&self) -> Mode {
        self.mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The gate before every request but `PING HELP BYE`. Only a `REGISTER` opens a dormant
    /// standby whose peer has lost every tracker (another peer elected it); a probe (`WHOHAS`)
    /// must not open it.
    fn check(&self, request: &Request) -> Result<(), ProtoError> {
        let mut mode = self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        let register = matches!(
            request,
            Request::Register { .. } | Request::RegisterAs { .. }
        );
        match &*mode {
            Mode::Interim => Ok(()),
            Mode::Dormant(None) if register && self.trackers_gone.load(Ordering::SeqCst) => {
                *mode = Mode::Interim;
                drop(mode);
                eprintln!(
                    "{}: another peer elected this one: running the interim tracker",
                    self.label
                );
                Ok(())
            }
            Mode::Dormant(Some(addr)) => Err(ProtoError::new(
                ErrCode::NotLeader,
                format!(
                    "{addr} is where this peer's tracker is; this peer runs no interim tracker now"
                ),
            )),
            Mode::Dormant(None) => Err(ProtoError::new(
                ErrCode::NotLeader,
                "none: this peer runs no interim tracker now",
            )),
        }
    }
}

/// A peer's standby tracker (see the module doc). Dropping it stops it.
pub struct Standby {
    tracker: Tracker,
    shared: Arc<Shared>,
}

impl Standby {
    /// Listen on `ip` (the address the peer serves on), any port, dormant.
    pub fn start(ip: IpAddr, trace: Trace, label: &str) -> io::Result<Standby> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Dormant(None)),
            trackers_gone: AtomicBool::new(false),
            label: label.to_string(),
        });
        let shared2 = shared.clone();
        // On loopback every peer of a class or a simulation is one address: lift the
        // per-address caps to the totals, as a lone tracker for one host does.
        let base = match ip.is_loopback() {
            true => TrackerConfig::one_host(),
            false => TrackerConfig::default(),
        };
        let config = TrackerConfig {
            idle: STANDBY_IDLE,
            trace,
            gate: Gate(Some(Arc::new(move |request: &Request| {
                shared2.check(request)
            }))),
            ..base
        };
        let tracker = Tracker::start_public_only(listener, config)?;
        Ok(Standby { tracker, shared })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.tracker.addr()
    }

    /// Whether it serves as the interim tracker now.
    pub fn is_interim(&self) -> bool {
        self.shared.mode() == Mode::Interim
    }

    /// Serve as the interim tracker (elected). True if it was dormant.
    pub fn become_interim(&self) -> bool {
        let mut mode = self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let was = *mode != Mode::Interim;
        *mode = Mode::Interim;
        was
    }

    /// Be dormant and send whoever asks to `addr` (where this peer's link is now; `None`:
    /// nowhere). An interim tracker that is told this hands over: its clients are refused
    /// `ERR not-leader ADDR` from their next request on. True if it was the interim tracker.
    pub fn point_to(&self, addr: Option<&str>) -> bool {
        let mut mode = self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let was = *mode == Mode::Interim;
        *mode = Mode::Dormant(addr.map(str::to_string));
        was
    }

    /// Dormant and pointing nowhere (the tracker it pointed at failed); an interim tracker
    /// stays one.
    pub fn forget_pointer(&self) {
        let mut mode = self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if matches!(*mode, Mode::Dormant(_)) {
            *mode = Mode::Dormant(None);
        }
    }

    /// This peer's link has lost every configured tracker (`true`), or is back on one.
    pub fn set_trackers_gone(&self, gone: bool) {
        self.shared.trackers_gone.store(gone, Ordering::SeqCst);
    }

    /// The peers registered with it now (while interim: its clients).
    pub fn peer_count(&self) -> usize {
        self.tracker.registry().peer_count()
    }

    pub fn stop(&mut self) {
        self.tracker.stop();
    }
}

#[cfg(test)]
mod tests;
