//! Hashing a file into its `FILE` line and piece hashes, and checking hashes: the one place
//! that turns bytes into SHA-1s for the store.
//!
//! - `hash_file`: the whole-file SHA-1 and one SHA-1 per piece, in one read;
//! - `recheck`: which pieces of a part file already match (a resumed download);
//! - `hashes_text` / `parse_hashes`: the piece-hash list as `HASHES` sends it, and how a
//!   downloader checks one it got from an untrusted peer against the tracker's `root`.
//!
//! Never a socket; never the store's map.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::peer::store::layout::Layout;
use crate::peer::store::pieces::PieceSet;
use crate::protocol::{Digest, Meta};

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
    if crate::sha1::Sha1::from(text).digest() != meta.root {
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
    let mut file = super::open_regular(path)?;
    let mut whole = crate::sha1::Sha1::new();
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
            let p = crate::sha1::Sha1::from(piece).digest();
            let got = read_full(&mut file, &mut next);
            let _ = w.join();
            (got, p)
        });
        hashes.push(piece_hash);
        std::mem::swap(&mut buf, &mut next);
        filled = got?;
    }
    let root = crate::sha1::Sha1::from(hashes_text(&hashes)).digest();
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
pub fn recheck(file: &Layout, meta: &Meta, hashes: &[Digest], have: &PieceSet) -> io::Result<()> {
    let mut buf = vec![0u8; meta.piece_size as usize];
    for i in 0..meta.pieces() {
        let (offset, len) = meta.piece_range(i);
        let buf = &mut buf[..len as usize];
        if file.read_exact_at(buf, offset).is_ok()
            && crate::sha1::Sha1::from(&*buf).digest() == hashes[i as usize]
        {
            have.set(i);
        }
    }
    Ok(())
}
