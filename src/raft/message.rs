//! Raft's messages as lines of the project's protocol: parse from text, `Display` back to text.
//!
//! This file owns the *format* of the eight Raft messages and nothing else: no socket, no
//! clock, no decision. Every message is one line (`APPEND` is one line followed by one `ENTRY`
//! line per log entry, `SNAPSHOT` one line followed by its data line), printable ASCII, a verb
//! in capitals, single spaces:
//!
//! ```text
//! PREVOTE  <term> <from> <last_index> <last_term>      would you vote for me in <term>?
//! PREVOTED <term> <from> yes|no                        the answer (<term> as asked, or mine if no)
//! VOTE     <term> <from> <last_index> <last_term>      RequestVote (Figure 2)
//! VOTED    <term> <from> yes|no                        its reply
//! APPEND   <term> <from> <prev_index> <prev_term> <commit> <n>   AppendEntries, then n lines:
//! ENTRY    <term> <len> <command>                      one log entry
//! APPENDED <term> <from> yes|no <match_index>          its reply
//! SNAPSHOT <term> <from> <last_index> <last_term> <offset> yes|no <n>   InstallSnapshot
//! <n characters of base64>                             (Figure 13), `yes` on the last chunk
//! SNAPPED  <term> <from> <last_index> <received>       "send from byte <received> on"
//! ```
//!
//! The snapshot's data travels on a line of its own, so that a trace can show the first line
//! and only the size of the second (the data holds the accounts, password verifiers included).
//! A finished install is answered `APPENDED <term> <from> yes <last_index>`.
//!
//! An entry's command is opaque text. It travels escaped (`\\` for a backslash, `\xHH` for any
//! byte that is not printable ASCII, so a newline can never split it) and `<len>` is the length
//! of the escaped text, so spaces inside or at the end of a command survive exactly. An entry's
//! index is not on the wire: it is `prev_index + 1 + position`. The parser never panics and
//! never allocates more than the line it was given (`MAX_ENTRIES` bounds an `APPEND`).

use std::fmt;

mod text;

use super::{Entry, NodeId};
use crate::auth::base64;
pub use text::{ParseError, escape, unescape};
use text::{bad, clean, number, yes_no};

/// Most entries one `APPEND` may carry; a longer batch is refused by the parser.
pub const MAX_ENTRIES: usize = 64;
/// Longest escaped command, in bytes, so that an `ENTRY` line fits the protocol's 4096-byte
/// line limit with room for its prefix.
pub const MAX_COMMAND: usize = 4000;
/// Most snapshot bytes in one `SNAPSHOT` (its data line is at most 64 KiB of base64).
pub const MAX_CHUNK: usize = 48 * 1024;
/// Most bytes a follower accepts for one whole snapshot.
pub const MAX_SNAPSHOT: usize = 64 * 1024 * 1024;
/// Longest data line of a `SNAPSHOT`: [`MAX_CHUNK`] bytes in base64.
pub const MAX_CHUNK_LINE: usize = MAX_CHUNK.div_ceil(3) * 4;

/// One Raft message. `from` is the sender's id, so a receiver needs nothing from the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// `PREVOTE`: a would-be candidate asks whether it could win `term` (Ongaro's thesis §9.6),
    /// without anyone changing their term yet.
    PreVote {
        term: u64,
        from: NodeId,
        last_index: u64,
        last_term: u64,
    },
    /// `PREVOTED`: the answer to `PREVOTE`.
    PreVoted {
        term: u64,
        from: NodeId,
        granted: bool,
    },
    /// `VOTE`: RequestVote RPC.
    Vote {
        term: u64,
        from: NodeId,
        last_index: u64,
        last_term: u64,
    },
    /// `VOTED`: RequestVote reply.
    Voted {
        term: u64,
        from: NodeId,
        granted: bool,
    },
    /// `APPEND`: AppendEntries RPC (a heartbeat when `entries` is empty).
    Append {
        term: u64,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        commit: u64,
        entries: Vec<Entry>,
    },
    /// `APPENDED`: AppendEntries reply. On success `match_index` is the last index now known to
    /// match the leader; on failure it is a hint: the follower's log agrees at most up to it.
    Appended {
        term: u64,
        from: NodeId,
        success: bool,
        match_index: u64,
    },
    /// `SNAPSHOT`: InstallSnapshot RPC (Figure 13), one chunk of `data` at `offset`; `done`
    /// on the last one.
    Snapshot {
        term: u64,
        from: NodeId,
        last_index: u64,
        last_term: u64,
        offset: u64,
        done: bool,
        data: Vec<u8>,
    },
    /// `SNAPPED`: a chunk's reply: the follower holds `received` bytes of the snapshot ending at
    /// `last_index` and wants the chunk starting there.
    Snapped {
        term: u64,
        from: NodeId,
        last_index: u64,
        received: u64,
    },
}

impl Message {
    /// The term the message carries (every Raft message carries one).
    pub fn term(&self) -> u64 {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoted { term, .. }
            | Message::Vote { term, .. }
            | Message::Voted { term, .. }
            | Message::Append { term, .. }
            | Message::Appended { term, .. }
            | Message::Snapshot { term, .. }
            | Message::Snapped { term, .. } => *term,
        }
    }

    /// The sender's id.
    pub fn from(&self) -> NodeId {
        match self {
            Message::PreVote { from, .. }
            | Message::PreVoted { from, .. }
            | Message::Vote { from, .. }
            | Message::Voted { from, .. }
            | Message::Append { from, .. }
            | Message::Appended { from, .. }
            | Message::Snapshot { from, .. }
            | Message::Snapped { from, .. } => *from,
        }
    }
}

/// How many lines follow this first line: `n` for an `APPEND`, 1 for a `SNAPSHOT`, 0 for the
/// others. A transport reads the first line, asks this, reads that many more, then calls
/// [`parse`].
pub fn lines_after(first_line: &str) -> Result<usize, ParseError> {
    let line = clean(first_line)?;
    let words: Vec<&str> = line.split(' ').collect();
    if words[0] == "SNAPSHOT" {
        return snapshot_data_len(first_line).map(|_| 1);
    }
    if words[0] != "APPEND" {
        return Ok(0);
    }
    if words.len() != 7 {
        return bad("APPEND takes: term from prev_index prev_term commit n");
    }
    let n = number(words[6], "n")?;
    if n > MAX_ENTRIES as u64 {
        return bad(format!("APPEND carries at most {MAX_ENTRIES} entries"));
    }
    Ok(n as usize)
}

fn parse_entry(line: &str, index: u64) -> Result<Entry, ParseError> {
    let line = clean(line)?;
    let mut parts = line.splitn(4, ' ');
    if parts.next() != Some("ENTRY") {
        return bad("expected an ENTRY line");
    }
    let term = number(parts.next().unwrap_or(""), "entry term")?;
    let len = number(parts.next().unwrap_or(""), "entry length")?;
    let text = parts.next().unwrap_or("");
    if len > MAX_COMMAND as u64 || text.len() as u64 != len {
        return bad(format!(
            "ENTRY says {len} bytes of command but {} follow",
            text.len()
        ));
    }
    let command = unescape(text).ok_or_else(|| ParseError("bad escape in ENTRY".into()))?;
    Ok(Entry {
        index,
        term,
        command,
    })
}

/// The length of a `SNAPSHOT`'s data line, from its first line (checked to be bounded).
pub fn snapshot_data_len(first_line: &str) -> Result<usize, ParseError> {
    let line = clean(first_line)?;
    let w: Vec<&str> = line.split(' ').collect();
    if w.len() != 8 || w[0] != "SNAPSHOT" {
        return bad("SNAPSHOT takes: term from last_index last_term offset yes|no n");
    }
    let n = number(w[7], "n")?;
    if n > MAX_CHUNK_LINE as u64 {
        return bad(format!(
            "SNAPSHOT data is at most {MAX_CHUNK_LINE} characters"
        ));
    }
    Ok(n as usize)
}

/// Parse one message from its text: one line, or an `APPEND` line and its `ENTRY` lines,
/// separated by `\n` (a trailing newline is allowed).
pub fn parse(text: &str) -> Result<Message, ParseError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let mut lines = text.split('\n');
    let first = clean(lines.next().unwrap_or(""))?;
    let w: Vec<&str> = first.split(' ').collect();
    let want = |n: usize, syntax: &str| {
        if w.len() == n {
            Ok(())
        } else {
            bad(format!("{} takes: {syntax}", w[0]))
        }
    };
    let message = match w[0] {
        "PREVOTE" | "VOTE" => {
            want(5, "term from last_index last_term")?;
            let (term, from) = (number(w[1], "term")?, number(w[2], "from")?);
            let (last_index, last_term) = (number(w[3], "last_index")?, number(w[4], "last_term")?);
            if w[0] == "VOTE" {
                Message::Vote {
                    term,
                    from,
                    last_index,
                    last_term,
                }
            } else {
                Message::PreVote {
                    term,
                    from,
                    last_index,
                    last_term,
                }
            }
        }
        "PREVOTED" | "VOTED" => {
            want(4, "term from yes|no")?;
            let (term, from, granted) =
                (number(w[1], "term")?, number(w[2], "from")?, yes_no(w[3])?);
            if w[0] == "VOTED" {
                Message::Voted {
                    term,
                    from,
                    granted,
                }
            } else {
                Message::PreVoted {
                    term,
                    from,
                    granted,
                }
            }
        }
        "APPENDED" => {
            want(5, "term from yes|no match_index")?;
            Message::Appended {
                term: number(w[1], "term")?,
                from: number(w[2], "from")?,
                success: yes_no(w[3])?,
                match_index: number(w[4], "match_index")?,
            }
        }
        "APPEND" => {
            let n = lines_after(first)?;
            let prev_index = number(w[3], "prev_index")?;
            if prev_index.checked_add(n as u64).is_none() {
                return bad("APPEND indexes overflow");
            }
            let mut entries = Vec::with_capacity(n);
            for k in 0..n {
                let line = lines
                    .next()
                    .ok_or_else(|| ParseError(format!("APPEND promised {n} entries, got {k}")))?;
                entries.push(parse_entry(line, prev_index + 1 + k as u64)?);
            }
            Message::Append {
                term: number(w[1], "term")?,
                from: number(w[2], "from")?,
                prev_index,
                prev_term: number(w[4], "prev_term")?,
                commit: number(w[5], "commit")?,
                entries,
            }
        }
        "SNAPPED" => {
            want(5, "term from last_index received")?;
            Message::Snapped {
                term: number(w[1], "term")?,
                from: number(w[2], "from")?,
                last_index: number(w[3], "last_index")?,
                received: number(w[4], "received")?,
            }
        }
        "SNAPSHOT" => {
            let n = snapshot_data_len(first)?;
            // An empty data line may be eaten as the message's trailing newline.
            let line = match lines.next() {
                Some(line) => line,
                None if n == 0 => "",
                None => return bad("SNAPSHOT without its data line"),
            };
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.len() != n {
                return bad(format!(
                    "SNAPSHOT says {n} characters of data but {} follow",
                    line.len()
                ));
            }
            let data =
                base64::decode(line).map_err(|e| ParseError(format!("SNAPSHOT data: {e}")))?;
            if data.len() > MAX_CHUNK {
                return bad(format!("SNAPSHOT carries at most {MAX_CHUNK} bytes"));
            }
            Message::Snapshot {
                term: number(w[1], "term")?,
                from: number(w[2], "from")?,
                last_index: number(w[3], "last_index")?,
                last_term: number(w[4], "last_term")?,
                offset: number(w[5], "offset")?,
                done: yes_no(w[6])?,
                data,
            }
        }
        "" => return bad("empty line"),
        verb => {
            let shown: String = verb.chars().take(24).collect();
            return bad(format!("unknown Raft verb {shown}"));
        }
    };
    if lines.next().is_some() {
        return bad("extra lines after the message");
    }
    Ok(message)
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        match self {
            Message::PreVote {
                term,
                from,
                last_index,
                last_term,
            } => {
                write!(f, "PREVOTE {term} {from} {last_index} {last_term}")
            }
            Message::PreVoted {
                term,
                from,
                granted,
            } => {
                write!(f, "PREVOTED {term} {from} {}", yn(*granted))
            }
            Message::Vote {
                term,
                from,
                last_index,
                last_term,
            } => {
                write!(f, "VOTE {term} {from} {last_index} {last_term}")
            }
            Message::Voted {
                term,
                from,
                granted,
            } => write!(f, "VOTED {term} {from} {}", yn(*granted)),
            Message::Append {
                term,
                from,
                prev_index,
                prev_term,
                commit,
                entries,
            } => {
                write!(
                    f,
                    "APPEND {term} {from} {prev_index} {prev_term} {commit} {}",
                    entries.len()
                )?;
                for e in entries {
                    let text = escape(&e.command);
                    write!(f, "\nENTRY {} {} {text}", e.term, text.len())?;
                }
                Ok(())
            }
            Message::Appended {
                term,
                from,
                success,
                match_index,
            } => {
                write!(f, "APPENDED {term} {from} {} {match_index}", yn(*success))
            }
            Message::Snapshot {
                term,
                from,
                last_index,
                last_term,
                offset,
                done,
                data,
            } => {
                let text = base64::encode(data);
                write!(
                    f,
                    "SNAPSHOT {term} {from} {last_index} {last_term} {offset} {} {}\n{text}",
                    yn(*done),
                    text.len()
                )
            }
            Message::Snapped {
                term,
                from,
                last_index,
                received,
            } => write!(f, "SNAPPED {term} {from} {last_index} {received}"),
        }
    }
}
