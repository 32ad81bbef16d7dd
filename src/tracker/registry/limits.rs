//! The registry's quotas: what one address, and everyone together, may register and
//! announce (`Limits`), the counts kept per address, and the checks that answer `ERR limit`.
//!
//! It owns the counting and the refusal messages; it must never change who holds what (the
//! operations in `registry.rs` do, and call these checks first). Pure: no sockets, no clocks.

use crate::protocol::{ErrCode, ProtoError};

use super::Registry;

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

/// Most files one peer may announce by default (`Limits::files_per_peer`).
pub const MAX_FILES_PER_PEER: usize = 100_000;

/// What one IP address holds.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AddrUse {
    pub(super) peers: usize,
    pub(super) files: usize,
}

/// The address part of a peer id `ip:port` (`[v6]:port` keeps its brackets).
pub(super) fn addr_of(id: &str) -> &str {
    id.rsplit_once(':').map_or(id, |(ip, _)| ip)
}

pub(super) fn limit(message: String) -> ProtoError {
    ProtoError::new(ErrCode::Limit, message)
}

impl Registry {
    /// Room for one more announcement by `id` (which does not hold `name` yet)?
    pub(super) fn check_announce(&self, id: &str, name: &str) -> Result<(), ProtoError> {
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
    pub(super) fn count_file(&mut self, id: &str, up: bool) {
        let u = self.per_addr.entry(addr_of(id).to_string()).or_default();
        if up {
            u.files += 1;
            self.announced += 1;
        } else {
            u.files = u.files.saturating_sub(1);
            self.announced = self.announced.saturating_sub(1);
        }
    }
}
