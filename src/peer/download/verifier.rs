//! The checking side of a download, the threads behind the fetchers:
//!
//! - a **hasher** per worker (started by `with_hasher`): its fetcher streams each piece
//!   through it in chunks of at most `CHUNK` bytes as they come off the socket; the hasher
//!   writes each at its place in the part file (unless the fetcher did) and feeds it to the
//!   piece's SHA-1 (two pieces at once where it can, `lanes.rs`). Once a piece's hash is
//!   complete it marks the piece held or, if the hash fails, missing again (its bytes on
//!   disk are overwritten by the next copy; nothing is published until every piece
//!   verified). Pieces over `PAIR_MAX` are never held whole in memory, so memory does not
//!   grow with the piece size. The work is split so that neither thread waits on the
//!   other: the fetcher receives, the hasher writes and hashes, and while half the hasher's
//!   queue waits the fetcher writes the next chunk itself
//!   (`WorkerState::fetcher_should_write`) if no other thread is writing into the file
//!   (`disk::try_store_chunk`).
//!
//! The part file's writes, the flusher and the whole-file hasher are in `disk.rs`.
//!
//! A hasher never holds the picker lock while it writes or hashes. A piece's bytes are written
//! by the hasher of the one worker that claimed it (`Shared::claim`), and the claim is given
//! up through the same queue (`Step::Abandon`, or the verdict), after the last write: an
//! end-game duplicate never mixes its bytes with the copy being checked.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread;
use std::time::Duration;

use crate::peer::download::disk::store_chunk;
use crate::peer::download::lanes::Lanes;
use crate::peer::download::state::{CHUNK, Shared};
use crate::protocol::Digest;
use crate::sha1::Sha1;

/// Chunks queued between a fetcher and its hasher (the byte budget bounds them too).
const QUEUED: usize = 8;
/// Pieces up to this size wait whole for the next one, to be hashed in pairs (`lanes.rs`);
/// a hasher holds at most one, well inside the download's `MEMORY_BUDGET`.
const PAIR_MAX: u64 = 4 << 20;
/// How long held chunks wait for the next piece before they are hashed alone.
const PAIR_WAIT: Duration = Duration::from_millis(5);
/// What a worker's hasher tells its fetcher about the pieces it handed over.
#[derive(Default)]
pub struct WorkerState {
    /// 0, or 1 + the index of the first piece from this peer that failed its hash.
    corrupt: AtomicU32,
    /// Pieces handed to the verifiers and not yet dealt with.
    pending: AtomicUsize,
    /// Chunks sent to the hasher that it has not taken yet (`fetcher_should_write`).
    queued: AtomicUsize,
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

    /// A piece is complete on its way to the hasher, which will give its verdict.
    pub fn handed_over(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// A piece handed over never reached the hasher (it had stopped).
    pub fn taken_back(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }

    /// Should the fetcher write its next chunk itself? The hasher writes the chunks and
    /// hashes them, so with one holder it is the busier thread (a profile: receiving ~19% of
    /// the samples, writing ~21%, hashing ~17%); when half its queue is waiting, the fetcher
    /// takes the write of the next chunk, and the two threads share the work. With several
    /// holders each hasher keeps up, and its fetcher only receives.
    pub fn fetcher_should_write(&self) -> bool {
        self.queued.load(Ordering::Acquire) >= QUEUED / 2
    }

    /// A chunk is on its way to the hasher.
    pub fn queue_one(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// A chunk left the queue: the hasher took it, or it never reached the hasher (stopped).
    pub fn unqueue_one(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a fetcher hands its hasher.
pub enum Step {
    /// The next bytes of `piece`, starting `at` bytes into it, for the hasher to write at
    /// their place in the part file (unless the fetcher has: `written`) and hash; `last`: the
    /// piece's final bytes.
    Bytes {
        piece: u32,
        at: u64,
        bytes: Vec<u8>,
        last: bool,
        written: bool,
    },
    /// Every block of `piece` is in the part file (a BitTorrent worker wrote them as they
    /// came, in any order): hash it from there.
    OnDisk(u32),
    /// The stream of `piece` broke: once the chunks before this are written, give up the
    /// claim (in this order, so no late write lands after another worker took the piece).
    Abandon(u32),
}

/// Run `fetch` with a hasher thread for worker `w` (whose peer is `from`) beside it: `fetch`
/// sends its pieces' chunks through the sender it is given. Returns once the hasher has dealt
/// with every piece handed over. An error if the thread cannot be started.
pub fn with_hasher<T>(
    shared: &Shared,
    w: usize,
    from: &str,
    state: &WorkerState,
    fetch: impl FnOnce(&SyncSender<Step>) -> T,
) -> Result<T, String> {
    let (steps, queue) = mpsc::sync_channel::<Step>(QUEUED);
    thread::scope(|s| {
        thread::Builder::new()
            .name("verify".into())
            .spawn_scoped(s, || hasher(shared, w, from, state, queue))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        let out = fetch(&steps);
        drop(steps);
        Ok(out)
    })
}

/// A worker's hasher: hash each piece's chunks as they come, two pieces at once where it can
/// (`lanes.rs`); check each piece once its hash is complete.
fn hasher(shared: &Shared, w: usize, from: &str, state: &WorkerState, steps: Receiver<Step>) {
    // Every real download hashes; only `make bench`'s unverified baseline skips it.
    let checked = !shared.tuning().unverified_bench_only;
    let mut lanes = Lanes::new(PAIR_MAX);
    let mut spent = Vec::new();
    let check = |done: Vec<(u32, Digest)>, spent: &mut Vec<Vec<u8>>| {
        for bytes in spent.drain(..) {
            shared.recycle(bytes);
        }
        for (piece, digest) in done {
            let ok = matches(shared, piece, digest);
            verdict(shared, w, from, state, piece, Some(ok));
        }
    };
    loop {
        // Chunks held for a partner wait only a moment: then they are hashed alone, so the
        // piece's verdict and its buffers are not held back by a pause in the stream.
        let step = if lanes.holding() {
            match steps.recv_timeout(PAIR_WAIT) {
                Ok(step) => step,
                Err(RecvTimeoutError::Timeout) => {
                    check(lanes.flush(&mut spent), &mut spent);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match steps.recv() {
                Ok(step) => step,
                Err(_) => break,
            }
        };
        match step {
            Step::Bytes {
                piece,
                at,
                bytes,
                last,
                written,
            } => {
                state.unqueue_one();
                let (offset, len) = shared.meta().piece_range(piece);
                if !written && !store_chunk(shared, &bytes, offset + at) {
                    // The disk failed: the download has stopped; the verdict will say so.
                    shared.recycle(bytes);
                    if last {
                        verdict(shared, w, from, state, piece, None);
                    }
                } else if checked {
                    let done = lanes.chunk((piece, len), at, bytes, last, &mut spent);
                    check(done, &mut spent);
                } else {
                    shared.recycle(bytes);
                    if last {
                        verdict(shared, w, from, state, piece, Some(true));
                    }
                }
            }
            Step::Abandon(piece) => shared.release(piece, w),
            Step::OnDisk(piece) => {
                let ok = if checked {
                    hash_on_disk(shared, piece).map(|d| matches(shared, piece, d))
                } else {
                    Some(true)
                };
                verdict(shared, w, from, state, piece, ok);
            }
        }
    }
    check(lanes.finish(&mut spent), &mut spent);
}

/// Piece `i` hashed to `digest`: is that the piece's hash from the tracker's `root`? The one
/// check between a liar and the disk (LABS.md, lab 8, plants a bug here).
fn matches(shared: &Shared, i: u32, digest: Digest) -> bool {
    if digest != shared.piece_hash(i) {
        return false;
    }
    true
}

/// The SHA-1 of piece `i` as the part file holds it; `None` if it cannot be read.
fn hash_on_disk(shared: &Shared, i: u32) -> Option<Digest> {
    let (offset, len) = shared.meta().piece_range(i);
    let mut buf = shared.buffer((len as usize).min(CHUNK))?;
    let mut sha = Sha1::new();
    let mut at = 0u64;
    let mut read = Ok(());
    while at < len && read.is_ok() {
        let n = (len - at).min(buf.len() as u64) as usize;
        read = shared.part().read_exact_at(&mut buf[..n], offset + at);
        sha.update(&buf[..n]);
        at += n as u64;
    }
    shared.recycle(buf);
    read.ok().map(|()| sha.digest())
}

/// Piece `i`, complete in the part file, hashed: `Some(true)` it matches, `Some(false)` it
/// does not (its peer is corrupt), `None` it could not be checked. Mark it held or missing,
/// then let other workers write it again.
fn verdict(shared: &Shared, w: usize, from: &str, state: &WorkerState, i: u32, ok: Option<bool>) {
    if state.corrupt_piece().is_some() || shared.stopped() || shared.have().has(i) {
        // After a corrupt piece from this peer the worker is ending: its later pieces are
        // not trusted either. (Released first, so the piece is free when a worker picks it.)
        shared.release(i, w);
        shared.picker().finish(w, i, false);
    } else if ok != Some(true) {
        if ok == Some(false) {
            // The fetcher sees this at its next step.
            let _ = state
                .corrupt
                .compare_exchange(0, i + 1, Ordering::AcqRel, Ordering::Acquire);
        }
        shared.release(i, w);
        shared.picker().finish(w, i, false);
    } else {
        // Held only once verified: from here on our own server may serve it. Released only
        // after: a verified piece can never be claimed, so nobody writes it again.
        let first = shared.have().set(i);
        shared.release(i, w);
        let mut picker = shared.picker();
        picker.finish(w, i, first);
        let done = picker.is_done();
        drop(picker);
        if first {
            shared.credit(from, shared.meta().piece_range(i).1);
        }
        if done {
            shared.finish_all();
        }
    }
    state.pending.fetch_sub(1, Ordering::AcqRel);
    shared.notify();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetcher_writes_only_while_half_the_hashers_queue_waits() {
        let state = WorkerState::default();
        for _ in 0..QUEUED / 2 - 1 {
            state.queue_one();
        }
        assert!(!state.fetcher_should_write(), "the hasher keeps up");
        state.queue_one();
        assert!(state.fetcher_should_write(), "half the queue waits");
        state.unqueue_one();
        assert!(!state.fetcher_should_write());
    }
}
