//! `Shared`: the state of one download that its threads share (the coordinator, the fetchers,
//! the verifiers, the flusher, the whole-file hasher). Its fields are private; the threads go
//! through the methods below, so every rule about them lives here.
//!
//! Locks: `picker` (with its `Condvar` `wake`) is the one the threads share, held for picker
//! calls only, never across I/O. `sockets`, `from`, `fatal`, `spare` are leaf locks, each
//! taken alone or after `picker`, never the other way round.
//!
//! Never does I/O itself, except shutting sockets down when the download ends.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::conn::{Timeouts, Trace};
use crate::peer::picker::Picker;
use crate::peer::store::PieceSet;
use crate::protocol::{Digest, Meta};

/// Most piece buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 16;

/// What the fetchers need to know of the download's options.
#[derive(Clone, Debug)]
pub struct Tuning {
    pub timeouts: Timeouts,
    pub trace: Trace,
    /// Bytes of requests kept in flight per peer.
    pub window_bytes: u64,
    /// `DownloadOptions::unverified_bench_only`: benchmarks only, never in real use.
    pub unverified_bench_only: bool,
}

/// Everything a download starts from (what `prepare` found).
pub struct Start {
    pub meta: Meta,
    pub hashes: Arc<Vec<Digest>>,
    pub part: File,
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
    part: File,
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
    /// Piece buffers done with, for the fetchers to fill again (no allocation and zeroing per
    /// piece). Never more than `MAX_SPARE_BUFFERS`.
    spare: Mutex<Vec<Vec<u8>>>,
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
            spare: Mutex::default(),
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

    /// The part file (positioned reads and writes only: it is shared by every thread).
    pub fn part(&self) -> &File {
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

    /// A buffer of `len` bytes for a piece: a spare one if there is one.
    pub fn buffer(&self, len: usize) -> Vec<u8> {
        let mut buf = lock(&self.spare).pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    /// Keep a piece buffer for reuse.
    pub fn recycle(&self, buf: Vec<u8>) {
        let mut spare = lock(&self.spare);
        if spare.len() < MAX_SPARE_BUFFERS {
            spare.push(buf);
        }
    }
}
