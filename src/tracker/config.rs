//! How a tracker runs: `TrackerConfig` (connection caps, registry limits, the idle timeout,
//! trace, accounts) and the `Gate` asked before each request (a cluster follower's
//! `ERR not-leader ADDR`).
//!
//! Plain values and one check; it must never open a socket or hold a lock (the gate runs on
//! every request and must not block).

use std::sync::Arc;
use std::time::Duration;

use crate::conn::Trace;
use crate::protocol::{ProtoError, Request};
use crate::tracker::Limits;
use crate::tracker::accounts::AccountsConfig;

/// How a tracker runs.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Most connections open at once; at the cap the heaviest address's longest-idle
    /// connection is closed to make room (`admission.rs`).
    pub max_conns: usize,
    /// Most connections open at once from one remote address; the next one is answered
    /// `ERR busy`.
    pub max_conns_per_addr: usize,
    /// What one address, and everyone together, may register and announce.
    pub limits: Limits,
    /// A connection silent this long is closed (three heartbeats).
    pub idle: Duration,
    pub trace: Trace,
    /// Accounts and groups: the state folder, the iteration count (`accounts.rs`).
    pub accounts: AccountsConfig,
    /// Asked before every request but `PING`, `HELP` and `BYE` (a cluster follower answers
    /// `ERR not-leader ADDR` instead); a lone tracker has none.
    pub gate: Gate,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_conns: 10_000,
            max_conns_per_addr: 64,
            limits: Limits::default(),
            idle: Duration::from_secs(30),
            trace: Trace::off(),
            gate: Gate::default(),
            accounts: AccountsConfig::default(),
        }
    }
}

impl TrackerConfig {
    /// Every client is this one machine (the simulations, the benchmarks): the per-address
    /// caps are lifted to the totals, which stay.
    pub fn one_host() -> TrackerConfig {
        let config = TrackerConfig::default();
        TrackerConfig {
            max_conns_per_addr: config.max_conns,
            limits: Limits {
                peers_per_addr: config.max_conns,
                files_per_addr: config.limits.files_total,
                ..config.limits
            },
            ..config
        }
    }
}

/// A check run before a request is handled; `Err` is the reply instead. It must be quick and
/// must not block (it reads a cluster member's published role).
#[derive(Clone, Default)]
pub struct Gate(pub Option<Arc<GateCheck>>);

/// A gate's check, shown the request it lets through or refuses.
pub type GateCheck = dyn Fn(&Request) -> Result<(), ProtoError> + Send + Sync;

impl Gate {
    pub(super) fn refuse(&self, request: &Request) -> Option<ProtoError> {
        let check = self.0.as_ref()?;
        match request {
            Request::Ping | Request::Help | Request::Bye => None,
            _ => check(request).err(),
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Gate(on)"
        } else {
            "Gate(off)"
        })
    }
}
