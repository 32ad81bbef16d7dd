//! Raft's persistent state on disk, under `DIR/raft/`: what must survive a crash.
//!
//! It owns three files and nothing else (no socket, no Raft decision):
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
//!   the new entries to `log.tmp`, fsyncs it and renames it over `log`.
//!
//! The torn-tail rule: a crash in the middle of an append can leave a last line without its
//! newline or with a bad checksum. That entry was never acknowledged to anyone (its fsync did
//! not return), so it is dropped on open. A bad line *before* the last one is not a torn write
//! but damage, and the member refuses to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::raft::{Entry, HardState, NodeId, Persist, Persisted, escape, unescape};
use crate::sha1::Sha1;

/// The files of one member's Raft state.
pub struct Storage {
    dir: PathBuf,
    log: File,
    /// Byte offset where each stored entry's line starts, then the end of the file.
    offsets: Vec<u64>,
}

fn checksum(text: &str) -> String {
    Sha1::from(text.as_bytes()).hexdigest()[..8].to_string()
}

fn entry_line(e: &Entry) -> String {
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
        let (log, offsets) = read_log(&bytes, &log_path)?;
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
        let storage = Storage {
            dir,
            log: file,
            offsets,
        };
        Ok((storage, Persisted { hard, log }))
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
        match change.truncate_from {
            Some(from) if from >= 1 && from as usize <= self.offsets.len().saturating_sub(1) => {
                self.rewrite(from, &text)?
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

    /// Keep entries `1..from`, then `text`: a new file renamed over the old one.
    fn rewrite(&mut self, from: u64, text: &str) -> io::Result<()> {
        let keep = self.offsets[from as usize - 1];
        let path = self.dir.join("log");
        let mut prefix = Vec::with_capacity(keep as usize + text.len());
        File::open(&path)?.take(keep).read_to_end(&mut prefix)?;
        if prefix.len() as u64 != keep {
            return Err(io::Error::other("the log file is shorter than its entries"));
        }
        prefix.extend_from_slice(text.as_bytes());
        replace(&self.dir, "log", &prefix)?;
        self.log = OpenOptions::new().append(true).open(&path)?;
        self.offsets.truncate(from as usize - 1);
        self.offsets.push(keep);
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

/// The entries in `bytes` and the offset of each line (plus the end of the last good one).
fn read_log(bytes: &[u8], path: &Path) -> Result<(Vec<Entry>, Vec<u64>), String> {
    let mut entries = Vec::new();
    let mut offsets = vec![0u64];
    let mut at = 0usize;
    let mut lines = bytes.split_inclusive(|&b| b == b'\n').peekable();
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
                entries.len() + 1
            ));
        };
        at += line.len();
        entries.push(Entry {
            index: entries.len() as u64 + 1,
            term,
            command,
        });
        offsets.push(at as u64);
    }
    // `offsets[i]` is where entry i+1 starts; the last element is the end of the good part.
    Ok((entries, offsets))
}

#[cfg(test)]
mod tests {
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
                hard_state: None,
                truncate_from: Some(3),
                append: vec![entry(3, 3, "c"), entry(4, 3, "d")],
            },
            Persist {
                hard_state: None,
                truncate_from: None,
                append: vec![entry(5, 3, "e")],
            },
            Persist {
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
}
