//! A peer's folder: which files it shares, their piece hashes, and downloads in progress.
//!
//! Layout on disk, inside the peer's folder `DIR`:
//! - `DIR/<name>`: a complete file, shared as it is;
//! - `DIR/.torrentphile/`: the peer's own state (`state_files.rs`): `NAME.meta` caches,
//!   `NAME.part` downloads in progress, `NAME.lock` download locks.
//!
//! The files of this module, by job:
//! - `mod.rs` (here): `Store`, the map of entries; share, forget, publish;
//! - `scan.rs`: finding the folder's files, at start and again and again while the peer runs;
//! - `pieces.rs`: `PieceSet`, the verified pieces of one file;
//! - `hashing.rs`: hashing files and checking piece-hash lists;
//! - `state_files.rs`: the `.torrentphile/` folder;
//! - `layout.rs`: `Layout`, positioned reads and writes over the files a name's bytes lie in;
//! - `torrent.rs`: seeding a .torrent's data, a torrent download's part files and publish.
//!
//! Invariants: a name is checked by `protocol::check_name` before it becomes a path, so the
//! store never reads or writes outside `DIR`; hidden files and symlinks in `DIR` are never
//! shared; the map is held under its mutex only for lookups and inserts, never across I/O;
//! a file appears under its final name only by `publish`, which never replaces a file.

mod hashing;
mod layout;
mod pieces;
mod regular;
mod scan;
mod state_files;
mod torrent;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::UNIX_EPOCH;

use crate::protocol::{self, Digest, Meta, check_name};

pub use hashing::{hash_file, hashes_text, parse_hashes, recheck};
pub use layout::Layout;
pub use pieces::PieceSet;
pub use regular::open_regular;
pub use scan::Found;
use state_files::StateDir;
pub use state_files::{LockError, NameLock, STATE_DIR};
pub use torrent::{check_pieces, torrent_files};

/// Most downloaders whose uploads are counted by name.
pub const MAX_ACCOUNTS: usize = 1024;

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
    /// A torrent's data, spread over the files that hold it (`None` for a plain file, which
    /// is `DIR/<name>` or its part file).
    pub layout: Option<Arc<Layout>>,
}

/// Identifies one version of one file on disk: its inode, size and modification time. A file
/// edited in place has a new mtime; a file replaced (even by a symlink to somewhere else) is
/// another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: u128,
}

impl FileStamp {
    pub fn of(md: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
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
    state: StateDir,
    piece_size: Option<u32>,
    files: Mutex<HashMap<String, Arc<Entry>>>,
    /// Bytes served, by the id a downloader gave in `HELLO` (or its address).
    uploads: Mutex<HashMap<String, u64>>,
    on_change: Mutex<Option<ChangeHook>>,
    /// What the periodic scan remembers between two passes (`scan.rs`).
    memory: Mutex<scan::Memory>,
}

impl Store {
    /// Open (and create if needed) the folder `dir`. `piece_size` overrides the default piece
    /// size for files this peer hashes.
    pub fn open(dir: &Path, piece_size: Option<u32>) -> Result<Store, StoreError> {
        Ok(Store {
            dir: dir.to_path_buf(),
            state: StateDir::create(dir)?,
            piece_size,
            files: Mutex::default(),
            uploads: Mutex::default(),
            on_change: Mutex::default(),
            memory: Mutex::default(),
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

    /// Path of the part file of a download of `name`.
    pub fn part_path(&self, name: &str) -> PathBuf {
        self.state.part_path(name)
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

    /// Share `DIR/<name>`, a file already in the folder: hash it, or reuse the cached hashes
    /// if the file has not changed since.
    pub fn share_existing(&self, name: &str) -> Result<Meta, StoreError> {
        self.share_in_pieces(name, None)
    }

    /// Share `DIR/<name>` hashed in pieces of `piece_size` (`None`: this peer's default).
    pub fn share_in_pieces(&self, name: &str, piece_size: Option<u32>) -> Result<Meta, StoreError> {
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
        let piece_size = piece_size
            .or(self.piece_size)
            .unwrap_or_else(|| protocol::default_piece_size(md.len()));
        let (meta, hashes) = match self.load_meta(name) {
            Some((meta, stamp, hashes))
                if stamp == mtime && meta.size == md.len() && meta.piece_size == piece_size =>
            {
                (meta, hashes)
            }
            _ => {
                let (meta, hashes) = hash_file(&path, name, piece_size)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                self.save_meta(&meta, mtime, &hashes).map_err(|e| {
                    format!("cannot write {}: {e}", self.state.meta_path(name).display())
                })?;
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
                layout: None,
            }),
        );
        self.remember_shared(name);
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
        self.state.load_meta(name)
    }

    /// Cache `meta` and its piece hashes, made for a file whose mtime is `mtime`.
    pub fn save_meta(&self, meta: &Meta, mtime: u128, hashes: &[Digest]) -> io::Result<()> {
        self.state.save_meta(meta, mtime, hashes)
    }

    /// Take the lock that makes a download of `name` the only one into this folder (across
    /// threads and processes); held until the returned guard is dropped.
    pub fn lock_download(&self, name: &str) -> Result<NameLock, LockError> {
        self.state.lock(name)
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
                layout: None,
            }),
        );
    }

    /// A download is complete and verified: give its part file its final name and share it.
    ///
    /// `hard_link` creates the name only if nothing has it, in one step, so a file that
    /// appeared under the name meanwhile is never overwritten (a check and then a rename
    /// could be raced). The part file is removed once the name is in place.
    pub fn publish(&self, meta: &Meta, hashes: Arc<Vec<Digest>>) -> Result<(), StoreError> {
        let (part, dest) = (self.part_path(&meta.name), self.path(&meta.name));
        let mut linked = fs::hard_link(&part, &dest);
        if linked
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
            && is_dangling_symlink(&dest)
        {
            // A symlink to nothing holds no data: it goes (the link itself, never a target),
            // and the name is tried once more, again without overwriting.
            let _ = fs::remove_file(&dest);
            linked = fs::hard_link(&part, &dest);
        }
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(format!(
                    "{} appeared while downloading; the verified download is kept in {}; move {} away and run get again",
                    dest.display(),
                    part.display(),
                    dest.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "cannot link {} to {}: {e}; the verified download is kept there",
                    dest.display(),
                    part.display()
                ));
            }
        }
        let md = fs::symlink_metadata(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        self.files().insert(
            meta.name.clone(),
            Arc::new(Entry {
                meta: meta.clone(),
                hashes: hashes.clone(),
                holding: Holding::Complete,
                stamp: Some(FileStamp::of(&md)),
                layout: None,
            }),
        );
        self.remember_shared(&meta.name);
        let _ = self.save_meta(meta, mtime_nanos(&md), &hashes);
        fs::remove_file(&part).map_err(|e| {
            format!(
                "{} is in place, but its part file {} could not be removed: {e}",
                dest.display(),
                part.display()
            )
        })
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

/// A symlink whose target does not exist.
pub fn is_dangling_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|md| md.is_symlink()) && fs::metadata(path).is_err()
}

fn mtime_nanos(md: &fs::Metadata) -> u128 {
    md.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests;
