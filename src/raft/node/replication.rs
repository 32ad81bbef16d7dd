//! Replication: AppendEntries on both sides, log matching, and the commit rule (§5.3, §5.4.2).
//!
//! Part of [`Node`]: it owns no state of its own and never does I/O; it only changes the
//! node's log and the leader's view of each follower, and queues messages in its outbox.

use super::{Node, Role};
use crate::raft::{Entry, Message, NodeId};

impl Node {
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        mut prev_index: u64,
        mut prev_term: u64,
        commit: u64,
        mut entries: Vec<Entry>,
    ) {
        if self.role == Role::Leader {
            return; // Two leaders in one term cannot happen; a forged message is dropped.
        }
        if self.role != Role::Follower {
            self.become_follower(self.term, Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
        let last_new = prev_index + entries.len() as u64;
        // Entries up to our commit index already match the leader's (Leader Completeness):
        // skip them, so a late duplicate can never make us truncate a committed entry.
        if prev_index < self.log.commit {
            let skip = (self.log.commit - prev_index).min(entries.len() as u64);
            entries.drain(..skip as usize);
            prev_index += skip;
            prev_term = self.log.term_at(prev_index).unwrap_or(0);
        }
        let (term, id) = (self.term, self.id);
        // Below our snapshot means the leader sent only entries we hold committed (the skip
        // above ran out of entries): they match, whatever their terms.
        let matches =
            prev_index < self.log.base() || self.log.term_at(prev_index) == Some(prev_term);
        if !matches {
            let hint = self.conflict_hint(prev_index);
            let reply = Message::Appended {
                term,
                from: id,
                success: false,
                match_index: hint,
            };
            return self.send(from, reply);
        }
        for (k, e) in entries.iter().enumerate() {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => self.log.truncate_from(e.index),
                None => {}
            }
            for e in &entries[k..] {
                self.log.push(e.term, e.command.clone());
            }
            break;
        }
        if commit > self.log.commit {
            self.log.commit = commit.min(last_new).max(self.log.commit);
        }
        let reply = Message::Appended {
            term,
            from: id,
            success: true,
            match_index: last_new,
        };
        self.send(from, reply);
    }

    /// After a failed log check at `prev_index`: the highest index our log might share with
    /// the leader's. Skipping a whole conflicting term at once (§5.3's optimisation) keeps a
    /// follower that missed many entries from costing one round trip per entry.
    pub(super) fn conflict_hint(&self, prev_index: u64) -> u64 {
        let last = self.log.last_index();
        if prev_index > last {
            return last;
        }
        let conflict = self.log.term_at(prev_index);
        let mut i = prev_index;
        while i > self.log.commit + 1 && self.log.term_at(i - 1) == conflict {
            i -= 1;
        }
        (i - 1).max(self.log.commit)
    }

    pub(super) fn handle_appended(&mut self, from: NodeId, success: bool, match_index: u64) {
        let last = self.log.last_index();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.active = true;
        if success {
            if match_index > last {
                return; // More than we ever sent: not a real reply.
            }
            let before = p.next;
            p.matched = p.matched.max(match_index);
            p.next = p.next.max(p.matched + 1);
            // Send more at once only when this reply moved us: a duplicated or late reply
            // must not start a second stream of APPENDs (the heartbeat retries anyway).
            let more = p.next > before && p.next <= last;
            self.maybe_commit();
            if more {
                self.send_append(from);
            }
        } else {
            let before = p.next;
            p.next = (p.next - 1).min(match_index + 1).max(p.matched + 1);
            if p.next < before {
                self.send_append(from);
            }
        }
    }

    /// Figure 2, last rule for leaders: commit the highest index of the *current term* that a
    /// majority holds. Older terms' entries commit only underneath it (§5.4.2, Figure 8).
    pub(super) fn maybe_commit(&mut self) {
        let mut n = self.log.last_index();
        while n > self.log.commit && self.log.term_at(n) == Some(self.term) {
            let holders = 1 + self.progress.values().filter(|p| p.matched >= n).count();
            if holders >= self.quorum() {
                self.log.commit = n;
                return;
            }
            n -= 1;
        }
    }

    pub(super) fn send_append(&mut self, to: NodeId) {
        let Some(p) = self.progress.get_mut(&to) else {
            return;
        };
        p.next = p.next.clamp(1, self.log.last_index() + 1);
        if p.next <= self.log.base() {
            // The entries it needs were compacted away: send the snapshot (§7).
            return self.send_snapshot(to);
        }
        let prev_index = p.next - 1;
        let msg = Message::Append {
            term: self.term,
            from: self.id,
            prev_index,
            prev_term: self.log.term_at(prev_index).unwrap_or(0),
            commit: self.log.commit,
            entries: self.log.slice(p.next, self.config.max_batch),
        };
        self.send(to, msg);
    }

    pub(super) fn broadcast_append(&mut self) {
        for to in self.peers.clone() {
            self.send_append(to);
        }
    }

    pub(super) fn broadcast(&mut self, msg: Message) {
        for &to in &self.peers {
            self.outbox.push((to, msg.clone()));
        }
    }

    pub(super) fn send(&mut self, to: NodeId, msg: Message) {
        self.outbox.push((to, msg));
    }
}
