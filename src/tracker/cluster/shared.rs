//! What the threads of one cluster member share: the driver's published status, the other
//! members' client addresses, the cut-link test hook, and the answers to lines sent to the
//! cluster port by non-members (`STATUS`, `STATE`).
//!
//! It owns no thread and does no I/O; every lock here is held for a few field reads or writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Sender};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::ProposeError;
use super::node::Input;
use crate::conn::Trace;
use crate::protocol::{ErrCode, ProtoError};
use crate::raft::{self, NodeId, Role};

/// What the driver last published, for the other threads.
#[derive(Clone, Debug)]
pub(crate) struct Status {
    pub(crate) role: Role,
    pub(crate) term: u64,
    pub(crate) leader: Option<NodeId>,
    pub(crate) commit: u64,
    pub(crate) last_index: u64,
    /// The last index the newest snapshot covers (0: never compacted).
    pub(crate) snapshot: u64,
    pub(crate) failed: Option<String>,
    pub(crate) stopped: bool,
}

/// State shared by the driver, the transport threads and the [`Cluster`] handle.
pub(crate) struct Shared {
    pub(crate) id: NodeId,
    pub(crate) fingerprint: String,
    pub(crate) members: BTreeSet<NodeId>,
    pub(crate) client_addr: Option<String>,
    pub(crate) trace: Trace,
    pub(crate) inbox: Sender<Input>,
    pub(crate) inspect: Option<super::Inspect>,
    pub(crate) status: Mutex<Status>,
    pub(crate) changed: Condvar,
    /// Other members' client addresses, as their handshakes said.
    pub(crate) clients: Mutex<BTreeMap<NodeId, String>>,
    /// Members whose messages are dropped both ways (a test hook: a cut link).
    pub(crate) cut: Mutex<BTreeSet<NodeId>>,
    /// The cluster key, if the cluster port is authenticated.
    pub(crate) key: Option<super::ClusterKey>,
    /// The last handshake refused (either way), as logged.
    pub(crate) refused: Mutex<Option<String>>,
    /// The refusal lines already written to stderr.
    pub(crate) logged: Mutex<BTreeSet<String>>,
}

/// Most different refusal lines written to stderr (see [`Shared::refuse`]).
pub(crate) const LOGGED_MAX: usize = 64;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent; a panic elsewhere is not ours to spread.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut lock(&self.status));
        self.changed.notify_all();
    }

    pub(crate) fn is_cut(&self, id: NodeId) -> bool {
        lock(&self.cut).contains(&id)
    }

    pub(crate) fn set_client_addr(&self, id: NodeId, addr: &str) {
        lock(&self.clients).insert(id, addr.chars().take(256).collect());
    }

    /// The client address of member `id` (this member's own, or as its handshake said).
    pub(crate) fn client_addr_of(&self, id: NodeId) -> Option<String> {
        if id == self.id {
            return self.client_addr.clone();
        }
        lock(&self.clients).get(&id).cloned()
    }

    /// Check a `CLUSTER <fingerprint> <from>` handshake: the member id it claims.
    pub(crate) fn check_hello(&self, fingerprint: &str, from: &str) -> Result<NodeId, String> {
        if fingerprint != self.fingerprint {
            return Err(format!(
                "cluster {fingerprint} is not this one ({}): the members' cluster files differ",
                self.fingerprint
            ));
        }
        match from.parse::<NodeId>() {
            Ok(id) if id != self.id && self.members.contains(&id) => Ok(id),
            _ => Err(format!("{from} is not another member of this cluster")),
        }
    }

    /// Log a refused handshake: each time in the trace; without a trace, to stderr the first
    /// time that line is seen (a member retrying with the wrong key, a stranger knocking again
    /// repeat their line), so the log gets one clear line per cause and repeats cannot flood
    /// it. After [`LOGGED_MAX`] different lines, only the trace and [`Self::refused`] get them.
    pub(crate) fn refuse(&self, line: String) {
        *lock(&self.refused) = Some(line.clone());
        let first = {
            let mut logged = lock(&self.logged);
            logged.len() < LOGGED_MAX && logged.insert(line.clone())
        };
        if self.trace.is_on() {
            self.trace.note("cluster", "-", &line);
        } else if first {
            eprintln!("cluster member {}: {line}", self.id);
        }
    }

    pub(crate) fn propose(
        &self,
        commands: Vec<String>,
        timeout: Duration,
    ) -> Result<(), ProposeError> {
        let (done, result) = mpsc::channel();
        self.inbox
            .send(Input::Propose { commands, done })
            .map_err(|_| ProposeError::Stopped)?;
        match result.recv_timeout(timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(ProposeError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(ProposeError::Stopped),
        }
    }

    /// Answer one line sent to the cluster port by something that is not a member: `STATUS`
    /// (this member's Raft view) and `STATE` (its replicated state, see
    /// [`super::Options::inspect`]), for people with `nc` and for checkers. Both are reads of
    /// this member alone: a follower answers them too.
    pub(crate) fn client_line(&self, line: &str) -> String {
        let line = line.trim_end_matches('\r');
        if line == "STATUS" {
            let s = self.status();
            let role = s.role.name();
            let leader = s.leader.map_or("none".to_string(), |l| l.to_string());
            return format!(
                "ACK member={} role={role} term={} leader={leader} commit={} last={}",
                self.id, s.term, s.commit, s.last_index
            );
        }
        if line == "STATE" {
            return match &self.inspect {
                Some(inspect) => format!("ACK {}", inspect()),
                None => "ACK none".to_string(),
            };
        }
        if line == "BYE" || line == "QUIT" {
            return "ACK bye".to_string();
        }
        "ERR unknown-verb this is a tracker's cluster port: members say CLUSTER; people may say STATUS, STATE or BYE".to_string()
    }
}

/// The `ERR` a tracker answers for a proposal that was not acknowledged.
pub fn not_committed(e: &ProposeError) -> ProtoError {
    let (code, message) = match e {
        ProposeError::NotLeader { leader } => return not_leader(leader.as_deref()),
        ProposeError::Timeout => (
            ErrCode::Timeout,
            "not committed in time (no majority reachable?); it may or may not take effect"
                .to_string(),
        ),
        ProposeError::Lost => (
            ErrCode::Unavailable,
            "a new leader overwrote it; try again".to_string(),
        ),
        ProposeError::TooLong { len } => (
            ErrCode::TooLong,
            format!(
                "the record is {len} bytes escaped; at most {}",
                raft::MAX_COMMAND
            ),
        ),
        ProposeError::Stopped => (
            ErrCode::Unavailable,
            "this tracker has left its cluster".to_string(),
        ),
    };
    ProtoError::new(code, message)
}

/// A follower's refusal, `ERR not-leader <address> ...`: the first word of the message is the
/// leader's client address, or `none` when no leader is known (peers parse it).
pub fn not_leader(leader: Option<&str>) -> ProtoError {
    let message = match leader {
        Some(addr) => format!("{addr} leads this cluster; ask it"),
        None => "none: no leader is known yet (an election is under way); try again shortly".into(),
    };
    ProtoError::new(ErrCode::NotLeader, message)
}
