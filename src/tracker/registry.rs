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

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

use crate::protocol::{ErrCode, Holder, Meta, ProtoError};
/// The loopback rule (ARCHITECTURE.md's invariants name it here), applied by `peers_for`.
pub use crate::tracker::holders::reachable;
use crate::tracker::holders::{Asker, Holders};

/// A peer's id, `ip:port`.
pub type PeerId = String;

/// Proof that a registration is the current one for its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session(u64);

#[derive(Debug)]
struct FileEntry {
    meta: Meta,
    /// Who holds it, completely or while downloading it (`holders.rs`: a reply's window).
    holders: Holders,
}

/// The known files: found by name in a hash map (a `WHOHAS` is one hash and a few memory
/// reads while the registry's lock is held, where a sorted map of 100,000 names cost about
/// 17 string comparisons, most of them cache misses), and the same names kept sorted beside
/// it for `LIST`'s pages. Both share each name's one allocation.
#[derive(Debug, Default)]
struct Files {
    by_name: HashMap<Arc<str>, FileEntry>,
    sorted: BTreeSet<Arc<str>>,
}

impl Files {
    fn get(&self, name: &str) -> Option<&FileEntry> {
        self.by_name.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut FileEntry> {
        self.by_name.get_mut(name)
    }

    /// The entry of `meta.name`, made for `meta` if there is none.
    fn get_or_insert(&mut self, meta: &Meta) -> &mut FileEntry {
        // The map's own key when the name is known (an `Arc` clone, no allocation).
        let name = match self.by_name.get_key_value(meta.name.as_str()) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = meta.name.as_str().into();
                self.sorted.insert(name.clone());
                name
            }
        };
        self.by_name.entry(name).or_insert_with(|| FileEntry {
            meta: meta.clone(),
            holders: Holders::new(),
        })
    }

    fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
        self.sorted.remove(name);
    }

    fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The entries of the first `limit` names after `from`, in order.
    fn page<'a>(
        &'a self,
        from: Bound<&'a str>,
        limit: usize,
    ) -> impl Iterator<Item = &'a FileEntry> + 'a {
        self.sorted
            .range::<str, _>((from, Bound::Unbounded))
            .filter_map(|name| self.by_name.get(name))
            .take(limit)
    }
}

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

/// What the registry lets one address, and everyone together, hold. The product of these is
/// the tracker's memory bound (see ARCHITECTURE.md): every announcement costs at most
/// `ANNOUNCE_BYTES`, so the registry stays under `files_total × ANNOUNCE_BYTES` whoever
/// connects, and one address under `files_per_addr × ANNOUNCE_BYTES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Registrations (peers) at once from one IP address. A LAN host runs a handful of peers.
    pub peers_per_addr: usize,
    /// Files one registration may announce (`UPLOAD`, `PARTIAL`).
    pub files_per_peer: usize,
    /// Files all the registrations of one IP address may announce together.
    pub files_per_addr: usize,
    /// Announcements the tracker holds in all.
    pub files_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            peers_per_addr: 16,
            files_per_peer: MAX_FILES_PER_PEER,
            files_per_addr: 100_000,
            files_total: 1_000_000,
        }
    }
}

impl Limits {
    /// No limit at all (benchmarks that register thousands of peers from one address).
    pub fn unlimited() -> Limits {
        Limits {
            peers_per_addr: usize::MAX,
            files_per_peer: usize::MAX,
            files_per_addr: usize::MAX,
            files_total: usize::MAX,
        }
    }
}

/// The most one announcement costs the registry, a bound measured with 255-byte names (the
/// name is kept in the file's entry and in its holder's set, with the holder's id, the `Meta`
/// and the hash tables' slack): the unit of the memory bound.
pub const ANNOUNCE_BYTES: usize = 1400;

/// Most lines in one `LIST` reply; the next page starts after the last name of this one.
pub const LIST_PAGE: usize = 100;

/// What one IP address holds.
#[derive(Debug, Default, Clone, Copy)]
struct AddrUse {
    peers: usize,
    files: usize,
}

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

/// The address part of a peer id `ip:port` (`[v6]:port` keeps its brackets).
fn addr_of(id: &str) -> &str {
    id.rsplit_once(':').map_or(id, |(ip, _)| ip)
}

fn limit(message: String) -> ProtoError {
    ProtoError::new(ErrCode::Limit, message)
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

    /// Room for one more announcement by `id` (which does not hold `name` yet)?
    fn check_announce(&self, id: &str, name: &str) -> Result<(), ProtoError> {
        let Some(peer) = self.peers.get(id) else {
            return Ok(()); // `holdings` says not-registered
        };
        if peer.files.contains(name) {
            return Ok(());
        }
        let l = &self.limits;
        if peer.files.len() >= l.files_per_peer {
            return Err(limit(format!(
                "a peer may announce at most {} files",
                l.files_per_peer
            )));
        }
        let addr = addr_of(id);
        let used = self.per_addr.get(addr).map_or(0, |u| u.files);
        if used >= l.files_per_addr {
            return Err(limit(format!(
                "the peers of {addr} have announced {used} files, the most one address may"
            )));
        }
        if self.announced >= l.files_total {
            return Err(limit(format!(
                "the tracker holds {} announcements, its limit; try again later",
                self.announced
            )));
        }
        Ok(())
    }

    /// Count (or uncount) one announcement of `id`'s.
    fn count_file(&mut self, id: &str, up: bool) {
        let u = self.per_addr.entry(addr_of(id).to_string()).or_default();
        if up {
            u.files += 1;
            self.announced += 1;
        } else {
            u.files = u.files.saturating_sub(1);
            self.announced = self.announced.saturating_sub(1);
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

/// Most files one peer may announce by default (`Limits::files_per_peer`).
pub const MAX_FILES_PER_PEER: usize = 100_000;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, size: u64) -> Meta {
        let digest = crate::sha1::Sha1::from(size.to_string()).digest();
        Meta {
            name: name.into(),
            size,
            piece_size: 1024,
            sha1: digest,
            root: digest,
        }
    }

    fn holders(r: &Registry, name: &str) -> Vec<String> {
        r.who_has(name)
            .unwrap()
            .iter()
            .map(|h| h.to_string())
            .collect()
    }

    #[test]
    fn only_the_tracker_machine_may_advertise_another_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(advertised(ip("127.0.0.1"), ip("192.168.1.5")).is_ok());
        assert!(advertised(ip("192.168.1.5"), ip("192.168.1.5")).is_ok());
        assert!(advertised(ip("192.168.1.6"), ip("192.168.1.5")).is_err());
        assert!(advertised(ip("127.0.0.1"), ip("0.0.0.0")).is_err());
    }

    #[test]
    fn upload_then_who_has_lists_the_holder() {
        let mut r = Registry::new();
        let a = r.register("127.0.0.1:10000").unwrap();
        r.upload("127.0.0.1:10000", a, &meta("test1.txt", 27))
            .unwrap();
        assert_eq!(holders(&r, "test1.txt"), ["127.0.0.1:10000"]);
        assert_eq!(r.info("test1.txt").unwrap(), meta("test1.txt", 27));
        assert_eq!(r.who_has("test2.txt").unwrap_err().code, ErrCode::NotFound);
    }

    #[test]
    fn the_first_holder_fixes_the_content() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        let b = r.register("b:1").unwrap();
        r.upload("a:1", a, &meta("f", 10)).unwrap();
        let err = r.upload("b:1", b, &meta("f", 11)).unwrap_err();
        assert_eq!(err.code, ErrCode::Conflict);
        r.upload("b:1", b, &meta("f", 10)).unwrap();
        assert_eq!(holders(&r, "f"), ["a:1", "b:1"]);
    }

    #[test]
    fn partial_holders_are_listed_after_full_ones_and_promoted_by_upload() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        let b = r.register("b:1").unwrap();
        let c = r.register("c:1").unwrap();
        assert_eq!(
            r.partial("b:1", b, "f").unwrap_err().code,
            ErrCode::NotFound
        );
        r.upload("c:1", c, &meta("f", 10)).unwrap();
        r.partial("a:1", a, "f").unwrap();
        r.partial("b:1", b, "f").unwrap();
        assert_eq!(holders(&r, "f"), ["c:1", "a:1-partial", "b:1-partial"]);
        r.upload("b:1", b, &meta("f", 10)).unwrap();
        r.partial("b:1", b, "f").unwrap();
        assert_eq!(holders(&r, "f"), ["b:1", "c:1", "a:1-partial"]);
    }

    #[test]
    fn forgetting_a_peer_drops_its_files_and_frees_names() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        r.upload("a:1", a, &meta("f", 10)).unwrap();
        assert_eq!(r.forget("a:1", a), Some(1));
        assert_eq!(r.forget("a:1", a), None);
        assert_eq!(r.who_has("f").unwrap_err().code, ErrCode::NotFound);
        assert_eq!(r.peer_count(), 0);
        let b = r.register("b:1").unwrap();
        r.upload("b:1", b, &meta("f", 99)).unwrap();
    }

    #[test]
    fn a_live_registration_cannot_be_taken_over_and_an_old_session_cannot_forget_a_new_one() {
        let mut r = Registry::new();
        let old = r.register("a:1").unwrap();
        r.upload("a:1", old, &meta("f", 10)).unwrap();
        assert_eq!(r.register("a:1").unwrap_err().code, ErrCode::Conflict);
        assert_eq!(holders(&r, "f"), ["a:1"]);
        r.forget("a:1", old);
        let new = r.register("a:1").unwrap();
        r.upload("a:1", new, &meta("g", 1)).unwrap();
        assert_eq!(r.forget("a:1", old), None);
        assert_eq!(holders(&r, "g"), ["a:1"]);
    }

    #[test]
    fn remove_stops_sharing_and_list_counts_holders() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        let b = r.register("b:1").unwrap();
        r.upload("a:1", a, &meta("f", 10)).unwrap();
        r.upload("a:1", a, &meta("g", 5)).unwrap();
        r.partial("b:1", b, "f").unwrap();
        let list = r.list();
        assert_eq!(list.len(), 2);
        assert_eq!(
            (list[0].meta.name.as_str(), list[0].full, list[0].partial),
            ("f", 1, 1)
        );
        r.remove("a:1", a, "g").unwrap();
        assert_eq!(r.remove("a:1", a, "g").unwrap_err().code, ErrCode::NotFound);
        assert_eq!(r.file_count(), 1);
    }

    #[test]
    fn quotas_count_announcements_and_give_them_back() {
        let mut r = Registry::with_limits(Limits {
            peers_per_addr: 2,
            files_per_peer: 3,
            files_per_addr: 4,
            files_total: 4,
        });
        let a = r.register("h:1").unwrap();
        let b = r.register("h:2").unwrap();
        assert_eq!(r.register("h:3").unwrap_err().code, ErrCode::Limit);
        for n in 0..3 {
            r.upload("h:1", a, &meta(&format!("f{n}"), 1)).unwrap();
        }
        // Announcing a held file again costs nothing.
        r.upload("h:1", a, &meta("f0", 1)).unwrap();
        r.partial("h:1", a, "f1").unwrap();
        assert_eq!(
            r.upload("h:1", a, &meta("x", 1)).unwrap_err().code,
            ErrCode::Limit
        );
        r.partial("h:2", b, "f0").unwrap();
        assert_eq!(r.partial("h:2", b, "f1").unwrap_err().code, ErrCode::Limit);
        r.remove("h:1", a, "f2").unwrap();
        r.partial("h:2", b, "f1").unwrap();
        let c = r.register("[::1]:1").unwrap();
        assert_eq!(
            r.upload("[::1]:1", c, &meta("y", 1)).unwrap_err().code,
            ErrCode::Limit
        );
        r.forget("h:2", b);
        r.upload("[::1]:1", c, &meta("y", 1)).unwrap();
        assert!(r.register("h:3").is_ok());
    }

    #[test]
    fn the_sorted_names_follow_the_files_through_removal_and_forgetting() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        let b = r.register("b:1").unwrap();
        for n in ["f1", "f2", "f3"] {
            r.upload("a:1", a, &meta(n, 1)).unwrap();
        }
        r.upload("b:1", b, &meta("f2", 1)).unwrap();
        let names = |r: &Registry| {
            r.list_page(None, 9)
                .into_iter()
                .map(|l| l.meta.name)
                .collect::<Vec<_>>()
        };
        r.remove("a:1", a, "f1").unwrap();
        r.forget("a:1", a);
        // f2 is still held by b; f1 and f3 left with their last holder, from both indexes.
        assert_eq!(names(&r), ["f2"]);
        assert_eq!((r.file_count(), r.files.sorted.len()), (1, 1));
        // A name that came back is listed once, with its new content.
        r.upload("b:1", b, &meta("f1", 7)).unwrap();
        r.upload("b:1", b, &meta("f1", 7)).unwrap();
        assert_eq!(names(&r), ["f1", "f2"]);
        assert_eq!(r.files.sorted.len(), 2);
        assert_eq!(r.info("f1").unwrap().size, 7);
        assert_eq!(holders(&r, "f1"), ["b:1"]);
    }

    #[test]
    fn list_pages_follow_the_names_in_order() {
        let mut r = Registry::new();
        let a = r.register("a:1").unwrap();
        for n in [5, 1, 3, 2, 4] {
            r.upload("a:1", a, &meta(&format!("f{n}"), 1)).unwrap();
        }
        let names = |l: Vec<Listing>| l.into_iter().map(|l| l.meta.name).collect::<Vec<_>>();
        assert_eq!(names(r.list_page(None, 2)), ["f1", "f2"]);
        assert_eq!(names(r.list_page(Some("f2"), 2)), ["f3", "f4"]);
        assert_eq!(names(r.list_page(Some("f35"), 9)), ["f4", "f5"]);
        assert!(r.list_page(Some("f5"), 9).is_empty());
    }
}
