//! Make a .torrent from a file or a folder, laid out the way mktorrent 1.1 (Debian's) lays it
//! out, byte for byte, or with `Style::Transmission` the info dictionary transmission-create
//! 3.00 writes (so the info-hash matches).
//!
//! Owns the file walk, the file order, the piece hashing and the layout of the output. Never
//! writes the .torrent itself (the CLI does) and never follows a torrent's own paths.
//!
//! What the two tools do differently (read from their sources, confirmed by running them):
//!
//! | | mktorrent 1.1 | transmission-create 3.00 |
//! |---|---|---|
//! | files | every regular file, dotfiles too, empty files too | skips names starting with `.` and empty files |
//! | order | `strcmp` of the relative path (raw bytes, `/` included) | ASCII case-insensitive, bytes compared as *signed* `char` (so UTF-8 names sort first) |
//! | piece length | 2^18 unless `-l` | by total size: 32 KiB below 50 MiB ... 2 MiB from 2 GiB |
//! | `private` | `private=1` only with `-p` | always, `0` or `1` |
//! | name | `-n`, else the target's basename | the basename of the resolved path |
//!
//! Hashing streams: each of `threads` workers owns one piece buffer and hashes every
//! `threads`-th piece, reading it with positioned reads across file boundaries, so memory is
//! `threads * piece_length` whatever the size of the input.

use std::cmp::Ordering;
use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::bencode::{self, Value};

/// Whose layout to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Mktorrent,
    Transmission,
}

/// What `mktorrent` writes as `created by`; pass it as `created_by` to get its exact bytes.
pub const MKTORRENT_CREATED_BY: &str = "mktorrent 1.1";

/// Options for [`create`], named after mktorrent's flags.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Tracker tiers (`-a`, repeatable; commas separate URLs of one tier).
    pub announce: Vec<Vec<String>>,
    /// Piece length as a power of two (`-l`, 15..=28); `None` for the style's default.
    pub piece_length_log2: Option<u32>,
    pub private: bool,
    /// `-n`; `None` for the target's name.
    pub name: Option<String>,
    pub comment: Option<String>,
    /// Seconds since 1970 for `creation date`; `None` writes none (`-d`).
    pub creation_date: Option<i64>,
    pub created_by: String,
    pub style: Style,
    /// Hashing threads (at least 1).
    pub threads: usize,
}

/// A file to put in the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Where it is on disk.
    pub disk: PathBuf,
    /// Path components below the torrent name (empty for a single-file torrent).
    pub components: Vec<String>,
    pub length: u64,
}

/// Why a torrent could not be made.
#[derive(Debug)]
pub enum CreateError {
    /// A read or stat failed; the path says which file.
    Io(PathBuf, io::Error),
    /// The input cannot be described (a non-UTF-8 name, nothing to share, a bad option).
    Unusable(String),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CreateError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CreateError::Unusable(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for CreateError {}

/// Build the bytes of a .torrent for `target` (a file or a folder).
pub fn create(target: &Path, opts: &CreateOptions) -> Result<Vec<u8>, CreateError> {
    let io_err = |e| CreateError::Io(target.to_path_buf(), e);
    let meta = fs::metadata(target).map_err(io_err)?;
    let is_dir = meta.is_dir();
    if !is_dir && !meta.is_file() {
        return Err(CreateError::Unusable(format!(
            "{} is neither a regular file nor a folder",
            target.display()
        )));
    }
    let files = if is_dir {
        collect_files(target, opts.style)?
    } else {
        vec![SourceFile {
            disk: target.to_path_buf(),
            components: Vec::new(),
            length: meta.len(),
        }]
    };
    let total: u64 = files.iter().map(|f| f.length).sum();
    if opts.style == Style::Transmission && (files.is_empty() || total == 0) {
        return Err(CreateError::Unusable(format!(
            "{} holds no data (transmission-create refuses empty torrents)",
            target.display()
        )));
    }
    let piece_length = match (opts.piece_length_log2, opts.style) {
        (Some(n @ 15..=28), _) => 1u64 << n,
        (Some(n), _) => {
            return Err(CreateError::Unusable(format!(
                "piece length 2^{n} is out of range: use -l 15 to -l 28"
            )));
        }
        (None, Style::Mktorrent) => 1 << 18,
        (None, Style::Transmission) => transmission_piece_length(total),
    };
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => default_name(target, opts.style)?,
    };
    let pieces = hash_pieces(&files, piece_length, opts.threads)?;

    let mut info: Vec<(&[u8], Value)> = Vec::new();
    if is_dir {
        let list = files
            .iter()
            .map(|f| {
                Value::Dict(vec![
                    (b"length".as_slice(), Value::Int(f.length as i64)),
                    (
                        b"path".as_slice(),
                        Value::List(
                            f.components
                                .iter()
                                .map(|c| Value::Bytes(c.as_bytes()))
                                .collect(),
                        ),
                    ),
                ])
            })
            .collect();
        info.push((b"files", Value::List(list)));
    } else {
        info.push((b"length", Value::Int(total as i64)));
    }
    info.push((b"name", Value::Bytes(name.as_bytes())));
    info.push((b"piece length", Value::Int(piece_length as i64)));
    info.push((b"pieces", Value::Bytes(&pieces)));
    match opts.style {
        Style::Mktorrent if opts.private => info.push((b"private", Value::Int(1))),
        Style::Mktorrent => {}
        Style::Transmission => info.push((b"private", Value::Int(i64::from(opts.private)))),
    }

    let mut root: Vec<(&[u8], Value)> = Vec::new();
    let tiers: Vec<&Vec<String>> = opts.announce.iter().filter(|t| !t.is_empty()).collect();
    if let Some(first) = tiers.first() {
        root.push((b"announce", Value::Bytes(first[0].as_bytes())));
        // Like mktorrent: the list only when there is more than one URL in all.
        if tiers.len() > 1 || first.len() > 1 {
            let list = tiers
                .iter()
                .map(|t| Value::List(t.iter().map(|u| Value::Bytes(u.as_bytes())).collect()))
                .collect();
            root.push((b"announce-list", Value::List(list)));
        }
    }
    if let Some(c) = &opts.comment {
        root.push((b"comment", Value::Bytes(c.as_bytes())));
    }
    root.push((b"created by", Value::Bytes(opts.created_by.as_bytes())));
    if let Some(date) = opts.creation_date {
        root.push((b"creation date", Value::Int(date)));
    }
    root.push((b"info", Value::Dict(info)));
    Ok(bencode::encode(&Value::Dict(root)))
}

/// transmission-create's choice of piece length for a total size.
pub fn transmission_piece_length(total: u64) -> u64 {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match total {
        t if t >= 2 * GIB => 2 * MIB,
        t if t >= GIB => MIB,
        t if t >= 512 * MIB => 512 * KIB,
        t if t >= 350 * MIB => 256 * KIB,
        t if t >= 150 * MIB => 128 * KIB,
        t if t >= 50 * MIB => 64 * KIB,
        _ => 32 * KIB,
    }
}

fn default_name(target: &Path, style: Style) -> Result<String, CreateError> {
    // mktorrent takes the basename of the argument as typed (trailing slashes stripped);
    // Transmission the basename of the resolved path. For `.` or `..` both become the
    // resolved name here (mktorrent would write a name no client can use).
    let typed = target.file_name().filter(|_| style == Style::Mktorrent);
    let name = match typed {
        Some(n) => n.to_os_string(),
        None => fs::canonicalize(target)
            .map_err(|e| CreateError::Io(target.to_path_buf(), e))?
            .file_name()
            .map(|n| n.to_os_string())
            .ok_or_else(|| CreateError::Unusable("cannot name a torrent of /: use -n".into()))?,
    };
    name.into_string().map_err(|n| {
        CreateError::Unusable(format!("the name {n:?} is not UTF-8: give one with -n"))
    })
}

/// Every file below `root` that the style includes, in the style's order. Symbolic links are
/// followed (both tools stat, not lstat); what is neither a file nor a folder is skipped.
pub fn collect_files(root: &Path, style: Style) -> Result<Vec<SourceFile>, CreateError> {
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), style, &mut out)?;
    match style {
        Style::Mktorrent => out.sort_by_key(joined),
        Style::Transmission => out.sort_by(|a, b| {
            transmission_order(&joined(a), &joined(b)).then_with(|| joined(a).cmp(&joined(b)))
        }),
    }
    Ok(out)
}

fn joined(f: &SourceFile) -> Vec<u8> {
    f.components.join("/").into_bytes()
}

/// The order of libevent's `evutil_ascii_strcasecmp`, which transmission sorts files with:
/// ASCII letters folded to lower case, then bytes compared as C `char`, which is signed on
/// x86-64, so bytes from 0x80 up (UTF-8 names) sort *before* ASCII, and the terminating NUL
/// sorts after them too. Checked against transmission-create 3.00 on Debian amd64.
pub fn transmission_order(a: &[u8], b: &[u8]) -> Ordering {
    let key = |s: &[u8]| -> Vec<i8> {
        s.iter()
            .map(|c| c.to_ascii_lowercase() as i8)
            .chain(std::iter::once(0))
            .collect()
    };
    key(a).cmp(&key(b))
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    style: Style,
    out: &mut Vec<SourceFile>,
) -> Result<(), CreateError> {
    let entries = fs::read_dir(dir).map_err(|e| CreateError::Io(dir.to_path_buf(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CreateError::Io(dir.to_path_buf(), e))?;
        let os_name = entry.file_name();
        if style == Style::Transmission && os_name.as_bytes().first() == Some(&b'.') {
            continue;
        }
        let path = entry.path();
        let Ok(name) = os_name.into_string() else {
            return Err(CreateError::Unusable(format!(
                "{} has a name that is not UTF-8: rename it",
                path.display()
            )));
        };
        let meta = fs::metadata(&path).map_err(|e| CreateError::Io(path.clone(), e))?;
        prefix.push(name);
        if meta.is_dir() {
            walk(&path, prefix, style, out)?;
        } else if meta.is_file() && (style == Style::Mktorrent || meta.len() > 0) {
            out.push(SourceFile {
                disk: path,
                components: prefix.clone(),
                length: meta.len(),
            });
        }
        prefix.pop();
    }
    Ok(())
}

/// SHA-1 of every piece of the concatenation of `files`, using `threads` workers with one
/// piece buffer each.
pub fn hash_pieces(
    files: &[SourceFile],
    piece_length: u64,
    threads: usize,
) -> Result<Vec<u8>, CreateError> {
    let mut offsets = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for f in files {
        offsets.push(total);
        total += f.length;
    }
    let count = total.div_ceil(piece_length) as usize;
    let threads = threads.clamp(1, count.max(1));
    let results: Vec<Result<Vec<[u8; 20]>, CreateError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|w| {
                let offsets = &offsets;
                s.spawn(move || {
                    let mut reader = PieceReader::new(files, offsets);
                    let mut bufs = [vec![0u8; piece_length as usize], vec![0; 0]];
                    let mut hashes = Vec::with_capacity(count / threads + 1);
                    let mine: Vec<usize> = (w..count).step_by(threads).collect();
                    // Two pieces at a time: one core hashes a pair faster than one after the
                    // other (`Sha1::update_pair`); a last piece alone pairs with nothing.
                    for pair in mine.chunks(2) {
                        for (k, buf) in bufs.iter_mut().enumerate() {
                            // Resized, not cleared: a full piece's buffer is not zeroed again.
                            match pair.get(k) {
                                Some(&index) => {
                                    let start = index as u64 * piece_length;
                                    buf.resize(piece_length.min(total - start) as usize, 0);
                                    reader.read(start, buf)?;
                                }
                                None => buf.clear(),
                            }
                        }
                        let (mut x, mut y) = (crate::sha1::Sha1::new(), crate::sha1::Sha1::new());
                        x.update_pair(&bufs[0], &mut y, &bufs[1]);
                        hashes.push(x.digest().bytes());
                        if pair.len() == 2 {
                            hashes.push(y.digest().bytes());
                        }
                    }
                    Ok(hashes)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(CreateError::Unusable("a hashing thread panicked".into()))
                })
            })
            .collect()
    });
    let mut per_worker = Vec::with_capacity(threads);
    for r in results {
        per_worker.push(r?);
    }
    let mut pieces = Vec::with_capacity(count * 20);
    for index in 0..count {
        pieces.extend_from_slice(&per_worker[index % threads][index / threads]);
    }
    Ok(pieces)
}

/// Reads byte ranges of the concatenated files, keeping the last file it opened.
struct PieceReader<'a> {
    files: &'a [SourceFile],
    offsets: &'a [u64],
    open: Option<(usize, File)>,
}

impl<'a> PieceReader<'a> {
    fn new(files: &'a [SourceFile], offsets: &'a [u64]) -> Self {
        PieceReader {
            files,
            offsets,
            open: None,
        }
    }

    fn read(&mut self, start: u64, buf: &mut [u8]) -> Result<(), CreateError> {
        let mut done = 0;
        // The last file starting at or before `start` (empty files are skipped naturally).
        let mut i = self
            .offsets
            .partition_point(|&o| o <= start)
            .saturating_sub(1);
        while done < buf.len() {
            let f = self.files.get(i).ok_or_else(|| {
                CreateError::Unusable("the files got shorter while hashing".into())
            })?;
            let pos = start + done as u64 - self.offsets[i];
            if pos >= f.length {
                i += 1;
                continue;
            }
            if self.open.as_ref().map(|(n, _)| *n) != Some(i) {
                let file = File::open(&f.disk).map_err(|e| CreateError::Io(f.disk.clone(), e))?;
                self.open = Some((i, file));
            }
            let Some((_, file)) = &self.open else {
                continue;
            };
            let want = (f.length - pos).min((buf.len() - done) as u64) as usize;
            file.read_exact_at(&mut buf[done..done + want], pos)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::UnexpectedEof => CreateError::Unusable(format!(
                        "{} got shorter while hashing: run again",
                        f.disk.display()
                    )),
                    _ => CreateError::Io(f.disk.clone(), e),
                })?;
            done += want;
            i += 1;
        }
        Ok(())
    }
}
