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
//! The format (`format.rs`: `frame`, `check`, `parse_line`, `read_records`, `snapshot_text`) is
//! pure and unit-tested on bytes (`tests.rs`); the file handling here is tested in
//! `tests/journal.rs` with temporary folders.

mod format;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

pub use format::{Read, check, frame, parse_line};
pub use format::{read_records, read_snapshot, snapshot_text};

/// The journal file's name in the state folder.
pub const JOURNAL: &str = "journal";
/// The snapshot file's name in the state folder.
pub const SNAPSHOT: &str = "snapshot";
const SNAPSHOT_TMP: &str = "snapshot.tmp";

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
