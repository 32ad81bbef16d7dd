//! Raft's persistent state on disk, under `DIR/raft/`: what must survive a crash.
//!
//! It owns four files and nothing else (no socket, no Raft decision):
//!
//! - `member`: `member <id> cluster <fingerprint>`, written once. A folder written by another
//!   member, or for another cluster, is refused: two trackers sharing a folder, or a folder
//!   copied from another tracker, would break Raft's promises (a vote given twice).
//! - `hardstate`: `<term> <voted_for or 0> <checksum>`, replaced whole by write, fsync,
//!   rename, fsync of the folder, so it is always the old or the new one.
//! - `log`: append-only, one entry a line, `<term> <escaped command> <checksum>`, where the
//!   checksum is the first 8 hex digits of the SHA-1 of `<term> <escaped command>`. Appends
//!   are fsynced before `save` returns, and the driver sends nothing before that (Raft's
//!   "persist, then send"). A conflict (Raft truncating its log) rewrites the kept prefix and
//!   the new entries to `log.tmp`, fsyncs it and renames it over `log`. After a compaction
//!   the log starts with a line `START <index> <checksum>`: the index of its first entry.
//! - `snapshot` (see `snapfile.rs`): the state machine as of one entry, replaced whole. It is
//!   written before the log is cut (a crash in between leaves entries the snapshot covers, which
//!   the next start skips), and an entry the snapshot covers with another term means the crash
//!   came while installing a leader's snapshot: the log after it is discarded (Figure 13).
//!
//! The torn-tail rule: a crash in the middle of an append can leave a last line without its
//! newline or with a bad checksum. That entry was never acknowledged to anyone (its fsync did
//! not return), so it is dropped on open. A bad line *before* the last one is not a torn write
//! but damage, and the member refuses to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::snapfile;
use crate::raft::{Entry, HardState, NodeId, Persist, Persisted, escape, unescape};
use crate::sha1::Sha1;

/// The files of one member's Raft state.
pub struct Storage {
    dir: PathBuf,
    log: File,
    /// The index of the log file's first entry (1 unless compacted).
    first: u64,
    /// Byte offset where each stored entry's line starts, then the end of the file.
    offsets: Vec<u64>,
}

fn start_line(first: u64) -> String {
    let body = format!("START {first}");
    let sum = checksum(&body);
    format!("{body} {sum}\n")
}

pub(super) fn checksum(text: &str) -> String {
    Sha1::from(text.as_bytes()).hexdigest()[..8].to_string()
}

pub(super) fn entry_line(e: &Entry) -> String {
    let body = format!("{} {}", e.term, escape(&e.command));
    let sum = checksum(&body);
    format!("{body} {sum}\n")
}

/// Parse one log line (without its newline); `None` if it is damaged.
fn parse_entry(line: &str) -> Option<(u64, String)> {
    let (body, sum) = line.rsplit_once(' ')?;
    if checksum(body) != sum {
        return None;
    }
    let (term, text) = body.split_once(' ')?;
    Some((term.parse().ok()?, unescape(text)?))
}

/// Write `text` to `path` so that a crash leaves the old file or the new one, never half.
fn replace(dir: &Path, name: &str, text: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(text)?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Storage {
    /// Open (or create) `state_dir/raft/` for member `id` of the cluster `fingerprint`, and
    /// read back what it holds. Errors are one line naming the file and the fix.
    pub fn open(
        state_dir: &Path,
        id: NodeId,
        fingerprint: &str,
    ) -> Result<(Storage, Persisted), String> {
        let dir = state_dir.join("raft");
        let shown = dir.display();
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {shown}: {e}"))?;
        check_member(&dir, id, fingerprint)?;
        let hard = read_hard_state(&dir)?;
        let snapshot = snapfile::read(&dir)?;
        let log_path = dir.join("log");
        let mut bytes = Vec::new();
        match File::open(&log_path) {
            Ok(mut f) => f
                .read_to_end(&mut bytes)
                .map(drop)
                .map_err(|e| format!("cannot read {}: {e}", log_path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read {}: {e}", log_path.display())),
        }
        let (first, mut log, offsets) = read_log(&bytes, &log_path)?;
        let good_len = *offsets.last().unwrap_or(&0);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        if good_len < bytes.len() as u64 {
            // The torn tail: drop the half-written last entry (see the module docs).
            file.set_len(good_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot trim {}: {e}", log_path.display()))?;
        }
        let mut storage = Storage {
            dir,
            log: file,
            first,
            offsets,
        };
        let base = snapshot.as_ref().map_or(0, |s| s.index);
        if first > base + 1 {
            return Err(format!(
                "{} starts at entry {first} but the snapshot ends at {base}: entries are missing; restore the folder from a backup, or delete it to rejoin the cluster empty",
                log_path.display()
            ));
        }
        if let Some(s) = &snapshot {
            let covered = log.iter().find(|e| e.index == s.index);
            if covered.is_some_and(|e| e.term != s.term) {
                log.clear(); // A crash while installing a leader's snapshot (Figure 13).
            }
            log.retain(|e| e.index > s.index);
            if first <= s.index {
                // Cut what the snapshot covers now, so the file and the log agree again.
                let text: String = log.iter().map(entry_line).collect();
                storage
                    .rewrite(s.index + 1, s.index + 1, &text)
                    .map_err(|e| format!("cannot rewrite {}: {e}", log_path.display()))?;
            }
        }
        Ok((
            storage,
            Persisted {
                hard,
                snapshot,
                log,
            },
        ))
    }

    /// Write one `Persist` durably: hard state, then log truncation and appends. Returns once
    /// everything is on disk (fsync), so the caller may send.
    pub fn save(&mut self, change: &Persist) -> io::Result<()> {
        if let Some(hard) = change.hard_state {
            let text = hard_state_text(hard);
            replace(&self.dir, "hardstate", text.as_bytes())?;
        }
        let mut text = String::new();
        for e in &change.append {
            text.push_str(&entry_line(e));
        }
        let stored_end = self.first + self.offsets.len() as u64 - 1;
        if let Some(snapshot) = &change.snapshot {
            // The snapshot first: once it is on disk, the entries it covers may go.
            replace(&self.dir, snapfile::NAME, &snapfile::encode(snapshot))?;
            let keep_until = change.truncate_from.unwrap_or(u64::MAX).min(stored_end);
            return self.rewrite(snapshot.index + 1, keep_until, &text);
        }
        match change.truncate_from {
            Some(from) if from >= self.first && from < stored_end => {
                self.rewrite(self.first, from, &text)?
            }
            _ if !text.is_empty() => self.append(&text)?,
            _ => {}
        }
        Ok(())
    }

    fn append(&mut self, text: &str) -> io::Result<()> {
        self.log.write_all(text.as_bytes())?;
        self.log.sync_data()?;
        self.record(text);
        Ok(())
    }

    /// Note the offsets of the lines of `text`, just written at the end of the file.
    fn record(&mut self, text: &str) {
        let mut end = self.offsets.pop().unwrap_or(0);
        for line in text.split_inclusive('\n') {
            self.offsets.push(end);
            end += line.len() as u64;
        }
        self.offsets.push(end);
    }

    /// A new log file: a `START` line if it does not begin at 1, the stored entries
    /// `new_first..keep_until` (those it holds), then `text`; renamed over the old one.
    fn rewrite(&mut self, new_first: u64, keep_until: u64, text: &str) -> io::Result<()> {
        let stored_end = self.first + self.offsets.len() as u64 - 1;
        let (from, until) = (new_first.max(self.first), keep_until.min(stored_end));
        let mut bytes = if new_first > 1 {
            start_line(new_first).into_bytes()
        } else {
            Vec::new()
        };
        let header = bytes.len() as u64;
        if from < until {
            let at = self.offsets[(from - self.first) as usize];
            let end = self.offsets[(until - self.first) as usize];
            let mut kept = Vec::with_capacity((end - at) as usize);
            let mut f = File::open(self.dir.join("log"))?;
            io::Seek::seek(&mut f, io::SeekFrom::Start(at))?;
            f.take(end - at).read_to_end(&mut kept)?;
            if kept.len() as u64 != end - at {
                return Err(io::Error::other("the log file is shorter than its entries"));
            }
            bytes.extend_from_slice(&kept);
        }
        bytes.extend_from_slice(text.as_bytes());
        replace(&self.dir, "log", &bytes)?;
        self.log = OpenOptions::new().append(true).open(self.dir.join("log"))?;
        // New offsets: those of the kept entries, shifted, then the appended lines.
        let mut offsets = vec![header];
        if from < until {
            let base = self.offsets[(from - self.first) as usize];
            let shift = |o: u64| o - base + offsets[0];
            let kept: Vec<u64> = self.offsets
                [(from - self.first) as usize + 1..=(until - self.first) as usize]
                .iter()
                .map(|&o| shift(o))
                .collect();
            offsets.extend(kept);
        }
        self.first = new_first;
        self.offsets = offsets;
        self.record(text);
        Ok(())
    }
}

fn check_member(dir: &Path, id: NodeId, fingerprint: &str) -> Result<(), String> {
    let path = dir.join("member");
    let want = format!("member {id} cluster {fingerprint}");
    match fs::read_to_string(&path) {
        Ok(text) if text.trim_end() == want => Ok(()),
        Ok(text) => {
            let shown = text.trim_end().chars().take(80).collect::<String>();
            Err(format!(
                "{} says {shown:?} but this is {want:?}: the state folder belongs to another tracker or cluster; give each tracker its own --state folder",
                path.display()
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            replace(dir, "member", format!("{want}\n").as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn hard_state_text(hard: HardState) -> String {
    let body = format!("{} {}", hard.term, hard.voted_for.unwrap_or(0));
    let sum = checksum(&body);
    format!("{body} {sum}\n")
}

fn read_hard_state(dir: &Path) -> Result<HardState, String> {
    let path = dir.join("hardstate");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let parsed = text.trim_end().rsplit_once(' ').and_then(|(body, sum)| {
        let (term, vote) = body.split_once(' ')?;
        let vote: NodeId = vote.parse().ok()?;
        (checksum(body) == sum).then_some(HardState {
            term: term.parse().ok()?,
            voted_for: (vote != 0).then_some(vote),
        })
    });
    parsed.ok_or_else(|| {
        format!(
            "{} is damaged (it is replaced whole, so this is not a crash): restore the folder from a backup",
            path.display()
        )
    })
}

/// The index of the first entry in `bytes` (from its `START` line, else 1), the entries, and
/// the offset of each line (plus the end of the last good one).
fn read_log(bytes: &[u8], path: &Path) -> Result<(u64, Vec<Entry>, Vec<u64>), String> {
    let mut first = 1;
    let mut at = 0usize;
    if bytes.starts_with(b"START ") {
        let end = bytes.iter().position(|&b| b == b'\n');
        let line = end.and_then(|n| std::str::from_utf8(&bytes[..n]).ok());
        let parsed = line.and_then(|l| {
            let (body, sum) = l.rsplit_once(' ')?;
            let n: u64 = body.strip_prefix("START ")?.parse().ok()?;
            (checksum(body) == sum && n >= 1).then_some(n)
        });
        match (parsed, end) {
            (Some(n), Some(end)) => {
                first = n;
                at = end + 1;
            }
            _ => {
                return Err(format!(
                    "{} line 1 (START) is damaged: restore the folder from a backup",
                    path.display()
                ));
            }
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut offsets = vec![at as u64];
    let mut lines = bytes[at..].split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let complete = line.last() == Some(&b'\n');
        let parsed = std::str::from_utf8(line)
            .ok()
            .filter(|_| complete)
            .and_then(|l| parse_entry(&l[..l.len() - 1]));
        let Some((term, command)) = parsed else {
            if lines.peek().is_none() {
                break; // the torn tail
            }
            return Err(format!(
                "{} line {} is damaged and is not the last line (not a torn write): restore the folder from a backup",
                path.display(),
                entries.len() + 1 + usize::from(first > 1)
            ));
        };
        at += line.len();
        entries.push(Entry {
            index: first + entries.len() as u64,
            term,
            command,
        });
        offsets.push(at as u64);
    }
    // `offsets[i]` is where entry first+i starts; the last element is the end of the good part.
    Ok((first, entries, offsets))
}
