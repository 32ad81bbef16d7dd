//! Raft on a simulated network, tested the way the MIT 6.5840 Raft lab tests it: elections,
//! re-elections, agreement with nodes down, partitioned leaders, an unreliable network,
//! Figure 8, crashes and restarts from what was persisted, and hundreds of random schedules.
//!
//! Everything is deterministic from one seed, printed when a test starts and named in every
//! failure. Replay with `TORRENTPHILE_RAFT_SEED=<seed> cargo test --test raft_sim`.

#[path = "raft_sim/cluster.rs"]
mod cluster;

use cluster::{ELECTION_MS, Sim, UNRELIABLE, seed};
use torrentphile::raft::{Config, NodeId};

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
    leader_and_term(&mut sim);
    let term = sim
        .ids()
        .iter()
        .map(|&id| sim.node(id).term())
        .max()
        .unwrap_or(0);
    sim.partition(&[&[1, 2], &[3], &[4], &[5]]);
    sim.run(20 * ELECTION_MS);
    if !sim.leaders_now().is_empty() {
        sim.fail(&format!(
            "leaders without a majority: {:?}",
            sim.leaders_now()
        ));
    }
    // PreVote: nobody could win, so nobody started an election: no term passed the
    // highest one at the cut.
    // (A node the leader had not reached yet may still be in an older term, or catch up to it
    // inside its side of the partition.)
    for id in sim.ids() {
        if sim.node(id).term() > term {
            sim.fail(&format!(
                "node {id} moved past term {term}, the highest at the cut, to {}",
                sim.node(id).term()
            ));
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

/// Figure 8 of the paper, step by step, with no ticks: the test decides who campaigns. An entry
/// of an old term stored on a majority must not be committed by counting replicas, because a
/// later leader may still overwrite it.
#[test]
fn figure_8_an_old_term_entry_on_a_majority_is_not_committed() {
    // No lease (nothing ticks here, so every follower would still "hear" its old leader), and
    // one entry per APPEND, so the old entry can arrive without the new one.
    let config = Config {
        check_quorum: false,
        max_batch: 1,
        ..Config::default()
    };
    let mut sim = Sim::with_config(5, seed(900), config);
    let quiet = |s: &mut Sim| while s.deliver_next() {};
    // (a) S1 leads term 1 and replicates "A" (index 2) to S2 only.
    sim.campaign(1);
    quiet(&mut sim);
    sim.partition(&[&[1, 2], &[3, 4, 5]]);
    if sim.propose(1, "A").map(|p| (p.index, p.term)) != Some((2, 1)) {
        sim.fail("S1 should lead term 1 and put A at index 2");
    }
    quiet(&mut sim);
    // (b) S1 crashes; S5 wins term 2 with S3 and S4, writes index 2 and 3, and crashes.
    sim.crash(1);
    sim.campaign(5);
    sim.deliver_until(|s| s.node(5).is_leader());
    sim.partition(&[&[2], &[3, 4], &[5]]);
    sim.propose(5, "B");
    quiet(&mut sim);
    sim.crash(5);
    // (c) S1 restarts and wins term 3 with S2, S3 (S4 cut off), and sends "A" to S3.
    sim.restart(1);
    sim.partition(&[&[1, 2, 3], &[4], &[5]]);
    sim.campaign(1);
    quiet(&mut sim); // S3 and S4 are in term 2, so S1 first learns term 2 from their refusals
    sim.campaign(1);
    sim.deliver_until(|s| s.disk(3).log.len() >= 2);
    sim.crash(3); // its "I have index 2" reply is already on its way to S1
    quiet(&mut sim);
    let old = |s: &Sim, id: NodeId| s.disk(id).log.get(1).map(|e| (e.term, e.command.clone()));
    for id in [1, 2, 3] {
        if old(&sim, id) != Some((1, "A".to_string())) {
            sim.fail(&format!("S{id} should store A (term 1) at index 2"));
        }
    }
    if sim.node(1).term() != 3 || !sim.node(1).is_leader() {
        sim.fail("S1 should lead term 3");
    }
    if sim.node(1).commit_index() >= 2 {
        sim.fail("S1 committed index 2 of term 1 by counting replicas (Figure 8)");
    }
    // (d) S1 crashes; S5 comes back, wins term 4 (S3, S4 vote) and overwrites index 2.
    sim.crash(1);
    sim.restart(3);
    sim.restart(5);
    sim.partition(&[&[2, 3, 4, 5], &[1]]);
    for _ in 0..3 {
        sim.campaign(5);
        quiet(&mut sim);
    }
    if !sim.node(5).is_leader() {
        sim.fail("S5 should win term 4 with S3 and S4");
    }
    for id in [3, 4, 5] {
        if old(&sim, id).map(|(term, _)| term) != Some(2) {
            sim.fail(&format!("S{id} should hold S5's term-2 entry at index 2"));
        }
    }
    // Healed and ticking: everyone converges on S5's history; "A" was never acknowledged.
    sim.check_converged(20 * ELECTION_MS);
    if sim.applied(1).get(1).is_some_and(|c| c == "A") {
        sim.fail("A survived");
    }
}

/// The lab's Figure 8 (unreliable) test: leaders crash and restart at random while commands
/// stream in over a lossy, reordering network; at the end everything acknowledged is there.
#[test]
fn figure_8_random_leader_crashes_on_an_unreliable_network() {
    for tag in 0..10 {
        let mut sim = Sim::new(5, seed(1000 + tag));
        let mut rng = torrentphile::util::Rng::new(sim.seed);
        sim.faults = UNRELIABLE;
        let mut k = 0;
        for _ in 0..60 {
            for leader in sim.leaders_now() {
                sim.propose(leader, &format!("f8-{k}"));
                k += 1;
            }
            sim.run(if rng.below(10) < 3 {
                rng.below(ELECTION_MS as usize) as u64
            } else {
                5
            });
            if let Some(&leader) = sim.leaders_now().first()
                && rng.below(2) == 0
            {
                sim.crash(leader);
            }
            let down: Vec<NodeId> = sim.ids().into_iter().filter(|&id| !sim.is_up(id)).collect();
            if down.len() > 2 || (!down.is_empty() && rng.below(3) == 0) {
                sim.restart(down[rng.below(down.len())]);
            }
        }
        sim.check_converged(40 * ELECTION_MS);
    }
}

/// Hundreds of random schedules: 3 or 5 nodes, a reliable or lossy network, random partitions,
/// crashes and restarts, commands offered to whoever leads. Safety must hold in every one;
/// after healing, every acknowledged command must be on every node.
#[test]
fn random_schedules_never_lose_an_acknowledged_write() {
    let (mut acked, mut elections) = (0, 0);
    for tag in 0..200 {
        // Half the schedules run plain Figure 2 (no PreVote, no check-quorum), so that the
        // RequestVote rules alone must keep them safe.
        let plain = tag % 4 >= 2;
        let config = Config {
            pre_vote: !plain,
            check_quorum: !plain,
            ..Config::default()
        };
        let mut sim = Sim::with_config(if tag % 2 == 0 { 3 } else { 5 }, seed(2000 + tag), config);
        sim.random_schedule(30, &format!("r{tag}"));
        sim.check_converged(40 * ELECTION_MS);
        acked += sim.acked.len();
        elections += sim.leaders.len();
    }
    eprintln!("200 schedules: {acked} acknowledged writes, {elections} terms with a leader");
    assert!(
        acked > 2000 && elections > 300,
        "too little happened: {acked} acks, {elections} leaders"
    );
}
