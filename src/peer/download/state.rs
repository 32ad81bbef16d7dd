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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::conn::{Timeouts, Trace};
use crate::peer::picker::Picker;
use crate::peer::store::{Layout, PieceSet};
use crate::protocol::{Digest, Meta};

/// Most bytes of chunk buffers one download holds at once: being filled from a peer, queued
/// for a worker's hasher, or kept spare. A piece is never held whole: it streams through
/// chunks of at most `CHUNK` bytes, each written into the part file where it belongs and fed
/// to the piece's SHA-1 as it arrives. So a download's buffers stay under this budget
/// whatever the piece size, the number of holders or the hashers' speed (before: a window of
/// whole pieces per holder plus a verifier queue: 658 MB with 64 MiB pieces).
pub const MEMORY_BUDGET: u64 = 32 << 20;

/// The most bytes of a piece read from a socket, written and hashed as one step: small
/// enough to stay in a core's cache between the read, the write and the hash, large enough
/// that the hand-over to the hasher is rare (one per default 256 KiB piece).
pub const CHUNK: usize = 256 << 10;

/// Most bytes of spare chunk buffers kept for reuse (inside the budget).
const SPARE_BYTES: u64 = 8 << 20;

/// Chunk buffers: how many bytes are out (being filled or hashed), and the spare ones.
#[derive(Default)]
struct Buffers {
    out: u64,
    spare: Vec<Vec<u8>>,
    spare_bytes: u64,
}

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
    /// Chunk buffers out and spare (done with, for the fetchers to fill again: no allocation
    /// and zeroing per piece), within `MEMORY_BUDGET`; `room` is signalled when one returns.
    buffers: Mutex<Buffers>,
    room: Condvar,
    /// Which worker is writing which piece into the part file. Bytes go to disk before their
    /// hash is known, so only one worker may write a piece at a time (an end-game duplicate
    /// would otherwise mix its bytes with the verified copy's): a worker claims a piece before
    /// its first byte is written, and the claim goes when the piece is verified or given up.
    writers: Mutex<HashMap<u32, usize>>,
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
            buffers: Mutex::default(),
            room: Condvar::new(),
            writers: Mutex::default(),
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

    /// A buffer of `len` bytes for a chunk of a piece (a spare one if there is one), once the
    /// budget has room for it: waits while other chunks are read or hashed. `None` if the download
    /// stopped meanwhile. Every buffer given out must come back through `recycle`.
    pub fn buffer(&self, len: usize) -> Option<Vec<u8>> {
        let want = len as u64;
        let limit = MEMORY_BUDGET.max(want);
        let mut b = lock(&self.buffers);
        while b.out > 0 && b.out + want > limit {
            if self.stopped() {
                return None;
            }
            b = self
                .room
                .wait_timeout(b, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // Spares that no longer fit beside this buffer are freed, not kept.
        while b.out + b.spare_bytes + want > limit && !b.spare.is_empty() {
            let dropped = b.spare.pop().map_or(0, |v| v.capacity() as u64);
            b.spare_bytes -= dropped;
        }
        let mut buf = b.spare.pop().unwrap_or_default();
        b.spare_bytes -= buf.capacity() as u64;
        b.out += want;
        drop(b);
        buf.resize(len, 0);
        Some(buf)
    }

    /// Give back a buffer from `buffer` (its length unchanged); kept for reuse if the spares
    /// stay under `SPARE_BYTES`.
    pub fn recycle(&self, buf: Vec<u8>) {
        let mut b = lock(&self.buffers);
        b.out = b.out.saturating_sub(buf.len() as u64);
        let cap = buf.capacity() as u64;
        if b.spare_bytes + cap <= SPARE_BYTES {
            b.spare_bytes += cap;
            b.spare.push(buf);
        }
        drop(b);
        self.room.notify_all();
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

    #[test]
    fn chunk_buffers_stay_within_the_budget() {
        let s = shared(1);
        let n = (MEMORY_BUDGET as usize) / CHUNK;
        let bufs: Vec<Vec<u8>> = (0..n).filter_map(|_| s.buffer(CHUNK)).collect();
        assert_eq!(bufs.len(), n);
        s.finish_all();
        assert!(
            s.buffer(CHUNK).is_none(),
            "a full budget waits, and gives up once stopped"
        );
        bufs.into_iter().for_each(|b| s.recycle(b));
    }
}
