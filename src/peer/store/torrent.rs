//! The store's side of .torrent data: seeding what a .torrent describes from the files beside
//! it, the part files of a torrent download, and publishing them file by file.
//!
//! A torrent's entry is named `bt-<info-hash>` (`torrent::wire`) and carries a `Layout`: its
//! files in torrent order, so a piece that crosses a file boundary is read and written across
//! the two. On disk:
//! - a seed's data is wherever the .torrent's folder has it (`NAME` beside the .torrent);
//! - a download's part files are `DIR/.torrentphile/bt-<hash>.parts/<file index>`, one per
//!   file of the torrent, each sized to its file;
//! - a finished download is `DIR/NAME` (one file) or `DIR/NAME/<path>` (a folder), each
//!   file hard-linked from its part file only once every piece of the torrent verified, never
//!   over a file already there.
//!
//! Every piece is checked against the .torrent's own `pieces`: the .torrent is the trust
//! anchor. Never a socket.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::peer::store::{Entry, FileStamp, Holding, Layout, PieceSet, Store, StoreError};
use crate::protocol::{Digest, Meta};
use crate::torrent::Metainfo;
use crate::torrent::wire::{piece_hashes, torrent_meta};

/// Where each file of `t` is below `base`: `base/NAME` or `base/NAME/<path>`, with its length.
pub fn torrent_files(t: &Metainfo, base: &Path) -> Vec<(PathBuf, u64)> {
    (0..t.files.len())
        .map(|i| (base.join(t.file_path(i)), t.files[i].length))
        .collect()
}

/// Hash every piece of `layout` on every core and set in `have` the ones that match `hashes`.
/// Returns how many did not (an unreadable piece counts as not matching).
pub fn check_pieces(layout: &Layout, meta: &Meta, hashes: &[Digest], have: &PieceSet) -> u32 {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, (meta.pieces() as usize).max(1));
    let next = AtomicUsize::new(0);
    let bad = AtomicUsize::new(0);
    // Workers take runs of pieces in order, so reads stay sequential within a run.
    const RUN: usize = 16;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; meta.piece_size as usize];
                loop {
                    let first = next.fetch_add(RUN, Ordering::Relaxed);
                    if first >= meta.pieces() as usize {
                        return;
                    }
                    let last = (first + RUN).min(meta.pieces() as usize);
                    for (i, want) in hashes.iter().enumerate().take(last).skip(first) {
                        let (offset, len) = meta.piece_range(i as u32);
                        let buf = &mut buf[..len as usize];
                        let ok = layout.read_exact_at(buf, offset).is_ok()
                            && crate::sha1::Sha1::from(&*buf).digest() == *want;
                        if ok {
                            have.set(i as u32);
                        } else {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    bad.load(Ordering::Relaxed) as u32
}

/// Every file of a torrent's data must be a regular file of its length (never a symlink:
/// a peer shares no link); the first one that is not, in a sentence.
fn check_files(files: &[(PathBuf, u64)]) -> Result<(), StoreError> {
    for (path, length) in files {
        let md = fs::symlink_metadata(path).map_err(|e| {
            format!(
                "{}: {e}; the data must be beside the .torrent",
                path.display()
            )
        })?;
        if !md.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        if md.len() != *length {
            return Err(format!(
                "{}: {} bytes, but the .torrent says {length}",
                path.display(),
                md.len()
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Seed the torrent `t` from its data below `base` (the folder the .torrent is in, or
    /// the download folder): every piece is checked against the .torrent first, and a torrent
    /// with any piece that does not match is not seeded. Returns its `FILE` line.
    pub fn share_torrent(&self, t: &Metainfo, base: &Path) -> Result<Meta, StoreError> {
        let meta = torrent_meta(t)?;
        let files = torrent_files(t, base);
        check_files(&files)?;
        let mut layout = Layout::files(&files, false).map_err(|e| format!("{e}"))?;
        let hashes = piece_hashes(t);
        let have = PieceSet::new(meta.pieces());
        let bad = check_pieces(&layout, &meta, &hashes, &have);
        if bad > 0 {
            let first = (0..meta.pieces()).find(|&i| !have.has(i)).unwrap_or(0);
            let (offset, len) = meta.piece_range(first);
            let in_file = layout
                .spans(offset, len)
                .first()
                .map(|(f, _, _)| layout.parts()[*f].path.display().to_string())
                .unwrap_or_default();
            return Err(format!(
                "{} of {} pieces of {} do not match the .torrent (the first is piece {first}, in \
                 {in_file}); not seeded: the data beside the .torrent is not what it describes",
                bad,
                meta.pieces(),
                t.name
            ));
        }
        layout
            .stamp()
            .map_err(|e| format!("{}: {e}", base.display()))?;
        self.insert_torrent(&meta, Arc::new(hashes), Holding::Complete, layout);
        Ok(meta)
    }

    /// Put a torrent's entry in the map (a seed, or a download in progress).
    pub(crate) fn insert_torrent(
        &self,
        meta: &Meta,
        hashes: Arc<Vec<Digest>>,
        holding: Holding,
        layout: Layout,
    ) {
        self.files().insert(
            meta.name.clone(),
            Arc::new(Entry {
                meta: meta.clone(),
                hashes,
                holding,
                stamp: None,
                layout: Some(Arc::new(layout)),
            }),
        );
    }

    /// The folder of a torrent download's part files: `.torrentphile/bt-<hash>.parts`.
    pub fn parts_dir(&self, name: &str) -> PathBuf {
        self.part_path(name).with_extension("parts")
    }

    /// The part files of a download of `t`, created and sized (kept from an earlier attempt
    /// if there was one).
    pub fn torrent_parts(&self, t: &Metainfo, name: &str) -> io::Result<Layout> {
        let dir = self.parts_dir(name);
        fs::create_dir_all(&dir)?;
        let files: Vec<(PathBuf, u64)> = t
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| (dir.join(i.to_string()), f.length))
            .collect();
        Layout::files(&files, true)
    }

    /// A torrent download is complete and verified: hard-link each part file to its place
    /// below the folder (`DIR/NAME` or `DIR/NAME/<path>`, creating folders), never over a file
    /// already there; then seed from the published files and remove the part files.
    pub fn publish_torrent(
        &self,
        t: &Metainfo,
        meta: &Meta,
        hashes: Arc<Vec<Digest>>,
    ) -> Result<(), StoreError> {
        let parts = self.parts_dir(&meta.name);
        let dest = torrent_files(t, self.dir());
        for (i, (path, _)) in dest.iter().enumerate() {
            let part = parts.join(i.to_string());
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            match fs::hard_link(&part, path) {
                Ok(()) => {}
                // Linked by an earlier attempt that stopped before the end: the same file.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && same_file(&part, path) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(format!(
                        "{} appeared while downloading; the verified download is kept in {}; \
                         move {} away and run again",
                        path.display(),
                        parts.display(),
                        path.display()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot link {} to {}: {e}; the verified download is kept there",
                        path.display(),
                        part.display()
                    ));
                }
            }
        }
        let mut layout = Layout::files(&dest, false).map_err(|e| e.to_string())?;
        layout
            .stamp()
            .map_err(|e| format!("{}: {e}", self.dir().display()))?;
        self.insert_torrent(meta, hashes, Holding::Complete, layout);
        fs::remove_dir_all(&parts).map_err(|e| {
            format!(
                "{} is in place, but its part files in {} could not be removed: {e}",
                t.name,
                parts.display()
            )
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => FileStamp::of(&a) == FileStamp::of(&b),
        _ => false,
    }
}
