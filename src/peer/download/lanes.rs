//! Two pieces hashed at once: a worker's hasher keeps a finished piece's chunks waiting until
//! the next piece streams in, then feeds each new chunk to the CPU together with a waiting one
//! (`Sha1::update_pair`). With the SHA extensions one SHA-1 is a chain of dependent rounds
//! that leaves the unit idle between steps; a second, independent message fills the gaps, so
//! a pair costs about 0.6 of two hashes one after the other (`make bench`, case 1).
//!
//! This file is the bookkeeping only, a pure type with no threads, sockets or clocks: the
//! hasher (`verifier.rs`) feeds it chunks in the order its fetcher streamed them and calls
//! [`Lanes::flush`] when nothing came for a moment, so a waiting piece is never held back for
//! long and its buffers go back to the download's budget.
//!
//! The rules, with "lane" one piece in progress:
//! - a fetcher streams one piece at a time, so at most one lane is incomplete; a new piece's
//!   first chunk (`at == 0`) drops an incomplete lane (its stream broke; the fetcher gave the
//!   piece back, and no verdict is owed);
//! - a piece that finds a complete piece's chunks waiting pairs with them chunk for chunk;
//! - a piece that finds none keeps its own chunks waiting (if it is small enough to hold,
//!   `pair_max`), else hashes them as they come;
//! - once a complete piece has no chunk left unhashed, its digest is out.

use std::collections::VecDeque;

use crate::protocol::Digest;
use crate::sha1::Sha1;

/// One piece being hashed.
struct Lane {
    piece: u32,
    sha: Sha1,
    /// Chunks received and not hashed yet, oldest first.
    waiting: VecDeque<Vec<u8>>,
    /// Its last chunk has arrived.
    complete: bool,
    /// Keep its chunks waiting for a partner (rather than hash them as they come).
    holds: bool,
}

/// The lanes of one worker's hasher. Buffers it has hashed go to the `spent` list each call
/// is given, for the caller to recycle.
pub struct Lanes {
    lanes: Vec<Lane>,
    /// Pieces longer than this are never held (their chunks would weigh on the budget).
    pair_max: u64,
}

impl Lanes {
    /// Lanes that hold pieces of at most `pair_max` bytes for pairing (0: never pair).
    pub fn new(pair_max: u64) -> Lanes {
        Lanes {
            lanes: Vec::with_capacity(2),
            pair_max,
        }
    }

    /// Whether chunks are waiting unhashed: then the caller must not wait long for more input
    /// before it calls [`flush`](Lanes::flush).
    pub fn holding(&self) -> bool {
        self.lanes.iter().any(|l| !l.waiting.is_empty())
    }

    /// Chunk `bytes` of `piece` (of `len` bytes), starting `at` bytes into it; `last` if it is
    /// the piece's final chunk. Returns the pieces whose hash is now complete.
    pub fn chunk(
        &mut self,
        (piece, len): (u32, u64),
        at: u64,
        bytes: Vec<u8>,
        last: bool,
        spent: &mut Vec<Vec<u8>>,
    ) -> Vec<(u32, Digest)> {
        let mut done = Vec::new();
        if at == 0 {
            // A broken stream's lane: nothing will complete it.
            self.lanes.retain_mut(|l| {
                if !l.complete {
                    spent.extend(l.waiting.drain(..));
                }
                l.complete
            });
            let partnered = self.lanes.iter().any(|l| !l.waiting.is_empty());
            self.lanes.push(Lane {
                piece,
                sha: Sha1::new(),
                waiting: VecDeque::new(),
                complete: false,
                holds: !partnered && len <= self.pair_max,
            });
        }
        let Some(cur) = self
            .lanes
            .iter()
            .position(|l| !l.complete && l.piece == piece)
        else {
            // Not the piece in progress (cannot happen with one fetcher): nothing to add to.
            spent.push(bytes);
            return done;
        };
        let partner = self
            .lanes
            .iter()
            .position(|l| l.complete && !l.waiting.is_empty());
        match partner {
            Some(p) => {
                // `p` is complete and `cur` is not, so they are two lanes.
                if let Ok([a, b]) = self.lanes.get_disjoint_mut([p, cur])
                    && let Some(front) = a.waiting.pop_front()
                {
                    a.sha.update_pair(&front, &mut b.sha, &bytes);
                    spent.push(front);
                } else {
                    self.lanes[cur].sha.update(&bytes);
                }
                spent.push(bytes);
            }
            None if self.lanes[cur].holds => self.lanes[cur].waiting.push_back(bytes),
            None => {
                self.lanes[cur].sha.update(&bytes);
                spent.push(bytes);
            }
        }
        if last {
            self.lanes[cur].complete = true;
            if !self.lanes[cur].holds {
                // A partner with chunks left over (it was longer) has nothing to pair with.
                self.flush_into(spent, &mut done);
            }
        }
        self.finish_into(&mut done);
        done
    }

    /// Hash every waiting chunk alone, and stop holding: returns the pieces now complete.
    pub fn flush(&mut self, spent: &mut Vec<Vec<u8>>) -> Vec<(u32, Digest)> {
        let mut done = Vec::new();
        self.flush_into(spent, &mut done);
        done
    }

    fn flush_into(&mut self, spent: &mut Vec<Vec<u8>>, done: &mut Vec<(u32, Digest)>) {
        for lane in &mut self.lanes {
            for bytes in lane.waiting.drain(..) {
                lane.sha.update(&bytes);
                spent.push(bytes);
            }
            lane.holds = false;
        }
        self.finish_into(done);
    }

    /// Move out every complete lane with nothing left to hash.
    fn finish_into(&mut self, done: &mut Vec<(u32, Digest)>) {
        self.lanes.retain(|l| {
            let finished = l.complete && l.waiting.is_empty();
            if finished {
                done.push((l.piece, l.sha.digest()));
            }
            !finished
        });
    }

    /// The end of the stream: flush, and drop an incomplete lane. Returns the pieces complete.
    pub fn finish(mut self, spent: &mut Vec<Vec<u8>>) -> Vec<(u32, Digest)> {
        let done = self.flush(spent);
        for lane in self.lanes.drain(..) {
            spent.extend(lane.waiting);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of `sizes` bytes, distinct contents.
    fn pieces(sizes: &[usize]) -> Vec<Vec<u8>> {
        sizes
            .iter()
            .enumerate()
            .map(|(p, &n)| (0..n).map(|i| (i * 31 + p * 7 + i / 251) as u8).collect())
            .collect()
    }

    /// Stream `pieces` through lanes in chunks of `chunk` bytes, flushing after the chunks
    /// listed in `flush_after` (by count); returns the digests in the order they came out and
    /// how many buffers were handed back.
    fn stream(
        lanes: &mut Lanes,
        pieces: &[Vec<u8>],
        chunk: usize,
        flush_after: &[usize],
    ) -> (Vec<(u32, Digest)>, usize) {
        let mut out = Vec::new();
        let mut spent = Vec::new();
        let mut sent = 0;
        for (p, data) in pieces.iter().enumerate() {
            let chunks: Vec<&[u8]> = data.chunks(chunk).collect();
            for (k, bytes) in chunks.iter().enumerate() {
                let at = (k * chunk) as u64;
                let last = k + 1 == chunks.len();
                let id = (p as u32, data.len() as u64);
                out.extend(lanes.chunk(id, at, bytes.to_vec(), last, &mut spent));
                sent += 1;
                if flush_after.contains(&sent) {
                    out.extend(lanes.flush(&mut spent));
                }
            }
        }
        (out, spent.len())
    }

    fn want(pieces: &[Vec<u8>]) -> Vec<(u32, Digest)> {
        let mut w: Vec<(u32, Digest)> = pieces
            .iter()
            .enumerate()
            .map(|(p, d)| (p as u32, Sha1::from(d).digest()))
            .collect();
        w.sort();
        w
    }

    #[test]
    fn pairs_of_pieces_hash_to_their_own_digests() {
        // Five pieces (an odd one out) and a short last piece, in 4 KiB chunks.
        let data = pieces(&[16 << 10, 16 << 10, 16 << 10, 16 << 10, 5000]);
        let mut lanes = Lanes::new(1 << 20);
        let (mut out, spent) = stream(&mut lanes, &data, 4096, &[]);
        let mut rest = Vec::new();
        out.extend(lanes.finish(&mut rest));
        out.sort();
        assert_eq!(out, want(&data));
        assert_eq!(spent + rest.len(), 4 * 4 + 2, "every buffer comes back");
    }

    #[test]
    fn a_piece_waits_for_its_partner_and_a_flush_lets_it_go() {
        let data = pieces(&[8192, 8192]);
        let mut lanes = Lanes::new(1 << 20);
        let mut spent = Vec::new();
        let first = lanes.chunk((0, 8192), 0, data[0][..4096].to_vec(), false, &mut spent);
        let second = lanes.chunk((0, 8192), 4096, data[0][4096..].to_vec(), true, &mut spent);
        assert!(first.is_empty() && second.is_empty() && spent.is_empty());
        assert!(lanes.holding());
        // The partner pairs chunk for chunk; both finish on its last chunk.
        let a = lanes.chunk((1, 8192), 0, data[1][..4096].to_vec(), false, &mut spent);
        let b = lanes.chunk((1, 8192), 4096, data[1][4096..].to_vec(), true, &mut spent);
        assert!(a.is_empty());
        let mut b = b;
        b.sort();
        assert_eq!(b, want(&data));
        assert!(!lanes.holding());
        assert_eq!(spent.len(), 4);
        // Alone, a flush hashes it.
        lanes.chunk((2, 8192), 0, data[0].clone(), true, &mut spent);
        let alone = Sha1::from(&data[0]).digest();
        assert_eq!(lanes.flush(&mut spent), vec![(2, alone)]);
    }

    #[test]
    fn flushes_anywhere_and_broken_streams_change_no_digest() {
        let data = pieces(&[12288, 12288, 12288, 4097]);
        for flush_at in 1..=13 {
            let mut lanes = Lanes::new(1 << 20);
            let (mut out, _) = stream(&mut lanes, &data, 4096, &[flush_at]);
            out.extend(lanes.finish(&mut Vec::new()));
            out.sort();
            assert_eq!(out, want(&data), "flush after chunk {flush_at}");
        }
        // A piece whose stream broke after one chunk is dropped; the retry hashes right.
        let mut lanes = Lanes::new(1 << 20);
        let mut spent = Vec::new();
        let mut out = lanes.chunk((0, 12288), 0, data[0][..4096].to_vec(), false, &mut spent);
        let (more, _) = stream(&mut lanes, &data, 4096, &[]);
        out.extend(more);
        out.extend(lanes.finish(&mut spent));
        out.sort();
        assert_eq!(out, want(&data));
    }

    #[test]
    fn big_pieces_are_never_held() {
        let data = pieces(&[8192, 8192]);
        let mut lanes = Lanes::new(4096);
        let mut spent = Vec::new();
        lanes.chunk((0, 8192), 0, data[0][..4096].to_vec(), false, &mut spent);
        assert!(
            !lanes.holding(),
            "a piece over pair_max is hashed as it comes"
        );
        let out = lanes.chunk((0, 8192), 4096, data[0][4096..].to_vec(), true, &mut spent);
        assert_eq!(out, want(&data[..1]));
        assert_eq!(spent.len(), 2);
    }
}
