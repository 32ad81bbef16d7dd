//! `PieceSet`: which pieces of one file this peer holds and has verified.
//!
//! Lock-free (one atomic bit per piece), because server threads read it while a download's
//! verifiers set bits. It knows nothing of files or sockets.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Which pieces of a file this peer holds and has verified. A bit is set only after its piece
/// is written, so what a server serves from it is always verified data.
#[derive(Debug)]
pub struct PieceSet {
    words: Vec<AtomicU64>,
    len: u32,
    count: AtomicU32,
}

impl PieceSet {
    /// An empty set for a file of `len` pieces.
    pub fn new(len: u32) -> PieceSet {
        PieceSet {
            words: (0..len.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            len,
            count: AtomicU32::new(0),
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
        }
        new
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
}
