//! The holders of one file, and which of them one `PEERS` reply lists.
//!
//! A reply lists at most `PEERS_PER_REPLY` holders, so a popular file, or one poisoned with
//! many fake registrations, costs a bounded line and a bounded time under the lock. Which ones:
//! - only holders the asker can reach: loopback holders (`127.0.0.1:P`, `[::1]:P`, peers on
//!   the tracker's own machine that did not `--advertise`) only to askers on loopback;
//! - while everyone fits, everyone (the asker too: the reply is then the whole truth);
//! - past the cap, a window of the full holders and one of the partial ones (each kind keeps
//!   a share), the asker left out. Each connection's window moves on by its own length at each
//!   ask (`Turns`), so one asker sees every holder within a few asks, whatever other askers
//!   do; each connection starts at its own random place, so askers see different holders.
//!
//! Pure data, no sockets, no clocks; every operation costs the reply's length or a few hash
//! map steps, never the number of holders. Holders are kept in one list of four runs (full or
//! partial, reachable from the LAN or loopback only: `FULL_LAN` ...), the first holder inline
//! (`holders/ids.rs`); past `SCAN_UP_TO` holders an index finds them (below, a look through
//! the list is as quick and saves the map's memory: most files have one or two holders, and
//! the registry's memory bound counts every byte).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::protocol::{ErrCode, Holder, ProtoError};
use crate::tracker::registry::inline_str::InlineStr;
use ids::Ids;

/// Most holders listed in one `PEERS` reply (`WHOHAS`, `GWHOHAS`).
pub const PEERS_PER_REPLY: usize = 50;

/// The least room partial holders get in a capped reply, when there are that many: a swarm of
/// downloaders must see each other even when the full holders alone would fill the reply.
pub const PARTIAL_SHARE: usize = PEERS_PER_REPLY / 5;

/// Where a connection's windows stand: the ask number, from a random start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Turns(u64);

impl Turns {
    /// Windows starting at `seed` (a random number per connection; tests choose one).
    pub fn starting_at(seed: u64) -> Turns {
        Turns(seed)
    }

    /// The next ask's turn.
    pub fn take(&mut self) -> u64 {
        let turn = self.0;
        self.0 = self.0.wrapping_add(1);
        turn
    }
}

/// Who asks: its address (which holders it can reach), its own registration (left out of a
/// capped reply) and its turn (`Turns::take`).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub ip: IpAddr,
    pub me: Option<&'a str>,
    pub turn: u64,
}

/// The runs of a file's holder list, in this order: full holders the LAN can reach, full on
/// loopback, then the same for partial ones. Each kind's two runs sit side by side, so what
/// one asker may see of a kind is one slice: the LAN run, with the loopback run after it for
/// an asker on loopback.
const FULL_LAN: usize = 0;
const FULL_LOOP: usize = 1;
const PART_LAN: usize = 2;
const PART_LOOP: usize = 3;

/// Is this holder id (`ip:port`) a loopback address? Ids that are not addresses (tests use
/// `a:1`) count as reachable.
fn on_loopback(id: &str) -> bool {
    id.parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().to_canonical().is_loopback())
}

/// The loopback rule: may the holder `holder` (its id, `ip:port`) be listed to an asker at
/// `asker`? Loopback holders only to loopback askers: to anyone else `127.0.0.1:P` is their
/// own machine. `Holders::pick` (so `WHOHAS` and `GWHOHAS`) applies it by run, each holder
/// having been put in its run by `on_loopback` once, when it was inserted (never parsed again
/// per ask).
pub fn reachable(holder: &str, asker: IpAddr) -> bool {
    !on_loopback(holder) || asker.to_canonical().is_loopback()
}

/// Holders found by looking through the list, up to this many; past it, by the index.
const SCAN_UP_TO: usize = 8;

/// Holder id → its position in the list.
type Index = HashMap<InlineStr, u32>;

/// The holders of one file.
#[derive(Debug, Default)]
pub struct Holders {
    /// Every holder, in the four runs (`FULL_LAN` ...).
    ids: Ids,
    /// Where each run ends in `ids`: run `r` is `ends[r - 1]..ends[r]` (run 0 starts at 0).
    ends: [u32; 4],
    /// Holder id → position, once there are more than `SCAN_UP_TO`.
    index: Option<Box<Index>>,
}

impl Holders {
    pub fn new() -> Holders {
        Holders::default()
    }

    /// Everyone in `ids`, all full holders (a group's holders).
    pub fn full_of<'a>(ids: impl IntoIterator<Item = &'a str>) -> Holders {
        let mut holders = Holders::new();
        for id in ids {
            holders.insert(id, true);
        }
        holders
    }

    /// Where run `run` starts.
    fn start(&self, run: usize) -> usize {
        if run == 0 {
            0
        } else {
            self.ends[run - 1] as usize
        }
    }

    /// The run of the holder at `pos`.
    fn run_of(&self, pos: usize) -> usize {
        self.ends
            .iter()
            .position(|&end| pos < end as usize)
            .unwrap_or(PART_LOOP)
    }

    /// Swap two holders, keeping the index right.
    fn swap(&mut self, a: usize, b: usize) {
        let ids = self.ids.as_mut_slice();
        ids.swap(a, b);
        if let Some(index) = &mut self.index {
            for pos in [a, b] {
                if let Some(slot) = index.get_mut(&ids[pos]) {
                    *slot = pos as u32;
                }
            }
        }
    }

    /// `id` holds the file: wholly (`full`) or while downloading it. A full holder stays full:
    /// a partial announce never demotes it. Returns true if `id` was not a holder before.
    pub fn insert(&mut self, id: &str, full: bool) -> bool {
        let base = if full { FULL_LAN } else { PART_LAN };
        let run = base + usize::from(on_loopback(id));
        let new = match self.find(id) {
            None => true,
            Some(pos) if full && self.run_of(pos) >= PART_LAN => {
                self.remove(id);
                false
            }
            Some(_) => return false,
        };
        // The new id goes at the very end; then each later run hands its first holder to
        // its own end, moving the free place down to the end of `run` (at most three moves).
        let id = InlineStr::from(id);
        self.ids.push(id.clone());
        let mut at = self.ids.len() - 1;
        for later in (run + 1..=PART_LOOP).rev() {
            let first = self.start(later);
            self.swap(first, at);
            self.ends[later] += 1;
            at = first;
        }
        self.ends[run] += 1;
        if let Some(index) = &mut self.index {
            index.insert(id, at as u32);
        } else if self.len() > SCAN_UP_TO {
            self.index = Some(Box::new(self.build_index()));
        }
        new
    }

    /// Every holder's position, for the index.
    fn build_index(&self) -> Index {
        let ids = self.ids.as_slice();
        let mut index = HashMap::with_capacity(ids.len());
        for (pos, id) in ids.iter().enumerate() {
            index.insert(id.clone(), pos as u32);
        }
        index
    }

    /// Where `id` is in the list.
    fn find(&self, id: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(id).map(|&pos| pos as usize),
            None => self.ids.as_slice().iter().position(|h| h.as_str() == id),
        }
    }

    /// How many hold it, wholly or partly.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// `id` no longer holds the file; false if it did not.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(mut hole) = self.find(id) else {
            return false;
        };
        if let Some(index) = &mut self.index {
            index.remove(id);
        }
        // The hole moves to the end: its run's last holder fills it, which leaves a hole just
        // before the next run, filled by that run's last holder, and so on (at most four).
        for run in self.run_of(hole)..=PART_LOOP {
            let last = self.ends[run] as usize - 1;
            self.swap(hole, last);
            self.ends[run] -= 1;
            hole = last;
        }
        self.ids.pop();
        true
    }

    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }

    /// How many hold all of it.
    pub fn full(&self) -> usize {
        self.ends[FULL_LOOP] as usize
    }

    /// How many are downloading it.
    pub fn partial(&self) -> usize {
        (self.ends[PART_LOOP] - self.ends[FULL_LOOP]) as usize
    }

    /// Every holder, full ones first, each kind sorted by id (costs them all: for the
    /// tracker's own uses and tests, never for a reply).
    pub fn all(&self) -> Vec<Holder> {
        let ids = self.ids.as_slice();
        let mut all: Vec<Holder> = ids
            .iter()
            .enumerate()
            .map(|(pos, id)| Holder {
                addr: id.to_string(),
                partial: pos >= self.full(),
            })
            .collect();
        all.sort_by(|a, b| (a.partial, &a.addr).cmp(&(b.partial, &b.addr)));
        all
    }

    /// The holders one `PEERS` reply lists to `asker` (see the module doc): at most
    /// `PEERS_PER_REPLY`, full ones first, each kind sorted by id. `ERR not-found` when there
    /// are holders but the asker can reach none of them.
    pub fn pick(&self, name: &str, asker: &Asker) -> Result<Vec<Holder>, ProtoError> {
        // What the asker may see of each kind: the LAN run, and the loopback run after it
        // for an asker on loopback (the loopback rule, without reading any id).
        let near = asker.ip.to_canonical().is_loopback();
        let ids = self.ids.as_slice();
        let (full_to, part_to) = if near {
            (FULL_LOOP, PART_LOOP)
        } else {
            (FULL_LAN, PART_LAN)
        };
        let part_from = self.start(PART_LAN);
        let full = &ids[..self.ends[full_to] as usize];
        let partial = &ids[part_from..self.ends[part_to] as usize];
        let (f, p) = (full.len(), partial.len());
        if f + p == 0 {
            return Err(if self.is_empty() {
                not_found(name)
            } else {
                ProtoError::new(
                    ErrCode::NotFound,
                    format!(
                        "{name} is held only at loopback addresses of the tracker's machine, which {} cannot reach (those peers should run with --advertise THEIR_LAN_ADDRESS)",
                        asker.ip
                    ),
                )
            });
        }
        let mut out = Vec::with_capacity((f + p).min(PEERS_PER_REPLY));
        if f + p <= PEERS_PER_REPLY {
            window(full, 0, f, None, false, &mut out);
            window(partial, 0, p, None, true, &mut out);
        } else {
            // Past the cap the asker is left out; count the others of each kind.
            let mine = asker.me.and_then(|me| self.find(me));
            let in_full = mine.is_some_and(|pos| pos < f);
            let in_partial = mine.is_some_and(|pos| (part_from..part_from + p).contains(&pos));
            let others_f = f - usize::from(in_full);
            let others_p = p - usize::from(in_partial);
            let mut want_p =
                others_p.min(PEERS_PER_REPLY.saturating_sub(others_f).max(PARTIAL_SHARE));
            let want_f = others_f.min(PEERS_PER_REPLY - want_p);
            want_p = others_p.min(PEERS_PER_REPLY - want_f);
            let start = |len: usize, step: usize| {
                (u128::from(asker.turn) * step as u128 % len.max(1) as u128) as usize
            };
            window(full, start(f, want_f), want_f, asker.me, false, &mut out);
            window(partial, start(p, want_p), want_p, asker.me, true, &mut out);
        }
        let full_end = out.iter().position(|h| h.partial).unwrap_or(out.len());
        out[..full_end].sort_by(|a, b| a.addr.cmp(&b.addr));
        out[full_end..].sort_by(|a, b| a.addr.cmp(&b.addr));
        Ok(out)
    }
}

/// Append `want` holders of `ring` (seen as a ring), from `start` on, skipping `skip`.
fn window(
    ring: &[InlineStr],
    start: usize,
    want: usize,
    skip: Option<&str>,
    partial: bool,
    out: &mut Vec<Holder>,
) {
    let mut taken = 0;
    // One more position than wanted: the asker may be among them.
    for i in 0..ring.len().min(want + 1) {
        if taken == want {
            break;
        }
        let id = &ring[(start + i) % ring.len()];
        if skip.is_some_and(|me| me == id.as_str()) {
            continue;
        }
        out.push(Holder {
            addr: id.to_string(),
            partial,
        });
        taken += 1;
    }
}

/// `ERR not-found no peer holds NAME`.
pub fn not_found(name: &str) -> ProtoError {
    ProtoError::new(ErrCode::NotFound, format!("no peer holds {name}"))
}

mod ids;
#[cfg(test)]
mod tests;
