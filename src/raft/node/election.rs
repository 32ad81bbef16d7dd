//! Elections: PreVote, RequestVote, the up-to-date check, and the role changes (§5.2, §5.4.1).
//!
//! Part of [`Node`]: it owns no state of its own and never does I/O; it only reads and changes
//! the node's role, term and vote, and queues messages in its outbox.

use std::collections::BTreeMap;

use super::{Node, Progress, Role};
use crate::raft::{Message, NodeId};

impl Node {
    pub(super) fn quorum(&self) -> usize {
        let members = self.peers.len() + 1;
        members / 2 + 1
    }

    pub(super) fn won(&self) -> bool {
        self.votes.values().filter(|&&v| v).count() >= self.quorum()
    }

    pub(super) fn reset_timer(&mut self) {
        self.election_elapsed = 0;
        let e = self.config.election_ticks;
        self.timeout = e + self.rng.below(e as usize) as u32;
    }

    /// A follower that heard from its leader within an election timeout (or a leader).
    pub(super) fn in_lease(&self) -> bool {
        self.config.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.config.election_ticks
    }

    /// §5.4.1: the candidate's log is at least as up-to-date as ours.
    pub(super) fn up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        let my_term = self.log.last_term();
        last_term > my_term || (last_term == my_term && last_index >= self.log.last_index())
    }

    pub(super) fn start_pre_vote(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.reset_timer();
        self.votes = BTreeMap::from([(self.id, true)]);
        if self.won() {
            return self.start_election();
        }
        let msg = Message::PreVote {
            term: self.term + 1,
            from: self.id,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.broadcast(msg);
    }

    pub(super) fn start_election(&mut self) {
        self.role = Role::Candidate;
        self.term += 1;
        self.voted_for = Some(self.id);
        self.hard_dirty = true;
        self.leader = None;
        self.reset_timer();
        self.votes = BTreeMap::from([(self.id, true)]);
        if self.won() {
            return self.become_leader();
        }
        let msg = Message::Vote {
            term: self.term,
            from: self.id,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        self.broadcast(msg);
    }

    pub(super) fn handle_vote(&mut self, from: NodeId, last_index: u64, last_term: u64) {
        let free = self.voted_for.is_none() || self.voted_for == Some(from);
        let granted = free && self.up_to_date(last_index, last_term);
        if granted {
            self.voted_for = Some(from);
            self.hard_dirty = true;
            // Figure 2: granting a vote resets the election timer.
            self.election_elapsed = 0;
        }
        let term = self.term;
        let id = self.id;
        self.send(
            from,
            Message::Voted {
                term,
                from: id,
                granted,
            },
        );
    }

    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.hard_dirty = true;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.progress.clear();
        self.reset_timer();
    }

    pub(super) fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.votes.clear();
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers
            .iter()
            .map(|&p| {
                let fresh = Progress {
                    next,
                    matched: 0,
                    active: false,
                    snap_index: 0,
                    snap_offset: 0,
                };
                (p, fresh)
            })
            .collect();
        // Thesis §8: a no-op of the new term lets earlier terms' entries commit (Figure 8).
        self.log.push(self.term, String::new());
        self.maybe_commit();
        self.broadcast_append();
    }
}
