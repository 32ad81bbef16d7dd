//! Raft log compaction (§7) on the simulated network: nodes compact their logs every few
//! entries, a follower that was down or cut off for long comes back behind the leader's
//! snapshot and must catch up through `SNAPSHOT` (sent in small chunks, over a lossy network),
//! and the checker holds every acknowledged write against every node, as in `raft_sim.rs`.
//!
//! Deterministic from one seed; replay with `TORRENTPHILE_RAFT_SEED=<seed> cargo test --test
//! raft_sim_snapshot`.

#[path = "raft_sim/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use cluster::{ELECTION_MS, Sim, UNRELIABLE, seed};
use torrentphile::raft::{Config, NodeId};

/// Small chunks, so that one snapshot takes several `SNAPSHOT` messages.
fn config(chunk: usize) -> Config {
    Config {
        snapshot_chunk: chunk,
        ..Config::default()
    }
}

#[test]
fn a_follower_down_for_long_catches_up_from_a_snapshot() {
    for tag in 0..40 {
        let n = if tag % 3 == 0 { 5 } else { 3 };
        let mut sim = Sim::with_config(n, seed(tag), config(8 + tag as usize % 24));
        sim.snapshot_every = 4 + tag % 5;
        if tag % 2 == 1 {
            sim.faults = UNRELIABLE;
        }
        let leader = sim.wait_leader(10 * ELECTION_MS);
        let behind: NodeId = if leader == 1 { 2 } else { 1 };
        let crashed = tag % 4 < 2;
        if crashed {
            sim.crash(behind);
        } else {
            let rest: Vec<NodeId> = sim.ids().into_iter().filter(|&id| id != behind).collect();
            sim.partition(&[&[behind], &rest]);
        }
        for k in 0..30 {
            let command = format!("s{tag}-{k}");
            if sim.submit(&command, 40 * ELECTION_MS).is_none() {
                sim.fail(&format!("{command} was not acknowledged"));
            }
        }
        // Everyone up has compacted past what the one behind holds.
        let held = {
            let disk = sim.disk(behind);
            disk.snapshot.as_ref().map_or(0, |s| s.index) + disk.log.len() as u64
        };
        for id in sim.ids().into_iter().filter(|&id| id != behind) {
            if sim.node(id).snapshot_index() <= held {
                sim.fail(&format!(
                    "node {id} has not compacted past {held} (snapshot at {})",
                    sim.node(id).snapshot_index()
                ));
            }
        }
        let installs = sim.installs;
        sim.check_converged(60 * ELECTION_MS);
        if sim.installs == installs {
            sim.fail(&format!("node {behind} caught up without a snapshot"));
        }
        let now = sim.wait_leader(10 * ELECTION_MS);
        let want = sim.applied(now).to_vec();
        if sim.applied(behind) != &want[..] {
            sim.fail(&format!("node {behind} differs from the leader"));
        }
    }
}

/// `raft_sim.rs`'s random schedules (partitions, crashes, restarts, a lossy network) with
/// compaction every few entries and small chunks: safety holds and nothing acknowledged is lost.
#[test]
fn random_schedules_with_compaction_never_lose_an_acknowledged_write() {
    let (mut acked, mut compactions, mut installs) = (0, 0, 0);
    for tag in 0..150 {
        let mut sim = Sim::with_config(
            if tag % 2 == 0 { 3 } else { 5 },
            seed(5000 + tag),
            config(4 + tag as usize % 40),
        );
        sim.snapshot_every = 2 + tag % 7;
        sim.random_schedule(40, &format!("c{tag}"));
        sim.check_converged(60 * ELECTION_MS);
        acked += sim.acked.len();
        compactions += sim.compactions;
        installs += sim.installs;
    }
    eprintln!("150 schedules: {acked} acks, {compactions} compactions, {installs} installs");
    assert!(
        acked > 1500 && compactions > 500 && installs > 20,
        "too little happened: {acked} acks, {compactions} compactions, {installs} installs"
    );
}
