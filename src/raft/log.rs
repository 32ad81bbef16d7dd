//! A node's copy of the replicated log, in memory, and the bookkeeping of what changed.
//!
//! It owns the entries after the snapshot base, the snapshot itself (§7), the commit and
//! applied indexes, and the answer to "what must the caller write to disk, restore, and apply,
//! since it last asked". It never decides anything Raft decides (who leads, what commits,
//! when to compact): `node.rs` does, and calls in here.

use super::{Entry, Snapshot};

pub(super) struct Log {
    /// The newest snapshot: entries `1..=snapshot.index` are in it, not in `entries`.
    /// Index 0, term 0 and no data before the first compaction.
    snapshot: Snapshot,
    /// `entries[i].index == snapshot.index + 1 + i`.
    entries: Vec<Entry>,
    /// Highest index known committed (volatile, Figure 2).
    pub(super) commit: u64,
    /// Highest index handed to the caller to apply (or restored from a snapshot).
    applied: u64,
    /// The caller's disk holds entries up to `stable_last` (as of the last `Ready`).
    stable_last: u64,
    /// Lowest index changed since the last `Ready`, if any.
    unstable_from: Option<u64>,
    /// A snapshot the caller has not persisted yet.
    snapshot_unstable: bool,
    /// A snapshot from the leader the caller has not restored its state machine from yet.
    restore_pending: bool,
}

impl Log {
    /// A log as read back from disk: the snapshot (if any), then the entries after it,
    /// renumbered by position. The snapshot counts as committed and applied: the caller
    /// restores its state machine from it before starting the node.
    pub(super) fn restore(snapshot: Option<Snapshot>, mut entries: Vec<Entry>) -> Log {
        let snapshot = snapshot.unwrap_or_default();
        for (i, e) in entries.iter_mut().enumerate() {
            e.index = snapshot.index + i as u64 + 1;
        }
        let stable_last = snapshot.index + entries.len() as u64;
        Log {
            commit: snapshot.index,
            applied: snapshot.index,
            snapshot,
            entries,
            stable_last,
            unstable_from: None,
            snapshot_unstable: false,
            restore_pending: false,
        }
    }

    /// The last index the snapshot covers (0 before any compaction).
    pub(super) fn base(&self) -> u64 {
        self.snapshot.index
    }

    pub(super) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub(super) fn applied(&self) -> u64 {
        self.applied
    }

    pub(super) fn last_index(&self) -> u64 {
        self.snapshot.index + self.entries.len() as u64
    }

    pub(super) fn last_term(&self) -> u64 {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of the entry at `index` (the snapshot's for its last index), or `None` past
    /// the end or before the snapshot (compacted away).
    pub(super) fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub(super) fn entry(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(self.snapshot.index + 1)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Up to `max` entries starting at `from` (empty past the end; never before the base).
    pub(super) fn slice(&self, from: u64, max: usize) -> Vec<Entry> {
        let start = from.saturating_sub(self.snapshot.index + 1) as usize;
        self.entries.iter().skip(start).take(max).cloned().collect()
    }

    /// Append one entry at the end (a leader's own entry).
    pub(super) fn push(&mut self, term: u64, command: String) -> u64 {
        let index = self.last_index() + 1;
        self.entries.push(Entry {
            index,
            term,
            command,
        });
        self.mark(index);
        index
    }

    /// Drop every entry from `index` on (a conflict), never below the commit index.
    pub(super) fn truncate_from(&mut self, index: u64) {
        debug_assert!(index > self.commit, "truncating a committed entry");
        let index = index.max(self.commit + 1);
        if index <= self.last_index() {
            self.entries
                .truncate((index - self.snapshot.index - 1) as usize);
            self.mark(index);
        }
    }

    /// Our own compaction: `snapshot` covers entries up to its index, which must be applied.
    pub(super) fn compact(&mut self, snapshot: Snapshot) {
        let drop = (snapshot.index - self.snapshot.index) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.snapshot = snapshot;
        self.snapshot_unstable = true;
    }

    /// A snapshot from the leader (Figure 13, receiver rules 6 and 7): keep the entries that
    /// follow it if the log holds its last entry with its term, else discard the whole log.
    /// Everything it covers is committed, and the state machine is to be restored from it.
    pub(super) fn install(&mut self, snapshot: Snapshot) {
        if self.term_at(snapshot.index) == Some(snapshot.term) {
            let drop = (snapshot.index - self.snapshot.index) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            if self.stable_last > snapshot.index || !self.entries.is_empty() {
                self.mark(snapshot.index.saturating_add(1));
            }
            self.entries.clear();
        }
        self.commit = self.commit.max(snapshot.index);
        self.applied = snapshot.index;
        self.stable_last = self.stable_last.max(snapshot.index);
        self.snapshot = snapshot;
        self.snapshot_unstable = true;
        self.restore_pending = true;
    }

    fn mark(&mut self, index: u64) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }

    /// What to write since the last call: (a new snapshot, truncate stored entries from here,
    /// then append).
    pub(super) fn take_unstable(&mut self) -> (Option<Snapshot>, Option<u64>, Vec<Entry>) {
        let snapshot = std::mem::take(&mut self.snapshot_unstable).then(|| self.snapshot.clone());
        let Some(from) = self.unstable_from.take() else {
            return (snapshot, None, Vec::new());
        };
        // A plain append needs no truncation; only rewriting entries the disk holds does.
        let truncate = (from <= self.stable_last).then_some(from);
        let append = self.slice(from, usize::MAX);
        self.stable_last = self.last_index();
        (snapshot, truncate, append)
    }

    /// The snapshot to restore the state machine from, once, after an install.
    pub(super) fn take_restore(&mut self) -> Option<Snapshot> {
        std::mem::take(&mut self.restore_pending).then(|| self.snapshot.clone())
    }

    /// Newly committed entries the caller has not applied yet.
    pub(super) fn take_committed(&mut self) -> Vec<Entry> {
        let from = self.applied + 1;
        let n = self.commit.saturating_sub(self.applied) as usize;
        self.applied = self.commit;
        self.slice(from, n)
    }
}
