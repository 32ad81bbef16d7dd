//! The journal format's unit tests, on bytes: frames read back, a torn last record dropped
//! and named, a damaged middle record refused naming its line, records a snapshot covers
//! skipped. (The file handling is tested in `tests/journal.rs` with temporary folders.)
//!
//! Tests only: nothing here may touch the disk.

use super::*;

fn journal(lines: &[&str]) -> Vec<u8> {
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(&frame(i as u64 + 1, l));
    }
    out.into_bytes()
}

#[test]
fn a_frame_reads_back_and_its_check_covers_seq_and_text() {
    let line = frame(7, "CREATE-GROUP g1 alice");
    assert!(line.starts_with("7 ") && line.ends_with(" CREATE-GROUP g1 alice\n"));
    let body = line.trim_end().as_bytes();
    assert_eq!(parse_line(body), Ok((7, "CREATE-GROUP g1 alice".into())));
    // Any change to seq or text breaks the check.
    let other_seq = line.replacen('7', "8", 1);
    assert!(parse_line(other_seq.trim_end().as_bytes()).is_err());
    let other_text = line.replace("alice", "alicf");
    assert!(parse_line(other_text.trim_end().as_bytes()).is_err());
    assert!(parse_line(b"07 00000000 x").is_err());
    assert!(parse_line(b"").is_err());
}

#[test]
fn good_records_read_in_order() {
    let bytes = journal(&["a", "b c", "d"]);
    let read = read_records(&bytes, 1).unwrap();
    let texts: Vec<&str> = read.records.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["a", "b c", "d"]);
    assert_eq!((read.good_len, read.torn), (bytes.len() as u64, None));
}

#[test]
fn a_torn_last_record_is_dropped_and_named() {
    let bytes = journal(&["a", "b", "ccc"]);
    let whole = journal(&["a", "b"]).len();
    for cut in whole + 1..bytes.len() {
        let read = read_records(&bytes[..cut], 1).unwrap();
        assert_eq!(read.records.len(), 2, "cut at {cut}");
        assert_eq!(read.good_len, whole as u64);
        assert_eq!(read.torn.as_ref().map(|t| t.0), Some(3));
    }
    // A last line with its newline but a bad check is torn too (garbage from a crash).
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 2] ^= 1;
    assert_eq!(read_records(&bad, 1).unwrap().torn.map(|t| t.0), Some(3));
}

#[test]
fn a_damaged_middle_record_stops_naming_its_line() {
    let mut bytes = journal(&["a", "bbbb", "c"]);
    let at = journal(&["a"]).len() + 12;
    bytes[at] ^= 0x01;
    let err = read_records(&bytes, 1).unwrap_err();
    assert!(err.starts_with("line 2 is damaged"), "{err}");
    // A gap in the sequence is damage too.
    let mut gap = frame(1, "a").into_bytes();
    gap.extend(frame(3, "c").into_bytes());
    gap.extend(frame(4, "d").into_bytes());
    assert!(read_records(&gap, 1).unwrap_err().contains("line 2"));
}

#[test]
fn records_a_snapshot_covers_are_skipped() {
    let bytes = journal(&["a", "b", "c"]);
    let read = read_records(&bytes, 3).unwrap();
    assert_eq!(read.records, vec![(3, "c".to_string())]);
    // A journal starting past the snapshot is a gap.
    let mut late = frame(5, "e").into_bytes();
    late.extend(frame(6, "f").into_bytes());
    assert!(read_records(&late, 3).is_err());
}
