//! The tracker's append-only journal: lines of text made durable in order, replayed at start,
//! compacted into a snapshot. It knows nothing of what the lines mean (the tracker writes
//! `auth::accounts::Record` lines; Raft will later replicate the same lines).
//!
//! On disk, in the state folder:
//!
//! - `journal`: one record per line, `<seq> <check> <text>\n`, where `seq` counts from 1 with
//!   no gaps and `check` is the first 8 hex digits of SHA-1(`<seq> <text>`);
//! - `snapshot` (after a compaction): the same framing, records numbered from 1, and a last
//!   record `END <seq>` saying which journal records it covers. Written to `snapshot.tmp`,
//!   `fsync`ed, renamed over `snapshot`, and the folder `fsync`ed: a snapshot is whole or absent.
//!
//! Rules at start (`open`): the snapshot must be whole (else the start stops, naming it); then
//! journal records up to the snapshot's seq are skipped (a compaction that crashed before it
//! emptied the journal), and the rest must follow on without a gap. A damaged *last* line is
//! what a crash in the middle of a write leaves: it is dropped with a warning naming it, and the
//! file is cut back to the last good record. A damaged line with good records after it is not a
//! crash but corruption: the start stops with a message naming the line.
//!
//! Durability: `append` returns only after the records are on disk (`fdatasync`). Concurrent
//! appends share one write and one sync (group commit): the first caller that finds no write in
//! progress becomes the leader, takes every record queued so far, writes and syncs them with
//! the lock released, then wakes everyone whose records it wrote. A failed write (a full disk)
//! is cut off again, so the file never keeps half a batch, and every caller in the batch gets
//! the error: a refused record is simply not there.
//!
//! The pure parts (`frame`, `check`, `parse_line`, `read_records`) are unit-tested on bytes;
//! the file parts in `tests/journal.rs` with temporary folders.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use crate::sha1::Sha1;

/// The journal file's name in the state folder.
pub const JOURNAL: &str = "journal";
/// The snapshot file's name in the state folder.
pub const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// The checksum of one record: 8 hex digits of SHA-1 over `<seq> <text>`.
pub fn check(seq: u64, text: &str) -> String {
    let digest = Sha1::from(format!("{seq} {text}").as_bytes()).digest();
    digest.to_string()[..8].to_string()
}

/// One record's line, newline included. `text` must be one line of printable ASCII.
pub fn frame(seq: u64, text: &str) -> String {
    format!("{seq} {} {text}\n", check(seq, text))
}

/// Parse one line (without its newline) into `(seq, text)`, or say what is wrong with it.
pub fn parse_line(line: &[u8]) -> Result<(u64, String), String> {
    let text = std::str::from_utf8(line).map_err(|_| "not text".to_string())?;
    if !text.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err("not printable ASCII".into());
    }
    let mut parts = text.splitn(3, ' ');
    let (seq, sum, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some(seq), Some(sum), Some(body)) => (seq, sum, body),
        _ => return Err("not `<seq> <check> <text>`".into()),
    };
    let digits =
        !seq.is_empty() && !seq.starts_with('0') && seq.bytes().all(|b| b.is_ascii_digit());
    let seq: u64 = digits
        .then(|| seq.parse().ok())
        .flatten()
        .ok_or("bad sequence number")?;
    if sum != check(seq, body) {
        return Err("checksum mismatch".into());
    }
    Ok((seq, body.to_string()))
}

/// What reading a journal's bytes found.
#[derive(Debug, PartialEq, Eq)]
pub struct Read {
    /// `(seq, text)` of every good record, in order.
    pub records: Vec<(u64, String)>,
    /// Bytes up to the end of the last good record (where the file should be cut).
    pub good_len: u64,
    /// The torn last line that was dropped: its 1-based line number and why.
    pub torn: Option<(usize, String)>,
}

/// Read records from a journal's bytes, `first_seq` being the seq the first record must have
/// (records numbered below it are allowed only as a prefix: they were compacted). A damaged
/// line that is the last one is torn (dropped); one with anything after it is an error naming
/// the line.
pub fn read_records(bytes: &[u8], first_seq: u64) -> Result<Read, String> {
    let mut records = Vec::new();
    let mut good_len = 0u64;
    let mut expect: Option<u64> = None;
    let mut at = 0usize;
    let mut line_no = 0usize;
    while at < bytes.len() {
        line_no += 1;
        let (line, end, complete) = match bytes[at..].iter().position(|b| *b == b'\n') {
            Some(n) => (&bytes[at..at + n], at + n + 1, true),
            None => (&bytes[at..], bytes.len(), false),
        };
        let last = end >= bytes.len();
        let parsed = if complete {
            parse_line(line)
        } else {
            Err("no newline at its end".to_string())
        };
        let parsed = parsed.and_then(|(seq, text)| match expect {
            Some(want) if seq != want => Err(format!("sequence {seq} where {want} was due")),
            None if seq > first_seq => Err(format!("sequence {seq} where {first_seq} was due")),
            _ => Ok((seq, text)),
        });
        match parsed {
            Ok((seq, text)) => {
                expect = Some(seq + 1);
                if seq >= first_seq {
                    records.push((seq, text));
                }
                good_len = end as u64;
            }
            Err(why) if last => {
                return Ok(Read {
                    records,
                    good_len,
                    torn: Some((line_no, why)),
                });
            }
            Err(why) => return Err(format!("line {line_no} is damaged ({why})")),
        }
        at = end;
    }
    Ok(Read {
        records,
        good_len,
        torn: None,
    })
}

/// A snapshot's bytes: `records` framed and numbered from 1, then `END <covered>`. The
/// lone tracker's snapshot file, and the data of a cluster member's Raft snapshot.
pub fn snapshot_text(records: &[String], covered: u64) -> String {
    let mut text = String::new();
    for (i, r) in records.iter().enumerate() {
        text.push_str(&frame(i as u64 + 1, r));
    }
    text.push_str(&frame(records.len() as u64 + 1, &format!("END {covered}")));
    text
}

/// Undo [`snapshot_text`]: the records and the `END` number, or why the bytes are not a whole
/// snapshot (a snapshot is written whole, so any damage is corruption, never a torn write).
pub fn read_snapshot(bytes: &[u8]) -> Result<(Vec<String>, u64), String> {
    let read = read_records(bytes, 1).map_err(|e| format!("{e}; the snapshot is corrupt"))?;
    let (end, body) = read.records.split_last().ok_or("empty snapshot")?;
    let covered = end
        .1
        .strip_prefix("END ")
        .and_then(|s| s.parse().ok())
        .filter(|_| read.torn.is_none())
        .ok_or("the snapshot has no END record; it is corrupt")?;
    Ok((body.iter().map(|(_, t)| t.clone()).collect(), covered))
}

/// What `open` found besides the records: warnings for the operator.
#[derive(Debug, Default)]
pub struct Opened {
    /// Every record to replay, snapshot first, oldest first.
    pub records: Vec<String>,
    /// Things worth saying (a torn last record dropped).
    pub warnings: Vec<String>,
}

/// What the leader leaves a caller: the seq of its last record, or why the write failed.
type Outcome = Result<u64, (io::ErrorKind, String)>;

struct Inner {
    file: File,
    /// Bytes of the journal file that hold durable records.
    len: u64,
    /// The seq the next record will get.
    next_seq: u64,
    /// Records waiting for a leader: (the caller's id, its lines).
    queue: Vec<(u64, Vec<String>)>,
    /// Outcomes the leader left for callers, by id.
    done: Vec<(u64, Outcome)>,
    writing: bool,
    next_id: u64,
}

/// An open journal. `append` from any number of threads.
pub struct Journal {
    dir: PathBuf,
    inner: Mutex<Inner>,
    wake: Condvar,
}

fn fail(path: &Path, what: &str, e: io::Error) -> String {
    format!("{}: cannot {what}: {e}", path.display())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Journal {
    /// Open (or create) the journal in `dir`, replaying the snapshot and the journal. Errors
    /// are messages for the operator, naming the file and the line.
    pub fn open(dir: &Path) -> Result<(Journal, Opened), String> {
        fs::create_dir_all(dir).map_err(|e| fail(dir, "create the state folder", e))?;
        let mut opened = Opened::default();
        let snap_path = dir.join(SNAPSHOT);
        let mut covered = 0u64;
        match fs::read(&snap_path) {
            Ok(bytes) => {
                let (records, seq) =
                    read_snapshot(&bytes).map_err(|e| format!("{}: {e}", snap_path.display()))?;
                covered = seq;
                opened.records.extend(records);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&snap_path, "read", e)),
        }
        let path = dir.join(JOURNAL);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(fail(&path, "read", e)),
        };
        let read = read_records(&bytes, covered + 1).map_err(|e| {
            format!(
                "{}: {e}; a record in the middle cannot be torn by a crash, so the journal is corrupt (restore it, or cut it before that line knowingly)",
                path.display()
            )
        })?;
        let next_seq = read.records.last().map_or(covered + 1, |(s, _)| s + 1);
        let next_seq = next_seq.max(covered + 1);
        opened
            .records
            .extend(read.records.into_iter().map(|(_, t)| t));
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| fail(&path, "open", e))?;
        if let Some((line, why)) = read.torn {
            opened.warnings.push(format!(
                "{}: dropped the torn last record on line {line} ({why}); it was never acknowledged",
                path.display()
            ));
            file.set_len(read.good_len)
                .and_then(|_| file.sync_all())
                .map_err(|e| fail(&path, "cut the torn record", e))?;
        }
        sync_dir(dir).map_err(|e| fail(dir, "sync", e))?;
        let journal = Journal {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                file,
                len: read.good_len,
                next_seq,
                queue: Vec::new(),
                done: Vec::new(),
                writing: false,
                next_id: 0,
            }),
            wake: Condvar::new(),
        };
        Ok((journal, opened))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The seq the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Make `lines` durable, in order, after every record appended before. Returns the seq of
    /// the last one once it is on disk. Each line must be one line of printable ASCII.
    pub fn append(&self, lines: &[String]) -> io::Result<u64> {
        if let Some(bad) = lines
            .iter()
            .find(|l| l.is_empty() || !l.bytes().all(|b| b == b' ' || b.is_ascii_graphic()))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "not a record line: {:?}",
                    bad.chars().take(40).collect::<String>()
                ),
            ));
        }
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.queue.push((id, lines.to_vec()));
        loop {
            if let Some(at) = inner.done.iter().position(|(i, _)| *i == id) {
                let (_, outcome) = inner.done.swap_remove(at);
                return outcome.map_err(|(kind, msg)| io::Error::new(kind, msg));
            }
            if !inner.writing {
                inner = self.lead(inner);
                continue;
            }
            inner = self
                .wake
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Write and sync everything queued, with the lock released while the disk works.
    fn lead<'a>(&'a self, mut inner: MutexGuard<'a, Inner>) -> MutexGuard<'a, Inner> {
        let batch = std::mem::take(&mut inner.queue);
        inner.writing = true;
        let (start_len, mut seq) = (inner.len, inner.next_seq);
        let mut bytes = String::new();
        let mut last = Vec::with_capacity(batch.len());
        for (id, lines) in &batch {
            for line in lines {
                bytes.push_str(&frame(seq, line));
                seq += 1;
            }
            last.push((*id, seq - 1));
        }
        let file = match inner.file.try_clone() {
            Ok(file) => file,
            Err(e) => return self.finish(inner, &batch, Err(e), start_len, seq),
        };
        drop(inner);
        let written = (&file)
            .write_all(bytes.as_bytes())
            .and_then(|_| file.sync_data());
        let outcome = written.map(|_| last);
        let inner = self.lock();
        self.finish(inner, &batch, outcome, start_len + bytes.len() as u64, seq)
    }

    fn finish<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner>,
        batch: &[(u64, Vec<String>)],
        outcome: io::Result<Vec<(u64, u64)>>,
        end_len: u64,
        next_seq: u64,
    ) -> MutexGuard<'a, Inner> {
        match outcome {
            Ok(last) => {
                inner.len = end_len;
                inner.next_seq = next_seq;
                inner
                    .done
                    .extend(last.into_iter().map(|(id, s)| (id, Ok(s))));
            }
            Err(e) => {
                // Cut off whatever part of the batch reached the file, so the next batch
                // follows the last durable record. If even that fails, later writes would
                // land after garbage: keep refusing (the file is reopened at the next start,
                // whose reader drops a torn tail).
                let cut = inner
                    .file
                    .set_len(inner.len)
                    .and_then(|_| inner.file.sync_all());
                let msg = match cut {
                    Ok(()) => format!("the journal could not be written: {e}"),
                    Err(c) => format!("the journal could not be written ({e}) nor cut back ({c})"),
                };
                let kind = e.kind();
                inner
                    .done
                    .extend(batch.iter().map(|(id, _)| (*id, Err((kind, msg.clone())))));
            }
        }
        inner.writing = false;
        self.wake.notify_all();
        inner
    }

    /// Replace everything journaled so far with `records`, the state they rebuild: written as
    /// a snapshot (temporary file, sync, rename, sync the folder), then the journal is emptied.
    /// The caller must not append meanwhile (the tracker holds its mutation lock).
    pub fn compact(&self, records: &[String]) -> io::Result<()> {
        let mut inner = self.lock();
        while inner.writing {
            inner = self
                .wake
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let covered = inner.next_seq - 1;
        let text = snapshot_text(records, covered);
        let tmp = self.dir.join(SNAPSHOT_TMP);
        {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(SNAPSHOT))?;
        sync_dir(&self.dir)?;
        // The snapshot covers every journal record; a crash from here on leaves records the
        // next start skips as covered.
        inner.file.set_len(0)?;
        inner.file.sync_all()?;
        inner.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
}
