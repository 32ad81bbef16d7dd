//! Finding the files of the folder: once when the peer starts (`scan`), and again and again
//! while it runs (`rescan`), so a file copied in later is shared and a file edited in place is
//! hashed again.
//!
//! `rescan` only looks and hashes; it returns what it found (`Found`) and the caller tells the
//! tracker (`peer/watch.rs`). What it must never pick up: hidden names (the `.torrentphile/`
//! state folder among them), symlinks, and files a download is writing (those are part files
//! inside `.torrentphile/`, and their entry is `Holding::Partial`).
//!
//! Between passes it remembers two things (`Memory`):
//! - files seen once but not yet hashed: a file is hashed only once it looks the same in two
//!   passes in a row, so a file still being copied in is not announced half-written;
//! - files held back: not shared by hand (`unshare`), or refused (by the tracker, or unreadable)
//!   in the version seen; those are left alone until the file changes or is shared again.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::PoisonError;

use crate::peer::store::{FileStamp, Holding, Store};
use crate::protocol::Meta;

/// What a rescan changed, for the tracker to be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A new file, hashed and now shared: announce it (`UPLOAD`).
    New(Meta, FileStamp),
    /// A shared file edited in place or replaced: hashed again; the tracker must forget the old
    /// content (`REMOVE`) and learn the new (`UPLOAD`).
    Changed(Meta, FileStamp),
    /// A shared file left the folder: `REMOVE`.
    Gone(String),
    /// A file that cannot be shared (a bad name, unreadable), with the reason. Said once.
    Unusable(String),
}

/// What `rescan` remembers between passes.
#[derive(Default)]
pub(super) struct Memory {
    /// Seen in the last pass, not hashed yet: the stamp it had then.
    candidates: HashMap<String, FileStamp>,
    /// Left alone: forever (`None`, until shared by hand) or while the file keeps this stamp.
    held_back: HashMap<String, Option<FileStamp>>,
}

impl Store {
    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The regular, visible files directly in the folder, sorted by name.
    fn visible_files(&self) -> Result<Vec<(String, fs::Metadata)>, String> {
        let entries = fs::read_dir(self.dir())
            .map_err(|e| format!("cannot read {}: {e}", self.dir().display()))?;
        let mut files: Vec<(String, fs::Metadata)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e)))
            .filter(|(name, _)| !name.starts_with('.'))
            // `DirEntry::metadata` does not follow symlinks: a symlink is never a file here.
            .filter_map(|(name, e)| Some((name, e.metadata().ok()?)))
            .filter(|(_, md)| md.is_file())
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// Share every regular, visible file directly in the folder. Returns what is now shared
    /// and a warning for each file that could not be.
    pub fn scan(&self) -> (Vec<Meta>, Vec<String>) {
        let files = match self.visible_files() {
            Ok(files) => files,
            Err(e) => return (Vec::new(), vec![e]),
        };
        let (mut shared, mut warnings) = (Vec::new(), Vec::new());
        for (name, md) in files {
            match self.share_existing(&name) {
                Ok(meta) => shared.push(meta),
                Err(e) => {
                    self.hold_back(&name, Some(FileStamp::of(&md)));
                    warnings.push(e);
                }
            }
        }
        (shared, warnings)
    }

    /// Look at the folder again: hash new files and files changed since they were hashed,
    /// forget files that are gone. Returns what the tracker must be told.
    pub fn rescan(&self) -> Vec<Found> {
        let files = match self.visible_files() {
            Ok(files) => files,
            Err(_) => return Vec::new(), // the folder is unreadable now; try again next pass
        };
        let mut found = Vec::new();
        let here: HashSet<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for entry in self.entries() {
            let name = &entry.meta.name;
            // A torrent's data is not a file of that name in the folder: not the scan's.
            if matches!(entry.holding, Holding::Complete)
                && entry.layout.is_none()
                && !here.contains(name.as_str())
            {
                self.forget(name);
                found.push(Found::Gone(name.clone()));
            }
        }
        for (name, md) in &files {
            let stamp = FileStamp::of(md);
            let existing = self.get(name);
            match &existing {
                Some(e) if matches!(e.holding, Holding::Partial(_)) => continue,
                Some(e) if e.stamp == Some(stamp) => continue,
                _ => {}
            }
            {
                let mut memory = self.memory();
                match memory.held_back.get(name) {
                    Some(None) => continue,
                    Some(Some(s)) if *s == stamp => continue,
                    _ => {}
                }
                // Hash a file only once it looked the same in two passes in a row.
                if memory.candidates.insert(name.clone(), stamp) != Some(stamp) {
                    continue;
                }
                memory.candidates.remove(name);
            }
            let was_shared = existing.is_some() && self.forget(name);
            match self.share_existing(name) {
                Ok(meta) if was_shared => found.push(Found::Changed(meta, stamp)),
                Ok(meta) => found.push(Found::New(meta, stamp)),
                Err(e) => {
                    self.hold_back(name, Some(stamp));
                    if was_shared {
                        found.push(Found::Gone(name.clone()));
                    }
                    found.push(Found::Unusable(e));
                }
            }
        }
        self.memory()
            .candidates
            .retain(|name, _| here.contains(name.as_str()));
        found
    }

    /// Leave `name` alone in later rescans: forever (`None`) or while its file keeps `stamp`.
    pub fn hold_back(&self, name: &str, stamp: Option<FileStamp>) {
        self.memory().held_back.insert(name.to_string(), stamp);
    }

    /// Stop sharing `name` until it is shared again by hand (the file stays in the folder, and
    /// rescans leave it alone). False if it was not shared.
    pub fn unshare(&self, name: &str) -> bool {
        self.hold_back(name, None);
        self.forget(name)
    }

    /// `name` is shared now: whatever held it back is over.
    pub(super) fn remember_shared(&self, name: &str) {
        self.memory().held_back.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::store::tests::temp_dir;
    use crate::peer::store::{hashes_text, parse_hashes};
    use std::time::{Duration, SystemTime};

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
        assert_eq!(meta.sha1, crate::sha1::Sha1::from(&data).digest());
        assert_eq!(meta.pieces(), 5);
        let entry = store.get("a.bin").unwrap();
        assert_eq!(
            entry.hashes[4],
            crate::sha1::Sha1::from(&data[4096..]).digest()
        );
        let (cached, _, hashes) = store.load_meta("a.bin").unwrap();
        assert_eq!(&cached, meta);
        assert_eq!(hashes, *entry.hashes);
        assert!(parse_hashes(&hashes_text(&hashes), meta).is_some());
        assert!(parse_hashes(&hashes_text(&hashes[1..]), meta).is_none());
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

    #[test]
    fn rescan_finds_new_files_after_two_looks_edits_and_removals() {
        let dir = temp_dir("rescan");
        fs::write(dir.join("a.txt"), b"first").unwrap();
        let store = Store::open(&dir, Some(1024)).unwrap();
        assert_eq!(store.scan().0.len(), 1);
        assert!(store.rescan().is_empty());
        fs::write(dir.join("b.txt"), b"second").unwrap();
        fs::write(store.part_path("c.txt"), b"a download").unwrap();
        assert!(store.rescan().is_empty(), "a new file waits one pass");
        let found = store.rescan();
        assert!(
            matches!(&found[..], [Found::New(m, _)] if m.name == "b.txt"),
            "{found:?}"
        );
        // Edit a.txt in place: same inode, new content and mtime.
        fs::write(dir.join("a.txt"), b"first, edited").unwrap();
        let f = fs::File::options()
            .write(true)
            .open(dir.join("a.txt"))
            .unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(5))
            .unwrap();
        drop(f);
        assert!(store.rescan().is_empty());
        let found = store.rescan();
        assert!(
            matches!(&found[..], [Found::Changed(m, _)] if m.name == "a.txt" && m.size == 13),
            "{found:?}"
        );
        fs::remove_file(dir.join("b.txt")).unwrap();
        assert_eq!(store.rescan(), vec![Found::Gone("b.txt".into())]);
        assert!(store.unshare("a.txt"));
        assert!(store.rescan().is_empty() && store.rescan().is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_held_back_version_is_left_alone_until_it_changes() {
        let dir = temp_dir("holdback");
        let store = Store::open(&dir, Some(1024)).unwrap();
        fs::write(dir.join("x.txt"), b"one").unwrap();
        store.rescan();
        let Some(Found::New(_, stamp)) = store.rescan().pop() else {
            panic!("x.txt not found")
        };
        store.forget("x.txt");
        store.hold_back("x.txt", Some(stamp));
        assert!(store.rescan().is_empty() && store.rescan().is_empty());
        fs::write(dir.join("x.txt"), b"two, longer").unwrap();
        store.rescan();
        assert!(matches!(store.rescan().pop(), Some(Found::New(m, _)) if m.size == 11));
        fs::remove_dir_all(dir).unwrap();
    }
}
