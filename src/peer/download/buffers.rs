//! `Budget`: the chunk buffers of one download, within `MEMORY_BUDGET` bytes. A fetcher takes
//! a buffer before it reads a chunk from its peer and the chunk's hasher gives it back once
//! the chunk is written and hashed; the buffers given back are kept (up to `SPARE_BYTES`) for
//! the next chunks, so a download does not allocate and zero memory per piece.
//!
//! One lock, a leaf (`Shared`'s module doc), held for a few counter updates: never across I/O.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Most bytes of chunk buffers one download holds at once: being filled from a peer, queued
/// for a worker's hasher, or kept spare. A piece is never held whole: it streams through
/// chunks of at most `CHUNK` bytes, each written into the part file where it belongs and fed
/// to the piece's SHA-1 as it arrives. So a download's buffers stay under this budget
/// whatever the piece size, the number of holders or the hashers' speed (before: a window of
/// whole pieces per holder plus a verifier queue: 658 MB with 64 MiB pieces).
pub const MEMORY_BUDGET: u64 = 32 << 20;

/// Most bytes of spare chunk buffers kept for reuse (inside the budget).
const SPARE_BYTES: u64 = 8 << 20;

/// How long a taker waits for room before it asks again whether the download stopped.
const RECHECK: Duration = Duration::from_millis(100);

/// Chunk buffers: how many bytes are out (being filled or hashed), and the spare ones.
#[derive(Default)]
struct Buffers {
    out: u64,
    spare: Vec<Vec<u8>>,
    spare_bytes: u64,
}

/// The chunk buffers out and spare; `room` is signalled when one comes back.
#[derive(Default)]
pub struct Budget {
    buffers: Mutex<Buffers>,
    room: Condvar,
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer of `len` bytes (a spare one if there is one), once the budget has room for
    /// it: waits while other chunks are read or hashed. `None` if `stopped()` becomes true
    /// meanwhile. Every buffer given out must come back through `give_back`.
    pub fn take(&self, len: usize, stopped: impl Fn() -> bool) -> Option<Vec<u8>> {
        let want = len as u64;
        let limit = MEMORY_BUDGET.max(want);
        let mut b = self.lock();
        while b.out > 0 && b.out + want > limit {
            if stopped() {
                return None;
            }
            b = self
                .room
                .wait_timeout(b, RECHECK)
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

    /// Give back a buffer from `take` (its length unchanged); kept for reuse if the spares
    /// stay under `SPARE_BYTES`.
    pub fn give_back(&self, buf: Vec<u8>) {
        let mut b = self.lock();
        b.out = b.out.saturating_sub(buf.len() as u64);
        let cap = buf.capacity() as u64;
        if b.spare_bytes + cap <= SPARE_BYTES {
            b.spare_bytes += cap;
            b.spare.push(buf);
        }
        drop(b);
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::download::state::CHUNK;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn chunk_buffers_stay_within_the_budget() {
        let budget = Budget::default();
        let stopped = AtomicBool::new(false);
        let stop = || stopped.load(Ordering::Acquire);
        let n = (MEMORY_BUDGET as usize) / CHUNK;
        let bufs: Vec<Vec<u8>> = (0..n).filter_map(|_| budget.take(CHUNK, stop)).collect();
        assert_eq!(bufs.len(), n);
        assert!(bufs.iter().all(|b| b.len() == CHUNK));
        stopped.store(true, Ordering::Release);
        assert!(
            budget.take(CHUNK, stop).is_none(),
            "a full budget waits, and gives up once stopped"
        );
        bufs.into_iter().for_each(|b| budget.give_back(b));
        stopped.store(false, Ordering::Release);
        let again = budget.take(CHUNK, stop).map(|b| b.capacity());
        assert!(
            again.is_some_and(|c| c >= CHUNK),
            "a spare is given out again"
        );
    }
}
