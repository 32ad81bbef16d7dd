//! `Shared`: the state of one download that its threads share (the coordinator, the fetchers,
//! their hashers, the flusher, the whole-file hasher). Its fields are private; the threads go
//! through the methods below, so every rule about them lives here.
//!
//! Locks: `picker` (with its `Condvar` `wake`) is the one the threads share, held for picker
//! calls only, never across I/O. `sockets`, `from`, `fatal`, `buffers`, `writers` are leaf
//! locks, each taken alone or after `picker`, never the other way round.
//!
//! Never does I/O itself, except shutting sockets down when the download ends.

use std::collections::{BTreeMap, HashMap};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::conn::{Timeouts, Trace};
use crate::peer::download::buffers::Budget;
use crate::peer::picker::Picker;
use crate::peer::store::{Layout, PieceSet};
use crate::protocol::{Digest, Meta};

/// The most bytes of a piece read from a socket, written and hashed as one step: small
/// enough to stay in a core's cache between the read, the write and the hash, large enough
/// that the hand-over to the hasher is rare (one per default 256 KiB piece).
pub const CHUNK: usize = 256 << 10;

/// What the fetchers need to know of the download's options.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub timeouts: Timeouts,
    pub trace: Trace,
    /// Bytes of requests kept in flight per peer.
    pub window_bytes: u64,
    /// For a group's file: the ticket each fetcher presents right after connecting.
    pub access: Option<std::sync::Arc<dyn crate::peer::download::Access>>,
    /// `DownloadOptions::unverified_bench_only`: benchmarks only, never in real use.
    pub unverified_bench_only: bool,
}

/// Everything a download starts from (what `prepare` found).
pub struct Start {
    pub meta: Meta,
    pub hashes: Arc<Vec<Digest>>,
    pub part: Layout,
    pub have: Arc<PieceSet>,
    pub picker: Picker,
    /// Bytes already verified (resumed).
    pub verified: u64,
    /// This peer's id, said in `HELLO`.
    pub me: String,
    pub tuning: Tuning,
}

/// State shared by the coordinator and the threads of one download.
pub struct Shared {
    meta: Meta,
    hashes: Arc<Vec<Digest>>,
    part: Layout,
    have: Arc<PieceSet>,
    picker: Mutex<Picker>,
    /// Signalled (with `picker`) when a piece completes or returns, or the download stops.
    wake: Condvar,
    stop: AtomicBool,
    /// A failure that ends the whole download (the disk, not a peer).
    fatal: Mutex<Option<String>>,
    /// One handle per worker connection, to shut them all down when the download ends.
    sockets: Mutex<HashMap<usize, Arc<TcpStream>>>,
    /// Verified pieces and bytes by the peer they came from.
    from: Mutex<BTreeMap<String, (u32, u64)>>,
    /// Bytes verified, resumed ones included.
    verified: AtomicU64,
    /// Bytes verified in this run.
    fetched: AtomicU64,
    me: String,
    tuning: Tuning,
    /// Chunk buffers out and spare, within `MEMORY_BUDGET` (`buffers.rs`).
    buffers: Budget,
    /// Which worker is writing which piece into the part file. Bytes go to disk before their
    /// hash is known, so only one worker may write a piece at a time (an end-game duplicate
    /// would otherwise mix its bytes with the verified copy's): a worker claims a piece before
    /// its first byte is written, and the claim goes when the piece is verified or given up.
    writers: Mutex<HashMap<u32, usize>>,
    /// Threads writing into the part file right now (`disk.rs`). Not a lock: nobody waits on
    /// it; a fetcher that sees a write under way leaves its chunk to its hasher.
    writing: AtomicUsize,
}

/// A write into the part file under way (`Shared::writing`); it ends when this is dropped.
pub struct Writing<'a>(&'a AtomicUsize);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(start: Start) -> Shared {
        Shared {
            meta: start.meta,
            hashes: start.hashes,
            part: start.part,
            have: start.have,
            picker: Mutex::new(start.picker),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            fatal: Mutex::default(),
            sockets: Mutex::default(),
            from: Mutex::default(),
            verified: AtomicU64::new(start.verified),
            fetched: AtomicU64::new(0),
            me: start.me,
            tuning: start.tuning,
            buffers: Budget::default(),
            writers: Mutex::default(),
            writing: AtomicUsize::new(0),
        }
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The expected SHA-1 of piece `i`.
    pub fn piece_hash(&self, i: u32) -> Digest {
        self.hashes[i as usize]
    }

    /// Every piece's expected SHA-1.
    pub fn hashes(&self) -> Arc<Vec<Digest>> {
        self.hashes.clone()
    }

    /// The part file, or a torrent's part files (positioned reads and writes only: shared by
    /// every thread).
    pub fn part(&self) -> &Layout {
        &self.part
    }

    /// A write into the part file starts; it ends when the value returned is dropped.
    pub fn writing(&self) -> Writing<'_> {
        self.writing.fetch_add(1, Ordering::AcqRel);
        Writing(&self.writing)
    }

    /// A write into the part file starts if no other is under way, else `None`.
    pub fn writing_alone(&self) -> Option<Writing<'_>> {
        self.writing
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Writing(&self.writing))
    }

    /// The verified pieces.
    pub fn have(&self) -> &PieceSet {
        &self.have
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn tuning(&self) -> &Tuning {
        &self.tuning
    }

    pub fn picker(&self) -> MutexGuard<'_, Picker> {
        lock(&self.picker)
    }

    /// Wait (giving the picker lock back meanwhile) until something changes or `timeout`.
    pub fn wait<'a>(
        &self,
        picker: MutexGuard<'a, Picker>,
        timeout: Duration,
    ) -> MutexGuard<'a, Picker> {
        self.wake
            .wait_timeout(picker, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Wake every thread waiting in `wait`.
    pub fn notify(&self) {
        let _guard = self.picker();
        self.wake.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// End the download: stop every worker now, even one blocked on a stalled socket.
    pub fn finish_all(&self) {
        self.stop.store(true, Ordering::Release);
        for s in lock(&self.sockets).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.notify();
    }

    /// End the download with an error that is not a peer's fault.
    pub fn fail(&self, msg: String) {
        lock(&self.fatal).get_or_insert(msg);
        self.finish_all();
    }

    /// The error that ended the download, if one did.
    pub fn fatal(&self) -> Option<String> {
        lock(&self.fatal).clone()
    }

    /// Worker `w`'s connection, to be shut down if the download ends while it is blocked.
    pub fn add_socket(&self, w: usize, stream: Arc<TcpStream>) {
        lock(&self.sockets).insert(w, stream);
    }

    /// Cut worker `w`'s connection (the coordinator gives its slot to another holder); the
    /// worker sees its socket end and returns.
    pub fn drop_worker(&self, w: usize) {
        if let Some(s) = lock(&self.sockets).get(&w) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn remove_socket(&self, w: usize) {
        lock(&self.sockets).remove(&w);
    }

    /// A piece of `len` bytes from `peer` verified for the first time.
    pub fn credit(&self, peer: &str, len: u64) {
        self.verified.fetch_add(len, Ordering::Relaxed);
        self.fetched.fetch_add(len, Ordering::Relaxed);
        let mut from = lock(&self.from);
        let entry = from.entry(peer.to_string()).or_default();
        entry.0 += 1;
        entry.1 += len;
    }

    /// Bytes verified, resumed ones included.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Bytes verified in this run.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// Verified pieces and bytes, by the peer they came from.
    pub fn from(&self) -> BTreeMap<String, (u32, u64)> {
        lock(&self.from).clone()
    }

    /// A buffer of `len` bytes for a chunk of a piece, once the budget has room for it
    /// (`Budget::take`). `None` if the download stopped meanwhile. Every buffer given out
    /// must come back through `recycle`.
    pub fn buffer(&self, len: usize) -> Option<Vec<u8>> {
        self.buffers.take(len, || self.stopped())
    }

    /// Give back a buffer from `buffer` (its length unchanged).
    pub fn recycle(&self, buf: Vec<u8>) {
        self.buffers.give_back(buf);
    }

    /// Worker `w` may write piece `i` into the part file: no other worker is writing it and
    /// it is not verified yet. Every claim granted must be `release`d by the same worker's
    /// side (its fetcher or its hasher) once nothing more of the piece will be written.
    pub fn claim(&self, i: u32, w: usize) -> bool {
        let mut writers = lock(&self.writers);
        if self.have.has(i) || writers.contains_key(&i) {
            return false;
        }
        writers.insert(i, w);
        true
    }

    /// Some worker is writing piece `i` now.
    pub fn claimed(&self, i: u32) -> bool {
        lock(&self.writers).contains_key(&i)
    }

    /// Worker `w` writes nothing more of piece `i` (verified, failed or given up). Only the
    /// worker holding the claim can give it up: a late release by another does nothing.
    pub fn release(&self, i: u32, w: usize) {
        let mut writers = lock(&self.writers);
        if writers.get(&i) == Some(&w) {
            writers.remove(&i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::picker::Strategy;

    fn shared(pieces: u32) -> Shared {
        let dir = std::env::temp_dir().join(format!("tp-claims-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // A file of its own per call: tests run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("x{n}.part"));
        let file = std::fs::File::create(&path).expect("part file");
        let size = u64::from(pieces) * 1024;
        let meta = Meta {
            name: "x".into(),
            size,
            piece_size: 1024,
            sha1: Digest::from([0; 20]),
            root: Digest::from([0; 20]),
        };
        Shared::new(Start {
            meta,
            hashes: Arc::new(vec![Digest::from([0; 20]); pieces as usize]),
            part: Layout::single(&path, file, size),
            have: Arc::new(PieceSet::new(pieces)),
            picker: Picker::new(pieces, |_| false, Strategy::RarestFirst, 1),
            verified: 0,
            me: "me".into(),
            tuning: Tuning {
                timeouts: Timeouts::default(),
                trace: Trace::off(),
                window_bytes: 1 << 20,
                access: None,
                unverified_bench_only: false,
            },
        })
    }

    #[test]
    fn a_fetcher_writes_only_while_no_other_write_is_under_way() {
        let s = shared(1);
        let hasher = s.writing();
        assert!(s.writing_alone().is_none(), "the hasher is writing");
        let other = s.writing();
        drop(hasher);
        assert!(s.writing_alone().is_none(), "another hasher is writing");
        drop(other);
        let fetcher = s.writing_alone();
        assert!(fetcher.is_some(), "nobody writes");
        assert!(s.writing_alone().is_none(), "one write alone at a time");
        drop(fetcher);
        assert!(s.writing_alone().is_some());
    }

    #[test]
    fn one_writer_per_piece_and_none_once_it_is_verified() {
        let s = shared(3);
        assert!(s.claim(1, 7));
        assert!(
            !s.claim(1, 8),
            "an end-game duplicate must not write a claimed piece"
        );
        assert!(s.claimed(1) && !s.claimed(0));
        assert!(s.claim(2, 8), "other pieces are free");
        s.release(1, 8);
        assert!(s.claimed(1), "only the claim's holder can release it");
        s.release(1, 7);
        assert!(
            s.claim(1, 8),
            "a released piece can be written again (refetched)"
        );
        s.release(1, 7);
        assert!(
            s.claimed(1),
            "a late release by the old writer does nothing"
        );
        s.release(1, 8);
        s.have().set(1);
        assert!(!s.claim(1, 9), "a verified piece is never written again");
    }
}
