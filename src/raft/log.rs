//! A node's copy of the replicated log, in memory, and the bookkeeping of what changed.
//!
//! It owns the entries, the commit and applied indexes, and the answer to "what must the caller
//! write to disk, and what may it apply, since it last asked". It never decides anything Raft
//! decides (who leads, what commits): `node.rs` does, and calls in here.

use super::Entry;

pub(super) struct Log {
    /// `entries[i].index == i + 1`: the log starts at index 1, index 0 is the empty prefix.
    entries: Vec<Entry>,
    /// Highest index known committed (volatile, Figure 2).
    pub(super) commit: u64,
    /// Highest index handed to the caller to apply.
    applied: u64,
    /// The caller's disk holds entries `1..=stable_last` (as of the last `Ready`).
    stable_last: u64,
    /// Lowest index changed since the last `Ready`, if any.
    unstable_from: Option<u64>,
}

impl Log {
    /// A log as read back from disk; indexes are renumbered by position, 1, 2, 3 ...
    pub(super) fn restore(mut entries: Vec<Entry>) -> Log {
        for (i, e) in entries.iter_mut().enumerate() {
            e.index = i as u64 + 1;
        }
        let stable_last = entries.len() as u64;
        Log {
            entries,
            commit: 0,
            applied: 0,
            stable_last,
            unstable_from: None,
        }
    }

    pub(super) fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    pub(super) fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// The term of the entry at `index` (0 for index 0), or `None` past the end.
    pub(super) fn term_at(&self, index: u64) -> Option<u64> {
        match index {
            0 => Some(0),
            i if i <= self.last_index() => Some(self.entries[i as usize - 1].term),
            _ => None,
        }
    }

    pub(super) fn entry(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Up to `max` entries starting at `from` (empty past the end).
    pub(super) fn slice(&self, from: u64, max: usize) -> Vec<Entry> {
        let start = (from.max(1) - 1) as usize;
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
            self.entries.truncate(index as usize - 1);
            self.mark(index);
        }
    }

    fn mark(&mut self, index: u64) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }

    /// What to write since the last call: (truncate stored entries from here, then append).
    pub(super) fn take_unstable(&mut self) -> (Option<u64>, Vec<Entry>) {
        let Some(from) = self.unstable_from.take() else {
            return (None, Vec::new());
        };
        // A plain append needs no truncation; only rewriting entries the disk holds does.
        let truncate = (from <= self.stable_last).then_some(from);
        let append = self.slice(from, usize::MAX);
        self.stable_last = self.last_index();
        (truncate, append)
    }

    /// Newly committed entries the caller has not applied yet.
    pub(super) fn take_committed(&mut self) -> Vec<Entry> {
        let from = self.applied + 1;
        let n = self.commit.saturating_sub(self.applied) as usize;
        self.applied = self.commit;
        self.slice(from, n)
    }
}
