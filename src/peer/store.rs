//! A peer's folder: which files it shares, their piece hashes, and downloads in progress.
//!
//! Layout on disk, inside the peer's folder `DIR`:
//! - `DIR/<name>`: a complete file, shared as it is;
//! - `DIR/.torrentphile/<name>.meta`: what the file is (the `FILE` line, its mtime, its piece
//!   hashes), so a restart does not hash gigabytes again;
//! - `DIR/.torrentphile/<name>.part`: a download in progress. It is renamed to `DIR/<name>`
//!   only once every piece and the whole file are verified.
//!
//! Invariants: a name is checked by `protocol::check_name` before it becomes a path, so the
//! store never reads or writes outside `DIR`; hidden files and symlinks in `DIR` are never
//! shared; the map is held under its mutex only for lookups and inserts, never across I/O.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::UNIX_EPOCH;

use crate::protocol::{self, Digest, Meta, Reply, check_name};

/// Most downloaders whose uploads are counted by name.
pub const MAX_ACCOUNTS: usize = 1024;

/// The hidden folder inside a peer's folder that holds its state.
pub const STATE_DIR: &str = ".torrentphile";

/// Which pieces of a file this peer holds and has verified. Lock-free: server threads read it
/// while downloader threads set bits.
#[derive(Debug)]
pub struct PieceSet {
    words: Vec<AtomicU64>,
    len: u32,
    count: AtomicU32,
}

impl PieceSet {
    pub fn new(len: u32) -> PieceSet {
        PieceSet {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            len,
            count: AtomicU32::new(0),
        }
    }

    pub fn has(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Mark piece `i` held; true if it was not held before.
    pub fn set(&self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let bit = 1 << (i % 64);
        let old = self.words[(i / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        let new = old & bit == 0;
        if new {
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        new
    }

    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// The bitfield as `BITFIELD` sends it: one `0` or `1` per piece.
    pub fn bits(&self) -> String {
        (0..self.len)
            .map(|i| if self.has(i) { '1' } else { '0' })
            .collect()
    }
}

/// How much of a file this peer holds.
#[derive(Debug, Clone)]
pub enum Holding {
    Complete,
    Partial(Arc<PieceSet>),
}

/// One file the peer knows about.
#[derive(Debug)]
pub struct Entry {
    pub meta: Meta,
    pub hashes: Arc<Vec<Digest>>,
    pub holding: Holding,
    /// Which file on disk a complete file was when it was hashed (`None` for a part file).
    pub stamp: Option<FileStamp>,
}

/// Identifies one version of one file on disk: its inode and its modification time. A file
/// edited in place has a new mtime; a file replaced (even by a symlink to somewhere else) is
/// another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    mtime: u128,
}

impl FileStamp {
    pub fn of(md: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: md.dev(),
            ino: md.ino(),
            mtime: mtime_nanos(md),
        }
    }
}

/// Is the file behind `entry` (whose opened file's metadata is `md`) still what was announced?
/// The same size, and for a complete file the same inode and modification time.
pub fn unchanged(entry: &Entry, md: &fs::Metadata) -> bool {
    md.len() == entry.meta.size && entry.stamp.is_none_or(|s| s == FileStamp::of(md))
}

/// Called with a name when a shared file turns out to have changed on disk.
pub type ChangeHook = Box<dyn Fn(&str) + Send + Sync>;

/// Why a `share` or a scan could not use a file.
pub type StoreError = String;

/// A peer's folder.
pub struct Store {
    dir: PathBuf,
    state: PathBuf,
    piece_size: Option<u32>,
    files: Mutex<HashMap<String, Arc<Entry>>>,
    /// Bytes served, by the id a downloader gave in `HELLO` (or its address).
    uploads: Mutex<HashMap<String, u64>>,
    on_change: Mutex<Option<ChangeHook>>,
}

impl Store {
    /// Open (and create if needed) the folder `dir`. `piece_size` overrides the default piece
    /// size for files this peer hashes.
    pub fn open(dir: &Path, piece_size: Option<u32>) -> Result<Store, StoreError> {
        let state = dir.join(STATE_DIR);
        fs::create_dir_all(&state).map_err(|e| {
            format!(
                "cannot create {}: {e} (is {} a writable folder?)",
                state.display(),
                dir.display()
            )
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            state,
            piece_size,
            files: Mutex::default(),
            uploads: Mutex::default(),
            on_change: Mutex::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn files(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Path of a complete file (the name must have passed `check_name`).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn part_path(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.part"))
    }

    fn meta_path(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.meta"))
    }

    /// The file a server should read for `entry`.
    pub fn data_path(&self, entry: &Entry) -> PathBuf {
        match entry.holding {
            Holding::Complete => self.path(&entry.meta.name),
            Holding::Partial(_) => self.part_path(&entry.meta.name),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.files().get(name).cloned()
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let mut all: Vec<_> = self.files().values().cloned().collect();
        all.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
        all
    }

    /// Call `hook` with the name of each shared file found changed on disk.
    pub fn on_change(&self, hook: ChangeHook) {
        *self
            .on_change
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// `name` changed on disk since it was hashed: stop sharing it and tell the hook.
    pub fn file_changed(&self, name: &str) {
        if self.forget(name)
            && let Some(hook) = &*self
                .on_change
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        {
            hook(name);
        }
    }

    /// Stop sharing `name` (the file stays on disk). False if it was not shared.
    pub fn forget(&self, name: &str) -> bool {
        self.files().remove(name).is_some()
    }

    /// Share every regular, visible file directly in the folder. Returns what is now shared
    /// and a warning for each file that could not be.
    pub fn scan(&self) -> (Vec<Meta>, Vec<String>) {
        let mut shared = Vec::new();
        let mut warnings = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                return (
                    shared,
                    vec![format!("cannot read {}: {e}", self.dir.display())],
                );
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in names {
            match self.share_existing(&name) {
                Ok(meta) => shared.push(meta),
                Err(e) => warnings.push(e),
            }
        }
        (shared, warnings)
    }

    /// Share `DIR/<name>`, a file already in the folder: hash it, or reuse the cached hashes
    /// if the file has not changed since.
    pub fn share_existing(&self, name: &str) -> Result<Meta, StoreError> {
        check_name(name).map_err(|e| format!("not shared: {}", e.message))?;
        let path = self.path(name);
        let md = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !md.is_file() {
            return Err(format!(
                "{}: not a regular file; not shared",
                path.display()
            ));
        }
        let mtime = mtime_nanos(&md);
        let (meta, hashes) = match self.load_meta(name) {
            Some((meta, stamp, hashes)) if stamp == mtime && meta.size == md.len() => {
                (meta, hashes)
            }
            _ => {
                let piece_size = self
                    .piece_size
                    .unwrap_or_else(|| protocol::default_piece_size(md.len()));
                let (meta, hashes) = hash_file(&path, name, piece_size)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                self.save_meta(&meta, mtime, &hashes)
                    .map_err(|e| format!("cannot write {}: {e}", self.meta_path(name).display()))?;
                (meta, hashes)
            }
        };
        self.files().insert(
            name.to_string(),
            Arc::new(Entry {
                meta: meta.clone(),
                hashes: Arc::new(hashes),
                holding: Holding::Complete,
                stamp: Some(FileStamp::of(&md)),
            }),
        );
        Ok(meta)
    }

    /// Bring a file from anywhere into the folder and share it: a hard link where possible, a
    /// copy otherwise. A file already in the folder is shared in place.
    pub fn share_path(&self, src: &Path) -> Result<Meta, StoreError> {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: has no usable file name", src.display()))?;
        check_name(name).map_err(|e| format!("{}: {}", src.display(), e.message))?;
        let dest = self.path(name);
        let same = fs::canonicalize(src).ok() == fs::canonicalize(&dest).ok();
        if !same {
            if dest.exists() {
                return Err(format!(
                    "{} already exists; rename {} or remove the old file first",
                    dest.display(),
                    src.display()
                ));
            }
            if fs::hard_link(src, &dest).is_err() {
                fs::copy(src, &dest).map_err(|e| format!("cannot copy {}: {e}", src.display()))?;
            }
        }
        self.share_existing(name)
    }

    /// Cached meta for `name`: the meta, the file mtime it was made for, the piece hashes.
    /// Anything inconsistent reads as "no cache".
    pub fn load_meta(&self, name: &str) -> Option<(Meta, u128, Vec<Digest>)> {
        let text = fs::read_to_string(self.meta_path(name)).ok()?;
        let mut lines = text.splitn(3, '\n');
        let Ok(Reply::File(meta)) = protocol::parse_reply(lines.next()?.as_bytes()) else {
            return None;
        };
        let stamp: u128 = lines.next()?.strip_prefix("mtime ")?.parse().ok()?;
        let hashes = parse_hashes(lines.next()?, &meta)?;
        (meta.name == name).then_some((meta, stamp, hashes))
    }

    pub fn save_meta(&self, meta: &Meta, mtime: u128, hashes: &[Digest]) -> io::Result<()> {
        let text = format!(
            "{}\nmtime {mtime}\n{}",
            Reply::File(meta.clone()),
            hashes_text(hashes)
        );
        let tmp = self.state.join(format!("{}.meta.tmp", meta.name));
        fs::write(&tmp, text)?;
        fs::rename(tmp, self.meta_path(&meta.name))
    }

    /// Start (or resume) a download: the entry becomes a partial holding that the server can
    /// serve from as pieces are verified.
    pub fn begin_partial(&self, meta: &Meta, hashes: Arc<Vec<Digest>>, have: Arc<PieceSet>) {
        self.files().insert(
            meta.name.clone(),
            Arc::new(Entry {
                meta: meta.clone(),
                hashes,
                holding: Holding::Partial(have),
                stamp: None,
            }),
        );
    }

    /// A download is complete and verified: rename its part file into place and share it.
    pub fn publish(&self, meta: &Meta, hashes: Arc<Vec<Digest>>) -> Result<(), StoreError> {
        let (part, dest) = (self.part_path(&meta.name), self.path(&meta.name));
        if dest.exists() {
            return Err(format!(
                "{} appeared while downloading; the verified copy stays in {}",
                dest.display(),
                part.display()
            ));
        }
        fs::rename(&part, &dest).map_err(|e| format!("cannot rename {}: {e}", part.display()))?;
        let md = fs::metadata(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let _ = self.save_meta(meta, mtime_nanos(&md), &hashes);
        self.files().insert(
            meta.name.clone(),
            Arc::new(Entry {
                meta: meta.clone(),
                hashes,
                holding: Holding::Complete,
                stamp: Some(FileStamp::of(&md)),
            }),
        );
        Ok(())
    }

    /// Count `bytes` served to `who`. At most `MAX_ACCOUNTS` downloaders are counted by name
    /// (a client may claim any name it likes in `HELLO`); the rest are counted as `others`.
    pub fn count_upload(&self, who: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if uploads.contains_key(who) || uploads.len() < MAX_ACCOUNTS {
            who
        } else {
            "others"
        };
        *uploads.entry(key.to_string()).or_default() += bytes;
    }

    /// Bytes served so far, by downloader.
    pub fn uploads(&self) -> HashMap<String, u64> {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn mtime_nanos(md: &fs::Metadata) -> u128 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The piece-hash list as `HASHES` sends it: one lowercase hex SHA-1 per line.
pub fn hashes_text(hashes: &[Digest]) -> String {
    let mut text = String::with_capacity(hashes.len() * 41);
    for h in hashes {
        let _ = writeln!(text, "{h}");
    }
    text
}

/// Parse and check a piece-hash list against `meta`: the right count, and its SHA-1 is
/// `meta.root`. This is how a downloader trusts hashes it got from an untrusted peer.
pub fn parse_hashes(text: &str, meta: &Meta) -> Option<Vec<Digest>> {
    if sha1_smol::Sha1::from(text).digest() != meta.root {
        return None;
    }
    let hashes: Vec<Digest> = text
        .lines()
        .map(|l| l.parse().ok())
        .collect::<Option<_>>()?;
    (hashes.len() == meta.pieces() as usize).then_some(hashes)
}

/// Hash a file: its whole SHA-1 and one SHA-1 per piece, in one read. The whole-file hash runs
/// on a second thread so the two hashes of each piece use both cores.
pub fn hash_file(path: &Path, name: &str, piece_size: u32) -> io::Result<(Meta, Vec<Digest>)> {
    let mut file = File::open(path)?;
    let mut whole = sha1_smol::Sha1::new();
    let mut hashes = Vec::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; piece_size as usize];
    let mut next = vec![0u8; piece_size as usize];
    let mut filled = read_full(&mut file, &mut buf)?;
    while filled > 0 {
        size += filled as u64;
        let piece = &buf[..filled];
        // Hash this piece twice on two threads while the main thread reads the next one.
        let (got, piece_hash) = std::thread::scope(|s| {
            let w = s.spawn(|| whole.update(piece));
            let p = sha1_smol::Sha1::from(piece).digest();
            let got = read_full(&mut file, &mut next);
            let _ = w.join();
            (got, p)
        });
        hashes.push(piece_hash);
        std::mem::swap(&mut buf, &mut next);
        filled = got?;
    }
    let root = sha1_smol::Sha1::from(hashes_text(&hashes)).digest();
    let meta = Meta {
        name: name.to_string(),
        size,
        piece_size,
        sha1: whole.digest(),
        root,
    };
    Ok((meta, hashes))
}

/// Read until `buf` is full or the file ends; returns how much was read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Check which pieces of a part file already match their hashes (a resumed download trusts
/// nothing it cannot verify).
pub fn recheck(file: &File, meta: &Meta, hashes: &[Digest], have: &PieceSet) -> io::Result<()> {
    let mut buf = vec![0u8; meta.piece_size as usize];
    for i in 0..meta.pieces() {
        let (offset, len) = meta.piece_range(i);
        let buf = &mut buf[..len as usize];
        if file.read_exact_at(buf, offset).is_ok()
            && sha1_smol::Sha1::from(&*buf).digest() == hashes[i as usize]
        {
            have.set(i);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tp-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn piece_set_counts_and_renders_bits() {
        let set = PieceSet::new(70);
        assert!(set.set(0));
        assert!(!set.set(0));
        assert!(set.set(69));
        assert!(!set.set(70));
        assert_eq!(set.count(), 2);
        assert!(set.has(69) && !set.has(68) && !set.has(1000));
        let bits = set.bits();
        assert_eq!(bits.len(), 70);
        assert!(bits.starts_with("10") && bits.ends_with("01"));
    }

    #[test]
    fn hashing_matches_sha1_and_pieces_and_the_cache_is_reused() {
        let dir = temp_dir("hash");
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(dir.join("a.bin"), &data).unwrap();
        fs::write(dir.join(".hidden"), b"x").unwrap();
        let store = Store::open(&dir, Some(1024)).unwrap();
        let (shared, warnings) = store.scan();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(shared.len(), 1);
        let meta = &shared[0];
        assert_eq!(meta.sha1, sha1_smol::Sha1::from(&data).digest());
        assert_eq!(meta.pieces(), 5);
        let entry = store.get("a.bin").unwrap();
        assert_eq!(
            entry.hashes[4],
            sha1_smol::Sha1::from(&data[4096..]).digest()
        );
        let (cached, _, hashes) = store.load_meta("a.bin").unwrap();
        assert_eq!(&cached, meta);
        assert_eq!(hashes, *entry.hashes);
        assert!(parse_hashes(&hashes_text(&hashes), meta).is_some());
        assert!(parse_hashes(&hashes_text(&hashes[1..]), meta).is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn empty_files_have_no_pieces() {
        let dir = temp_dir("empty");
        fs::write(dir.join("empty"), b"").unwrap();
        let store = Store::open(&dir, None).unwrap();
        let meta = store.share_existing("empty").unwrap();
        assert_eq!((meta.size, meta.pieces()), (0, 0));
        assert_eq!(
            meta.sha1.to_string(),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn symlinks_and_bad_names_are_not_shared() {
        let dir = temp_dir("links");
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link")).unwrap();
        let store = Store::open(&dir, None).unwrap();
        assert!(store.scan().0.is_empty());
        assert!(store.share_existing("link").is_err());
        assert!(store.share_existing("../etc").is_err());
        fs::remove_dir_all(dir).unwrap();
    }
}
