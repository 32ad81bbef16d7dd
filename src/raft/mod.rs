//! Raft consensus as a pure state machine: the replicated journal behind several trackers.
//!
//! This follows Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm
//! (Extended Version)", 2014, Figure 2, rule by rule: terms, RequestVote with the log
//! up-to-date check (§5.4.1), AppendEntries with the log matching check and conflict
//! truncation (§5.3), a leader commits only entries of its own term by counting replicas
//! (§5.4.2, Figure 8), anyone who sees a higher term steps down, and election timeouts are
//! randomized (§5.2). Three additions from Ongaro's thesis (2014), each a few lines:
//! - a new leader appends an empty no-op entry of its term (§8), so that entries of earlier
//!   terms get committed without waiting for a client;
//! - **check-quorum** (§6.2): a leader that has not heard from a majority within an election
//!   timeout steps down, so an old leader cut off from the majority stops acknowledging
//!   anything, and followers that have a live leader ignore vote requests (§4.2.3);
//! - **PreVote** (§9.6): a node first asks whether it *could* win before bumping its term, so
//!   a node that was partitioned away does not disrupt a healthy cluster when it comes back.
//!
//! Log compaction (§7, Figure 13): when told by its caller ([`Node::compact`]) a node replaces
//! the applied prefix of its log by a [`Snapshot`] (the caller's state-machine bytes, and the
//! index and term of the last entry they cover). A leader whose follower needs an entry that
//! was compacted away sends the snapshot instead (`SNAPSHOT`, in chunks); the follower keeps
//! the part of its log that follows the snapshot if it matches, discards the rest, and tells
//! its caller to restore its state machine from the bytes ([`Ready::restore`]).
//!
//! Left out, on purpose: **membership changes** (§6). The cluster is a fixed list of trackers
//! read from a file at start; changing it means stopping the cluster, which a course-sized
//! deployment can afford, and joint consensus is the subtlest part of the paper.
//!
//! What this module must never do: I/O, read a clock, spawn a thread, or hold a lock. Time is
//! [`Node::tick`], the network is [`Node::step`] and [`Ready::send`], the disk is
//! [`Ready::persist`]. That is what lets `tests/raft_sim.rs` run hundreds of seeded schedules
//! with crashes and partitions in a second.
//!
//! # The caller's loop
//! After every `tick`, `step`, `propose` or `campaign`, call [`Node::ready`] and handle the
//! [`Ready`] in this order, fully, before the next call:
//! 1. **persist** `ready.persist` (term and vote, log truncation then appends) durably,
//! 2. then **send** `ready.send`, in any order (the network may lose or reorder them anyway),
//! 3. then **apply** `ready.committed`, in order.
//!
//! Persisting before sending is what makes a vote or an acknowledged append a promise that
//! survives a crash: a node must never tell a peer "I voted for you" or "I have entry 7" and
//! then forget it on restart. On restart, build the node from what was persisted. The commit
//! index is volatile (Figure 2), so a restarted node applies its entries again from the first
//! one after its snapshot (index 1 without one) as it relearns the commit index: the caller
//! restores its state machine from the persisted snapshot, then applies them.
//!
//! With a snapshot, step 1 writes `persist.snapshot` (atomically) before the log changes, and
//! step 3 starts with `ready.restore` (replace the state machine by the snapshot's bytes) before
//! the committed entries.

mod log;
mod message;
mod node;

#[cfg(test)]
mod message_tests;
#[cfg(test)]
mod node_snapshot_tests;
#[cfg(test)]
mod node_tests;

pub use message::{
    MAX_CHUNK, MAX_CHUNK_LINE, MAX_COMMAND, MAX_ENTRIES, MAX_SNAPSHOT, Message, ParseError, escape,
    lines_after, parse, snapshot_data_len, unescape,
};
pub use node::{CompactError, Config, Node, Role};

/// A cluster member's id, as written in the cluster file (`0` is reserved for "nobody").
pub type NodeId = u64;

/// One log entry. `index` starts at 1; `command` is opaque to Raft (a journal record). The
/// empty command is the no-op a new leader appends: appliers skip it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    pub command: String,
}

/// What must survive a crash besides the log (Figure 2, "persistent state on all servers").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
}

/// The state machine as of entry `index` (of term `term`): what replaces entries `1..=index`
/// after a compaction (§7). `data` is opaque to Raft: the caller's own serialisation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The last entry the snapshot covers ("last included index").
    pub index: u64,
    /// That entry's term ("last included term").
    pub term: u64,
    pub data: Vec<u8>,
}

/// Everything a node was told to persist: what [`Node::new`] starts from after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    pub hard: HardState,
    /// The newest snapshot, if the log was ever compacted.
    pub snapshot: Option<Snapshot>,
    /// The log after the snapshot: entries `s+1, s+2, ...` in order (`s` = 0 without one).
    pub log: Vec<Entry>,
}

impl Persisted {
    /// Apply one [`Persist`] to this copy: what a journal writer does on disk.
    pub fn apply(&mut self, change: &Persist) {
        if let Some(hard) = change.hard_state {
            self.hard = hard;
        }
        if let Some(snapshot) = &change.snapshot {
            self.log.retain(|e| e.index > snapshot.index);
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(from) = change.truncate_from {
            self.log.retain(|e| e.index < from);
        }
        self.log.extend(change.append.iter().cloned());
    }
}

/// What to write durably before sending anything, in this order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// A new term or vote, when either changed.
    pub hard_state: Option<HardState>,
    /// A new snapshot: write it whole (atomically), then drop every stored entry it covers
    /// (index <= `snapshot.index`) ...
    pub snapshot: Option<Snapshot>,
    /// Drop every stored entry with index >= this (a conflict found by log matching) ...
    pub truncate_from: Option<u64>,
    /// ... then append these, in order (their indexes follow the kept entries).
    pub append: Vec<Entry>,
}

/// The output of one or more calls: persist, then send, then apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    pub persist: Persist,
    /// Messages to deliver, each to the member named.
    pub send: Vec<(NodeId, Message)>,
    /// A snapshot received from the leader: replace the state machine by its bytes before
    /// applying `committed` (which then starts right after `restore.index`).
    pub restore: Option<Snapshot>,
    /// Entries newly known committed, in index order, to apply to the state machine.
    pub committed: Vec<Entry>,
}

impl Ready {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist == Persist::default()
            && self.send.is_empty()
            && self.restore.is_none()
            && self.committed.is_empty()
    }
}

/// Where a proposal went: it is acknowledged once an entry with this index *and* term is
/// committed; a different term at that index means it was lost with its leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub index: u64,
    pub term: u64,
}

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// Only the leader takes proposals; `leader_hint` is the leader this node last heard from.
    NotLeader { leader_hint: Option<NodeId> },
    /// The escaped command would not fit an `ENTRY` line (see [`MAX_COMMAND`]).
    TooLong { len: usize },
}
