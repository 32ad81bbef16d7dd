//! The `.torrentphile/` folder inside a peer's folder: the peer's own state, never shared.
//!
//! - `NAME.meta`: what a file is (its `FILE` line, the mtime it was hashed at, its piece
//!   hashes), so a restart does not hash gigabytes again and a resumed download does not ask
//!   for the hashes again;
//! - `NAME.part`: a download in progress; it becomes `DIR/NAME` only once every piece is
//!   verified;
//! - `NAME.lock`: held (with `File::try_lock`, an advisory `flock`) by the one download of
//!   NAME into this folder, across threads and processes alike. The lock file itself stays:
//!   removing it would let a second download lock a new file while the first holds the old.
//!
//! Names reach here only after `protocol::check_name`, so every path stays in this folder.
//! Never a socket.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::peer::store::hashing::{hashes_text, parse_hashes};
use crate::protocol::{self, Digest, Meta, Reply};

/// The hidden folder inside a peer's folder that holds its state.
pub const STATE_DIR: &str = ".torrentphile";

/// The state folder of one peer folder.
pub struct StateDir {
    path: PathBuf,
}

/// The lock of one download: dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct NameLock {
    _file: File,
}

/// Why a download could not take its name's lock.
#[derive(Debug)]
pub enum LockError {
    /// Another download of the name into this folder holds it.
    Busy,
    /// The lock file could not be opened or locked.
    Io(PathBuf, io::Error),
}

impl StateDir {
    /// Create (if needed) `dir/.torrentphile`.
    pub fn create(dir: &Path) -> Result<StateDir, String> {
        let path = dir.join(STATE_DIR);
        fs::create_dir_all(&path).map_err(|e| {
            format!(
                "cannot create {}: {e} (is {} a writable folder?)",
                path.display(),
                dir.display()
            )
        })?;
        Ok(StateDir { path })
    }

    /// `NAME.part`, a download in progress.
    pub fn part_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{}.part", stem(name)))
    }

    /// `NAME.meta`, the cached `FILE` line and piece hashes.
    pub fn meta_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{}.meta", stem(name)))
    }

    /// `NAME.lock`, held by the one download of NAME.
    pub fn lock_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{}.lock", stem(name)))
    }

    /// Take the download lock of `name` now, or fail at once if another download holds it.
    pub fn lock(&self, name: &str) -> Result<NameLock, LockError> {
        let path = self.lock_path(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LockError::Io(path.clone(), e))?;
        match file.try_lock() {
            Ok(()) => Ok(NameLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(LockError::Busy),
            Err(fs::TryLockError::Error(e)) => Err(LockError::Io(path, e)),
        }
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

    /// Write the cache for `meta` (through a temporary file and a rename, so a reader never
    /// sees half of it).
    pub fn save_meta(&self, meta: &Meta, mtime: u128, hashes: &[Digest]) -> io::Result<()> {
        let text = format!(
            "{}\nmtime {mtime}\n{}",
            Reply::File(meta.clone()),
            hashes_text(hashes)
        );
        // A name of its own per writer: two threads or processes may write the same cache.
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tmp = (self.path).join(format!(
            "{}.meta.{}-{n}.tmp",
            stem(&meta.name),
            process::id()
        ));
        fs::write(&tmp, text)?;
        fs::rename(tmp, self.meta_path(&meta.name))
    }
}

/// Longest name kept readable in a state file's name: the longest suffix added
/// (`.meta.PID-N.tmp`, at most 32 bytes) must keep the whole under the file system's 255.
const READABLE_STEM: usize = 200;

/// The state files' name for `name`: the name itself when short, else `~` and the SHA-1 of
/// the name in hex (a name of 247 to 255 bytes plus `.part` would not fit in 255 bytes). The
/// meta cache records the full name and is checked against it, so a clash cannot mislead.
fn stem(name: &str) -> String {
    if name.len() <= READABLE_STEM {
        name.to_string()
    } else {
        format!("~{}", crate::sha1::Sha1::from(name).digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_get_hashed_state_file_names_that_fit() {
        let dir = std::env::temp_dir().join(format!("tp-stem-{}", std::process::id()));
        let state = StateDir::create(&dir).unwrap();
        assert!(
            state
                .part_path("a.txt")
                .ends_with(".torrentphile/a.txt.part")
        );
        let long = "n".repeat(255);
        for path in [
            state.part_path(&long),
            state.meta_path(&long),
            state.lock_path(&long),
        ] {
            let file = path.file_name().unwrap().len();
            assert!(file <= 46 && file > 41, "{}", path.display());
        }
        assert_ne!(state.part_path(&long), state.part_path(&"n".repeat(254)));
        drop(state.lock(&long).unwrap());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_name_lock_is_held_once_until_dropped() {
        let dir = std::env::temp_dir().join(format!("tp-lock-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let state = StateDir::create(&dir).unwrap();
        let first = state.lock("a.bin").unwrap();
        assert!(matches!(state.lock("a.bin"), Err(LockError::Busy)));
        assert!(state.lock("b.bin").is_ok());
        drop(first);
        assert!(state.lock("a.bin").is_ok());
        fs::remove_dir_all(dir).unwrap();
    }
}
