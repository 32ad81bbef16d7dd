//! The piece picker: which piece a download asks of which peer next. Pure state, no I/O; the
//! downloader's workers call it under one mutex.
//!
//! A piece is in exactly one of three states: *missing* and not asked for, *in flight* (asked
//! of one or more peers; `inflight[i]` counts them), or *done* (verified and written). Every
//! piece `next` hands out comes back exactly once through `finish`.
//!
//! The choice, in order:
//! 1. **Rarest first.** Among missing pieces the peer has and nobody is fetching, those held by
//!    the fewest known partial holders. Ties go to a random one of the first few in file order,
//!    so the file fills roughly front to back (the whole-file hash can follow right behind) and
//!    downloaders still spread out. `Strategy::Random` picks uniformly instead (Mini-Torrent).
//! 2. **Spare the seeders.** A peer holding the whole file is asked only for pieces no partial
//!    holder has, and only for this downloader's share of them (piece index modulo the number
//!    of downloaders), so downloaders that start together take different pieces from the seed
//!    and trade the rest among themselves: the seed uploads about one copy in all. If the
//!    others stop delivering (no progress for a while), `relax_share` lifts the restriction.
//! 3. **End game.** When nothing is left that nobody is fetching, a piece already in flight
//!    elsewhere is asked again (at most `ENDGAME_COPIES` at once); the first verified copy wins,
//!    so one stalled peer cannot hold the download at 99%. While the share is strict, a seeder
//!    is not asked again for a piece a partial holder is fetching (rule 2 holds to the end).

use std::collections::HashMap;

use crate::util::Rng;

/// How pieces are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    RarestFirst,
    Random,
}

/// How many tied rarest pieces, in file order, the random tie-break chooses among.
const TIE_WINDOW: usize = 16;
/// Most peers one piece is asked of at once in the end game.
const ENDGAME_COPIES: u16 = 3;

/// A worker's view of its remote peer.
#[derive(Debug)]
struct PeerView {
    bits: Vec<bool>,
    seed: bool,
}

/// The pieces one worker is fetching: a bitmap, and how many bits are set.
#[derive(Debug)]
struct Asked {
    count: u32,
    bits: Vec<u64>,
}

#[derive(Debug)]
pub struct Picker {
    done: Vec<bool>,
    inflight: Vec<u16>,
    /// How many partial holders (by their latest bitfield) have each piece.
    avail: Vec<u16>,
    peers: HashMap<usize, PeerView>,
    /// Which worker is fetching which piece (a worker never asks twice for one piece): a
    /// bitmap per worker, so the end game's scans test bits instead of hashing a key per
    /// piece (hashing was 3% of a 16-downloader swarm's CPU). A worker's entry goes once it
    /// fetches nothing, so workers that came and went leave no bitmaps behind.
    asked: HashMap<usize, Asked>,
    remaining: u32,
    /// Every piece below this index is done: scans start here, so a large file (131,072
    /// pieces) filled front to back is not re-scanned from piece 0 at every pick.
    low: usize,
    strategy: Strategy,
    /// This downloader's share of the seeders' pieces: (my index, downloaders).
    share: Option<(u32, u32)>,
    /// While strict, seeders are asked only for this downloader's share; the other pieces are
    /// left to the downloaders whose share they are, and traded later.
    strict: bool,
    /// The share is settled once two looks at the swarm in a row agreed on it; until then
    /// seeders are not asked at all (downloaders starting together see each other appear).
    settled: bool,
    rng: Rng,
}

impl Picker {
    /// A picker for `pieces` pieces, of which those in `have` are already done.
    pub fn new(pieces: u32, have: impl Fn(u32) -> bool, strategy: Strategy, seed: u64) -> Picker {
        let done: Vec<bool> = (0..pieces).map(have).collect();
        let remaining = done.iter().filter(|d| !**d).count() as u32;
        let low = done.iter().position(|d| !*d).unwrap_or(done.len());
        Picker {
            done,
            inflight: vec![0; pieces as usize],
            avail: vec![0; pieces as usize],
            peers: HashMap::new(),
            asked: HashMap::new(),
            remaining,
            low,
            strategy,
            share: None,
            strict: true,
            settled: false,
            rng: Rng::new(seed),
        }
    }

    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Set this downloader's share of the seeders' pieces.
    pub fn set_share(&mut self, index: u32, of: u32) {
        let share = (of > 0 && index < of).then_some((index, of));
        self.settled = share == self.share;
        self.share = share;
    }

    /// Let seeders be asked for any piece no partial holder has (when the other downloaders
    /// are not delivering their shares).
    pub fn relax_share(&mut self) {
        self.strict = false;
    }

    /// Worker `w`'s peer holds the pieces set in `bits` (first call or a refresh).
    pub fn set_peer(&mut self, w: usize, bits: Vec<bool>) {
        self.remove_peer(w);
        let seed = bits.iter().all(|b| *b);
        if !seed {
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    self.avail[i] += 1;
                }
            }
        }
        self.peers.insert(w, PeerView { bits, seed });
    }

    /// Worker `w` is gone: its peer no longer counts.
    pub fn remove_peer(&mut self, w: usize) {
        if let Some(old) = self.peers.remove(&w)
            && !old.seed
        {
            for (i, b) in old.bits.iter().enumerate() {
                if *b {
                    self.avail[i] -= 1;
                }
            }
        }
    }

    /// Worker `w`'s peer has piece `i`, as far as its latest bitfield says.
    pub fn peer_has(&self, w: usize, i: u32) -> bool {
        self.peers
            .get(&w)
            .is_some_and(|view| view.bits.get(i as usize) == Some(&true))
    }

    /// Seeders are not asked for anything yet: this downloader's share of their pieces is not
    /// settled (see `next`). A worker on a seed may wait for this to clear before its first
    /// requests.
    pub fn seeds_held_back(&self) -> bool {
        self.strategy == Strategy::RarestFirst && self.strict && !self.settled
    }

    /// Worker `w`'s peer turned out not to have piece `i` (it answered `unavailable`).
    pub fn peer_lacks(&mut self, w: usize, i: u32) {
        if let Some(view) = self.peers.get_mut(&w)
            && view.bits.get(i as usize) == Some(&true)
        {
            view.bits[i as usize] = false;
            if view.seed {
                view.seed = false;
                // It was counted as a seed: count its remaining pieces as a partial holder's.
                for (j, b) in view.bits.iter().enumerate() {
                    if *b {
                        self.avail[j] += 1;
                    }
                }
            } else {
                self.avail[i as usize] -= 1;
            }
        }
    }

    /// How many pieces a worker may have in flight: `max`, but no more than its fair part of
    /// what is left, so on a small file the first worker to connect cannot take every piece.
    /// A lone worker has no one to share with: halving its part would starve its pipeline over
    /// the last few hundred pieces (measured through a 50 ms relay: 0.52x against 0.74x).
    pub fn window(&self, max: usize) -> usize {
        let share = match self.peers.len() {
            0 | 1 => 1,
            n => 2 * n,
        };
        let fair = self.remaining as usize / share;
        fair.clamp(2, max.max(2))
    }

    pub fn peer_is_seed(&self, w: usize) -> bool {
        self.peers.get(&w).is_some_and(|p| p.seed)
    }

    /// The next piece to ask of worker `w`'s peer, or `None` if it has nothing useful right
    /// now.
    pub fn next(&mut self, w: usize) -> Option<u32> {
        let view = self.peers.get(&w)?;
        let fresh = |i: usize| !self.done[i] && self.inflight[i] == 0 && view.bits[i];
        let pick = match self.strategy {
            Strategy::Random => {
                let candidates: Vec<usize> =
                    (self.low..self.done.len()).filter(|&i| fresh(i)).collect();
                (!candidates.is_empty()).then(|| candidates[self.rng.below(candidates.len())])
            }
            Strategy::RarestFirst if view.seed && self.strict && !self.settled => None,
            Strategy::RarestFirst if view.seed => {
                let unseen = |i: usize| fresh(i) && self.avail[i] == 0;
                let in_share = |i: usize| self.share.is_none_or(|(k, n)| i as u32 % n == k);
                let mut first: Vec<usize> = Vec::new();
                let mut other: Vec<usize> = Vec::new();
                for i in (self.low..self.done.len()).filter(|&i| unseen(i)) {
                    let list = if in_share(i) { &mut first } else { &mut other };
                    if list.len() < TIE_WINDOW {
                        list.push(i);
                    }
                    if first.len() == TIE_WINDOW {
                        break;
                    }
                }
                let list = if first.is_empty() && !self.strict {
                    other
                } else {
                    first
                };
                (!list.is_empty()).then(|| list[self.rng.below(list.len())])
            }
            Strategy::RarestFirst => {
                let mut best: Vec<usize> = Vec::new();
                let mut rarest = u16::MAX;
                for i in (self.low..self.done.len()).filter(|&i| fresh(i)) {
                    let a = self.avail[i];
                    if a < rarest {
                        rarest = a;
                        best.clear();
                    }
                    if a == rarest && best.len() < TIE_WINDOW {
                        best.push(i);
                    }
                }
                (!best.is_empty()).then(|| best[self.rng.below(best.len())])
            }
        };
        let pick = pick.or_else(|| self.endgame(w))?;
        self.inflight[pick] += 1;
        let words = self.done.len().div_ceil(64);
        let mine = self.asked.entry(w).or_insert_with(|| Asked {
            count: 0,
            bits: vec![0; words],
        });
        mine.bits[pick / 64] |= 1 << (pick % 64);
        mine.count += 1;
        Some(pick as u32)
    }

    /// End game: when every missing piece is already in flight, ask again for the one in flight
    /// on the fewest peers (not one this worker is already fetching).
    ///
    /// Seeders are spared here too: while the share is strict, a seeder is not asked for a
    /// piece a partial holder is fetching. Downloaders that trade keep many pieces in flight
    /// with each other, so "everything is in flight" comes early, and a seeder that joined the
    /// end game then sent those pieces again: with 6 downloaders under load, 3-5 copies of the
    /// file instead of one. A partial holder that stops delivering is still covered:
    /// `relax_share` lifts the rule when no piece has arrived for a while.
    fn endgame(&self, w: usize) -> Option<usize> {
        let view = self.peers.get(&w)?;
        let unasked = (self.low..self.done.len()).any(|i| !self.done[i] && self.inflight[i] == 0);
        if unasked {
            return None;
        }
        let spare = view.seed && self.strict && self.strategy == Strategy::RarestFirst;
        let mine = self.asked.get(&w).map(|a| a.bits.as_slice());
        // The pieces workers on partial holders are fetching (only needed to spare a seeder).
        let partial: Vec<&[u64]> = if spare {
            let partial_workers = self.peers.iter().filter(|(_, view)| !view.seed);
            partial_workers
                .filter_map(|(v, _)| self.asked.get(v).map(|a| a.bits.as_slice()))
                .collect()
        } else {
            Vec::new()
        };
        (self.low..self.done.len())
            .filter(|&i| {
                !self.done[i]
                    && view.bits[i]
                    && self.inflight[i] < ENDGAME_COPIES
                    && !mine.is_some_and(|m| bit(m, i))
                    && !partial.iter().any(|p| bit(p, i))
            })
            .min_by_key(|&i| self.inflight[i])
    }

    /// A piece handed to worker `w` by `next` comes back: `verified` if this copy was checked
    /// and written (true only for the first copy), otherwise it failed, was a duplicate or was
    /// abandoned. Returns true if this completed the piece.
    pub fn finish(&mut self, w: usize, i: u32, verified: bool) -> bool {
        let mine = self.asked.get_mut(&w);
        if let Some(m) = mine.filter(|m| bit(&m.bits, i as usize)) {
            m.bits[i as usize / 64] &= !(1 << (i % 64));
            m.count -= 1;
            if m.count == 0 {
                self.asked.remove(&w);
            }
            self.inflight[i as usize] -= 1;
        }
        let i = i as usize;
        if verified && !self.done[i] {
            self.done[i] = true;
            self.remaining -= 1;
            while self.low < self.done.len() && self.done[self.low] {
                self.low += 1;
            }
            return true;
        }
        false
    }
}

/// Bit `i` of a bitmap of pieces.
fn bit(map: &[u64], i: usize) -> bool {
    map.get(i / 64)
        .is_some_and(|word| word >> (i % 64) & 1 == 1)
}

#[cfg(test)]
mod tests;
