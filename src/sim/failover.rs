//! `torrentphile sim --scenario failover`: three trackers in a Raft cluster and five peers, in
//! this process. The leader is killed in the middle of a download and of a stream of group
//! operations; the run narrates the election and the refill (the peers re-register, re-announce
//! and log in again on the new leader), checks that every acknowledged group operation is
//! there, then kills every tracker and narrates what the peers do without one: they elect one
//! of themselves as interim tracker (`peer/interim.rs`), a new file is shared and downloaded
//! through it, and when the trackers are back it hands over.
//!
//! It owns the scenario only: the trackers are `tracker::member::Member`s, the peers are the
//! real `Peer`s; nothing here speaks the protocol itself.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{SimConfig, fresh_dir, sha1_file, write_random};
use crate::peer::{Peer, PeerConfig};
use crate::protocol::AccountRequest;
use crate::tracker::TrackerConfig;
use crate::tracker::cluster::{ClusterKey, write_new};
use crate::tracker::member::{Member, bind_loopback};
use crate::tracker::replica::SNAPSHOT_EVERY;

const TRACKERS: usize = 3;
const PEERS: usize = 5;
const GROUP_OPS: usize = 24;

/// Wait up to `limit` for `f`; the time it took, or an error naming `what`.
fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<Duration, String> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return Err(format!("failover: {what} did not happen within {limit:?}"));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(start.elapsed())
}

/// The live member that leads, if one does.
fn leader(members: &[Option<Member>]) -> Option<usize> {
    members
        .iter()
        .position(|m| m.as_ref().is_some_and(|m| m.cluster().is_leader()))
}

fn start_peer(trackers: &str, dir: &Path, label: &str) -> Result<Peer, String> {
    fresh_dir(dir)?;
    let mut config = PeerConfig::new(trackers, dir);
    config.label = label.to_string();
    config.max_conns_per_addr = config.max_conns;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    Peer::start(listener, config)
}

/// Run the scenario; the one result line.
pub(super) fn run(config: &SimConfig) -> Result<String, String> {
    let say = |text: &str| {
        if config.narrate {
            crate::util::say(text);
        }
    };
    let root = config.root.join("torrentphile-failover");
    fresh_dir(&root)?;
    let (cluster_ports, client_ports, cluster) = bind_loopback(TRACKERS)?;
    let cluster_addrs: Vec<SocketAddr> = cluster_ports
        .iter()
        .map(|l| l.local_addr().map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // The members prove to each other that they hold this key (as `--cluster-key` would).
    let key_file = root.join("cluster.key");
    write_new(&key_file)?;
    let key = ClusterKey::load(&key_file)?;
    let mut addrs = Vec::new();
    let mut members: Vec<Option<Member>> = Vec::new();
    for (i, (cp, client)) in cluster_ports.into_iter().zip(client_ports).enumerate() {
        addrs.push(client.local_addr().map_err(|e| e.to_string())?.to_string());
        let mut tracker = TrackerConfig::one_host();
        tracker.accounts.iterations = 4096; // a simulation: quick password derivations
        let state = root.join(format!("tracker{}", i + 1));
        let (id, every, key) = (i as u64 + 1, SNAPSHOT_EVERY, Some(key.clone()));
        let member = Member::start_keyed(
            cluster.clone(),
            id,
            &state,
            (cp, client),
            tracker,
            every,
            key,
        )?;
        members.push(Some(member));
    }
    say(&format!(
        "== three trackers (clients at {}), one Raft cluster, its members authenticated by a cluster key",
        addrs.join(", ")
    ));
    let first = wait("the first election", Duration::from_secs(10), || {
        leader(&members).is_some()
    })?;
    let lead = leader(&members).unwrap_or(0);
    let (term, _) = members[lead]
        .as_ref()
        .map_or((0, 0), |m| m.cluster().term_and_commit());
    say(&format!(
        "== tracker {} is elected leader for term {term} after {} ms",
        lead + 1,
        first.as_millis()
    ));

    // Five peers that know the three trackers; peer 1 seeds a file, peer 2 will fetch it.
    let list = addrs.join(",");
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let dir = root.join(format!("peer{}", i + 1));
        if i == 0 {
            fresh_dir(&dir)?;
            write_random(&dir.join("big.bin"), 64 << 20, 7)?;
        }
        let peer = if i == 0 {
            let mut c = PeerConfig::new(&list, &dir);
            c.label = "peer1".into();
            c.max_conns_per_addr = c.max_conns;
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            Peer::start(l, c)?
        } else {
            start_peer(&list, &dir, &format!("peer{}", i + 1))?
        };
        peer.wait_registered(Duration::from_secs(10))?;
        peers.push(Arc::new(peer));
    }
    let source = sha1_file(&root.join("peer1").join("big.bin"))?;
    say("== five peers registered with the leader; peer1 shares big.bin (64 MiB)");
    let carol = peers[2].clone();
    carol.create_user("carol", "pw")?;
    carol.login("carol", "pw")?;
    say("== peer3 creates user carol and logs in (SCRAM; the tracker never sees the password)");

    // A stream of group operations from peer3, and a download by peer2, both under way...
    let fetch = {
        let p = peers[1].clone();
        thread::spawn(move || p.download("big.bin").map_err(|e| e.to_string()))
    };
    // The download has asked the tracker what big.bin is before the operations start, so
    // the kill below falls while it runs (or just after it ended: the narration says which).
    wait("peer2's download to start", Duration::from_secs(20), || {
        peers[1]
            .downloads()
            .iter()
            .any(|d| d.size.load(Ordering::SeqCst) > 0)
    })?;
    let acked = Arc::new(AtomicUsize::new(0));
    let ops = {
        let (carol, acked) = (carol.clone(), acked.clone());
        thread::spawn(move || {
            let mut kept = Vec::new();
            for k in 0..GROUP_OPS {
                let group = format!("g{k}");
                let end = Instant::now() + Duration::from_secs(20);
                while Instant::now() < end {
                    let request = AccountRequest::CreateGroup {
                        group: group.clone(),
                    };
                    match carol.account(request) {
                        Ok(_) => {
                            kept.push(group.clone());
                            acked.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // Acknowledged earlier but the answer was lost: it is there.
                        Err(e) if e.starts_with("exists") => break,
                        Err(_) => thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
            kept
        })
    };
    wait(
        "the first group operations",
        Duration::from_secs(20),
        || acked.load(Ordering::SeqCst) >= GROUP_OPS / 3,
    )?;
    // ...when the leader dies.
    let old = leader(&members).ok_or("failover: no leader to kill")?;
    let before = acked.load(Ordering::SeqCst);
    if let Some(m) = members[old].as_mut() {
        m.kill();
    }
    members[old] = None;
    let progress = peers[1].downloads();
    let done: u64 = progress
        .iter()
        .map(|d| d.verified.load(Ordering::SeqCst))
        .sum();
    let when = if fetch.is_finished() {
        "after peer2's download ended".to_string()
    } else {
        format!(
            "during peer2's download ({:.1} of 64 MiB verified)",
            done as f64 / f64::from(1u32 << 20)
        )
    };
    say(&format!(
        "== kill tracker {} (the leader) after {before} group operations, {when}",
        old + 1
    ));
    let killed = Instant::now();
    wait("a new election", Duration::from_secs(10), || {
        leader(&members).is_some()
    })?;
    let elected = killed.elapsed();
    let new = leader(&members).unwrap_or(0);
    let (term, _) = members[new]
        .as_ref()
        .map_or((0, 0), |m| m.cluster().term_and_commit());
    say(&format!(
        "== tracker {} wins the election for term {term}, {} ms after the kill",
        new + 1,
        elected.as_millis()
    ));
    wait(
        "the next acknowledged operation",
        Duration::from_secs(20),
        || acked.load(Ordering::SeqCst) > before,
    )?;
    let next_ack = killed.elapsed();
    say(&format!(
        "== the next group operation is acknowledged {} ms after the kill",
        next_ack.as_millis()
    ));
    let refill = {
        let m = members[new]
            .as_ref()
            .ok_or("failover: the new leader is gone")?;
        wait("the refill", Duration::from_secs(20), || {
            m.tracker().registry().peer_count() == PEERS
        })?;
        killed.elapsed()
    };
    say(&format!(
        "== refill: all {PEERS} peers re-registered and re-announced to tracker {} {} ms after the kill (peer3 logged in again without its password)",
        new + 1,
        refill.as_millis()
    ));
    let report = fetch
        .join()
        .map_err(|_| "failover: the download thread panicked")??;
    let got = sha1_file(&root.join("peer2").join("big.bin"))?;
    if got != source {
        return Err(format!("failover: peer2's big.bin is {got}, not {source}"));
    }
    say(&format!(
        "== peer2's download went on peer to peer: {} bytes in {} ms, SHA-1 matches",
        report.meta.size,
        report.elapsed.as_millis()
    ));
    let kept = ops
        .join()
        .map_err(|_| "failover: the group thread panicked")?;
    let m = members[new]
        .as_ref()
        .ok_or("failover: the new leader is gone")?;
    let missing: Vec<&String> = {
        let accounts = m.tracker().auth().accounts();
        kept.iter()
            .filter(|g| accounts.group(g).is_none())
            .collect()
    };
    if !missing.is_empty() {
        return Err(format!("failover: acknowledged groups lost: {missing:?}"));
    }
    say(&format!(
        "== all {} acknowledged group operations are on the new leader",
        kept.len()
    ));
    // The same three trackers, started again on their addresses from their state folders.
    let restart = || -> Result<Vec<Member>, String> {
        let mut back = Vec::new();
        for (i, (cp, client)) in cluster_addrs.iter().zip(&addrs).enumerate() {
            let mut tracker = TrackerConfig::one_host();
            tracker.accounts.iterations = 4096;
            let state = root.join(format!("tracker{}", i + 1));
            let (cp, client) = (rebind(&cp.to_string())?, rebind(client)?);
            back.push(Member::start_keyed(
                cluster.clone(),
                i as u64 + 1,
                &state,
                (cp, client),
                tracker,
                SNAPSHOT_EVERY,
                Some(key.clone()),
            )?);
        }
        Ok(back)
    };
    let last = all_gone(&mut members, &peers, &root, &restart, &say)?;
    for p in peers {
        if let Ok(mut p) = Arc::try_unwrap(p) {
            p.stop();
        }
    }
    Ok(format!(
        "failover: new leader {} ms after kill -9, next ack at {} ms, {} / {} group ops kept, {PEERS} peers refilled in {} ms, download intact; {last}",
        elected.as_millis(),
        next_ack.as_millis(),
        kept.len(),
        kept.len(),
        refill.as_millis()
    ))
}

/// Bind `addr` again (a stopped tracker's port), trying for a moment while it is released.
fn rebind(addr: &str) -> Result<TcpListener, String> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() > end => return Err(format!("cannot listen on {addr}: {e}")),
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Every tracker dies: downloads under way go on peer to peer; the peers elect an interim
/// tracker from the standby list; a new file is shared and downloaded through it; the
/// trackers come back and it hands over.
fn all_gone(
    members: &mut [Option<Member>],
    peers: &[Arc<Peer>],
    root: &Path,
    restart: &dyn Fn() -> Result<Vec<Member>, String>,
    say: &dyn Fn(&str),
) -> Result<String, String> {
    let copies = peers
        .iter()
        .filter(|p| p.store().get("big.bin").is_some())
        .count();
    for m in members.iter_mut().flatten() {
        m.kill();
    }
    let killed = Instant::now();
    say(&format!(
        "== kill every tracker; {copies} peers hold big.bin and go on serving it to the peers that know them"
    ));
    // Every peer settles on the same interim tracker.
    let agreed = || {
        let states: Vec<_> = peers.iter().map(|p| p.link_state()).collect();
        let first = states.first().and_then(|s| s.tracker.clone());
        let same = states
            .iter()
            .all(|s| s.interim && s.id.is_some() && s.tracker == first);
        same.then_some(first).flatten()
    };
    wait(
        "agreement on an interim tracker",
        Duration::from_secs(30),
        || agreed().is_some(),
    )?;
    let chosen = agreed();
    let interim = chosen.ok_or("failover: no interim tracker")?;
    let elected = killed.elapsed();
    let who = peers
        .iter()
        .position(|p| p.standby().is_some_and(|s| s.addr().to_string() == interim))
        .map_or("?".to_string(), |i| format!("peer{}", i + 1));
    say(&format!(
        "== peers elect {interim} ({who}, the lowest live standby on the list the tracker handed out) as interim tracker, {} ms after the kill; all {} re-announced to it",
        elected.as_millis(),
        peers.len()
    ));
    // A new public file, shared and downloaded through the interim tracker.
    let fresh = root.join("fresh");
    fresh_dir(&fresh)?;
    write_random(&fresh.join("new.bin"), 1 << 20, 9)?;
    let want = sha1_file(&fresh.join("new.bin"))?;
    peers[3].share(&fresh.join("new.bin"))?;
    let report = peers[4]
        .download("new.bin")
        .map_err(|e| format!("failover: download through the interim tracker: {e}"))?;
    let got = sha1_file(&root.join("peer5").join("new.bin"))?;
    if got != want {
        return Err(format!("failover: peer5's new.bin is {got}, not {want}"));
    }
    let downloaded = killed.elapsed();
    say(&format!(
        "== peer4 shares new.bin through the interim tracker; peer5 downloads it ({} bytes, SHA-1 matches), {} ms after the kill",
        report.meta.size,
        downloaded.as_millis()
    ));
    let account = peers[2]
        .account(AccountRequest::Groups)
        .err()
        .unwrap_or_default();
    say(&format!(
        "== group operations wait for a real tracker: {}",
        account.lines().next().unwrap_or("")
    ));
    // The trackers return: the interim one hands over.
    let back = restart()?;
    let returned = Instant::now();
    say("== the three trackers restart from their state folders");
    for p in peers {
        p.wait_link(Duration::from_secs(30), |s| !s.interim && s.id.is_some())
            .map_err(|s| format!("failover: a peer stayed on the interim tracker: {s:?}"))?;
    }
    let handed = returned.elapsed();
    let lead = back
        .iter()
        .position(|m| m.cluster().is_leader())
        .map_or("?".to_string(), |i| format!("tracker {}", i + 1));
    say(&format!(
        "== the interim tracker hands over: every peer is registered with {lead} again {} ms after the restart",
        handed.as_millis()
    ));
    for mut m in back {
        m.kill();
    }
    Ok(format!(
        "all trackers gone: peers elected an interim tracker in {} ms, new download through it at {} ms, handed back in {} ms",
        elected.as_millis(),
        downloaded.as_millis(),
        handed.as_millis()
    ))
}
