//! Storage on a temporary folder: round trips, the torn-tail rule, snapshots, refusals.

use std::fs;
use std::path::PathBuf;

use super::snapfile;
use super::storage::{Storage, checksum, entry_line};
use crate::raft::{Entry, HardState, Persist, Persisted, Snapshot};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "torrentphile-storage-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index,
        term,
        command: command.into(),
    }
}

#[test]
fn what_is_saved_comes_back_after_truncation_and_appends() {
    let dir = temp("roundtrip");
    let (mut s, p) = Storage::open(&dir, 1, "f1").unwrap();
    assert_eq!(p, Persisted::default());
    let mut model = Persisted::default();
    let changes = [
        Persist {
            snapshot: None,
            hard_state: Some(HardState {
                term: 2,
                voted_for: Some(3),
            }),
            truncate_from: None,
            append: vec![
                entry(1, 1, ""),
                entry(2, 2, "a b  "),
                entry(3, 2, "x\n\\y é"),
            ],
        },
        Persist {
            snapshot: None,
            hard_state: None,
            truncate_from: Some(3),
            append: vec![entry(3, 3, "c"), entry(4, 3, "d")],
        },
        Persist {
            snapshot: None,
            hard_state: None,
            truncate_from: None,
            append: vec![entry(5, 3, "e")],
        },
        Persist {
            snapshot: None,
            hard_state: Some(HardState {
                term: 4,
                voted_for: None,
            }),
            truncate_from: Some(2),
            append: vec![entry(2, 4, "f")],
        },
    ];
    for c in &changes {
        s.save(c).unwrap();
        model.apply(c);
        drop(s);
        let (again, p) = Storage::open(&dir, 1, "f1").unwrap();
        assert_eq!(p, model);
        s = again;
    }
    assert_eq!(
        fs::read_to_string(dir.join("raft/log")).unwrap(),
        format!(
            "{}{}",
            entry_line(&entry(1, 1, "")),
            entry_line(&entry(2, 4, "f"))
        )
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_torn_tail_is_dropped_and_damage_before_it_is_refused() {
    let dir = temp("torn");
    let (mut s, _) = Storage::open(&dir, 1, "f").unwrap();
    s.save(&Persist {
        append: vec![entry(1, 1, "a"), entry(2, 1, "b")],
        ..Persist::default()
    })
    .unwrap();
    drop(s);
    let log = dir.join("raft/log");
    let good = fs::read(&log).unwrap();
    // Half an entry with no newline: dropped, and the file trimmed.
    let mut torn = good.clone();
    torn.extend_from_slice(b"1 c 1234");
    fs::write(&log, &torn).unwrap();
    let (_, p) = Storage::open(&dir, 1, "f").unwrap();
    assert_eq!(p.log.len(), 2);
    assert_eq!(fs::read(&log).unwrap(), good);
    // A whole last line with a wrong checksum: also a torn write.
    let mut bad_last = good.clone();
    bad_last.extend_from_slice(b"1 c 00000000\n");
    fs::write(&log, &bad_last).unwrap();
    assert_eq!(Storage::open(&dir, 1, "f").unwrap().1.log.len(), 2);
    // Damage in the middle: refused, naming the line.
    let mut damaged = good.clone();
    damaged[0] = b'7';
    fs::write(&log, &damaged).unwrap();
    let err = Storage::open(&dir, 1, "f").err().unwrap();
    assert!(err.contains("raft/log line 1 is damaged"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_folder_of_another_member_or_cluster_is_refused() {
    let dir = temp("member");
    Storage::open(&dir, 1, "aaaa").unwrap();
    let err = Storage::open(&dir, 2, "aaaa").err().unwrap();
    assert!(
        err.ends_with("says \"member 1 cluster aaaa\" but this is \"member 2 cluster aaaa\": the state folder belongs to another tracker or cluster; give each tracker its own --state folder"),
        "{err}"
    );
    assert!(Storage::open(&dir, 1, "bbbb").is_err());
    assert!(Storage::open(&dir, 1, "aaaa").is_ok());
    let _ = fs::remove_dir_all(&dir);
}

fn snap(index: u64, term: u64, data: &str) -> Snapshot {
    Snapshot {
        index,
        term,
        data: data.as_bytes().to_vec(),
    }
}

#[test]
fn a_restart_reads_the_snapshot_and_the_log_after_it() {
    let dir = temp("snapshot");
    let (mut s, _) = Storage::open(&dir, 1, "f").unwrap();
    let mut model = Persisted::default();
    let changes = [
        Persist {
            append: (1..=5).map(|i| entry(i, 1, &format!("c{i}"))).collect(),
            ..Persist::default()
        },
        // Our own compaction up to 3: entries 4 and 5 stay.
        Persist {
            snapshot: Some(snap(3, 1, "state at 3\n")),
            ..Persist::default()
        },
        Persist {
            append: vec![entry(6, 2, "c6")],
            ..Persist::default()
        },
        // A conflict after the snapshot.
        Persist {
            truncate_from: Some(6),
            append: vec![entry(6, 3, "d6"), entry(7, 3, "d7")],
            ..Persist::default()
        },
        // A leader's snapshot past our log: everything goes.
        Persist {
            snapshot: Some(snap(9, 4, "state at 9")),
            truncate_from: Some(10),
            ..Persist::default()
        },
        Persist {
            append: vec![entry(10, 4, "e10")],
            ..Persist::default()
        },
    ];
    for c in &changes {
        s.save(c).unwrap();
        model.apply(c);
        drop(s);
        let (again, p) = Storage::open(&dir, 1, "f").unwrap();
        assert_eq!(p, model, "after {c:?}");
        s = again;
    }
    assert_eq!(model.log, vec![entry(10, 4, "e10")]);
    let log = fs::read_to_string(dir.join("raft/log")).unwrap();
    assert!(log.starts_with("START 10 "), "{log}");
    let _ = fs::remove_dir_all(&dir);
    // The same changes on one open storage (its offsets kept in memory, never re-read).
    let (mut s, _) = Storage::open(&dir, 1, "f").unwrap();
    for c in &changes {
        s.save(c).unwrap();
    }
    drop(s);
    assert_eq!(Storage::open(&dir, 1, "f").unwrap().1, model);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_crash_between_the_snapshot_and_the_log_cut_is_repaired() {
    let dir = temp("snapcrash");
    let (mut s, _) = Storage::open(&dir, 1, "f").unwrap();
    let entries: Vec<Entry> = (1..=4).map(|i| entry(i, 1, &format!("c{i}"))).collect();
    s.save(&Persist {
        append: entries.clone(),
        ..Persist::default()
    })
    .unwrap();
    drop(s);
    // Our own snapshot at 2 on disk, the log not cut yet: entries 3 and 4 are kept.
    fs::write(
        dir.join("raft/snapshot"),
        snapfile::encode(&snap(2, 1, "x")),
    )
    .unwrap();
    let (_, p) = Storage::open(&dir, 1, "f").unwrap();
    assert_eq!(p.log, entries[2..].to_vec());
    assert_eq!(p.snapshot, Some(snap(2, 1, "x")));
    // A leader's snapshot at 3 of another term: the log after it conflicted, and goes.
    fs::write(
        dir.join("raft/snapshot"),
        snapfile::encode(&snap(3, 2, "y")),
    )
    .unwrap();
    let (_, p) = Storage::open(&dir, 1, "f").unwrap();
    assert_eq!(p.log, vec![]);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_snapshot_or_start_line_refuses_to_start_naming_the_file() {
    let dir = temp("snapdamage");
    let (mut s, _) = Storage::open(&dir, 1, "f").unwrap();
    s.save(&Persist {
        append: (1..=3).map(|i| entry(i, 1, "c")).collect(),
        ..Persist::default()
    })
    .unwrap();
    s.save(&Persist {
        snapshot: Some(snap(2, 1, "state")),
        ..Persist::default()
    })
    .unwrap();
    drop(s);
    let path = dir.join("raft/snapshot");
    let good = fs::read(&path).unwrap();
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(&path, &bad).unwrap();
    let err = Storage::open(&dir, 1, "f").err().unwrap();
    assert!(err.contains("raft/snapshot is damaged"), "{err}");
    assert_eq!(err.lines().count(), 1);
    fs::write(&path, &good[..good.len() - 2]).unwrap();
    assert!(Storage::open(&dir, 1, "f").is_err());
    fs::write(&path, &good).unwrap();
    // A damaged START line.
    let log = dir.join("raft/log");
    let text = fs::read_to_string(&log).unwrap();
    fs::write(&log, text.replacen("START 3", "START 4", 1)).unwrap();
    let err = Storage::open(&dir, 1, "f").err().unwrap();
    assert!(err.contains("raft/log line 1 (START) is damaged"), "{err}");
    // A log that starts past the snapshot: entries are missing.
    let body = "START 4";
    fs::write(&log, format!("{body} {}\n", checksum(body))).unwrap();
    let err = Storage::open(&dir, 1, "f").err().unwrap();
    assert!(
        err.contains("starts at entry 4 but the snapshot ends at 2"),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
}
