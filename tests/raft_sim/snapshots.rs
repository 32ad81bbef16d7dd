//! The simulated cluster's side of log compaction: its state machine (the commands a node
//! applied) as snapshot bytes, compacting when due, and restoring a snapshot with a check
//! against every command chosen at its indexes. Part of `Sim` (a child module, so it sees its
//! fields); no network or schedule of its own.

use torrentphile::raft::{NodeId, Snapshot, escape, unescape};

use super::Sim;

/// The sim's state machine (the commands applied, in order) as snapshot bytes.
fn encode(applied: &[String]) -> Vec<u8> {
    let mut text = String::new();
    for c in applied {
        text.push_str(&escape(c));
        text.push('\n');
    }
    text.into_bytes()
}

fn decode(data: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(data).ok()?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Some(Vec::new());
    }
    body.split('\n').map(unescape).collect()
}

impl Sim {
    /// Replace node `id`'s state machine by a snapshot, checking it against what was chosen.
    pub(super) fn restore(&mut self, id: NodeId, snapshot: &Snapshot) {
        let Some(applied) = decode(&snapshot.data) else {
            self.fail(&format!("node {id}: a snapshot does not decode"));
        };
        if applied.len() as u64 != snapshot.index {
            self.fail(&format!(
                "node {id}: the snapshot at {} holds {} commands",
                snapshot.index,
                applied.len()
            ));
        }
        for (k, command) in applied.iter().enumerate() {
            if let Some((_, chosen)) = self.chosen.get(&(k as u64 + 1))
                && chosen != command
            {
                self.fail(&format!(
                    "node {id}: the snapshot holds {command:?} at {}, {chosen:?} was chosen",
                    k + 1
                ));
            }
        }
        self.applied[id as usize - 1] = applied;
        // What this node proposed up to there may or may not be in it: never acknowledged.
        self.pending
            .retain(|(n, p, _)| *n != id || p.index > snapshot.index);
    }

    /// The driver's rule: compact once `snapshot_every` entries were applied past the snapshot.
    pub(super) fn compact_if_due(&mut self, id: NodeId) {
        let i = id as usize - 1;
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let applied = node.applied_index();
        if self.snapshot_every == 0 || applied < node.snapshot_index() + self.snapshot_every {
            return;
        }
        if applied != self.applied[i].len() as u64 {
            self.fail(&format!(
                "node {id}: applied index {applied} but {} commands applied",
                self.applied[i].len()
            ));
        }
        let data = encode(&self.applied[i]);
        if let Err(e) = node.compact(applied, data) {
            self.fail(&format!("node {id}: compact: {e}"));
        }
        self.compactions += 1;
        self.process(id);
    }
}
