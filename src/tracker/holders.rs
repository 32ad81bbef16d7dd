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
//! map steps, never the number of holders. Holders are kept in four lists (full or partial,
//! reachable from the LAN or loopback only), removed by swap; past `SCAN_UP_TO` holders an
//! index finds them (below, a look through the lists is as quick and saves the map's memory:
//! most files have one or two holders, and the registry's memory bound counts every byte).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::protocol::{ErrCode, Holder, ProtoError};

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

/// The lists: full holders the LAN can reach, full on loopback, then the same for partial.
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
/// own machine. `Holders::pick` (so `WHOHAS` and `GWHOHAS`) asks it once per list, the lists
/// being sorted by `on_loopback`.
pub fn reachable(holder: &str, asker: IpAddr) -> bool {
    !on_loopback(holder) || asker.to_canonical().is_loopback()
}

/// Holders found by looking through the lists, up to this many; past it, by the index.
const SCAN_UP_TO: usize = 8;

/// Holder id → (list, position in it).
type Index = HashMap<Box<str>, (u8, u32)>;

/// The holders of one file.
#[derive(Debug, Default)]
pub struct Holders {
    lists: [Vec<Box<str>>; 4],
    /// Holder id → (list, position in it), once there are more than `SCAN_UP_TO`.
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

    /// `id` holds the file: wholly (`full`) or while downloading it. A full holder stays full:
    /// a partial announce never demotes it. Returns true if `id` was not a holder before.
    pub fn insert(&mut self, id: &str, full: bool) -> bool {
        let base = if full { FULL_LAN } else { PART_LAN };
        let list = base + usize::from(on_loopback(id));
        let new = match self.find(id) {
            None => true,
            Some((now, _)) if full && usize::from(now) >= PART_LAN => {
                self.remove(id);
                false
            }
            Some(_) => return false,
        };
        let v = &mut self.lists[list];
        if v.capacity() == 0 {
            // Most files have one holder: no room for four.
            v.reserve_exact(1);
        }
        let at = (list as u8, v.len() as u32);
        v.push(Box::from(id));
        if let Some(index) = &mut self.index {
            index.insert(Box::from(id), at);
        } else if self.len() > SCAN_UP_TO {
            self.index = Some(Box::new(self.build_index()));
        }
        new
    }

    /// Every holder's place, for the index.
    fn build_index(&self) -> HashMap<Box<str>, (u8, u32)> {
        let mut index = HashMap::with_capacity(self.len());
        for (list, v) in self.lists.iter().enumerate() {
            for (pos, id) in v.iter().enumerate() {
                index.insert(id.clone(), (list as u8, pos as u32));
            }
        }
        index
    }

    /// Where `id` is: (list, position).
    fn find(&self, id: &str) -> Option<(u8, u32)> {
        if let Some(index) = &self.index {
            return index.get(id).copied();
        }
        self.lists.iter().enumerate().find_map(|(list, v)| {
            let pos = v.iter().position(|h| &**h == id)?;
            Some((list as u8, pos as u32))
        })
    }

    /// How many hold it, wholly or partly.
    pub fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }

    /// `id` no longer holds the file; false if it did not.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some((list, pos)) = self.find(id) else {
            return false;
        };
        let v = &mut self.lists[usize::from(list)];
        v.swap_remove(pos as usize);
        if let Some(index) = &mut self.index {
            index.remove(id);
            if let Some(moved) = v.get(pos as usize)
                && let Some(slot) = index.get_mut(moved)
            {
                slot.1 = pos;
            }
        }
        true
    }

    pub fn is_empty(&self) -> bool {
        self.lists.iter().all(Vec::is_empty)
    }

    /// How many hold all of it.
    pub fn full(&self) -> usize {
        self.lists[FULL_LAN].len() + self.lists[FULL_LOOP].len()
    }

    /// How many are downloading it.
    pub fn partial(&self) -> usize {
        self.lists[PART_LAN].len() + self.lists[PART_LOOP].len()
    }

    /// Every holder, full ones first, each kind sorted by id (costs them all: for the
    /// tracker's own uses and tests, never for a reply).
    pub fn all(&self) -> Vec<Holder> {
        let mut all: Vec<Holder> = self
            .lists
            .iter()
            .enumerate()
            .flat_map(|(list, v)| {
                v.iter().map(move |id| Holder {
                    addr: id.to_string(),
                    partial: list >= PART_LAN,
                })
            })
            .collect();
        all.sort_by(|a, b| (a.partial, &a.addr).cmp(&(b.partial, &b.addr)));
        all
    }

    /// The holders one `PEERS` reply lists to `asker` (see the module doc): at most
    /// `PEERS_PER_REPLY`, full ones first, each kind sorted by id. `ERR not-found` when there
    /// are holders but the asker can reach none of them.
    pub fn pick(&self, name: &str, asker: &Asker) -> Result<Vec<Holder>, ProtoError> {
        // Every holder of a list is on loopback or none is: one `reachable` says for all.
        let usable = |list: usize| {
            self.lists[list]
                .first()
                .is_some_and(|id| reachable(id, asker.ip))
        };
        let lists = |lan: usize| -> (&[Box<str>], &[Box<str>]) {
            let take =
                |list: usize| -> &[Box<str>] { if usable(list) { &self.lists[list] } else { &[] } };
            (take(lan), take(lan + 1))
        };
        let (full, partial) = (lists(FULL_LAN), lists(PART_LAN));
        let count = |(a, b): (&[Box<str>], &[Box<str>])| a.len() + b.len();
        let (f, p) = (count(full), count(partial));
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
            let mine = asker
                .me
                .and_then(|me| self.find(me))
                .map(|(l, _)| usize::from(l));
            let holds =
                |kind: usize| mine.is_some_and(|l| (l == kind || l == kind + 1) && usable(l));
            let others_f = f - usize::from(holds(FULL_LAN));
            let others_p = p - usize::from(holds(PART_LAN));
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

/// Append `want` holders of the two lists `a` then `b` (seen as one ring), from `start` on,
/// skipping `skip`.
fn window(
    (a, b): (&[Box<str>], &[Box<str>]),
    start: usize,
    want: usize,
    skip: Option<&str>,
    partial: bool,
    out: &mut Vec<Holder>,
) {
    let len = a.len() + b.len();
    let mut taken = 0;
    // One more position than wanted: the asker may be among them.
    for i in 0..len.min(want + 1) {
        if taken == want {
            break;
        }
        let at = (start + i) % len;
        let id = if at < a.len() {
            &a[at]
        } else {
            &b[at - a.len()]
        };
        if skip.is_some_and(|me| me == &**id) {
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

#[cfg(test)]
mod tests;
