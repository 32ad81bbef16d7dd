//! Constant-time equality for secrets: the one function every secret comparison goes through.
//!
//! `a == b` on slices stops at the first differing byte, so the time it takes tells an attacker
//! how many leading bytes of a guess were right (a proof, a MAC, a key). This module owns the
//! comparison that does not. It must never branch on the contents of its inputs, and nothing
//! else in the crate should compare secrets by hand.

use std::hint::black_box;

/// True when `a` and `b` hold the same bytes, in a time that depends only on their lengths.
///
/// The lengths themselves are not secret here (a proof, a MAC and a stored key all have a
/// fixed, public length), so unequal lengths answer `false` at once.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // OR together every difference, looking at every byte whatever it holds; `black_box` keeps
    // the optimiser from turning the fold back into an early exit.
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= black_box(x ^ y);
    }
    black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_and_unequal() {
        assert!(eq(b"", b""));
        assert!(eq(b"secret", b"secret"));
        assert!(!eq(b"secret", b"secreT"));
        assert!(!eq(b"Secret", b"secret"));
        assert!(!eq(b"secret", b"secret!"));
        assert!(!eq(b"", b"x"));
    }

    #[test]
    fn every_single_bit_flip_is_seen() {
        let a = [0x5au8; 20];
        for i in 0..20 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!eq(&a, &b), "byte {i} bit {bit}");
            }
        }
    }
}
