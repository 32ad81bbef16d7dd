//! Log compaction and InstallSnapshot (§7, Figure 13) on both sides.
//!
//! Part of [`Node`]: it owns no state of its own and never does I/O. The caller decides when
//! to compact and what the snapshot bytes are ([`Node::compact`]); the leader sends them in
//! chunks (`SNAPSHOT`) to a follower that needs an entry the snapshot replaced, one chunk per
//! reply (`SNAPPED` asks for the next offset), so a lossy network only costs a resend; the
//! follower installs the whole snapshot once the last chunk arrives and answers `APPENDED`,
//! after which replication goes on entry by entry.

use std::fmt;

use super::{Node, Role};
use crate::raft::{MAX_SNAPSHOT, Message, NodeId, Snapshot};

/// Why [`Node::compact`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// The snapshot would cover entries the caller has not applied yet.
    NotApplied { index: u64, applied: u64 },
    /// The log is already compacted up to `base`, at or past `index`.
    AlreadyCompacted { index: u64, base: u64 },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CompactError::NotApplied { index, applied } => {
                write!(f, "entry {index} is not applied yet (applied: {applied})")
            }
            CompactError::AlreadyCompacted { index, base } => {
                write!(f, "entry {index} is already compacted (snapshot at {base})")
            }
        }
    }
}

impl Node {
    /// Replace entries `1..=index` of the log by `data`, the caller's state machine as of
    /// entry `index` (which it has applied). The snapshot comes out in the next
    /// [`crate::raft::Ready`]'s `persist.snapshot`, to be written before the log is cut.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), CompactError> {
        let (base, applied) = (self.log.base(), self.log.applied());
        if index <= base {
            return Err(CompactError::AlreadyCompacted { index, base });
        }
        if index > applied {
            return Err(CompactError::NotApplied { index, applied });
        }
        let term = self.log.term_at(index).unwrap_or(0);
        self.log.compact(Snapshot { index, term, data });
        Ok(())
    }

    /// Leader: send `to` the chunk of the current snapshot it asked for last.
    pub(super) fn send_snapshot(&mut self, to: NodeId) {
        let chunk = self.config.snapshot_chunk;
        let snap = self.log.snapshot();
        let Some(p) = self.progress.get_mut(&to) else {
            return;
        };
        if p.snap_index != snap.index {
            p.snap_index = snap.index;
            p.snap_offset = 0;
        }
        let len = snap.data.len();
        let start = (p.snap_offset as usize).min(len);
        let end = start.saturating_add(chunk).min(len);
        let msg = Message::Snapshot {
            term: self.term,
            from: self.id,
            last_index: snap.index,
            last_term: snap.term,
            offset: start as u64,
            done: end == len,
            data: snap.data[start..end].to_vec(),
        };
        self.send(to, msg);
    }

    /// Leader: a follower holds `received` bytes of the snapshot ending at `last_index`.
    pub(super) fn handle_snapped(&mut self, from: NodeId, last_index: u64, received: u64) {
        let (base, len) = (self.log.base(), self.log.snapshot().data.len() as u64);
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.active = true;
        // A reply about an older snapshot, or one that claims more than there is: ignore it
        // (the heartbeat resends the current chunk anyway).
        if last_index != base || p.snap_index != base || received > len {
            return;
        }
        if received != p.snap_offset {
            p.snap_offset = received;
            if p.next <= base {
                self.send_snapshot(from);
            }
        }
    }

    /// Follower: one chunk of the leader's snapshot (Figure 13's receiver rules).
    pub(super) fn handle_snapshot(
        &mut self,
        from: NodeId,
        last_index: u64,
        last_term: u64,
        offset: u64,
        done: bool,
        data: Vec<u8>,
    ) {
        if self.role == Role::Leader {
            return; // Two leaders in one term cannot happen; a forged message is dropped.
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        let (term, id) = (self.term, self.id);
        if last_index <= self.log.commit {
            // We already hold (committed, so matching) everything it covers.
            self.incoming = None;
            let reply = Message::Appended {
                term,
                from: id,
                success: true,
                match_index: last_index,
            };
            return self.send(from, reply);
        }
        if offset == 0 {
            self.incoming = Some(Snapshot {
                index: last_index,
                term: last_term,
                data: Vec::new(),
            });
        }
        let mut accepted = false;
        let received = match &mut self.incoming {
            Some(s) if s.index == last_index && s.term == last_term => {
                let fits = s.data.len() + data.len() <= MAX_SNAPSHOT;
                if s.data.len() as u64 == offset && fits {
                    s.data.extend_from_slice(&data);
                    accepted = true;
                } else if !fits {
                    s.data.clear(); // Too big to hold: start over (and never finish).
                }
                s.data.len() as u64
            }
            _ => 0,
        };
        let whole = done && accepted;
        if !whole {
            let reply = Message::Snapped {
                term,
                from: id,
                last_index,
                received,
            };
            return self.send(from, reply);
        }
        if let Some(snapshot) = self.incoming.take() {
            self.log.install(snapshot);
        }
        let reply = Message::Appended {
            term,
            from: id,
            success: true,
            match_index: last_index,
        };
        self.send(from, reply);
    }
}
