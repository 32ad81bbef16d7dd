//! The set of pieces a BitTorrent peer has, in BEP 3's byte layout: piece 0 is the high bit
//! of the first byte, and the spare bits at the end of the last byte are zero.
//!
//! Owns the bit arithmetic only; it never reads a socket and never decides what to download.

use std::fmt;

/// A fixed-length set of piece indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
}

/// Why a received bitfield was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitfieldError {
    /// The byte count is not `ceil(pieces / 8)`.
    WrongLength { bytes: usize, pieces: usize },
    /// A bit past the last piece is set (BEP 3 says spare bits are cleared).
    SpareBitSet { pieces: usize },
}

impl fmt::Display for BitfieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BitfieldError::WrongLength { bytes, pieces } => write!(
                f,
                "bitfield of {bytes} bytes, but {pieces} pieces need {}",
                pieces.div_ceil(8)
            ),
            BitfieldError::SpareBitSet { pieces } => {
                write!(f, "bitfield sets a bit past the last of {pieces} pieces")
            }
        }
    }
}

impl std::error::Error for BitfieldError {}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: usize) -> Bitfield {
        Bitfield {
            bytes: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// Every piece of `len`.
    pub fn full(len: usize) -> Bitfield {
        let mut b = Bitfield::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// The bitfield received on the wire, checked against the torrent's piece count.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Bitfield, BitfieldError> {
        if bytes.len() != len.div_ceil(8) {
            return Err(BitfieldError::WrongLength {
                bytes: bytes.len(),
                pieces: len,
            });
        }
        let spare = bytes.len() * 8 - len;
        if spare > 0 && bytes[bytes.len() - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBitSet { pieces: len });
        }
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
        })
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the torrent has no pieces at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `index` is in the set (false past the end).
    pub fn get(&self, index: usize) -> bool {
        index < self.len && self.bytes[index / 8] & (0x80 >> (index % 8)) != 0
    }

    /// Add piece `index`; returns false (and changes nothing) past the end.
    pub fn set(&mut self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        self.bytes[index / 8] |= 0x80 >> (index % 8);
        true
    }

    /// How many pieces are in the set.
    pub fn count(&self) -> usize {
        self.bytes.iter().map(|b| b.count_ones() as usize).sum()
    }

    /// True when every piece is in the set.
    pub fn is_complete(&self) -> bool {
        self.count() == self.len
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Display for Bitfield {
    /// `<n bits, k set>`: the shape traces show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bits, {} set>", self.len, self.count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_zero_is_the_high_bit() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert!(b.get(0) && b.get(9) && !b.get(1) && !b.get(10));
        assert_eq!(b.to_string(), "<10 bits, 2 set>");
    }

    #[test]
    fn received_bitfields_are_checked() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0], 10).map(|b| b.count()),
            Ok(10)
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(BitfieldError::SpareBitSet { pieces: 10 })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                bytes: 1,
                pieces: 10
            })
        );
        assert!(Bitfield::full(16).is_complete());
        assert_eq!(Bitfield::full(9).as_bytes(), &[0xff, 0x80]);
    }
}
