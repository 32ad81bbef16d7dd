//! The tracker's answer to BitTorrent clients: `GET /announce?...` (BEP 3, compact lists as
//! BEP 23) on the tracker's own port, told apart from our lines by `conn::sniff`.
//!
//! A swarm is an info-hash. Its peers are (a) our own peers that hold or are downloading the
//! torrent's wire name `bt-<info-hash>` in the registry (they speak BitTorrent on their line
//! port) and (b) the BitTorrent clients that announced it here, kept in `Swarms` until they
//! say `event=stopped` or fall silent for `EXPIRY`.
//!
//! Unknown torrents: any info-hash is tracked, so two aria2c clients can meet here with no
//! Torrentphile peer in the swarm (that is what the course shows side by side). Memory is
//! bounded instead: at most `MAX_SWARMS` swarms of `MAX_MEMBERS` clients each; past that an
//! announce gets a `failure reason`. `Swarms` never sees a socket; `serve_http` reads the
//! request head within a deadline and writes the answer with no lock held.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::bt::announce::{self, Announce, Event, MAX_HEAD, Reply, SwarmPeer};
use crate::conn::{Timeouts, Trace};
use crate::tracker::registry::Registry;

/// Seconds between a client's regular announces (what we tell it).
pub const INTERVAL: u32 = 60;
/// A client not heard from for this long is dropped from its swarm.
pub const EXPIRY: Duration = Duration::from_secs(3 * INTERVAL as u64);
/// Most swarms tracked at once.
pub const MAX_SWARMS: usize = 4096;
/// Most BitTorrent clients in one swarm.
pub const MAX_MEMBERS: usize = 1000;

struct Member {
    seeder: bool,
    seen: Instant,
}

/// The BitTorrent clients that announced here, by info-hash and listening address.
#[derive(Default)]
pub struct Swarms {
    swarms: HashMap<[u8; 20], HashMap<SocketAddr, Member>>,
}

impl Swarms {
    /// Record `a` from `ip` at `now` and answer it; `ours` are our own peers holding the
    /// torrent (address, seeder?).
    pub fn announce(
        &mut self,
        a: &Announce,
        ip: IpAddr,
        now: Instant,
        ours: &[(SocketAddr, bool)],
    ) -> Result<Reply, String> {
        let me = SocketAddr::new(ip, a.port);
        for swarm in self.swarms.values_mut() {
            swarm.retain(|_, m| now.duration_since(m.seen) < EXPIRY);
        }
        self.swarms.retain(|_, s| !s.is_empty());
        if a.event == Event::Stopped {
            if let Some(s) = self.swarms.get_mut(&a.info_hash) {
                s.remove(&me);
            }
        } else {
            if !self.swarms.contains_key(&a.info_hash) && self.swarms.len() >= MAX_SWARMS {
                return Err(format!(
                    "this tracker already tracks {MAX_SWARMS} torrents; try again later"
                ));
            }
            let swarm = self.swarms.entry(a.info_hash).or_default();
            if !swarm.contains_key(&me) && swarm.len() >= MAX_MEMBERS {
                return Err(format!("this torrent already has {MAX_MEMBERS} peers here"));
            }
            swarm.insert(
                me,
                Member {
                    seeder: a.left == 0,
                    seen: now,
                },
            );
        }
        let mut all: Vec<(SocketAddr, bool)> = ours.to_vec();
        if let Some(swarm) = self.swarms.get(&a.info_hash) {
            for (addr, m) in swarm {
                if !all.iter().any(|(a, _)| a == addr) {
                    all.push((*addr, m.seeder));
                }
            }
        }
        let complete = all.iter().filter(|(_, s)| *s).count() as u32;
        let incomplete = all.len() as u32 - complete;
        let peers = if a.event == Event::Stopped {
            Vec::new()
        } else {
            all.iter()
                .filter(|(addr, _)| *addr != me)
                .take(a.numwant as usize)
                .map(|(addr, _)| SwarmPeer {
                    addr: *addr,
                    peer_id: None,
                })
                .collect()
        };
        Ok(Reply {
            interval: INTERVAL,
            complete,
            incomplete,
            peers,
        })
    }

    /// The clients of one swarm and whether each is a seeder (tests look).
    pub fn members(&self, info_hash: &[u8; 20]) -> Vec<(SocketAddr, bool)> {
        self.swarms
            .get(info_hash)
            .map(|s| s.iter().map(|(a, m)| (*a, m.seeder)).collect())
            .unwrap_or_default()
    }
}

/// Our peers holding the torrent `info_hash`: their address (one port speaks both wires) and
/// whether they hold all of it.
fn ours(registry: &Registry, info_hash: &[u8; 20]) -> Vec<(SocketAddr, bool)> {
    let name = crate::torrent::wire::wire_name(info_hash);
    registry
        .who_has(&name)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| Some((h.addr.parse().ok()?, !h.partial)))
        .collect()
}

/// Answer one HTTP connection: read its head (at most `MAX_HEAD` bytes, within the line
/// timeout), answer, close.
pub fn serve_http(
    swarms: &Mutex<Swarms>,
    registry: &Mutex<Registry>,
    stream: &TcpStream,
    timeouts: Timeouts,
    trace: &Trace,
) {
    let who = crate::conn::sniff::peer_name(stream);
    let Ok(from) = stream.peer_addr() else { return };
    if stream.set_write_timeout(Some(timeouts.io)).is_err() {
        return;
    }
    let deadline = Instant::now() + timeouts.line;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    let end = loop {
        if let Some(end) = announce::head_end(&head) {
            break end;
        }
        if head.len() > MAX_HEAD {
            trace.note(
                &who,
                "-",
                &format!("HTTP head over {MAX_HEAD} bytes; closing"),
            );
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            trace.note(&who, "-", "HTTP head not complete in time; closing");
            return;
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if crate::peer::bt_serve::is_timeout(&e) => {}
            Err(_) => return,
        }
    };
    let head = &head[..end];
    if trace.is_on() {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        trace.note(&who, "<", String::from_utf8_lossy(line).trim_end());
    }
    let response = announce::respond(head, |a| {
        // Registry first, then swarms, never both at once (the registry's lock is shared).
        let ours = ours(
            &registry.lock().unwrap_or_else(PoisonError::into_inner),
            &a.info_hash,
        );
        let mut swarms = swarms.lock().unwrap_or_else(PoisonError::into_inner);
        let reply = swarms.announce(a, from.ip(), Instant::now(), &ours);
        if trace.is_on() {
            let text = match &reply {
                Ok(r) => format!(
                    "HTTP announce {} left={} -> {} peers",
                    crate::bt::wire::hex(&a.info_hash),
                    a.left,
                    r.peers.len()
                ),
                Err(e) => format!("HTTP announce refused: {e}"),
            };
            trace.note(&who, ">", &text);
        }
        reply
    });
    let _ = (&*stream).write_all(&response);
}
