//! Raft on a simulated network, tested the way the MIT 6.5840 Raft lab tests it: elections,
//! re-elections, agreement with nodes down, partitioned leaders, an unreliable network,
//! Figure 8, crashes and restarts from what was persisted, and hundreds of random schedules.
//!
//! Everything is deterministic from one seed, printed when a test starts and named in every
//! failure. Replay with `TORRENTPHILE_RAFT_SEED=<seed> cargo test --test raft_sim`.

#[path = "raft_sim/cluster.rs"]
mod cluster;

use std::sync::OnceLock;

use cluster::{ELECTION_MS, RELIABLE, Sim, UNRELIABLE};
use torrentphile::raft::{Config, NodeId};

/// The run's seed: `TORRENTPHILE_RAFT_SEED` if set, else from the clock. Printed once.
fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("TORRENTPHILE_RAFT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                t.map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
            });
        eprintln!("raft_sim seed: {seed} (replay: TORRENTPHILE_RAFT_SEED={seed})");
        seed
    })
}

/// A test's own seed, derived from the run's seed and a tag, so tests do not share schedules.
fn seed(tag: u64) -> u64 {
    base_seed().wrapping_add(tag.wrapping_mul(1_000_003))
}

/// Acknowledge `count` fresh commands, each within `max_ms`, or fail.
fn agree(sim: &mut Sim, prefix: &str, count: usize, max_ms: u64) {
    for k in 0..count {
        let command = format!("{prefix}-{k}");
        if sim.submit(&command, max_ms).is_none() {
            sim.fail(&format!(
                "{command} was not acknowledged within {max_ms} ms"
            ));
        }
    }
}

/// The term of the newest leader, and that leader.
fn leader_and_term(sim: &mut Sim) -> (NodeId, u64) {
    let l = sim.wait_leader(10 * ELECTION_MS);
    (l, sim.node(l).term())
}

#[test]
fn initial_election_gives_one_stable_leader() {
    for tag in 0..20 {
        let mut sim = Sim::new(3, seed(tag));
        let (leader, term) = leader_and_term(&mut sim);
        // Everyone agrees, and with no failures nobody starts another election.
        sim.run(10 * ELECTION_MS);
        if sim.leaders_now() != vec![leader]
            || sim.ids().iter().any(|&id| sim.node(id).term() != term)
        {
            sim.fail("the leader or the term changed without a failure");
        }
        for id in sim.ids() {
            if sim.node(id).leader() != Some(leader) {
                sim.fail(&format!("node {id} does not know the leader {leader}"));
            }
        }
    }
}

#[test]
fn a_new_leader_is_elected_when_the_leader_fails() {
    let mut sim = Sim::new(3, seed(100));
    let (old, term) = leader_and_term(&mut sim);
    let rest: Vec<NodeId> = sim.ids().into_iter().filter(|&id| id != old).collect();
    sim.partition(&[&[old], &rest]);
    let new = sim.run_until(10 * ELECTION_MS, |s| {
        s.leaders_now()
            .iter()
            .any(|&l| l != old && s.node(l).term() > term)
    });
    if !new {
        sim.fail("no new leader after the old one was cut off");
    }
    // The old leader comes back: it learns the new term and follows, one leader again.
    sim.heal();
    sim.run(5 * ELECTION_MS);
    if sim.leaders_now().len() != 1 || sim.leaders_now()[0] == old {
        sim.fail(&format!("leaders after rejoin: {:?}", sim.leaders_now()));
    }
    // Two of three cut off: nobody may lead (the lone leader steps down: check-quorum).
    let l = sim.leaders_now()[0];
    let other = sim
        .ids()
        .into_iter()
        .find(|&id| id != l && id != old)
        .unwrap_or(old);
    sim.partition(&[&[l], &[other], &[old]]);
    sim.run(5 * ELECTION_MS);
    if !sim.leaders_now().is_empty() {
        sim.fail("a leader without a majority");
    }
    sim.partition(&[&[l, other], &[old]]);
    sim.wait_leader(10 * ELECTION_MS);
    agree(&mut sim, "after", 3, 10 * ELECTION_MS);
    sim.check_converged(20 * ELECTION_MS);
}

#[test]
fn no_leader_without_a_majority_and_prevote_keeps_terms_still() {
    let mut sim = Sim::new(5, seed(200));
    let (_, term) = leader_and_term(&mut sim);
    sim.partition(&[&[1, 2], &[3], &[4], &[5]]);
    sim.run(20 * ELECTION_MS);
    if !sim.leaders_now().is_empty() {
        sim.fail(&format!(
            "leaders without a majority: {:?}",
            sim.leaders_now()
        ));
    }
    // PreVote: nobody could win, so nobody bumped their term.
    for id in sim.ids() {
        if sim.node(id).term() != term {
            sim.fail(&format!("node {id} moved to term {}", sim.node(id).term()));
        }
    }
    sim.heal();
    sim.wait_leader(10 * ELECTION_MS);
}

#[test]
fn agreement_with_a_follower_down_and_catch_up() {
    let mut sim = Sim::new(3, seed(300));
    agree(&mut sim, "before", 3, 10 * ELECTION_MS);
    let leader = sim.wait_leader(ELECTION_MS);
    let follower = sim.ids().into_iter().find(|&id| id != leader).unwrap_or(1);
    sim.crash(follower);
    agree(&mut sim, "during", 20, 10 * ELECTION_MS);
    sim.restart(follower);
    agree(&mut sim, "after", 2, 10 * ELECTION_MS);
    sim.run_until(10 * ELECTION_MS, |s| s.applied(follower).len() >= 26);
    if sim.applied(follower).len() < 26 {
        sim.fail("the restarted follower did not catch up");
    }
    sim.check_converged(20 * ELECTION_MS);
}

#[test]
fn a_partitioned_leader_cannot_commit_and_its_entries_are_replaced() {
    for tag in 0..5 {
        let mut sim = Sim::new(5, seed(400 + tag));
        agree(&mut sim, "start", 2, 10 * ELECTION_MS);
        let (old, old_term) = leader_and_term(&mut sim);
        let buddy = if old == 1 { 2 } else { 1 };
        let majority: Vec<NodeId> = sim
            .ids()
            .into_iter()
            .filter(|&id| id != old && id != buddy)
            .collect();
        sim.partition(&[&[old, buddy], &majority]);
        let acks_before = sim.acks.len();
        for k in 0..5 {
            sim.propose(old, &format!("lost-{k}"));
        }
        // Within two election timeouts the old leader stops leading (check-quorum) ...
        sim.run(2 * ELECTION_MS + 10);
        if sim.node(old).is_leader() {
            sim.fail("the cut-off leader still leads after two election timeouts");
        }
        if sim.acks[acks_before..].iter().any(|&(_, n)| n == old) {
            sim.fail("the cut-off leader acknowledged a write");
        }
        // ... and the majority elects a newer one and makes progress.
        let found = sim.run_until(10 * ELECTION_MS, |s| {
            s.leaders_now()
                .first()
                .is_some_and(|&l| majority.contains(&l) && s.node(l).term() > old_term)
        });
        if !found {
            sim.fail("the majority side elected no leader");
        }
        agree(&mut sim, "majority", 3, 10 * ELECTION_MS);
        sim.check_converged(20 * ELECTION_MS);
        for id in sim.ids() {
            let log = &sim.disk(id).log;
            if log.iter().any(|e| e.command.starts_with("lost-")) {
                sim.fail(&format!("node {id} kept an entry of the cut-off leader"));
            }
        }
    }
}

#[test]
fn agreement_on_an_unreliable_network() {
    let mut sim = Sim::new(5, seed(500));
    sim.faults = UNRELIABLE;
    agree(&mut sim, "u", 30, 40 * ELECTION_MS);
    sim.check_converged(40 * ELECTION_MS);
}

#[test]
fn three_survive_one_failure_and_five_survive_two() {
    for (n, f) in [(3, 1), (5, 2)] {
        let mut sim = Sim::new(n, seed(600 + n as u64));
        agree(&mut sim, "all-up", 2, 10 * ELECTION_MS);
        let leader = sim.wait_leader(ELECTION_MS);
        // Kill the leader and f-1 more: f of n down.
        let mut down = vec![leader];
        down.extend(sim.ids().into_iter().filter(|&id| id != leader).take(f - 1));
        for &id in &down {
            sim.crash(id);
        }
        agree(&mut sim, "degraded", 5, 20 * ELECTION_MS);
        // One more failure is one too many: nothing is acknowledged.
        let extra = sim
            .ids()
            .into_iter()
            .find(|id| !down.contains(id))
            .unwrap_or(1);
        sim.crash(extra);
        if sim.submit("too-few", 20 * ELECTION_MS).is_some() {
            sim.fail(&format!(
                "{n} nodes acknowledged a write with {} down",
                f + 1
            ));
        }
        sim.check_converged(20 * ELECTION_MS);
    }
}

/// Mini-Torrent's two synchronised trackers, as Raft: two nodes need both for a majority, so
/// one failure stops all progress (nothing acknowledged), and nothing acknowledged is lost.
#[test]
fn two_nodes_cannot_survive_one_failure_but_lose_nothing() {
    let mut sim = Sim::new(2, seed(700));
    agree(&mut sim, "pair", 5, 10 * ELECTION_MS);
    let leader = sim.wait_leader(ELECTION_MS);
    let other = 3 - leader;
    for victim in [other, leader] {
        sim.crash(victim);
        let acks = sim.acks.len();
        if sim.submit("alone", 20 * ELECTION_MS).is_some() || sim.acks.len() != acks {
            sim.fail("a lone node of two acknowledged a write");
        }
        if !sim.leaders_now().is_empty() {
            sim.fail("a lone node of two still leads");
        }
        sim.restart(victim);
        agree(&mut sim, &format!("back-{victim}"), 2, 20 * ELECTION_MS);
    }
    sim.check_converged(20 * ELECTION_MS);
}

#[test]
fn everyone_crashes_and_restarts_from_disk() {
    let mut sim = Sim::new(3, seed(800));
    agree(&mut sim, "durable", 10, 10 * ELECTION_MS);
    for id in sim.ids() {
        sim.crash(id);
    }
    for id in sim.ids() {
        sim.restart(id);
    }
    sim.check_converged(20 * ELECTION_MS);
}
