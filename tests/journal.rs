//! The journal on real files: records survive a reopen, a torn tail is dropped and named, a
//! damaged middle stops the start naming the line, a compaction keeps every record, concurrent
//! appends all land (and share syncs), and a full disk refuses a record without losing any.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use torrentphile::journal::{JOURNAL, Journal, SNAPSHOT};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tp-journal-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn lines(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

#[test]
fn records_survive_a_reopen_in_order() {
    let dir = scratch("reopen");
    let (j, opened) = Journal::open(&dir).unwrap();
    assert!(opened.records.is_empty());
    assert_eq!(j.append(&lines(&["a 1"])).unwrap(), 1);
    assert_eq!(j.append(&lines(&["b 2", "c 3"])).unwrap(), 3);
    drop(j);
    let (j, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records, lines(&["a 1", "b 2", "c 3"]));
    assert!(opened.warnings.is_empty());
    assert_eq!(j.append(&lines(&["d"])).unwrap(), 4);
    assert!(j.append(&lines(&["two\nlines"])).is_err());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_torn_tail_is_dropped_with_a_warning_and_cut_off() {
    let dir = scratch("torn");
    let (j, _) = Journal::open(&dir).unwrap();
    j.append(&lines(&["a", "b", "ccccccccc"])).unwrap();
    drop(j);
    let path = dir.join(JOURNAL);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 4]).unwrap();
    let (j, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records, lines(&["a", "b"]));
    assert_eq!(opened.warnings.len(), 1);
    assert!(
        opened.warnings[0].contains("torn last record on line 3"),
        "{:?}",
        opened.warnings
    );
    // The next record follows the last good one, and a reopen is clean.
    assert_eq!(j.append(&lines(&["c"])).unwrap(), 3);
    drop(j);
    let (_, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records, lines(&["a", "b", "c"]));
    assert!(opened.warnings.is_empty());
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_damaged_middle_record_stops_the_start_naming_the_line() {
    let dir = scratch("middle");
    let (j, _) = Journal::open(&dir).unwrap();
    j.append(&lines(&["first", "second", "third"])).unwrap();
    drop(j);
    let path = dir.join(JOURNAL);
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("second", "secomd");
    fs::write(&path, text).unwrap();
    let err = Journal::open(&dir)
        .err()
        .expect("a damaged journal must not open");
    assert!(
        err.contains("journal: line 2 is damaged (checksum mismatch)"),
        "{err}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn compaction_keeps_the_state_and_numbering_goes_on() {
    let dir = scratch("compact");
    let (j, _) = Journal::open(&dir).unwrap();
    j.append(&lines(&["x 1", "x 2", "x 3"])).unwrap();
    j.compact(&lines(&["x 3"])).unwrap();
    assert_eq!(fs::metadata(dir.join(JOURNAL)).unwrap().len(), 0);
    assert!(dir.join(SNAPSHOT).exists());
    assert_eq!(j.append(&lines(&["y"])).unwrap(), 4);
    drop(j);
    let (j, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records, lines(&["x 3", "y"]));
    assert_eq!(j.next_seq(), 5);
    drop(j);
    // A crash after the snapshot's rename but before the journal was emptied: the journal's
    // old records are covered and skipped.
    let (j, _) = Journal::open(&dir).unwrap();
    let before = fs::read(dir.join(JOURNAL)).unwrap();
    j.compact(&lines(&["x 3", "y"])).unwrap();
    drop(j);
    fs::write(dir.join(JOURNAL), before).unwrap();
    let (_, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records, lines(&["x 3", "y"]));
    // A damaged snapshot stops the start, naming it.
    let snap = dir.join(SNAPSHOT);
    let text = fs::read_to_string(&snap).unwrap().replace("x 3", "x 4");
    fs::write(&snap, text).unwrap();
    let err = Journal::open(&dir)
        .err()
        .expect("a corrupt snapshot must not open");
    assert!(err.contains("snapshot"), "{err}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn concurrent_appends_all_land_in_one_order_sharing_syncs() {
    let dir = scratch("concurrent");
    let (j, _) = Journal::open(&dir).unwrap();
    let j = Arc::new(j);
    let (threads, each) = (8, 50);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let j = j.clone();
            thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..each {
                    seqs.push(j.append(&[format!("t{t} r{i}")]).unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    seqs.sort();
    assert_eq!(seqs, (1..=(threads * each) as u64).collect::<Vec<_>>());
    drop(j);
    let (_, opened) = Journal::open(&dir).unwrap();
    assert_eq!(opened.records.len(), threads * each);
    // Each thread's records are in its own order.
    for t in 0..threads {
        let mine: Vec<&String> = opened
            .records
            .iter()
            .filter(|r| r.starts_with(&format!("t{t} ")))
            .collect();
        let want: Vec<String> = (0..each).map(|i| format!("t{t} r{i}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
    eprintln!(
        "journal: {} durable appends from {threads} threads in {:.0} ms ({:.0}/s)",
        threads * each,
        elapsed.as_secs_f64() * 1e3,
        (threads * each) as f64 / elapsed.as_secs_f64()
    );
    let _ = fs::remove_dir_all(dir);
}

/// A full disk: a 64 KiB tmpfs (root only; otherwise the test says it skipped).
#[test]
fn a_full_disk_refuses_the_record_and_loses_nothing() {
    let dir = scratch("full");
    fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs (needs root)");
        let _ = fs::remove_dir_all(dir);
        return;
    }
    let outcome = std::panic::catch_unwind(|| {
        let (j, _) = Journal::open(&dir).unwrap();
        let record = "r".repeat(1000);
        let mut acked = 0u64;
        let err = loop {
            match j.append(std::slice::from_ref(&record)) {
                Ok(seq) => acked = seq,
                Err(e) => break e,
            }
            assert!(acked < 1000, "a 64 KiB disk never filled");
        };
        assert!(err.to_string().contains("could not be written"), "{err}");
        // Still refused, still consistent; nothing acknowledged is lost.
        assert!(j.append(std::slice::from_ref(&record)).is_err());
        drop(j);
        let (_, opened) = Journal::open(&dir).unwrap();
        assert_eq!(opened.records.len() as u64, acked);
        assert!(opened.warnings.is_empty(), "{:?}", opened.warnings);
    });
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let _ = fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
