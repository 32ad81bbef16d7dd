//! The tracker's state: which peers are online and which files each one holds.
//!
//! Pure data and rules, no sockets and no clocks: the server calls these methods while holding
//! the registry's mutex, and every one of them is a few `HashMap` operations, which is why a
//! plain `std::sync::Mutex` is the right lock (nothing slow ever happens while it is held).
//!
//! Rules kept here:
//! - a peer id is `ip:port`: the address the tracker saw the peer connect from, and the port
//!   the peer said it serves on;
//! - the first holder to announce a name fixes its content; a different announce is a conflict;
//! - a file is listed only while some online peer holds it, so when its last holder leaves the
//!   name is free again;
//! - a registration belongs to one connection (its `Session` token): when that connection
//!   ends, the peer and all its holdings are forgotten, but a newer registration of the same id
//!   (a restarted peer) is not touched by the old connection's end;
//! - memory is bounded by `Limits`: registrations per address, announcements per
//!   registration, per address and in total, each refusal an `ERR limit`; and `LIST` reads one
//!   page of at most `LIST_PAGE` names at a time (the files are kept sorted, so a page costs
//!   its own length, never a sort of everything).
//! - a `WHOHAS` reply lists at most `holders::PEERS_PER_REPLY` holders, those the asker can
//!   reach, in a window that moves on at each ask (`peers_for`, `holders.rs`).
//!
//! Where things are:
//! - `registry.rs` (this file): `Registry` and its operations (register, announce, ask,
//!   forget), and the address rule of `REGISTER ... <host>` (`advertised`).
//! - `files.rs`: the index of known files, by name and sorted.
//! - `inline_str.rs`: `InlineStr`, the strings of those indexes (a short one needs no
//!   pointer followed when compared), also the holder ids of `holders.rs`.
//! - `limits.rs`: `Limits`, the per-address counts, and the checks answering `ERR limit`.
//! - `tests.rs`: the unit tests.

mod files;
pub(crate) mod inline_str;
mod limits;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Bound;

use crate::protocol::{ErrCode, Holder, Meta, ProtoError};
use crate::tracker::holders::Asker;
/// The loopback rule (ARCHITECTURE.md's invariants name it here), applied by `peers_for`.
pub use crate::tracker::holders::reachable;
use files::Files;
pub use limits::{ANNOUNCE_BYTES, Limits, MAX_FILES_PER_PEER};
use limits::{AddrUse, addr_of, limit};

/// A peer's id, `ip:port`.
pub type PeerId = String;

/// Proof that a registration is the current one for its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session(u64);

/// A line of `LIST`.
#[derive(Debug, PartialEq, Eq)]
pub struct Listing {
    pub meta: Meta,
    pub full: usize,
    pub partial: usize,
}

/// An online peer: the session that owns its registration, and the names it holds (so that
/// forgetting a peer costs its own files, not every file the tracker knows).
#[derive(Debug)]
struct PeerEntry {
    session: Session,
    files: HashSet<String>,
}

/// Most lines in one `LIST` reply; the next page starts after the last name of this one.
pub const LIST_PAGE: usize = 100;

#[derive(Debug)]
pub struct Registry {
    /// Online peers by id.
    peers: HashMap<PeerId, PeerEntry>,
    /// Known files by name, and sorted (so `LIST` pages cost their own length).
    files: Files,
    /// Registrations and announcements per IP address (the part of the id before the port).
    per_addr: HashMap<String, AddrUse>,
    /// Announcements in all (a file held by three peers counts three).
    announced: usize,
    limits: Limits,
    next_session: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::with_limits(Limits::default())
    }
}

impl Registry {
    /// A registry with the default `Limits`.
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn with_limits(limits: Limits) -> Registry {
        Registry {
            peers: HashMap::new(),
            files: Files::default(),
            per_addr: HashMap::new(),
            announced: 0,
            limits,
            next_session: 0,
        }
    }

    /// A peer comes online. An id already registered by another live connection is refused:
    /// nobody can take over a peer's registration. (A restarted peer whose old connection died
    /// is let in as soon as the tracker notices: at once for a closed socket, within the idle
    /// timeout for a silent one.)
    pub fn register(&mut self, id: &str) -> Result<Session, ProtoError> {
        if self.peers.contains_key(id) {
            return Err(ProtoError::new(
                ErrCode::Conflict,
                format!(
                    "{id} is registered by another connection; if that peer died, try again once the tracker has noticed"
                ),
            ));
        }
        let addr = addr_of(id);
        let peers = self.per_addr.get(addr).map_or(0, |u| u.peers);
        if peers >= self.limits.peers_per_addr {
            return Err(limit(format!(
                "{addr} already has {peers} peers registered, the most one address may"
            )));
        }
        self.per_addr.entry(addr.to_string()).or_default().peers += 1;
        self.next_session += 1;
        let session = Session(self.next_session);
        self.peers.insert(
            id.to_string(),
            PeerEntry {
                session,
                files: HashSet::new(),
            },
        );
        Ok(session)
    }

    /// The files of `id`, if `session` is its current registration.
    fn holdings(&mut self, id: &str, session: Session) -> Result<&mut HashSet<String>, ProtoError> {
        match self.peers.get_mut(id) {
            Some(p) if p.session == session => Ok(&mut p.files),
            _ => Err(ProtoError::new(
                ErrCode::NotRegistered,
                "this connection is no longer registered; send REGISTER <port> again",
            )),
        }
    }

    /// `id` holds the whole of `meta`'s file.
    pub fn upload(&mut self, id: &str, session: Session, meta: &Meta) -> Result<(), ProtoError> {
        self.holdings(id, session)?;
        self.check_announce(id, &meta.name)?;
        let entry = self.files.get_or_insert(meta);
        if !entry.meta.same_content(meta) {
            return Err(ProtoError::new(
                ErrCode::Conflict,
                format!(
                    "{} is already shared as size {}, piece size {}, sha1 {}",
                    meta.name, entry.meta.size, entry.meta.piece_size, entry.meta.sha1
                ),
            ));
        }
        entry.holders.insert(id, true);
        if self.holdings(id, session)?.insert(meta.name.clone()) {
            self.count_file(id, true);
        }
        Ok(())
    }

    /// `id` is downloading `name` and serves the pieces it has.
    pub fn partial(&mut self, id: &str, session: Session, name: &str) -> Result<(), ProtoError> {
        self.holdings(id, session)?;
        self.check_announce(id, name)?;
        let entry = self.files.get_mut(name).ok_or_else(|| not_found(name))?;
        // A full holder stays full: a stale PARTIAL never demotes it.
        entry.holders.insert(id, false);
        if self.holdings(id, session)?.insert(name.to_string()) {
            self.count_file(id, true);
        }
        Ok(())
    }

    /// `id` no longer holds `name`.
    pub fn remove(&mut self, id: &str, session: Session, name: &str) -> Result<(), ProtoError> {
        if self.holdings(id, session)?.remove(name) {
            self.count_file(id, false);
        }
        let entry = self.files.get_mut(name).ok_or_else(|| not_found(name))?;
        if !entry.holders.remove(id) {
            return Err(ProtoError::new(
                ErrCode::NotFound,
                format!("you do not hold {name}"),
            ));
        }
        if entry.holders.is_empty() {
            self.files.remove(name);
        }
        Ok(())
    }

    /// Every holder of `name`, full holders first, each group sorted by id. Costs them all:
    /// for the tracker's own uses and tests; a `WHOHAS` reply is `peers_for`.
    pub fn who_has(&self, name: &str) -> Result<Vec<Holder>, ProtoError> {
        let entry = self.files.get(name).ok_or_else(|| not_found(name))?;
        Ok(entry.holders.all())
    }

    /// The holders of `name` one `PEERS` reply lists to `asker`: those it can reach, at most
    /// `holders::PEERS_PER_REPLY`, a window that moves on at each of its asks. Costs the
    /// reply, not the number of holders.
    pub fn peers_for(&self, name: &str, asker: &Asker) -> Result<Vec<Holder>, ProtoError> {
        let entry = self.files.get(name).ok_or_else(|| not_found(name))?;
        entry.holders.pick(name, asker)
    }

    /// What `name` is.
    pub fn info(&self, name: &str) -> Result<Meta, ProtoError> {
        self.files
            .get(name)
            .map(|e| e.meta.clone())
            .ok_or_else(|| not_found(name))
    }

    /// One page of the known files, sorted by name: at most `limit` (and at most
    /// `LIST_PAGE`) of them, starting after `after`. Costs the page, not the registry.
    pub fn list_page(&self, after: Option<&str>, limit: usize) -> Vec<Listing> {
        let from = match after {
            Some(name) => Bound::Excluded(name),
            None => Bound::Unbounded,
        };
        self.files
            .page(from, limit.min(LIST_PAGE))
            .map(|e| Listing {
                meta: e.meta.clone(),
                full: e.holders.full(),
                partial: e.holders.partial(),
            })
            .collect()
    }

    /// The first page of `list_page`.
    pub fn list(&self) -> Vec<Listing> {
        self.list_page(None, LIST_PAGE)
    }

    /// The connection of `session` ended: forget `id` and its files, unless it registered
    /// again since. Returns how many files it held, if it was forgotten.
    pub fn forget(&mut self, id: &str, session: Session) -> Option<usize> {
        if !self.peers.get(id).is_some_and(|p| p.session == session) {
            return None;
        }
        let peer = self.peers.remove(id)?;
        let count = peer.files.len();
        let addr = addr_of(id);
        if let Some(u) = self.per_addr.get_mut(addr) {
            u.peers = u.peers.saturating_sub(1);
            u.files = u.files.saturating_sub(count);
            if u.peers == 0 && u.files == 0 {
                self.per_addr.remove(addr);
            }
        }
        self.announced = self.announced.saturating_sub(count);
        for name in peer.files {
            if let Some(entry) = self.files.get_mut(&name) {
                entry.holders.remove(id);
                if entry.holders.is_empty() {
                    self.files.remove(&name);
                }
            }
        }
        Some(count)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

fn not_found(name: &str) -> ProtoError {
    ProtoError::new(ErrCode::NotFound, format!("no peer holds {name}"))
}

/// `REGISTER <port> <host>` from a connection at `from`: allowed when `host` is `from` itself,
/// or when the connection comes from loopback (a peer on the tracker's own machine naming
/// the address the LAN reaches it at). Another host may not name a third host's address: the
/// tracker would send downloaders there.
pub fn advertised(from: IpAddr, host: IpAddr) -> Result<(), ProtoError> {
    if host.is_unspecified() || host.is_multicast() {
        return Err(ProtoError::new(
            ErrCode::BadRequest,
            format!("{host} is not an address a peer can be reached at"),
        ));
    }
    if host == from || from.is_loopback() {
        return Ok(());
    }
    Err(ProtoError::new(
        ErrCode::BadRequest,
        format!(
            "this connection comes from {from}: a peer may advertise only its own address (or any, from the tracker's own machine)"
        ),
    ))
}
