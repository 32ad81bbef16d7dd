//! The wire protocol: every message as a Rust value, `parse` from a line, `Display` back to one.
//!
//! This module owns the *format* and nothing else: it never touches a socket, a file or a clock,
//! so every rule in PROTOCOL.md can be unit-tested with plain strings. `conn.rs` moves the lines;
//! the tracker and the peer decide what they mean.
//!
//! A message is one line of printable ASCII: a verb in capitals, then arguments separated by
//! spaces. Replies start with a status word (`ACK`, `PEERS`, `FILE`, `BITFIELD`, `DATA`, `PONG`,
//! `ERR`). `DATA <len>` is followed by exactly `len` raw bytes, which is how file contents travel.

use std::fmt;
use std::str::FromStr;

pub use crate::sha1::Digest;

mod accounts;
mod errors;
mod reply;
mod request;
mod role;

pub use accounts::AccountRequest;
pub use errors::{ErrCode, ProtoError};
pub use reply::{Reply, parse_reply};
pub use request::{Request, parse_request};
pub use role::{Role, check_verb, parse_request_for, redacted};

/// The longest request line a server accepts, not counting its `\n`. Longer lines get
/// `ERR too-long`.
pub const MAX_LINE: usize = 4096;
/// The longest reply line a client accepts (a `BITFIELD` of a large file is one long line).
pub const MAX_REPLY_LINE: usize = 1 << 20;
/// Longest file name, in bytes.
pub const MAX_NAME: usize = 255;
/// Most pieces a file may have (bounds bitfields and hash lists): 262,144, so a torrent of
/// 4 GiB in 32 KiB pieces (131,072) travels, a `BITFIELD` line stays under `MAX_REPLY_LINE`
/// and a `HASHES` list under 11 MB. The tracker keeps no per-piece state, so its memory does
/// not grow with it.
pub const MAX_PIECES: u64 = 1 << 18;
/// Smallest and largest piece size a holder may announce.
pub const MIN_PIECE: u32 = 1 << 10;
pub const MAX_PIECE: u32 = 1 << 26;

/// What a file *is*, as fixed by the first holder to announce it: the line `FILE ...`.
///
/// `root` is the SHA-1 of the file's piece-hash list (the text `HASHES` returns), so a short
/// line on the tracker vouches for every piece hash a downloader later fetches from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub size: u64,
    pub piece_size: u32,
    pub sha1: Digest,
    pub root: Digest,
}

impl Meta {
    /// Number of pieces (an empty file has none).
    pub fn pieces(&self) -> u32 {
        self.size.div_ceil(self.piece_size as u64) as u32
    }

    /// Byte offset and length of piece `index`; the last piece may be shorter.
    pub fn piece_range(&self, index: u32) -> (u64, u64) {
        let start = index as u64 * self.piece_size as u64;
        let len = (self.size - start.min(self.size)).min(self.piece_size as u64);
        (start, len)
    }

    /// True when size, piece size, hashes all agree (the name is not compared).
    pub fn same_content(&self, other: &Meta) -> bool {
        self.size == other.size
            && self.piece_size == other.piece_size
            && self.sha1 == other.sha1
            && self.root == other.root
    }

    fn check(&self) -> Result<(), ProtoError> {
        if !self.piece_size.is_power_of_two() || !(MIN_PIECE..=MAX_PIECE).contains(&self.piece_size)
        {
            return Err(ProtoError::bad(format!(
                "piece size {} must be a power of two from {MIN_PIECE} to {MAX_PIECE}",
                self.piece_size
            )));
        }
        if self.size.div_ceil(self.piece_size as u64) > MAX_PIECES {
            return Err(ProtoError::bad(format!(
                "{} bytes in pieces of {} is more than {MAX_PIECES} pieces",
                self.size, self.piece_size
            )));
        }
        Ok(())
    }
}

/// The piece size a holder picks for a file of `size` bytes: 256 KiB, doubled until the file
/// fits in 16384 pieces (so a bitfield line stays short).
pub fn default_piece_size(size: u64) -> u32 {
    let mut piece: u32 = 256 * 1024;
    while size.div_ceil(piece as u64) > 16384 && piece < MAX_PIECE {
        piece *= 2;
    }
    piece
}

/// A holder in a `PEERS` reply: `ip:port`, or `ip:port-partial` for a peer still downloading.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Holder {
    pub addr: String,
    pub partial: bool,
}

/// Is `name` a file name a peer may serve or write? One path component of printable ASCII,
/// no spaces, no `/` or `\`, not hidden (so never `.` or `..`, and never the peer's own
/// `.torrentphile` state folder).
pub fn check_name(name: &str) -> Result<(), ProtoError> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_NAME {
        "is longer than 255 bytes"
    } else if name.starts_with('.') {
        "starts with '.' (hidden names and '..' are not shared)"
    } else if name.contains(['/', '\\']) {
        "contains a path separator"
    } else if !name.bytes().all(|b| b.is_ascii_graphic()) {
        "has a space, a control character or a non-ASCII byte"
    } else {
        return Ok(());
    };
    Err(ProtoError::new(
        ErrCode::BadName,
        format!("name {:?} {why}", truncate(name, 64)),
    ))
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Split a raw line (without its `\n`; a trailing `\r` is dropped) into words.
fn words(line: &[u8]) -> Result<Vec<&str>, ProtoError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line)
        .ok()
        .filter(|t| {
            t.bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        })
        .ok_or_else(|| ProtoError::bad("the line is not printable ASCII"))?;
    Ok(text.split_ascii_whitespace().collect())
}

fn number<T: FromStr>(word: &str, what: &str) -> Result<T, ProtoError> {
    // Digits only: Rust's parsers would also take a leading `+`.
    let digits = !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| word.parse().ok()).flatten().ok_or_else(|| {
        ProtoError::bad(format!(
            "{what} \"{}\" is not a valid number",
            truncate(word, 32).escape_default()
        ))
    })
}

fn digest(word: &str, what: &str) -> Result<Digest, ProtoError> {
    if word.len() != 40 {
        return Err(ProtoError::bad(format!("{what} must be 40 hex digits")));
    }
    word.parse()
        .map_err(|_| ProtoError::bad(format!("{what} must be 40 hex digits")))
}

fn name(word: &str) -> Result<String, ProtoError> {
    check_name(word)?;
    Ok(word.to_string())
}

/// Parse the words `<name> <size> <piece-size> <sha1> <root>` (UPLOAD and FILE share them).
fn meta(args: &[&str]) -> Result<Meta, ProtoError> {
    let meta = Meta {
        name: name(args[0])?,
        size: number(args[1], "size")?,
        piece_size: number(args[2], "piece size")?,
        sha1: digest(args[3], "sha1")?,
        root: digest(args[4], "root")?,
    };
    meta.check()?;
    Ok(meta)
}

impl fmt::Display for Meta {
    /// The five words shared by `UPLOAD` and `FILE`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.name, self.size, self.piece_size, self.sha1, self.root
        )
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let suffix = if self.partial { "-partial" } else { "" };
        write!(f, "{}{suffix}", self.addr)
    }
}

#[cfg(test)]
mod tests;
