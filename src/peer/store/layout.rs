//! `Layout`: the bytes of one shared name laid over the files that hold them on disk. A plain
//! file (or its part file) is a layout of one file; a torrent is the concatenation of its
//! files in torrent order, so a piece may start in one file and end in the next.
//!
//! Owns positioned reads and writes across file boundaries (`read_exact_at`,
//! `write_all_at`), and flushing them. Never decides where the files are (the caller gives
//! the paths), never a socket, never the store's map.
//!
//! Files are opened once when there are few of them; a torrent of many files opens each file
//! for the one access that needs it, so a 10,000-file torrent never holds 10,000 descriptors.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::peer::store::FileStamp;

/// Most files kept open for the life of a layout; past that, each access opens its file.
const MAX_OPEN: usize = 64;

/// One file of a layout.
#[derive(Debug)]
pub struct Part {
    pub path: PathBuf,
    pub length: u64,
    /// Where it starts in the layout's byte space.
    pub offset: u64,
    /// For a complete file being served: the version that was verified (`Layout::stamp`).
    pub stamp: Option<FileStamp>,
    open: Option<File>,
}

/// A byte space over files, in order.
#[derive(Debug)]
pub struct Layout {
    parts: Vec<Part>,
    total: u64,
    writable: bool,
}

impl Layout {
    /// One file already opened (read and write for a part file), `len` bytes long.
    pub fn single(path: &Path, file: File, len: u64) -> Layout {
        Layout {
            parts: vec![Part {
                path: path.to_path_buf(),
                length: len,
                offset: 0,
                stamp: None,
                open: Some(file),
            }],
            total: len,
            writable: true,
        }
    }

    /// The files `files` (path, length) one after the other. `writable`: open them for
    /// writing too, creating and sizing each to its length (a download's part files);
    /// otherwise they must exist (a seed's data).
    pub fn files(files: &[(PathBuf, u64)], writable: bool) -> io::Result<Layout> {
        let keep_open = files.len() <= MAX_OPEN;
        let mut parts = Vec::with_capacity(files.len());
        let mut offset = 0u64;
        for (path, length) in files {
            let file = open(path, writable)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if writable && file.metadata()?.len() != *length {
                file.set_len(*length)?;
            }
            parts.push(Part {
                path: path.clone(),
                length: *length,
                offset,
                stamp: None,
                open: keep_open.then_some(file),
            });
            offset += length;
        }
        Ok(Layout {
            parts,
            total: offset,
            writable,
        })
    }

    /// Remember what every file is now (size, inode, mtime), so that a server can tell when
    /// one of them was edited or replaced after it was verified.
    pub fn stamp(&mut self) -> io::Result<()> {
        for part in &mut self.parts {
            part.stamp = Some(FileStamp::of(&std::fs::symlink_metadata(&part.path)?));
        }
        Ok(())
    }

    /// The files, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The pieces of the byte range `offset..offset+len`, file by file: (file index, offset in
    /// that file, length). Empty files are never part of a range.
    pub fn spans(&self, offset: u64, len: u64) -> Vec<(usize, u64, u64)> {
        let end = offset.saturating_add(len).min(self.total);
        let first = self
            .parts
            .partition_point(|p| p.offset + p.length <= offset);
        let mut spans = Vec::new();
        for (i, p) in self.parts.iter().enumerate().skip(first) {
            if p.offset >= end {
                break;
            }
            let from = offset.max(p.offset);
            let to = end.min(p.offset + p.length);
            if to > from {
                spans.push((i, from - p.offset, to - from));
            }
        }
        spans
    }

    /// Run `f` on file `i`, opened for this call if it is not kept open.
    fn with_file<T>(&self, i: usize, f: impl FnOnce(&File) -> io::Result<T>) -> io::Result<T> {
        let part = &self.parts[i];
        match &part.open {
            Some(file) => f(file),
            None => f(&open(&part.path, self.writable)?),
        }
    }

    /// Fill `buf` from byte `offset` of the layout.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0usize;
        for (i, at, len) in self.spans(offset, buf.len() as u64) {
            let slice = &mut buf[done..done + len as usize];
            self.with_file(i, |f| f.read_exact_at(slice, at))?;
            done += len as usize;
        }
        if done < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the data",
            ));
        }
        Ok(())
    }

    /// Write `buf` at byte `offset` of the layout, across files as needed.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut done = 0usize;
        for (i, at, len) in self.spans(offset, buf.len() as u64) {
            let slice = &buf[done..done + len as usize];
            self.with_file(i, |f| f.write_all_at(slice, at))?;
            done += len as usize;
        }
        if done < buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the data",
            ));
        }
        Ok(())
    }

    /// `fdatasync` every file.
    pub fn sync_data(&self) -> io::Result<()> {
        (0..self.parts.len()).try_for_each(|i| self.with_file(i, File::sync_data))
    }

    /// `fsync` every file.
    pub fn sync_all(&self) -> io::Result<()> {
        (0..self.parts.len()).try_for_each(|i| self.with_file(i, File::sync_all))
    }

    /// When `offset..offset+len` lies in one file: that file opened, and the offset in it (so
    /// a server can `sendfile` it). `None` when the range crosses files.
    pub fn within_one(&self, offset: u64, len: u64) -> Option<io::Result<(File, u64, &Part)>> {
        match self.spans(offset, len).as_slice() {
            [(i, at, n)] if *n == len => {
                let part = &self.parts[*i];
                Some(super::open_regular(&part.path).map(|f| (f, *at, part)))
            }
            [] if len == 0 => None,
            _ => None,
        }
    }
}

fn open(path: &Path, writable: bool) -> io::Result<File> {
    if writable {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    } else {
        super::open_regular(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn pieces_cross_file_boundaries_both_ways() {
        let dir = crate::peer::store::tests::temp_dir("layout");
        let files: Vec<(PathBuf, u64)> = [3u64, 0, 5, 2]
            .iter()
            .enumerate()
            .map(|(i, n)| (dir.join(format!("f{i}")), *n))
            .collect();
        let layout = Layout::files(&files, true).unwrap();
        assert_eq!(layout.len(), 10);
        assert_eq!(layout.spans(2, 4), vec![(0, 2, 1), (2, 0, 3)]);
        layout.write_all_at(b"abcdefghij", 0).unwrap();
        assert_eq!(fs::read(dir.join("f0")).unwrap(), b"abc");
        assert_eq!(fs::read(dir.join("f1")).unwrap(), b"");
        assert_eq!(fs::read(dir.join("f2")).unwrap(), b"defgh");
        assert_eq!(fs::read(dir.join("f3")).unwrap(), b"ij");
        let mut buf = [0u8; 6];
        layout.read_exact_at(&mut buf, 2).unwrap();
        assert_eq!(&buf, b"cdefgh");
        assert!(layout.read_exact_at(&mut buf, 5).is_err());
        assert!(layout.within_one(2, 4).is_none());
        let (_, at, part) = layout.within_one(4, 3).unwrap().unwrap();
        assert_eq!((at, part.length), (1, 5));
        let ro = Layout::files(&files, false).unwrap();
        ro.read_exact_at(&mut buf, 4).unwrap();
        assert_eq!(&buf, b"efghij");
        fs::remove_dir_all(dir).unwrap();
    }
}
