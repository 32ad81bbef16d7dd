//! `PieceSet`: which pieces of one file this peer holds and has verified.
//!
//! Lock-free to read (one atomic bit per piece), because server threads read it while a
//! download's verifiers set bits. A server thread may also wait for the next piece
//! (`wait_beyond`, for `HAVE <name> <known>`): that wait, and only it, takes a mutex. It knows
//! nothing of files or sockets.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Which pieces of a file this peer holds and has verified. A bit is set only after its piece
/// is written, so what a server serves from it is always verified data.
#[derive(Debug)]
pub struct PieceSet {
    words: Vec<AtomicU64>,
    len: u32,
    count: AtomicU32,
    /// Wakes `wait_beyond` when a piece is set. The mutex guards nothing but the hand-over:
    /// `set` takes it after counting, so a waiter that saw the old count is already waiting.
    more: (Mutex<()>, Condvar),
}

impl PieceSet {
    /// An empty set for a file of `len` pieces.
    pub fn new(len: u32) -> PieceSet {
        PieceSet {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            len,
            count: AtomicU32::new(0),
            more: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Is piece `i` held? (False for an index past the end.)
    pub fn has(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Mark piece `i` held; true if it was not held before.
    pub fn set(&self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let bit = 1 << (i % 64);
        let old = self.words[(i / 64) as usize].fetch_or(bit, Ordering::AcqRel);
        let new = old & bit == 0;
        if new {
            self.count.fetch_add(1, Ordering::AcqRel);
            drop(self.more.0.lock().unwrap_or_else(PoisonError::into_inner));
            self.more.1.notify_all();
        }
        new
    }

    /// Wait until more than `known` pieces are held, or `at_most` has passed; returns the
    /// count then.
    pub fn wait_beyond(&self, known: u32, at_most: Duration) -> u32 {
        let until = Instant::now() + at_most;
        let mut guard = self.more.0.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let count = self.count();
            let left = until.saturating_duration_since(Instant::now());
            if count > known || left.is_zero() {
                return count;
            }
            guard = match self.more.1.wait_timeout(guard, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// How many pieces are held.
    pub fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// Is every piece held?
    pub fn is_full(&self) -> bool {
        self.count() == self.len
    }

    /// The bitfield as `BITFIELD` sends it: one `0` or `1` per piece.
    pub fn bits(&self) -> String {
        (0..self.len)
            .map(|i| if self.has(i) { '1' } else { '0' })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_set_counts_and_renders_bits() {
        let set = PieceSet::new(70);
        assert!(set.set(0));
        assert!(!set.set(0));
        assert!(set.set(69));
        assert!(!set.set(70));
        assert_eq!(set.count(), 2);
        assert!(set.has(69) && !set.has(68) && !set.has(1000));
        let bits = set.bits();
        assert_eq!(bits.len(), 70);
        assert!(bits.starts_with("10") && bits.ends_with("01"));
    }

    #[test]
    fn wait_beyond_returns_when_a_piece_is_set_or_the_time_is_up() {
        let set = std::sync::Arc::new(PieceSet::new(8));
        set.set(0);
        assert_eq!(
            set.wait_beyond(0, Duration::from_secs(60)),
            1,
            "already beyond"
        );
        let t = Instant::now();
        assert_eq!(
            set.wait_beyond(1, Duration::from_millis(20)),
            1,
            "nothing new"
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        // A waiter with a long limit is woken by the next piece.
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let waiter = {
            let set = set.clone();
            std::thread::spawn(move || {
                ready_tx.send(()).unwrap();
                set.wait_beyond(1, Duration::from_secs(60))
            })
        };
        ready.recv().unwrap();
        set.set(5);
        assert_eq!(waiter.join().unwrap(), 2);
    }
}
