//! The part file of a download, apart from the pieces' checks (`verifier.rs`):
//!
//! - **writes** (`store_chunk`, `try_store_chunk`) are counted while under way
//!   (`Shared::writing`). The kernel lets one buffered write into a file at a time (the
//!   inode's lock), and a writer that finds it taken spins on its CPU: on 2 cores, with a
//!   fetcher and a hasher writing into one file while cold memory made each copy into the
//!   page cache slow, the two spinning against each other took 19% of a download's samples,
//!   a vCPU the seeder and the network needed. So a fetcher writes only when no other write
//!   is under way (`try_store_chunk`), else it leaves the write to its hasher, which writes
//!   whatever it is given (`store_chunk`);
//! - a write that fails ends the download with a message that says how much room it needs
//!   and where its part file is (`write_failed`);
//! - the **flusher** writes the part file to disk as it grows, so the `fsync` before
//!   publishing has little left to do;
//! - the **whole-file hasher** (optional, `--whole-hash`) follows the verified prefix.
//!
//! The background threads are started and stopped together (`Pool`).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::peer::download::state::{Shared, Writing};
use crate::protocol::Digest;

/// How often the flusher writes the part file to disk.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Write `bytes` at `offset` of the part file. A failure ends the download (it is the disk,
/// not the peer) and returns `false`.
pub fn store_chunk(shared: &Shared, bytes: &[u8], offset: u64) -> bool {
    write(shared, shared.writing(), bytes, offset)
}

/// Write `bytes` at `offset` of the part file if no other thread is writing into it: `None`
/// (nothing written) if one is, else as `store_chunk`.
pub fn try_store_chunk(shared: &Shared, bytes: &[u8], offset: u64) -> Option<bool> {
    let under_way = shared.writing_alone()?;
    Some(write(shared, under_way, bytes, offset))
}

/// The write itself, counted as under way until it returns; `true` if it went through, else
/// the download fails, saying why.
fn write(shared: &Shared, under_way: Writing<'_>, bytes: &[u8], offset: u64) -> bool {
    let written = shared.part().write_all_at(bytes, offset);
    drop(under_way);
    let Err(e) = written else {
        return true;
    };
    let meta = shared.meta();
    let missing: u64 = (0..meta.pieces())
        .filter(|&p| !shared.have().has(p))
        .map(|p| meta.piece_range(p).1)
        .sum();
    let part = shared.part().parts().first().map(|p| p.path.clone());
    shared.fail(write_failed(&meta.name, &e, missing, part.as_deref()));
    false
}

/// The download's background threads: the flusher, and the whole-file hasher if asked for.
pub struct Pool {
    /// The flusher sleeps on its own (`park_timeout`), not on the download's condvar, so a
    /// verified piece does not wake it; `finish` unparks it.
    flush: JoinHandle<()>,
    whole: Option<JoinHandle<Option<Digest>>>,
}

impl Pool {
    /// Start the flusher, and the whole-file hasher if `whole_file`.
    pub fn start(shared: &Arc<Shared>, whole_file: bool) -> Result<Pool, String> {
        let spawn_error = |e| format!("cannot start a thread: {e}");
        let shared2 = shared.clone();
        let flush = thread::Builder::new()
            .name("flush".into())
            .spawn(move || flusher(&shared2))
            .map_err(spawn_error)?;
        let whole = if whole_file {
            let shared = shared.clone();
            let spawned = thread::Builder::new()
                .name("whole-hash".into())
                .spawn(move || hash_whole(&shared));
            Some(spawned.map_err(spawn_error)?)
        } else {
            None
        };
        Ok(Pool { flush, whole })
    }

    /// Stop the download's threads and wait for them. The whole file's SHA-1 if it was
    /// hashed (`None` if it stopped first), or `expected` when no whole-file hash ran.
    pub fn finish(self, shared: &Shared, expected: Digest) -> Option<Digest> {
        shared.finish_all();
        self.flush.thread().unpark();
        let _ = self.flush.join();
        match self.whole {
            Some(thread) => thread.join().ok().flatten(),
            None => Some(expected),
        }
    }
}

/// Why a verified piece could not be written; out of space says how much more the download
/// needs and where its part file is (verified pieces stay there for a later `get`).
pub fn write_failed(name: &str, e: &io::Error, missing: u64, part: Option<&Path>) -> String {
    let at = part.map_or(String::new(), |p| format!(" ({})", p.display()));
    if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(ENOSPC) {
        format!(
            "cannot write the download of {name}: {e}: its part file{at} needs {missing} more bytes; free that much and run get again (verified pieces are kept)"
        )
    } else {
        format!("cannot write the download of {name}{at}: {e}")
    }
}

/// Linux's "no space left on device" errno.
const ENOSPC: i32 = 28;

/// Hash the part file front to back as its verified prefix grows; the file's SHA-1 once
/// complete, `None` if the download stopped first.
fn hash_whole(shared: &Shared) -> Option<Digest> {
    let meta = shared.meta();
    let mut sha = crate::sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut pos, mut next_piece) = (0u64, 0u32);
    loop {
        while next_piece < meta.pieces() && shared.have().has(next_piece) {
            next_piece += 1;
        }
        let end = if next_piece == meta.pieces() {
            meta.size
        } else {
            next_piece as u64 * meta.piece_size as u64
        };
        if pos < end {
            let n = (end - pos).min(buf.len() as u64) as usize;
            shared.part().read_exact_at(&mut buf[..n], pos).ok()?;
            sha.update(&buf[..n]);
            pos += n as u64;
            continue;
        }
        if pos == meta.size {
            return Some(sha.digest());
        }
        let picker = shared.picker();
        if shared.stopped() && !shared.have().is_full() {
            return None;
        }
        drop(shared.wait(picker, Duration::from_millis(200)));
    }
}

/// Write the part file's new pieces to disk every `FLUSH_EVERY` while the download runs, so
/// the final `fsync` is short. Disk errors here are left for that final `fsync` to report.
///
/// It sleeps with `park_timeout` rather than on the download's condvar, which is signalled
/// for every verified piece (thousands of pointless wake-ups a GiB); `Pool::finish` unparks
/// it once the download has stopped, so it never delays the end.
fn flusher(shared: &Shared) {
    let (mut flushed, mut last) = (0, Instant::now());
    loop {
        if shared.stopped() {
            return;
        }
        let left = FLUSH_EVERY.saturating_sub(last.elapsed());
        if !left.is_zero() {
            thread::park_timeout(left);
            continue;
        }
        last = Instant::now();
        let verified = shared.verified();
        if verified != flushed {
            let _ = shared.part().sync_data();
            flushed = verified;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_says_how_much_is_needed_and_where_the_part_file_is() {
        let e = io::Error::from_raw_os_error(ENOSPC);
        let part = Path::new("/d/.torrentphile/f.bin.part");
        let msg = write_failed("f.bin", &e, 123_456, Some(part));
        assert_eq!(
            msg,
            format!(
                "cannot write the download of f.bin: {e}: its part file (/d/.torrentphile/f.bin.part) needs 123456 more bytes; free that much and run get again (verified pieces are kept)"
            )
        );
        let other = io::Error::from_raw_os_error(5);
        let msg = write_failed("f.bin", &other, 1, Some(part));
        assert!(
            msg.starts_with("cannot write the download of f.bin (/d/.torrentphile/f.bin.part): "),
            "{msg}"
        );
    }
}
