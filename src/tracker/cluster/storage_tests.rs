//! Storage on a temporary folder: round trips, the torn-tail rule, snapshots, refusals.

use super::*;

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
