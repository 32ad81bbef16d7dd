//! A .torrent file (BEP 3 "metainfo files"): parse, validate, and answer the questions a
//! download asks (which bytes a piece covers, which files they fall in, what hash they must
//! have).
//!
//! Owns the meaning of the keys. Never re-encodes to compute the info-hash: the hash is the
//! SHA-1 of the `info` value's bytes exactly as found in the file, so a torrent whose info
//! dictionary carries keys we do not know still gets the hash every other client gives it.
//! Never touches the disk: callers hand in bytes.
//!
//! Limits: no cap on the piece count other than the bytes of the file itself (a 4 GiB file at
//! 32 KiB pieces has 131,072 pieces and 2.5 MiB of hashes). The cap on how large a .torrent
//! we read at all is [`MAX_TORRENT_BYTES`].

use std::fmt;
use std::path::PathBuf;

use super::bencode::{self, Value};

/// The largest .torrent accepted: 64 MiB holds 3.3 million piece hashes. The one place a
/// torrent's size (and so its piece count) is bounded.
pub const MAX_TORRENT_BYTES: u64 = 64 << 20;

/// One file of a torrent, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path components below the torrent's name (single-file torrent: just the name).
    pub path: Vec<String>,
    pub length: u64,
    /// Where the file starts in the concatenation of all files (the piece space).
    pub offset: u64,
}

/// A parsed, validated .torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metainfo {
    /// SHA-1 of the raw `info` bytes.
    pub info_hash: [u8; 20],
    /// `info.name`: the file name (single file) or the folder name (multi-file).
    pub name: String,
    pub piece_length: u64,
    /// One SHA-1 per piece.
    pub pieces: Vec<[u8; 20]>,
    /// Sum of all file lengths.
    pub total_length: u64,
    /// The files in torrent order, with their offsets in the piece space.
    pub files: Vec<FileEntry>,
    /// True when the torrent has `files` (a folder), false when it has `length`.
    pub multi_file: bool,
    /// `info.private` is 1.
    pub private: bool,
    /// Tracker tiers: `announce-list` when present, else `[[announce]]`, else empty.
    pub trackers: Vec<Vec<String>>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
}

/// Why a .torrent was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    /// Not valid bencode.
    Bencode(bencode::Error),
    /// Valid bencode, but not a valid torrent; the message says which rule.
    Invalid(String),
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetainfoError::Bencode(e) => write!(f, "{e}"),
            MetainfoError::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for MetainfoError {}

fn invalid<T>(msg: impl Into<String>) -> Result<T, MetainfoError> {
    Err(MetainfoError::Invalid(msg.into()))
}

impl Metainfo {
    /// Parse and validate a whole .torrent file.
    pub fn parse(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let root = bencode::decode(bytes).map_err(MetainfoError::Bencode)?;
        let raw_info = match bencode::raw_dict_entry(bytes, b"info") {
            Ok(Some(raw)) => raw,
            Ok(None) => return invalid("no info dictionary"),
            Err(e) => return Err(MetainfoError::Bencode(e)),
        };
        let info = match root.get(b"info") {
            Some(v @ Value::Dict(_)) => v,
            Some(other) => return invalid(format!("info is a {}, not a dictionary", other.kind())),
            None => return invalid("no info dictionary"),
        };
        let info_hash = crate::sha1::Sha1::from(raw_info).digest().bytes();

        let name = text(info, "name", "info.name")?
            .ok_or(MetainfoError::Invalid("info.name is missing".into()))?;
        check_component(&name, "info.name")?;
        let piece_length = match info.get(b"piece length") {
            Some(Value::Int(n)) if *n > 0 => *n as u64,
            Some(Value::Int(n)) => return invalid(format!("piece length {n} is not positive")),
            _ => return invalid("info.piece length is missing or not an integer"),
        };
        let pieces = match info.get(b"pieces") {
            Some(Value::Bytes(b)) if b.len() % 20 == 0 => b
                .chunks_exact(20)
                .map(|c| {
                    let mut h = [0; 20];
                    h.copy_from_slice(c);
                    h
                })
                .collect::<Vec<_>>(),
            Some(Value::Bytes(b)) => {
                return invalid(format!(
                    "info.pieces is {} bytes, not a multiple of 20",
                    b.len()
                ));
            }
            _ => return invalid("info.pieces is missing or not a string"),
        };

        let (files, multi_file) = match (info.get(b"length"), info.get(b"files")) {
            (Some(_), Some(_)) => return invalid("info has both length and files"),
            (None, None) => return invalid("info has neither length nor files"),
            (Some(len), None) => {
                let length = length_of(len, "info.length")?;
                let path = vec![name.clone()];
                (
                    vec![FileEntry {
                        path,
                        length,
                        offset: 0,
                    }],
                    false,
                )
            }
            (None, Some(Value::List(list))) => (file_list(list)?, true),
            (None, Some(_)) => return invalid("info.files is not a list"),
        };
        let total_length = match files.last() {
            Some(f) => f.offset.checked_add(f.length),
            None => Some(0),
        }
        .ok_or(MetainfoError::Invalid("total length overflows".into()))?;
        let expected = total_length.div_ceil(piece_length);
        if pieces.len() as u64 != expected {
            return invalid(format!(
                "info.pieces holds {} hashes but {total_length} bytes in pieces of \
                 {piece_length} need {expected}",
                pieces.len()
            ));
        }

        let private = matches!(info.get(b"private"), Some(Value::Int(1)));
        let mut trackers = Vec::new();
        if let Some(Value::List(tiers)) = root.get(b"announce-list") {
            for tier in tiers {
                let Value::List(urls) = tier else {
                    return invalid("announce-list holds a tier that is not a list");
                };
                let mut t = Vec::new();
                for url in urls {
                    match url {
                        Value::Bytes(b) => t.push(utf8(b, "announce-list")?),
                        _ => return invalid("announce-list holds a URL that is not a string"),
                    }
                }
                if !t.is_empty() {
                    trackers.push(t);
                }
            }
        }
        if trackers.is_empty()
            && let Some(url) = text(&root, "announce", "announce")?
        {
            trackers.push(vec![url]);
        }
        Ok(Metainfo {
            info_hash,
            name,
            piece_length,
            pieces,
            total_length,
            files,
            multi_file,
            private,
            trackers,
            comment: text(&root, "comment", "comment")?,
            created_by: text(&root, "created by", "created by")?,
            creation_date: match root.get(b"creation date") {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            },
        })
    }

    /// The info-hash as 40 lowercase hex digits.
    pub fn info_hash_hex(&self) -> String {
        self.info_hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Length of piece `index` (the last one may be shorter); 0 past the end.
    pub fn piece_size(&self, index: usize) -> u64 {
        let start = (index as u64).saturating_mul(self.piece_length);
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }

    /// The parts of files piece `index` covers, in order: (file index, offset in that file,
    /// length). Empty files are never part of a piece.
    pub fn piece_spans(&self, index: usize) -> Vec<(usize, u64, u64)> {
        let start = index as u64 * self.piece_length;
        let end = start + self.piece_size(index);
        // The first file whose end is past `start`.
        let first = self.files.partition_point(|f| f.offset + f.length <= start);
        let mut spans = Vec::new();
        for (i, f) in self.files.iter().enumerate().skip(first) {
            if f.offset >= end {
                break;
            }
            let from = start.max(f.offset);
            let to = end.min(f.offset + f.length);
            if to > from {
                spans.push((i, from - f.offset, to - from));
            }
        }
        spans
    }

    /// Where file `index` lives below a download folder: `name` for a single file,
    /// `name/a/b` for a multi-file torrent. Components are validated at parse time.
    pub fn file_path(&self, index: usize) -> PathBuf {
        let mut p = PathBuf::from(&self.name);
        if self.multi_file {
            p.extend(&self.files[index].path);
        }
        p
    }
}

fn utf8(b: &[u8], field: &str) -> Result<String, MetainfoError> {
    String::from_utf8(b.to_vec()).or_else(|_| invalid(format!("{field} is not valid UTF-8")))
}

/// An optional string field.
fn text(dict: &Value<'_>, key: &str, field: &str) -> Result<Option<String>, MetainfoError> {
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Bytes(b)) => utf8(b, field).map(Some),
        Some(other) => invalid(format!("{field} is a {}, not a string", other.kind())),
    }
}

fn length_of(v: &Value<'_>, field: &str) -> Result<u64, MetainfoError> {
    match v {
        Value::Int(n) if *n >= 0 => Ok(*n as u64),
        Value::Int(n) => invalid(format!("{field} {n} is negative")),
        other => invalid(format!("{field} is a {}, not an integer", other.kind())),
    }
}

/// A path component (or the name) that is safe to create on disk below a chosen folder.
fn check_component(c: &str, field: &str) -> Result<(), MetainfoError> {
    if c.is_empty() {
        return invalid(format!("{field} has an empty path component"));
    }
    if c == "." || c == ".." {
        return invalid(format!("{field} has a path component {c:?}"));
    }
    if c.starts_with('/') {
        return invalid(format!("{field} has an absolute path component {c:?}"));
    }
    if c.contains('/') {
        return invalid(format!("{field} has a path component with a slash: {c:?}"));
    }
    if c.contains('\0') {
        return invalid(format!("{field} has a path component holding a NUL byte"));
    }
    Ok(())
}

fn file_list(list: &[Value<'_>]) -> Result<Vec<FileEntry>, MetainfoError> {
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for (i, entry) in list.iter().enumerate() {
        let field = format!("info.files[{i}]");
        let length = match entry.get(b"length") {
            Some(v) => length_of(v, &format!("{field}.length"))?,
            None => return invalid(format!("{field} has no length")),
        };
        let parts = match entry.get(b"path") {
            Some(Value::List(parts)) if parts.is_empty() => {
                return invalid(format!("{field}.path is empty"));
            }
            Some(Value::List(parts)) => parts,
            _ => return invalid(format!("{field}.path is missing or not a list")),
        };
        let mut path = Vec::with_capacity(parts.len());
        for part in parts {
            let Value::Bytes(b) = part else {
                return invalid(format!("{field}.path holds a {}", part.kind()));
            };
            let c = utf8(b, &format!("{field}.path"))?;
            check_component(&c, &format!("{field}.path"))?;
            path.push(c);
        }
        files.push(FileEntry {
            path,
            length,
            offset,
        });
        offset = offset
            .checked_add(length)
            .ok_or(MetainfoError::Invalid("total length overflows".into()))?;
    }
    if files.is_empty() {
        return invalid("info.files is empty");
    }
    // Two entries with one path would write over each other on disk.
    let mut seen = std::collections::HashSet::with_capacity(files.len());
    if let Some(dup) = files.iter().find(|f| !seen.insert(&f.path)) {
        return invalid(format!("info.files lists {:?} twice", dup.path.join("/")));
    }
    Ok(files)
}
