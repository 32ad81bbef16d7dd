//! The journal's format, pure: one record's frame (`<seq> <check> <text>`), reading a
//! journal's bytes back (a torn last line told apart from a damaged middle one), and the
//! snapshot's text (`snapshot_text`, `read_snapshot`).
//!
//! Bytes in, values out: it must never open a file, sync or read a clock (`journal.rs` does
//! the files), so every rule is unit-tested on byte strings.

use crate::sha1::Sha1;

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
