//! The cluster port with a cluster key, in one process on real sockets (127.0.0.1:0): members
//! that share the key elect and replicate; a stranger who knows the fingerprint but not the key
//! cannot make a member read one Raft message (its huge terms change nothing); a member with
//! another key, or with none, is refused, and the refusal is one clear line.

#[path = "cluster/harness.rs"]
#[allow(dead_code)] // shared with tests/cluster.rs, which uses all of it
mod harness;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use harness::{Harness, client_addr};
use torrentphile::raft::NodeId;
use torrentphile::tracker::cluster::{ClusterKey, nonce};

const ELECT: Duration = Duration::from_secs(15);
const ACK: Duration = Duration::from_secs(20);
const HUGE: u64 = 1_000_000_000;

fn key(byte: char) -> Option<ClusterKey> {
    Some(ClusterKey::parse(&byte.to_string().repeat(64), "test").unwrap())
}

fn clients(n: u64) -> Vec<String> {
    (1..=n).map(client_addr).collect()
}

/// Send `lines` to `addr` on one connection and read every line back until the member closes
/// it (or stays silent for 2 s).
fn poke(addr: &str, lines: &[String]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    // The member may close before reading everything: a failed write is part of the refusal.
    let _ = s.write_all(text.as_bytes());
    BufReader::new(s).lines().map_while(Result::ok).collect()
}

/// Say `hello`, send the acceptor's MAC from its `ACK` back as the `PROOF`, and return the
/// line the acceptor answers that with.
fn reflect(addr: &str, hello: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(format!("{hello}\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut ack = String::new();
    r.read_line(&mut ack).unwrap();
    let mac_s = ack.trim_end().rsplit(' ').next().unwrap().to_string();
    assert_eq!(mac_s.len(), 40, "{ack}");
    s.write_all(format!("PROOF {mac_s}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    r.read_line(&mut reply).unwrap();
    reply.trim_end().to_string()
}

/// Every member's term and commit index, for "nothing changed" checks.
fn terms(h: &Harness) -> Vec<u64> {
    h.live().map(|(_, c)| c.term_and_commit().0).collect()
}

#[test]
fn keyed_members_elect_and_replicate_and_a_stranger_changes_nothing() {
    let h = Harness::start_keyed(
        3,
        "auth-stranger",
        &clients(3),
        &[key('a'), key('a'), key('a')],
    );
    let leader = h.leader(ELECT);
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(h.propose(&format!("cmd{i}"), ACK).expect("acknowledged"));
    }
    h.wait_applied(acked.len(), ACK);
    assert_eq!(h.check(&acked), acked);
    for (_, c) in h.live() {
        assert!(c.is_keyed());
        assert_eq!(c.last_refusal(), None, "the members refused nobody");
    }
    let before = terms(&h);
    let fp = h.config.fingerprint();
    let leader_id = leader;
    for (m, _) in h.live() {
        let other: NodeId = if m.id == 1 { 2 } else { 1 };
        let vote = format!("VOTE {HUGE} {other} {HUGE} {HUGE}");
        let append = format!("APPEND {HUGE} {other} 0 0 {HUGE} 0");
        // 1. The old hello, without a nonce: refused before anything else is read.
        let got = poke(
            &m.addr,
            &[
                format!("CLUSTER {fp} {other} -"),
                vote.clone(),
                append.clone(),
            ],
        );
        assert_eq!(
            got,
            [
                "ERR invalid-proof this member requires the cluster key: start every member with the same --cluster-key FILE"
            ],
            "member {}",
            m.id
        );
        // 2. A nonce, then a made-up PROOF (and a reflected one): refused, nothing read after.
        let n = nonce().unwrap();
        let got = poke(
            &m.addr,
            &[
                format!("CLUSTER {fp} {other} - {n}"),
                format!("PROOF {}", "0".repeat(40)),
                vote.clone(),
                append.clone(),
            ],
        );
        assert_eq!(got.len(), 2, "{got:?}");
        let ack: Vec<&str> = got[0].split(' ').collect();
        assert_eq!(ack[..3], ["ACK", "cluster", &m.id.to_string()]);
        assert_eq!(
            got[1],
            format!(
                "ERR invalid-proof member {other}'s MAC does not check: the cluster keys differ (or it is not member {other})"
            )
        );
        // The member's own MAC sent back as the PROOF: the labels differ, so it fails too.
        assert_eq!(
            reflect(&m.addr, &format!("CLUSTER {fp} {other} - {n}")),
            format!(
                "ERR invalid-proof member {other}'s MAC does not check: the cluster keys differ (or it is not member {other})"
            )
        );
        let last = m_refusal(&h, m.id);
        assert!(
            last.starts_with(&format!(
                "refused a connection from 127.0.0.1 claiming to be member {other}: "
            )),
            "{last}"
        );
        // 3. Raft lines with no hello at all: answered as a client's, never fed to Raft.
        let got = poke(&m.addr, &[vote.clone(), append.clone()]);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|l| l.starts_with("ERR ")), "{got:?}");
    }
    // The members keep their terms and their leader: give a deposed leader time to show.
    thread::sleep(Duration::from_millis(1500));
    assert_eq!(terms(&h), before, "a stranger changed a term");
    assert!(h.cluster(leader_id).is_leader());
    acked.push(h.propose("after", ACK).expect("still acknowledging"));
    h.wait_applied(acked.len(), ACK);
    assert_eq!(terms(&h), before);
}

fn m_refusal(h: &Harness, id: NodeId) -> String {
    h.cluster(id).last_refusal().expect("a refusal was logged")
}

#[test]
fn a_member_with_another_key_or_none_is_refused_with_one_line() {
    for (tag, odd) in [("auth-wrong", key('b')), ("auth-none", None)] {
        let h = Harness::start_keyed(3, tag, &clients(3), &[key('a'), key('a'), odd.clone()]);
        let leader = h.leader(ELECT);
        assert_ne!(leader, 3, "member 3 cannot win a vote it cannot send");
        let acked = [h.propose("x", ACK).expect("1 and 2 are a majority")];
        // Member 3's refusals show up as soon as it and the others have tried each other.
        let end = Instant::now() + ELECT;
        let refused = |id: NodeId| h.cluster(id).last_refusal();
        while (refused(1).is_none() || refused(3).is_none()) && Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
        }
        let from_3 = refused(3).expect("member 3 logged a refusal");
        let of_3 = refused(1).expect("member 1 logged a refusal");
        let cause = if odd.is_some() {
            "the cluster keys differ"
        } else {
            "cluster key"
        };
        assert!(from_3.contains(cause), "{tag}: {from_3}");
        assert!(of_3.contains(cause), "{tag}: {of_3}");
        // Member 3 never hears of the entry, nor of the leader.
        assert!(h.members[2].applied.0.lock().unwrap().is_empty());
        assert_eq!(h.cluster(3).leader_id(), None);
        let (list, cv) = &*h.members[leader as usize - 1].applied;
        let guard = cv
            .wait_timeout_while(list.lock().unwrap(), ACK, |l| l.is_empty())
            .unwrap()
            .0;
        assert_eq!(guard[..], acked[..]);
    }
}
