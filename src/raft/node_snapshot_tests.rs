//! Compaction and InstallSnapshot driven by hand: what each call puts in its `Ready`
//! (Figure 13's receiver rules 6 and 7, chunk offsets, and the leader switching to a snapshot).

use super::{CompactError, Config, Entry, HardState, Message, Node, Persisted, Snapshot};

fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index,
        term,
        command: command.to_string(),
    }
}

fn follower(log: Vec<Entry>) -> (Node, Persisted) {
    let disk = Persisted {
        hard: HardState {
            term: 3,
            voted_for: None,
        },
        snapshot: None,
        log,
    };
    let config = Config {
        snapshot_chunk: 4,
        ..Config::default()
    };
    (Node::with_config(config, 1, &[2, 3], disk.clone(), 1), disk)
}

fn chunk(offset: u64, done: bool, data: &[u8], last_term: u64) -> Message {
    Message::Snapshot {
        term: 3,
        from: 2,
        last_index: 3,
        last_term,
        offset,
        done,
        data: data.to_vec(),
    }
}

fn snapped(received: u64) -> Message {
    Message::Snapped {
        term: 3,
        from: 1,
        last_index: 3,
        received,
    }
}

fn installed() -> Message {
    Message::Appended {
        term: 3,
        from: 1,
        success: true,
        match_index: 3,
    }
}

#[test]
fn a_snapshot_whose_last_entry_matches_keeps_the_log_after_it() {
    let log = vec![
        entry(1, 1, "a"),
        entry(2, 2, "b"),
        entry(3, 2, "c"),
        entry(4, 3, "d"),
    ];
    let (mut node, mut disk) = follower(log);
    node.step(chunk(0, false, b"stat", 2));
    assert_eq!(node.ready().send, vec![(2, snapped(4))]);
    // A chunk at the wrong offset (lost, duplicated) is answered with the offset wanted.
    node.step(chunk(9, true, b"x", 2));
    assert_eq!(node.ready().send, vec![(2, snapped(4))]);
    node.step(chunk(4, true, b"e", 2));
    let ready = node.ready();
    assert_eq!(ready.send, vec![(2, installed())]);
    let snapshot = Snapshot {
        index: 3,
        term: 2,
        data: b"state".to_vec(),
    };
    assert_eq!(ready.persist.snapshot, Some(snapshot.clone()));
    assert_eq!(ready.persist.truncate_from, None);
    assert_eq!(ready.restore, Some(snapshot));
    assert!(ready.committed.is_empty());
    disk.apply(&ready.persist);
    assert_eq!(disk.log, vec![entry(4, 3, "d")]);
    assert_eq!(
        (
            node.snapshot_index(),
            node.commit_index(),
            node.last_index()
        ),
        (3, 3, 4)
    );
}

#[test]
fn a_snapshot_that_conflicts_discards_the_whole_log() {
    let log = vec![
        entry(1, 1, "a"),
        entry(2, 2, "b"),
        entry(3, 2, "c"),
        entry(4, 2, "d"),
    ];
    let (mut node, mut disk) = follower(log);
    node.step(chunk(0, true, b"st", 3));
    let ready = node.ready();
    assert_eq!(ready.send, vec![(2, installed())]);
    assert_eq!(ready.persist.truncate_from, Some(4));
    disk.apply(&ready.persist);
    assert_eq!(disk.log, vec![]);
    assert_eq!(
        disk.snapshot.as_ref().map(|s| (s.index, s.term)),
        Some((3, 3))
    );
    assert_eq!((node.last_index(), node.entry(4)), (3, None));
    // A restart from that disk starts at the snapshot.
    let node = Node::new(1, &[2, 3], disk, 2);
    assert_eq!(
        (node.last_index(), node.commit_index(), node.applied_index()),
        (3, 3, 3)
    );
}

#[test]
fn compaction_needs_applied_entries_and_cuts_the_log() {
    let mut node = Node::new(1, &[], Persisted::default(), 1);
    node.campaign();
    for c in ["a", "b", "c"] {
        node.propose(c.to_string()).unwrap();
    }
    assert_eq!(
        node.compact(2, vec![]),
        Err(CompactError::NotApplied {
            index: 2,
            applied: 0
        })
    );
    let applied = node.ready().committed.len() as u64;
    assert_eq!(applied, 4); // the no-op and three commands
    node.compact(3, b"abc".to_vec()).unwrap();
    assert_eq!(
        node.compact(3, vec![]),
        Err(CompactError::AlreadyCompacted { index: 3, base: 3 })
    );
    let ready = node.ready();
    let snapshot = ready.persist.snapshot.expect("a snapshot to persist");
    assert_eq!(
        (snapshot.index, snapshot.term, &snapshot.data[..]),
        (3, 1, &b"abc"[..])
    );
    assert_eq!(ready.restore, None);
    assert_eq!(node.entry(3), None);
    assert_eq!(node.entry(4).map(|e| e.command.as_str()), Some("c"));
}
