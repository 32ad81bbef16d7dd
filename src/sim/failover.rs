//! `torrentphile sim --scenario failover`: three trackers in a Raft cluster and five peers, in
//! this process. The leader is killed in the middle of a download and of a stream of group
//! operations; the run narrates the election and the refill (the peers re-register, re-announce
//! and log in again on the new leader), checks that every acknowledged group operation is
//! there, then kills every tracker and narrates what the peers do without one.
//!
//! It owns the scenario only: the trackers are `tracker::member::Member`s, the peers are the
//! real `Peer`s; nothing here speaks the protocol itself.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{SimConfig, fresh_dir, sha1_file, write_random};
use crate::peer::{Peer, PeerConfig};
use crate::protocol::AccountRequest;
use crate::tracker::TrackerConfig;
use crate::tracker::member::{Member, bind_loopback};

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
    let mut addrs = Vec::new();
    let mut members: Vec<Option<Member>> = Vec::new();
    for (i, (cp, client)) in cluster_ports.into_iter().zip(client_ports).enumerate() {
        addrs.push(client.local_addr().map_err(|e| e.to_string())?.to_string());
        let mut tracker = TrackerConfig::one_host();
        tracker.accounts.iterations = 4096; // a simulation: quick password derivations
        let state = root.join(format!("tracker{}", i + 1));
        let member = Member::start(cluster.clone(), i as u64 + 1, &state, cp, client, tracker)?;
        members.push(Some(member));
    }
    say(&format!(
        "== three trackers (clients at {}), one Raft cluster",
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
            write_random(&dir.join("big.bin"), 16 << 20, 7)?;
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
    say("== five peers registered with the leader; peer1 shares big.bin (16 MiB)");
    let carol = peers[2].clone();
    carol.create_user("carol", "pw")?;
    carol.login("carol", "pw")?;
    say("== peer3 creates user carol and logs in (SCRAM; the tracker never sees the password)");

    // A stream of group operations from peer3, and a download by peer2, both under way...
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
    let fetch = {
        let p = peers[1].clone();
        thread::spawn(move || p.download("big.bin").map_err(|e| e.to_string()))
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
    say(&format!(
        "== kill tracker {} (the leader) after {before} group operations, during the download",
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
    let last = all_gone(&mut members, &peers, &say)?;
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

/// Every tracker dies: the peers keep what they have and serve it to each other.
fn all_gone(
    members: &mut [Option<Member>],
    peers: &[Arc<Peer>],
    say: &dyn Fn(&str),
) -> Result<String, String> {
    for m in members.iter_mut().flatten() {
        m.kill();
    }
    say("== kill every tracker");
    let known = peers[0].addr().to_string();
    let copies = peers
        .iter()
        .filter(|p| p.store().get("big.bin").is_some())
        .count();
    say(&format!(
        "== the peers go on: {copies} of them hold big.bin and serve it to any peer that knows them (peer1 at {known})"
    ));
    Ok(format!(
        "all trackers gone: {copies} peers still serve big.bin"
    ))
}
