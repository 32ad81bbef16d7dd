//! The threads that move the bytes of one download (`download.rs` starts and stops them):
//!
//! - a **fetcher** per remote peer keeps a window of `PIECE` requests in flight on its one
//!   connection and reads the `DATA` replies in order;
//! - a pool of **verifiers** (one per core) takes pieces from every fetcher through one
//!   bounded channel, hashes each, writes it into the part file with a positioned write and only
//!   then marks it held. Hashing is the expensive step, so it runs on every core even when
//!   there is a single holder, and it overlaps the network;
//! - the **whole-file hasher** (optional) follows the verified prefix of the part file;
//! - the **flusher** writes the part file to disk as it grows, so the `fsync` before the final
//!   rename has little left to do.
//!
//! Locks: `Shared::picker` (with its `Condvar` `wake`) is the one the threads share, held for
//! picker calls only, never across I/O. `sockets`, `from`, `fatal` are leaf locks. The
//! verifiers share their channel's receiver behind a mutex, held only while waiting for the
//! next piece (the Rust Book's thread-pool pattern).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnError};
use crate::peer::download::DownloadOptions;
use crate::peer::picker::Picker;
use crate::peer::store::PieceSet;
use crate::protocol::{Digest, ErrCode, Meta, Reply, Request};

/// How often a fetcher re-asks a partial holder which pieces it has.
const HAVE_EVERY: Duration = Duration::from_millis(300);
/// How often an idle connection to a seed is kept alive with a `HAVE`.
const SEED_KEEPALIVE: Duration = Duration::from_secs(2);
/// Slowest data rate tolerated within one piece before the peer counts as stalled.
pub const MIN_RATE: u64 = 64 * 1024;
/// How often the flusher writes the part file to disk.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// State shared by the coordinator and the threads of one download.
pub struct Shared {
    pub meta: Meta,
    pub hashes: Arc<Vec<Digest>>,
    pub part: File,
    pub have: Arc<PieceSet>,
    pub picker: Mutex<Picker>,
    /// Signalled (with `picker`) when a piece completes or returns, or the download stops.
    pub wake: Condvar,
    pub stop: AtomicBool,
    /// A failure that ends the whole download (the disk, not a peer).
    pub fatal: Mutex<Option<String>>,
    /// One handle per worker connection, to shut them all down when the download ends.
    pub sockets: Mutex<HashMap<usize, Arc<TcpStream>>>,
    /// Verified pieces and bytes by the peer they came from.
    pub from: Mutex<BTreeMap<String, (u32, u64)>>,
    pub verified: AtomicU64,
    pub fetched: AtomicU64,
    pub me: String,
    pub options: DownloadOptions,
    /// Piece buffers done with, for the fetchers to fill again (no allocation and zeroing per
    /// piece). Never more than `MAX_SPARE_BUFFERS`.
    pub spare: Mutex<Vec<Vec<u8>>>,
}

/// Most piece buffers kept for reuse.
const MAX_SPARE_BUFFERS: usize = 16;

impl Shared {
    pub fn picker(&self) -> MutexGuard<'_, Picker> {
        self.picker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// End the download: stop every worker now, even one blocked on a stalled socket.
    pub fn finish_all(&self) {
        self.stop.store(true, Ordering::Release);
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _guard = self.picker();
        self.wake.notify_all();
    }

    /// End the download with an error that is not a peer's fault.
    pub fn fail(&self, msg: String) {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(msg);
        self.finish_all();
    }

    /// A buffer of `len` bytes for a piece: a spare one if there is one.
    fn buffer(&self, len: usize) -> Vec<u8> {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut buf = spare.unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    fn recycle(&self, buf: Vec<u8>) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < MAX_SPARE_BUFFERS {
            spare.push(buf);
        }
    }

    fn notify(&self) {
        let _guard = self.picker();
        self.wake.notify_all();
    }
}

/// How a worker ended.
pub enum WorkerEnd {
    /// The download finished (or stopped) while it was working.
    Done,
    /// Its peer sent this piece, and it failed its hash.
    Corrupt(u32),
    /// Its peer failed: could not connect, timed out, closed, spoke nonsense.
    Failed(String),
}

/// What the verifiers know of one worker.
#[derive(Default)]
struct WorkerState {
    /// 0, or 1 + the index of the first piece from this peer that failed its hash.
    corrupt: AtomicU32,
    /// Pieces handed to the verifiers and not yet dealt with.
    pending: AtomicUsize,
}

/// A piece on its way from a fetcher to a verifier.
pub struct Job {
    w: usize,
    from: Arc<str>,
    piece: u32,
    bytes: Vec<u8>,
    state: Arc<WorkerState>,
}

/// One remote peer: connect, learn its pieces, fetch until done; its pieces are verified by
/// the pool behind `verifiers`.
pub fn worker(shared: &Shared, w: usize, addr: &str, verifiers: SyncSender<Job>) -> WorkerEnd {
    let opts = &shared.options;
    let mut conn = match Conn::connect(addr, opts.timeouts, opts.trace.clone()) {
        Ok(conn) => conn,
        Err(e) => return WorkerEnd::Failed(format!("cannot connect: {e}")),
    };
    shared
        .sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(w, conn.stream());
    let state = Arc::new(WorkerState::default());
    let fetched = if shared.stopped() {
        Ok(())
    } else {
        hello(shared, &mut conn).and_then(|bits| {
            shared.picker().set_peer(w, bits);
            fetch(shared, w, addr, &mut conn, &verifiers, &state)
        })
    };
    drop(verifiers);
    // Wait until the verifiers have dealt with every piece this peer sent, so a corrupt one
    // is known before we say how this peer did.
    let mut picker = shared.picker();
    while state.pending.load(Ordering::Acquire) > 0 {
        picker = shared
            .wake
            .wait_timeout(picker, Duration::from_millis(50))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    picker.remove_peer(w);
    drop(picker);
    shared
        .sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&w);
    shared.notify();
    match (state.corrupt.load(Ordering::Acquire), fetched) {
        (bad, _) if bad > 0 => WorkerEnd::Corrupt(bad - 1),
        (_, Ok(())) => WorkerEnd::Done,
        (_, Err(_)) if shared.stopped() => WorkerEnd::Done,
        (_, Err(e)) => WorkerEnd::Failed(e.to_string()),
    }
}

/// `HELLO` and the first `HAVE`.
fn hello(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    let hello = Request::Hello {
        id: shared.me.clone(),
    };
    match conn.request(&hello)? {
        Reply::Ack(_) => {}
        other => return Err(ConnError::Protocol(format!("HELLO answered {other}"))),
    }
    let have = Request::Have {
        name: shared.meta.name.clone(),
    };
    conn.send_line(&have.to_string())?;
    read_bits(shared, conn)
}

fn read_bits(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    match conn.read_reply()? {
        Reply::Bitfield(bits) if bits.len() == shared.meta.pieces() as usize => {
            Ok(bits.bytes().map(|b| b == b'1').collect())
        }
        other => Err(ConnError::Protocol(format!("HAVE answered {other}"))),
    }
}

/// What a fetcher has asked its peer for, in order.
enum Ask {
    Piece(u32),
    Have,
}

/// The fetcher: keep the pipeline full, read replies in order, pass pieces to the verifiers.
fn fetch(
    shared: &Shared,
    w: usize,
    addr: &str,
    conn: &mut Conn,
    verifiers: &SyncSender<Job>,
    state: &Arc<WorkerState>,
) -> Result<(), ConnError> {
    let meta = &shared.meta;
    let from: Arc<str> = addr.into();
    let window = (shared.options.window_bytes / meta.piece_size as u64).clamp(2, 256) as usize;
    let mut queue: VecDeque<Ask> = VecDeque::new();
    let mut last_have = Instant::now();
    let mut have_pending = false;
    let result = loop {
        if shared.stopped() || state.corrupt.load(Ordering::Acquire) > 0 {
            break Ok(());
        }
        let mut lines = Vec::new();
        let seed = {
            let mut picker = shared.picker();
            let mut asked = queue.iter().filter(|a| matches!(a, Ask::Piece(_))).count();
            let window = picker.window(window);
            while asked < window {
                let Some(i) = picker.next(w) else { break };
                asked += 1;
                queue.push_back(Ask::Piece(i));
                let name = meta.name.clone();
                lines.push(Request::Piece { name, index: i }.to_string());
            }
            picker.peer_is_seed(w)
        };
        // A partial holder's pieces change: ask again often. A seed's do not, but an idle
        // connection to it is kept alive the same way, so its server does not time it out.
        let have_every = if seed { SEED_KEEPALIVE } else { HAVE_EVERY };
        if !have_pending && last_have.elapsed() >= have_every && (!seed || queue.is_empty()) {
            queue.push_back(Ask::Have);
            let name = meta.name.clone();
            lines.push(Request::Have { name }.to_string());
            have_pending = true;
        }
        if !lines.is_empty()
            && let Err(e) = conn.send_lines(&lines)
        {
            break Err(e.into());
        }
        let Some(ask) = queue.pop_front() else {
            // Nothing to ask of this peer right now: wait for the picture to change.
            let picker = shared.picker();
            if picker.is_done() || shared.stopped() {
                break Ok(());
            }
            let _ = shared.wake.wait_timeout(picker, HAVE_EVERY);
            continue;
        };
        let step = match ask {
            Ask::Have => read_bits(shared, conn).map(|bits| {
                shared.picker().set_peer(w, bits);
                last_have = Instant::now();
                have_pending = false;
            }),
            Ask::Piece(i) => match receive_piece(shared, conn, i) {
                Ok(Some(bytes)) => {
                    state.pending.fetch_add(1, Ordering::AcqRel);
                    let job = Job {
                        w,
                        from: from.clone(),
                        piece: i,
                        bytes,
                        state: state.clone(),
                    };
                    if verifiers.send(job).is_err() {
                        state.pending.fetch_sub(1, Ordering::AcqRel);
                        shared.picker().finish(w, i, false);
                        break Ok(());
                    }
                    Ok(())
                }
                Ok(None) => {
                    let mut picker = shared.picker();
                    picker.peer_lacks(w, i);
                    picker.finish(w, i, false);
                    Ok(())
                }
                Err(e) => {
                    shared.picker().finish(w, i, false);
                    Err(e)
                }
            },
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    // Give back what was asked but never received.
    let mut picker = shared.picker();
    for ask in queue {
        if let Ask::Piece(i) = ask {
            picker.finish(w, i, false);
        }
    }
    shared.wake.notify_all();
    result
}

/// Read the reply to `PIECE i`: the piece's bytes, or `None` if the peer does not have it.
fn receive_piece(shared: &Shared, conn: &mut Conn, i: u32) -> Result<Option<Vec<u8>>, ConnError> {
    let (_, len) = shared.meta.piece_range(i);
    match conn.read_reply()? {
        Reply::Data(n) if n == len => {
            let mut buf = shared.buffer(len as usize);
            let allowed = conn.timeouts().io + Duration::from_secs(len / MIN_RATE);
            match conn.read_data(&mut buf, Instant::now() + allowed) {
                Ok(()) => Ok(Some(buf)),
                Err(e) => {
                    shared.recycle(buf);
                    Err(e)
                }
            }
        }
        Reply::Err(ErrCode::Unavailable, _) => Ok(None),
        other => Err(ConnError::Protocol(format!("PIECE {i} answered {other}"))),
    }
}

/// A verifier of the pool: hash, write, mark held, until every sender is gone.
pub fn verifier(shared: &Shared, jobs: &Mutex<Receiver<Job>>) {
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
    let peer_is_bad = job.state.corrupt.load(Ordering::Acquire) > 0;
    if peer_is_bad || shared.stopped() || shared.have.has(i) {
        // After a corrupt piece from this peer, or a duplicate from the end game.
        shared.picker().finish(w, i, false);
        return;
    }
    if sha1_smol::Sha1::from(&job.bytes).digest() != shared.hashes[i as usize] {
        // The fetcher sees this at its next step; the peer's later pieces are discarded above.
        let _ = job
            .state
            .corrupt
            .compare_exchange(0, i + 1, Ordering::AcqRel, Ordering::Acquire);
        shared.picker().finish(w, i, false);
        return;
    }
    let (offset, len) = shared.meta.piece_range(i);
    if let Err(e) = shared.part.write_all_at(&job.bytes, offset) {
        shared.picker().finish(w, i, false);
        shared.fail(format!(
            "cannot write the download of {}: {e}",
            shared.meta.name
        ));
        return;
    }
    // Held only once written: from here on our own server may serve it.
    let first = shared.have.set(i);
    let mut picker = shared.picker();
    picker.finish(w, i, first);
    let done = picker.is_done();
    drop(picker);
    if first {
        shared.verified.fetch_add(len, Ordering::Relaxed);
        shared.fetched.fetch_add(len, Ordering::Relaxed);
        let mut from = shared.from.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = from.entry(job.from.to_string()).or_default();
        entry.0 += 1;
        entry.1 += len;
    }
    if done {
        shared.finish_all();
    }
}

/// Hash the part file front to back as its verified prefix grows; the file's SHA-1 once
/// complete, `None` if the download stopped first.
pub fn hash_whole(shared: &Shared) -> Option<Digest> {
    let meta = &shared.meta;
    let mut sha = sha1_smol::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut pos, mut next_piece) = (0u64, 0u32);
    loop {
        while next_piece < meta.pieces() && shared.have.has(next_piece) {
            next_piece += 1;
        }
        let end = if next_piece == meta.pieces() {
            meta.size
        } else {
            next_piece as u64 * meta.piece_size as u64
        };
        if pos < end {
            let n = (end - pos).min(buf.len() as u64) as usize;
            shared.part.read_exact_at(&mut buf[..n], pos).ok()?;
            sha.update(&buf[..n]);
            pos += n as u64;
            continue;
        }
        if pos == meta.size {
            return Some(sha.digest());
        }
        let picker = shared.picker();
        if shared.stopped() && !shared.have.is_full() {
            return None;
        }
        let _ = shared.wake.wait_timeout(picker, Duration::from_millis(200));
    }
}

/// Write the part file's new pieces to disk every `FLUSH_EVERY` while the download runs, so
/// the final `fsync` is short. Disk errors here are left for that final `fsync` to report.
pub fn flusher(shared: &Shared) {
    let (mut flushed, mut last) = (0, Instant::now());
    loop {
        {
            let picker = shared.picker();
            if shared.stopped() {
                return;
            }
            let left = FLUSH_EVERY.saturating_sub(last.elapsed());
            if !left.is_zero() {
                let _ = shared.wake.wait_timeout(picker, left);
                continue;
            }
        }
        last = Instant::now();
        let verified = shared.verified.load(Ordering::Relaxed);
        if verified != flushed {
            let _ = shared.part.sync_data();
            flushed = verified;
        }
    }
}
