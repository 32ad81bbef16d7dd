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

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::bt::announce::{self, Announce, Event, MAX_HEAD, Reply, SwarmPeer};
use crate::conn::{Timeouts, Trace};
use crate::tracker::holders::Asker;
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
        let live = |m: &Member| now.duration_since(m.seen) < EXPIRY;
        // Expire this swarm's silent clients on each announce; all swarms only when full.
        if let Some(swarm) = self.swarms.get_mut(&a.info_hash) {
            swarm.retain(|_, m| live(m));
        }
        if self.swarms.len() >= MAX_SWARMS {
            for swarm in self.swarms.values_mut() {
                swarm.retain(|_, m| live(m));
            }
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
        // Our holders first, then the swarm's clients not already listed (a set: a swarm of
        // `MAX_MEMBERS` costs its size, not its square).
        let mut all: Vec<(SocketAddr, bool)> = ours.to_vec();
        let listed: HashSet<SocketAddr> = all.iter().map(|(a, _)| *a).collect();
        if let Some(swarm) = self.swarms.get(&a.info_hash) {
            all.extend(
                swarm
                    .iter()
                    .filter(|(addr, _)| !listed.contains(addr))
                    .map(|(addr, m)| (*addr, m.seeder)),
            );
        }
        let complete = all.iter().filter(|(_, s)| *s).count() as u32;
        let incomplete = all.len() as u32 - complete;
        let peers = if a.event == Event::Stopped {
            Vec::new()
        } else {
            // The loopback rule for the swarm's own clients too: `127.0.0.1:P` is the
            // asker's own machine unless the asker is on it.
            let loopback_asker = ip.to_canonical().is_loopback();
            all.iter()
                .filter(|(addr, _)| *addr != me)
                .filter(|(addr, _)| loopback_asker || !addr.ip().to_canonical().is_loopback())
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

/// Our peers holding the torrent `info_hash` that the announcing client at `asker` can reach
/// (loopback holders only to a loopback client), at most one `PEERS` reply's worth: the same
/// `Registry::peers_for` as `WHOHAS`, its window moved on by `turn`.
fn ours(
    registry: &Registry,
    info_hash: &[u8; 20],
    asker: IpAddr,
    turn: u64,
) -> Vec<(SocketAddr, bool)> {
    let name = crate::torrent::wire::wire_name(info_hash);
    let asker = Asker {
        ip: asker,
        me: None,
        turn,
    };
    registry
        .peers_for(&name, &asker)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| Some((h.addr.parse().ok()?, !h.partial)))
        .collect()
}

/// Each HTTP announce is a connection of its own, so the window of our holders moves on with
/// one counter for all of them.
static TURNS: AtomicU64 = AtomicU64::new(0);

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
        let turn = TURNS.fetch_add(1, Ordering::Relaxed);
        let ours = ours(
            &registry.lock().unwrap_or_else(PoisonError::into_inner),
            &a.info_hash,
            from.ip(),
            turn,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn announce(port: u16, left: u64, event: Event) -> Announce {
        Announce {
            info_hash: [1; 20],
            peer_id: [2; 20],
            port,
            uploaded: 0,
            downloaded: 0,
            left,
            compact: true,
            no_peer_id: true,
            event,
            numwant: 50,
        }
    }

    fn addrs(r: &Reply) -> Vec<String> {
        let mut v: Vec<String> = r.peers.iter().map(|p| p.addr.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_swarm_lists_ours_and_the_others_but_never_the_announcer() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ours = [("127.0.0.1:7000".parse().unwrap(), true)];
        let now = Instant::now();
        let mut s = Swarms::default();
        let r = s
            .announce(&announce(20001, 0, Event::Started), ip, now, &ours)
            .unwrap();
        assert_eq!(addrs(&r), ["127.0.0.1:7000"]);
        let r = s
            .announce(&announce(20002, 9, Event::Started), ip, now, &ours)
            .unwrap();
        assert_eq!(addrs(&r), ["127.0.0.1:20001", "127.0.0.1:7000"]);
        assert_eq!((r.complete, r.incomplete), (2, 1));
        // Our peer announcing as a client too is listed once.
        let r = s
            .announce(&announce(7000, 0, Event::Regular), ip, now, &ours)
            .unwrap();
        assert_eq!(addrs(&r), ["127.0.0.1:20001", "127.0.0.1:20002"]);
        // Stopped: gone, and told nobody.
        let r = s
            .announce(&announce(20001, 0, Event::Stopped), ip, now, &ours)
            .unwrap();
        assert!(r.peers.is_empty());
        assert_eq!(s.members(&[1; 20]).len(), 2);
        // Silent past the expiry: gone at the next announce of the swarm.
        let later = now + EXPIRY + Duration::from_secs(1);
        let r = s
            .announce(&announce(20003, 9, Event::Started), ip, later, &[])
            .unwrap();
        assert!(r.peers.is_empty(), "{:?}", addrs(&r));
    }

    #[test]
    fn a_lan_client_is_never_handed_a_loopback_address() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "10.0.0.7".parse().unwrap();
        let now = Instant::now();
        let mut s = Swarms::default();
        // A client on the tracker's own machine joins over loopback.
        s.announce(&announce(20001, 0, Event::Started), lo, now, &[])
            .unwrap();
        let r = s
            .announce(&announce(20002, 9, Event::Started), lan, now, &[])
            .unwrap();
        assert!(r.peers.is_empty(), "{:?}", addrs(&r));
        // A loopback asker still sees both.
        let r = s
            .announce(&announce(20003, 9, Event::Started), lo, now, &[])
            .unwrap();
        assert_eq!(addrs(&r), ["10.0.0.7:20002", "127.0.0.1:20001"]);
    }

    #[test]
    fn ours_follows_the_peers_rules() {
        use crate::protocol::Meta;
        let mut registry = Registry::default();
        let hash = [7u8; 20];
        let name = crate::torrent::wire::wire_name(&hash);
        let meta = Meta {
            name: name.clone(),
            size: 1024,
            piece_size: 1024,
            sha1: Default::default(),
            root: Default::default(),
        };
        for host in 1..=80u16 {
            let id = format!("127.0.0.{host}:7000");
            let session = registry.register(&id).unwrap();
            registry.upload(&id, session, &meta).unwrap();
        }
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "10.0.0.7".parse().unwrap();
        // At most one PEERS reply's worth, and every holder within a few announces.
        let mut seen = HashSet::new();
        for turn in 0..4 {
            let listed = ours(&registry, &hash, lo, turn);
            assert!(listed.len() <= crate::tracker::holders::PEERS_PER_REPLY);
            seen.extend(listed.into_iter().map(|(a, _)| a));
        }
        assert_eq!(seen.len(), 80);
        // Loopback holders are not listed to a client elsewhere.
        assert!(ours(&registry, &hash, lan, 0).is_empty());
    }

    #[test]
    fn swarms_are_bounded() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        let mut s = Swarms::default();
        for port in 0..MAX_MEMBERS as u16 {
            s.announce(&announce(port + 1, 1, Event::Started), ip, now, &[])
                .unwrap();
        }
        let full = s.announce(&announce(60000, 1, Event::Started), ip, now, &[]);
        assert!(full.unwrap_err().contains("already has 1000 peers"));
        // numwant bounds the answer.
        let mut a = announce(1, 1, Event::Regular);
        a.numwant = 5;
        assert_eq!(s.announce(&a, ip, now, &[]).unwrap().peers.len(), 5);
    }
}
