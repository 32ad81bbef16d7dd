//! The checking side of a download, the threads behind the fetchers:
//!
//! - a pool of **verifiers** (one per core, at most 8) takes pieces from every fetcher through
//!   one bounded channel, hashes each, writes it into the part file with a positioned write
//!   and only then marks it held. Hashing is the expensive step, so it runs on every core even
//!   when there is a single holder, and it overlaps the network;
//! - the **flusher** writes the part file to disk as it grows, so the `fsync` before publishing
//!   has little left to do;
//! - the **whole-file hasher** (optional, `--whole-hash`) follows the verified prefix.
//!
//! The verifiers share their channel's receiver behind a mutex, held only while waiting for
//! the next piece (the Rust Book's thread-pool pattern). No verifier holds the picker lock
//! while it hashes or writes.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::peer::download::state::Shared;
use crate::protocol::Digest;

/// How often the flusher writes the part file to disk.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What the verifiers tell a worker about the pieces it handed over.
#[derive(Default)]
pub struct WorkerState {
    /// 0, or 1 + the index of the first piece from this peer that failed its hash.
    corrupt: AtomicU32,
    /// Pieces handed to the verifiers and not yet dealt with.
    pending: AtomicUsize,
}

impl WorkerState {
    /// The first piece from this peer that failed its hash, if one did.
    pub fn corrupt_piece(&self) -> Option<u32> {
        self.corrupt.load(Ordering::Acquire).checked_sub(1)
    }

    /// Pieces handed over and not yet verified or discarded.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// A piece is on its way to the verifiers.
    pub fn handed_over(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// A piece handed over never reached them (the pool had stopped).
    pub fn taken_back(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A piece on its way from a fetcher to a verifier.
pub struct Job {
    w: usize,
    from: Arc<str>,
    piece: u32,
    bytes: Vec<u8>,
    state: Arc<WorkerState>,
}

impl Job {
    /// Piece `piece` from worker `w`, whose peer is `from`.
    pub fn new(
        w: usize,
        from: Arc<str>,
        piece: u32,
        bytes: Vec<u8>,
        state: Arc<WorkerState>,
    ) -> Job {
        Job {
            w,
            from,
            piece,
            bytes,
            state,
        }
    }
}

/// The threads that check and store one download's pieces.
pub struct Pool {
    jobs: SyncSender<Job>,
    helpers: Vec<JoinHandle<()>>,
    /// The flusher sleeps on its own (`park_timeout`), not on the download's condvar, so a
    /// verified piece does not wake it; `finish` unparks it.
    flush: JoinHandle<()>,
    whole: Option<JoinHandle<Option<Digest>>>,
}

impl Pool {
    /// Start the verifiers and the flusher, and the whole-file hasher if `whole_file`.
    pub fn start(shared: &Arc<Shared>, whole_file: bool) -> Result<Pool, String> {
        let spawn_error = |e| format!("cannot start a thread: {e}");
        let cores = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .min(8);
        let (jobs, queue) = mpsc::sync_channel::<Job>(2 * cores);
        let queue = Arc::new(Mutex::new(queue));
        let mut helpers = Vec::new();
        for _ in 0..cores {
            let (shared, queue) = (shared.clone(), queue.clone());
            let spawned = thread::Builder::new()
                .name("verify".into())
                .spawn(move || verifier(&shared, &queue));
            helpers.push(spawned.map_err(spawn_error)?);
        }
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
        Ok(Pool {
            jobs,
            helpers,
            flush,
            whole,
        })
    }

    /// Where the fetchers send their pieces.
    pub fn sender(&self) -> SyncSender<Job> {
        self.jobs.clone()
    }

    /// Stop the download's threads and wait for them. The whole file's SHA-1 if it was
    /// hashed (`None` if it stopped first), or `expected` when no whole-file hash ran.
    pub fn finish(self, shared: &Shared, expected: Digest) -> Option<Digest> {
        shared.finish_all();
        drop(self.jobs);
        self.flush.thread().unpark();
        for helper in self.helpers.into_iter().chain([self.flush]) {
            let _ = helper.join();
        }
        match self.whole {
            Some(thread) => thread.join().ok().flatten(),
            None => Some(expected),
        }
    }
}

/// A verifier of the pool: hash, write, mark held, until every sender is gone.
fn verifier(shared: &Shared, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        verify(shared, &job);
        job.state.pending.fetch_sub(1, Ordering::AcqRel);
        shared.recycle(job.bytes);
        shared.notify();
    }
}

fn verify(shared: &Shared, job: &Job) {
    let (w, i) = (job.w, job.piece);
    if job.state.corrupt_piece().is_some() || shared.stopped() || shared.have().has(i) {
        // After a corrupt piece from this peer, or a duplicate from the end game.
        shared.picker().finish(w, i, false);
        return;
    }
    // Every real download hashes; only `make bench`'s unverified baseline skips it.
    let checked = !shared.tuning().unverified_bench_only;
    if checked && crate::sha1::Sha1::from(&job.bytes).digest() != shared.piece_hash(i) {
        // The fetcher sees this at its next step; the peer's later pieces are discarded above.
        let _ = job
            .state
            .corrupt
            .compare_exchange(0, i + 1, Ordering::AcqRel, Ordering::Acquire);
        shared.picker().finish(w, i, false);
        return;
    }
    let (offset, len) = shared.meta().piece_range(i);
    if let Err(e) = shared.part().write_all_at(&job.bytes, offset) {
        shared.picker().finish(w, i, false);
        let missing: u64 = (0..shared.meta().pieces())
            .filter(|&p| !shared.have().has(p))
            .map(|p| shared.meta().piece_range(p).1)
            .sum();
        let part = shared.part().parts().first().map(|p| p.path.clone());
        shared.fail(write_failed(
            &shared.meta().name,
            &e,
            missing,
            part.as_deref(),
        ));
        return;
    }
    // Held only once written: from here on our own server may serve it.
    let first = shared.have().set(i);
    let mut picker = shared.picker();
    picker.finish(w, i, first);
    let done = picker.is_done();
    drop(picker);
    if first {
        shared.credit(&job.from, len);
    }
    if done {
        shared.finish_all();
    }
}

/// Why a verified piece could not be written; out of space says how much more the download
/// needs and where its part file is (verified pieces stay there for a later `get`).
pub fn write_failed(
    name: &str,
    e: &std::io::Error,
    missing: u64,
    part: Option<&std::path::Path>,
) -> String {
    let at = part.map_or(String::new(), |p| format!(" ({})", p.display()));
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(ENOSPC) {
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
        let e = std::io::Error::from_raw_os_error(ENOSPC);
        let part = std::path::Path::new("/d/.torrentphile/f.bin.part");
        let msg = write_failed("f.bin", &e, 123_456, Some(part));
        assert_eq!(
            msg,
            format!(
                "cannot write the download of f.bin: {e}: its part file (/d/.torrentphile/f.bin.part) needs 123456 more bytes; free that much and run get again (verified pieces are kept)"
            )
        );
        let other = std::io::Error::from_raw_os_error(5);
        let msg = write_failed("f.bin", &other, 1, Some(part));
        assert!(
            msg.starts_with("cannot write the download of f.bin (/d/.torrentphile/f.bin.part): "),
            "{msg}"
        );
    }
}
