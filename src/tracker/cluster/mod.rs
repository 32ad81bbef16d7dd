//! Several trackers as one: the Raft cluster runtime around the pure [`crate::raft`] core.
//!
//! It owns the threads and files that make a [`crate::raft::Node`] real: `config.rs` reads the
//! cluster file, `auth.rs` the cluster key and the handshake's MACs, `handshake.rs` its lines, `storage.rs` keeps the term, vote and log under `DIR/raft/`, `transport.rs`
//! carries messages between members on a dedicated cluster port, and `node.rs` is the driver
//! thread that ticks the clock and persists, sends and applies in Raft's order.
//!
//! The runtime is generic: a command is one opaque line of text. The tracker proposes commands
//! with [`Cluster::propose`], which returns only once they are committed (on a majority, in
//! this leader's term), and every member, leader or not, gets every committed command once, in
//! log order, through the `apply` callback given to [`Cluster::start`]. After a restart the
//! callback sees the log again from the first entry after the snapshot (Raft's commit index
//! is not persisted), so the tracker builds its replicated state at start from the snapshot
//! (`Options::snapshots`, restored before anything is applied) and the entries after it.
//!
//! What it must never do: decide anything Raft decides (that is the core's), hold a lock
//! across I/O, or know what a command means.

mod auth;
#[cfg(test)]
mod auth_tests;
mod config;
mod handshake;
mod node;
mod shared;
mod snapfile;
mod storage;
#[cfg(test)]
mod storage_tests;
mod transport;

use std::fmt;
use std::net::TcpListener;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use auth::{ClusterKey, MIN_KEY, NEW_KEY, Side, Transcript, is_nonce, nonce, write_new};
pub use config::{ClusterConfig, MAX_MEMBERS};
pub use node::{Apply, Snapshots};
pub use shared::{not_committed, not_leader};

use crate::conn::Trace;
use crate::protocol::ProtoError;
use crate::raft::{self, NodeId, Role};
use crate::util::Rng;
use node::{Driver, Input};
use shared::{Shared, Status, lock};
use storage::Storage;
use transport::Transport;

/// Why a proposal was not acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This member does not lead; `leader` is the leader tracker's client address, if known.
    NotLeader { leader: Option<String> },
    /// Not committed in time: no majority reachable, or an election under way. The commands
    /// may still commit later (or be lost): the caller must not assume either.
    Timeout,
    /// A new leader overwrote the entries: they will never commit.
    Lost,
    /// A command does not fit one `ENTRY` line ([`crate::raft::MAX_COMMAND`] bytes escaped).
    TooLong { len: usize },
    /// The cluster member has stopped.
    Stopped,
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ProposeError::NotLeader { leader: Some(a) } => write!(f, "not the leader; {a} is"),
            ProposeError::NotLeader { leader: None } => write!(f, "not the leader; none known"),
            ProposeError::Timeout => write!(f, "not committed in time"),
            ProposeError::Lost => write!(f, "overwritten by a new leader"),
            ProposeError::TooLong { len } => write!(f, "command of {len} bytes is too long"),
            ProposeError::Stopped => write!(f, "the cluster member has stopped"),
        }
    }
}

/// Timing and test hooks; [`Options::default`] is what the CLI uses.
pub struct Options {
    /// One Raft tick (default 50 ms).
    pub tick: Duration,
    /// Election timeout in ticks: a follower waits a random `[e, 2e)` (default 10, so 0.5-1 s).
    pub election_ticks: u32,
    /// Heartbeat interval in ticks (default 2: every 100 ms).
    pub heartbeat_ticks: u32,
    /// This tracker's client address (what peers connect to), told to the other members so a
    /// follower can name the leader in `ERR not-leader`.
    pub client_addr: Option<String>,
    /// Listen here instead of binding this member's address from the cluster file (tests bind
    /// `127.0.0.1:0` first, then write the file).
    pub listener: Option<TcpListener>,
    /// What `STATE` on the cluster port answers after `ACK ` (the tracker's replicated state,
    /// one line; a read for people with `nc` and for checkers, served by every member).
    pub inspect: Option<Inspect>,
    /// Log compaction (Raft §7): how often, and the state machine's snapshot and restore.
    /// Without it the log is never compacted and a member cannot take a leader's snapshot.
    pub snapshots: Option<Snapshots>,
    /// Most snapshot bytes per `SNAPSHOT` message (default and maximum
    /// [`crate::raft::MAX_CHUNK`]; tests use less to see several chunks).
    pub snapshot_chunk: usize,
    /// The cluster key: with it, every member must prove it holds the same key before its
    /// Raft messages are read (see `auth.rs`); without it, the cluster port trusts anyone who
    /// knows the fingerprint, and members with a key refuse this one.
    pub key: Option<ClusterKey>,
}

/// See [`Options::inspect`].
pub type Inspect = Arc<dyn Fn() -> String + Send + Sync>;

impl Default for Options {
    fn default() -> Options {
        Options {
            tick: Duration::from_millis(50),
            election_ticks: 10,
            heartbeat_ticks: 2,
            client_addr: None,
            listener: None,
            inspect: None,
            snapshots: None,
            snapshot_chunk: raft::MAX_CHUNK,
            key: None,
        }
    }
}

/// A running cluster member.
pub struct Cluster {
    shared: Arc<Shared>,
    driver: Option<JoinHandle<()>>,
}

impl Cluster {
    /// Start member `id` of `config` with its Raft state in `state_dir/raft/`, listening on
    /// its cluster address. `apply` gets every committed command in order, on the driver
    /// thread: it must be quick and must not call back into the cluster.
    pub fn start(
        config: ClusterConfig,
        id: NodeId,
        state_dir: &Path,
        trace: Trace,
        apply: Apply,
    ) -> Result<Cluster, String> {
        Cluster::start_with(config, id, state_dir, trace, Options::default(), apply)
    }

    /// [`Cluster::start`] with explicit timing, client address and test hooks.
    pub fn start_with(
        config: ClusterConfig,
        id: NodeId,
        state_dir: &Path,
        trace: Trace,
        options: Options,
        apply: Apply,
    ) -> Result<Cluster, String> {
        config.check_member(id, "the cluster file")?;
        let fingerprint = config.fingerprint();
        let (storage, persisted) = Storage::open(state_dir, id, &fingerprint)?;
        let mut snapshots = options.snapshots;
        if let Some(snapshot) = &persisted.snapshot {
            let path = state_dir.join("raft").join("snapshot");
            let restored = match &mut snapshots {
                Some(s) => (s.restore)(&snapshot.data),
                None => Err("this tracker was started without snapshots".into()),
            };
            restored.map_err(|e| {
                format!(
                    "{} does not restore ({e}): restore the folder from a backup, or delete it to rejoin the cluster empty",
                    path.display()
                )
            })?;
        }
        let listener = match options.listener {
            Some(l) => l,
            None => {
                let addr = &config.members[&id];
                TcpListener::bind(addr).map_err(|e| {
                    format!("cannot listen on {addr}, member {id}'s cluster address: {e}")
                })?
            }
        };
        let raft_config = raft::Config {
            election_ticks: options.election_ticks,
            heartbeat_ticks: options.heartbeat_ticks,
            snapshot_chunk: options.snapshot_chunk,
            ..raft::Config::default()
        };
        let peers = config.peers_of(id);
        let node = raft::Node::with_config(
            raft_config,
            id,
            &peers,
            persisted,
            Rng::from_time().next_u64(),
        );
        let (inbox, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            id,
            fingerprint,
            members: config.members.keys().copied().collect(),
            client_addr: options.client_addr,
            trace,
            inbox,
            inspect: options.inspect,
            status: Mutex::new(Status {
                role: Role::Follower,
                term: node.term(),
                leader: None,
                commit: 0,
                last_index: node.last_index(),
                snapshot: node.snapshot_index(),
                failed: None,
                stopped: false,
            }),
            changed: Condvar::new(),
            clients: Mutex::default(),
            cut: Mutex::default(),
            key: options.key,
            refused: Mutex::default(),
            logged: Mutex::default(),
        });
        let transport = Transport::start(listener, &config.members, shared.clone())
            .map_err(|e| format!("cannot start the cluster transport: {e}"))?;
        let driver = Driver {
            node,
            storage,
            transport,
            shared: shared.clone(),
            apply,
            snapshots,
            tick: options.tick.max(Duration::from_millis(1)),
            pending: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name(format!("raft-{id}"))
            .spawn(move || driver.run(&rx))
            .map_err(|e| format!("cannot start the Raft thread: {e}"))?;
        Ok(Cluster {
            shared,
            driver: Some(thread),
        })
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.shared.id
    }

    /// Replicate `commands` (one opaque line each) and return once all are committed by this
    /// leader in its term, so they survive any minority of failures. A follower refuses with
    /// the leader's client address; a leader cut off from the majority never acknowledges
    /// (it times out, then check-quorum makes it step down).
    pub fn propose(&self, commands: Vec<String>, timeout: Duration) -> Result<(), ProposeError> {
        self.shared.propose(commands, timeout)
    }

    /// A handle for other threads (the tracker's connections) to call [`Cluster::propose`]
    /// with `timeout`, answering the `ERR` a client gets for a refusal.
    pub fn proposer(
        &self,
        timeout: Duration,
    ) -> impl Fn(Vec<String>) -> Result<(), ProtoError> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |commands| {
            shared
                .propose(commands, timeout)
                .map_err(|e| not_committed(&e))
        }
    }

    /// The leader's client address, as far as this member knows.
    pub fn leader(&self) -> Option<String> {
        let leader = self.shared.status().leader?;
        self.shared.client_addr_of(leader)
    }

    /// The leader's member id, as far as this member knows.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.shared.status().leader
    }

    /// The last log index this member's newest snapshot covers (0: never compacted).
    pub fn snapshot_index(&self) -> u64 {
        self.shared.status().snapshot
    }

    /// Whether this member leads now (it may still be cut off: see [`Cluster::propose`]).
    pub fn is_leader(&self) -> bool {
        self.shared.status().role == Role::Leader
    }

    /// The last handshake this member refused, or was refused by (a stranger, a missing or a
    /// different key), as the one line its log shows; `None` if none yet.
    pub fn last_refusal(&self) -> Option<String> {
        lock(&self.shared.refused).clone()
    }

    /// Whether this member authenticates its cluster port with a key.
    pub fn is_keyed(&self) -> bool {
        self.shared.key.is_some()
    }

    /// This member's current term and commit index.
    pub fn term_and_commit(&self) -> (u64, u64) {
        let s = self.shared.status();
        (s.term, s.commit)
    }

    /// `Err(not-leader ADDR ...)` unless this member leads: what the tracker answers a
    /// request sent to a follower.
    pub fn check_leader(&self) -> Result<(), ProtoError> {
        if self.is_leader() {
            return Ok(());
        }
        Err(not_leader(self.leader().as_deref()))
    }

    /// A handle for other threads (the tracker's connections) to call [`Cluster::check_leader`]
    /// without owning the cluster.
    pub fn leader_check(&self) -> impl Fn() -> Result<(), ProtoError> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || {
            let s = shared.status();
            if s.role == Role::Leader {
                return Ok(());
            }
            Err(not_leader(
                s.leader.and_then(|l| shared.client_addr_of(l)).as_deref(),
            ))
        }
    }

    /// Wait until `f` holds for this member's status, or `timeout` passes; true if it held.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(bool, Option<NodeId>) -> bool) -> bool {
        let guard = lock(&self.shared.status);
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |s| {
                !f(s.role == Role::Leader, s.leader) && !s.stopped
            })
            .unwrap_or_else(PoisonError::into_inner);
        f(guard.role == Role::Leader, guard.leader)
    }

    /// TEST HOOK: drop every message to and from these members, as if the links were cut
    /// (an empty list heals them).
    pub fn cut(&self, members: &[NodeId]) {
        *lock(&self.shared.cut) = members.iter().copied().collect();
    }

    /// Stop the driver and the transport and join their threads. Nothing is said to the other
    /// members: to them this is a crash, as it must be safe to be.
    pub fn stop(&mut self) {
        let _ = self.shared.inbox.send(Input::Stop);
        if let Some(t) = self.driver.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
