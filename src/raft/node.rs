//! One Raft server: Figure 2's rules as methods, driven by `tick`, `step` and `propose`.
//!
//! It owns the role, the term, the vote, the leader's view of each follower, and the outbox.
//! It never does I/O or reads a clock; its only randomness is the seeded election timeout.
//! Every handler starts with the rule "a message with a higher term turns me into a follower of
//! that term; a message with a lower term is stale" (Figure 2, "all servers").

mod election;
mod replication;
mod snapshot;

use std::collections::BTreeMap;

use super::log::Log;
use super::message::{MAX_CHUNK, MAX_COMMAND, MAX_ENTRIES, Message, escape};
use super::{Entry, HardState, NodeId, Persisted, Proposal, ProposeError, Ready, Snapshot};

use crate::util::Rng;
pub use snapshot::CompactError;

/// Timing and options, in ticks (the caller decides how long a tick is).
#[derive(Clone, Debug)]
pub struct Config {
    /// A follower that hears nothing for a random time in `[e, 2e)` ticks starts an election;
    /// a leader checks its quorum every `e` ticks.
    pub election_ticks: u32,
    /// A leader sends `APPEND` (a heartbeat, or the entries a follower lacks) this often.
    pub heartbeat_ticks: u32,
    /// Most entries in one `APPEND` (at most [`MAX_ENTRIES`]).
    pub max_batch: usize,
    /// Ask `PREVOTE` before a real election (thesis §9.6).
    pub pre_vote: bool,
    /// A leader without a majority for an election timeout steps down, and a follower with a
    /// live leader ignores vote requests (thesis §6.2, §4.2.3).
    pub check_quorum: bool,
    /// Most snapshot bytes in one `SNAPSHOT` message (at most [`MAX_CHUNK`]).
    pub snapshot_chunk: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_batch: MAX_ENTRIES,
            pre_vote: true,
            check_quorum: true,
            snapshot_chunk: MAX_CHUNK,
        }
    }
}

/// What a node currently is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Follower,
    /// Asking `PREVOTE`: its term has not changed yet.
    PreCandidate,
    Candidate,
    Leader,
}

impl Role {
    /// The word `STATUS` and the trace use.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Candidate => "candidate",
            Role::PreCandidate => "precandidate",
            Role::Follower => "follower",
        }
    }
}

/// The leader's view of one follower (Figure 2, "volatile state on leaders").
#[derive(Clone, Copy, Debug)]
struct Progress {
    next: u64,
    matched: u64,
    /// Heard from in the current check-quorum window.
    active: bool,
    /// The snapshot being sent to this follower (its last index), and the offset of the next
    /// chunk it asked for.
    snap_index: u64,
    snap_offset: u64,
}

/// One Raft server. See the module docs of [`crate::raft`] for the caller's loop.
pub struct Node {
    id: NodeId,
    peers: Vec<NodeId>,
    config: Config,
    rng: Rng,
    role: Role,
    term: u64,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    log: Log,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    timeout: u32,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    hard_dirty: bool,
    outbox: Vec<(NodeId, Message)>,
    /// A snapshot arriving from the leader, chunk by chunk.
    incoming: Option<Snapshot>,
}

impl Node {
    /// A node `id` among `peers` (the other members; `id` itself is ignored if listed),
    /// starting from what it persisted (empty for a new cluster), with the default [`Config`].
    /// `seed` drives its election timeouts: give each node its own.
    pub fn new(id: NodeId, peers: &[NodeId], persisted: Persisted, seed: u64) -> Node {
        Node::with_config(Config::default(), id, peers, persisted, seed)
    }

    /// [`Node::new`] with explicit timing and options.
    pub fn with_config(
        config: Config,
        id: NodeId,
        peers: &[NodeId],
        persisted: Persisted,
        seed: u64,
    ) -> Node {
        let mut peers: Vec<NodeId> = peers.iter().copied().filter(|&p| p != id).collect();
        peers.sort_unstable();
        peers.dedup();
        let config = Config {
            election_ticks: config.election_ticks.max(1),
            heartbeat_ticks: config.heartbeat_ticks.max(1),
            max_batch: config.max_batch.clamp(1, MAX_ENTRIES),
            snapshot_chunk: config.snapshot_chunk.clamp(1, MAX_CHUNK),
            ..config
        };
        let mut node = Node {
            id,
            peers,
            rng: Rng::new(seed ^ id.rotate_left(17)),
            role: Role::Follower,
            term: persisted.hard.term,
            voted_for: persisted.hard.voted_for,
            leader: None,
            log: Log::restore(persisted.snapshot, persisted.log),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            timeout: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            hard_dirty: false,
            outbox: Vec::new(),
            incoming: None,
            config,
        };
        node.reset_timer();
        node
    }

    pub fn id(&self) -> NodeId {
        self.id
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// The leader this node last heard from in its current term (itself when leading).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    pub fn commit_index(&self) -> u64 {
        self.log.commit
    }
    pub fn last_index(&self) -> u64 {
        self.log.last_index()
    }
    /// The highest index handed to the caller to apply (or restored from a snapshot).
    pub fn applied_index(&self) -> u64 {
        self.log.applied()
    }
    /// The last index the newest snapshot covers (0 before any compaction).
    pub fn snapshot_index(&self) -> u64 {
        self.log.base()
    }
    /// The entry at `index` in this node's log (committed or not; `None` once compacted).
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        self.log.entry(index)
    }
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }

    /// Take what the last calls produced: persist it, then send it, then apply it.
    pub fn ready(&mut self) -> Ready {
        let mut ready = Ready::default();
        if std::mem::take(&mut self.hard_dirty) {
            ready.persist.hard_state = Some(self.hard_state());
        }
        let (snapshot, truncate_from, append) = self.log.take_unstable();
        ready.persist.snapshot = snapshot;
        ready.persist.truncate_from = truncate_from;
        ready.persist.append = append;
        ready.send = std::mem::take(&mut self.outbox);
        ready.restore = self.log.take_restore();
        ready.committed = self.log.take_committed();
        ready
    }

    /// One unit of time has passed.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if self.role != Role::Leader {
            if self.election_elapsed >= self.timeout {
                self.campaign();
            }
            return;
        }
        self.heartbeat_elapsed += 1;
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_append();
        }
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum {
                let heard = 1 + self.progress.values().filter(|p| p.active).count();
                self.progress.values_mut().for_each(|p| p.active = false);
                if heard < self.quorum() {
                    // Cut off from the majority: stop acting (and acknowledging) as leader.
                    self.become_follower(self.term, None);
                }
            }
        }
    }

    /// Propose a command (a journal record). Only the leader accepts; the command is
    /// acknowledged when an entry with the returned index and term comes out in
    /// [`Ready::committed`].
    pub fn propose(&mut self, command: String) -> Result<Proposal, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader_hint: self.leader,
            });
        }
        let len = escape(&command).len();
        if len > MAX_COMMAND {
            return Err(ProposeError::TooLong { len });
        }
        let index = self.log.push(self.term, command);
        self.maybe_commit();
        self.broadcast_append();
        Ok(Proposal {
            index,
            term: self.term,
        })
    }

    /// Start an election now, as if the election timeout had fired (tests, or an operator
    /// nudging a cluster). A leader ignores it.
    pub fn campaign(&mut self) {
        match self.role {
            Role::Leader => {}
            _ if self.config.pre_vote => self.start_pre_vote(),
            _ => self.start_election(),
        }
    }

    /// Handle one message from a peer. Messages from non-members or from itself are ignored.
    pub fn step(&mut self, msg: Message) {
        let from = msg.from();
        if from == self.id || !self.peers.contains(&from) {
            return;
        }
        let term = msg.term();
        if term > self.term {
            match msg {
                // A pre-vote asks about a future term: nobody changes term for it.
                Message::PreVote { .. } | Message::PreVoted { granted: true, .. } => {}
                // We have a live leader: a vote request is a disruption, not news (§4.2.3).
                Message::Vote { .. } if self.in_lease() => return,
                Message::Append { .. } | Message::Snapshot { .. } => {
                    self.become_follower(term, Some(from))
                }
                _ => self.become_follower(term, None),
            }
        } else if term < self.term {
            // Stale sender: answer with our term so a stale leader or candidate steps down.
            let term = self.term;
            let id = self.id;
            let reply = match msg {
                Message::Append { .. } | Message::Snapshot { .. } => Message::Appended {
                    term,
                    from: id,
                    success: false,
                    match_index: 0,
                },
                Message::Vote { .. } => Message::Voted {
                    term,
                    from: id,
                    granted: false,
                },
                Message::PreVote { .. } => Message::PreVoted {
                    term,
                    from: id,
                    granted: false,
                },
                _ => return,
            };
            self.send(from, reply);
            return;
        }
        match msg {
            Message::PreVote {
                term,
                last_index,
                last_term,
                ..
            } => {
                let granted =
                    term > self.term && self.up_to_date(last_index, last_term) && !self.in_lease();
                let term = if granted { term } else { self.term };
                let id = self.id;
                self.send(
                    from,
                    Message::PreVoted {
                        term,
                        from: id,
                        granted,
                    },
                );
            }
            Message::Vote {
                last_index,
                last_term,
                ..
            } => self.handle_vote(from, last_index, last_term),
            Message::PreVoted { term, granted, .. } => {
                if self.role == Role::PreCandidate && granted && term == self.term + 1 {
                    self.votes.insert(from, true);
                    if self.won() {
                        self.start_election();
                    }
                }
            }
            Message::Voted { granted, .. } => {
                if self.role == Role::Candidate {
                    self.votes.insert(from, granted);
                    if self.won() {
                        self.become_leader();
                    }
                }
            }
            Message::Append {
                prev_index,
                prev_term,
                commit,
                entries,
                ..
            } => self.handle_append(from, prev_index, prev_term, commit, entries),
            Message::Appended {
                success,
                match_index,
                ..
            } => self.handle_appended(from, success, match_index),
            Message::Snapshot {
                last_index,
                last_term,
                offset,
                done,
                data,
                ..
            } => self.handle_snapshot(from, last_index, last_term, offset, done, data),
            Message::Snapped {
                last_index,
                received,
                ..
            } => self.handle_snapped(from, last_index, received),
        }
    }
}
