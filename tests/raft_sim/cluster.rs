//! A deterministic, simulated cluster for the Raft tests: nodes, their disks, a network that
//! drops, delays, duplicates and reorders, partitions, crashes and restarts, and the checker.
//!
//! Time is simulated milliseconds; each node ticks every `TICK_MS` (at its own phase). Every
//! message travels as its text line and is parsed on arrival, so the wire format is exercised
//! by all the traffic. A node's disk holds exactly what its `Ready`s said to persist, applied
//! before the messages of that `Ready` leave: a crash loses the rest. Everything random comes
//! from one seed, so a failure replays exactly.
//!
//! The checker (linearizability-lite), run on every applied entry and at the end:
//! - no two nodes ever apply different entries at one index (across restarts too);
//! - never two leaders in one term;
//! - a command is acknowledged when its proposer applies it at the proposed index and term;
//!   after healing, every acknowledged command sits at its index on every node;
//! - with compaction on (`snapshot_every`), a node's state machine (the list of commands it
//!   applied) is snapshotted and the log cut; a restored snapshot must agree with every command
//!   chosen at its indexes, and a restarted node starts from its snapshot on disk.

use std::collections::BTreeMap;
use std::sync::OnceLock;

#[path = "schedule.rs"]
mod schedule;
#[path = "snapshots.rs"]
mod snapshots;

use torrentphile::raft::{Config, Message, Node, NodeId, Persisted, Proposal, parse};
use torrentphile::util::Rng;

/// The run's seed: `TORRENTPHILE_RAFT_SEED` if set, else from the clock. Printed once.
pub fn base_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = std::env::var("TORRENTPHILE_RAFT_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                t.map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
            });
        eprintln!("raft seed: {seed} (replay: TORRENTPHILE_RAFT_SEED={seed})");
        seed
    })
}

/// A simulation's own seed, derived from the run's seed and a tag, so that tests do not share
/// schedules; a failure names the run's seed, which replays every tag.
pub fn seed(tag: u64) -> u64 {
    base_seed().wrapping_add(tag.wrapping_mul(1_000_003))
}

pub const TICK_MS: u64 = 10;
/// The default election timeout in simulated ms (10 ticks; a random one is 10 to 20).
pub const ELECTION_MS: u64 = 10 * TICK_MS;

/// What the network does to each message, in parts per thousand.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop: usize,
    pub duplicate: usize,
    /// Held back up to 6 ticks: it arrives after later messages (reordering).
    pub long_delay: usize,
}

pub const RELIABLE: Faults = Faults {
    drop: 0,
    duplicate: 0,
    long_delay: 0,
};
pub const UNRELIABLE: Faults = Faults {
    drop: 100,
    duplicate: 50,
    long_delay: 100,
};

struct Flight {
    at: u64,
    from: NodeId,
    to: NodeId,
    text: String,
}

pub struct Sim {
    pub seed: u64,
    rng: Rng,
    config: Config,
    ids: Vec<NodeId>,
    nodes: Vec<Option<Node>>,
    disks: Vec<Persisted>,
    applied: Vec<Vec<String>>,
    flights: Vec<Flight>,
    pub now: u64,
    group: Vec<usize>,
    pub faults: Faults,
    /// Index -> (term, command) as first applied anywhere.
    chosen: BTreeMap<u64, (u64, String)>,
    /// Term -> the one node that led it.
    pub leaders: BTreeMap<u64, NodeId>,
    pending: Vec<(NodeId, Proposal, String)>,
    /// Index -> command, for every acknowledged proposal.
    pub acked: BTreeMap<u64, String>,
    /// (time, node) of every acknowledgement.
    pub acks: Vec<(u64, NodeId)>,
    boots: u64,
    pub delivered: u64,
    /// Compact a node's log once it applied this many entries past its snapshot (0: never).
    pub snapshot_every: u64,
    /// Snapshots taken by nodes themselves, and installed from a leader.
    pub compactions: u64,
    pub installs: u64,
}

impl Sim {
    pub fn new(n: usize, seed: u64) -> Sim {
        Sim::with_config(n, seed, Config::default())
    }

    pub fn with_config(n: usize, seed: u64, config: Config) -> Sim {
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let mut sim = Sim {
            seed,
            rng: Rng::new(seed),
            config,
            nodes: Vec::new(),
            disks: vec![Persisted::default(); n],
            applied: vec![Vec::new(); n],
            flights: Vec::new(),
            now: 0,
            group: vec![0; n],
            faults: RELIABLE,
            chosen: BTreeMap::new(),
            leaders: BTreeMap::new(),
            pending: Vec::new(),
            acked: BTreeMap::new(),
            acks: Vec::new(),
            boots: 0,
            delivered: 0,
            snapshot_every: 0,
            compactions: 0,
            installs: 0,
            ids,
        };
        sim.nodes = (0..n).map(|_| None).collect();
        for id in sim.ids.clone() {
            sim.restart(id);
        }
        sim
    }

    /// Stop the test with the seed to replay it.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "sim seed {}: at {} ms: {what} (replay: TORRENTPHILE_RAFT_SEED={})",
            self.seed,
            self.now,
            base_seed()
        )
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.ids.clone()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        match &self.nodes[id as usize - 1] {
            Some(node) => node,
            None => self.fail(&format!("node {id} is down")),
        }
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.nodes[id as usize - 1].is_some()
    }

    /// What node `id` has applied since it last started.
    pub fn applied(&self, id: NodeId) -> &[String] {
        &self.applied[id as usize - 1]
    }

    /// What node `id` has on disk.
    pub fn disk(&self, id: NodeId) -> &Persisted {
        &self.disks[id as usize - 1]
    }

    /// Live nodes that believe they lead, highest term first.
    pub fn leaders_now(&self) -> Vec<NodeId> {
        let mut v: Vec<&Node> = self
            .nodes
            .iter()
            .flatten()
            .filter(|n| n.is_leader())
            .collect();
        v.sort_by_key(|n| std::cmp::Reverse(n.term()));
        v.iter().map(|n| n.id()).collect()
    }

    // -- faults ---------------------------------------------------------------------------

    /// Kill a node: its memory and unsent messages are gone, its disk stays.
    pub fn crash(&mut self, id: NodeId) {
        let i = id as usize - 1;
        self.nodes[i] = None;
        self.applied[i].clear();
        // Its clients are gone with it: nothing it proposed can be acknowledged any more.
        self.pending.retain(|(n, _, _)| *n != id);
    }

    /// Start a node (again) from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let i = id as usize - 1;
        if self.nodes[i].is_some() {
            return;
        }
        self.boots += 1;
        let seed = self.seed ^ self.boots.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let node = Node::with_config(
            self.config.clone(),
            id,
            &self.ids,
            self.disks[i].clone(),
            seed,
        );
        self.nodes[i] = Some(node);
        self.applied[i].clear();
        if let Some(snapshot) = self.disks[i].snapshot.clone() {
            self.restore(id, &snapshot);
        }
    }

    /// Split the network: nodes talk only within their group (nodes not listed: alone).
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        for (i, g) in self.group.iter_mut().enumerate() {
            *g = 1000 + i;
        }
        for (k, members) in groups.iter().enumerate() {
            for &id in members.iter() {
                self.group[id as usize - 1] = k;
            }
        }
    }

    pub fn heal(&mut self) {
        self.group.iter_mut().for_each(|g| *g = 0);
    }

    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        self.group[a as usize - 1] == self.group[b as usize - 1]
    }

    // -- time and traffic ------------------------------------------------------------------

    /// Let `ms` simulated milliseconds pass.
    pub fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now += 1;
            let mut due = Vec::new();
            let mut k = 0;
            while k < self.flights.len() {
                if self.flights[k].at <= self.now {
                    due.push(self.flights.swap_remove(k));
                } else {
                    k += 1;
                }
            }
            self.rng.shuffle(&mut due);
            for f in due {
                self.deliver(f);
            }
            for id in self.ids.clone() {
                let i = id as usize - 1;
                if (self.now + 3 * i as u64).is_multiple_of(TICK_MS)
                    && let Some(node) = self.nodes[i].as_mut()
                {
                    node.tick();
                    self.process(id);
                }
            }
        }
    }

    /// Run until `done` holds (checked every ms) or `max_ms` pass; true if it held.
    pub fn run_until(&mut self, max_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..max_ms {
            if done(self) {
                return true;
            }
            self.run(1);
        }
        done(self)
    }

    /// Deliver the message due first (ignoring its time); false when none is in flight. With
    /// no ticks, a test decides exactly who campaigns and when (the Figure 8 walk-through).
    pub fn deliver_next(&mut self) -> bool {
        let Some(k) = (0..self.flights.len()).min_by_key(|&k| self.flights[k].at) else {
            return false;
        };
        let f = self.flights.remove(k);
        self.deliver(f);
        true
    }

    /// Deliver messages one by one until `done` holds; false if the network ran dry first.
    pub fn deliver_until(&mut self, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..100_000 {
            if done(self) {
                return true;
            }
            if !self.deliver_next() {
                return false;
            }
        }
        self.fail("the network never went quiet")
    }

    /// Make node `id` start an election now.
    pub fn campaign(&mut self, id: NodeId) {
        if let Some(node) = self.nodes[id as usize - 1].as_mut() {
            node.campaign();
            self.process(id);
        }
    }

    fn deliver(&mut self, f: Flight) {
        if !self.linked(f.from, f.to) {
            return;
        }
        let msg = match parse(&f.text) {
            Ok(msg) => msg,
            Err(e) => self.fail(&format!("{:?} does not parse: {e}", f.text)),
        };
        let Some(node) = self.nodes[f.to as usize - 1].as_mut() else {
            return;
        };
        self.delivered += 1;
        node.step(msg);
        self.process(f.to);
    }

    fn enqueue(&mut self, from: NodeId, to: NodeId, msg: Message) {
        if !self.linked(from, to) || self.rng.below(1000) < self.faults.drop {
            return;
        }
        if self.flights.len() > 100_000 {
            self.fail("a message storm: more than 100000 messages in flight");
        }
        let copies = if self.rng.below(1000) < self.faults.duplicate {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = 1 + self.rng.below(3) as u64;
            if self.rng.below(1000) < self.faults.long_delay {
                delay += self.rng.below(6 * TICK_MS as usize) as u64;
            }
            let text = msg.to_string();
            self.flights.push(Flight {
                at: self.now + delay,
                from,
                to,
                text,
            });
        }
    }

    /// Handle a node's `Ready` the way a real caller must: persist, then send, then apply.
    fn process(&mut self, id: NodeId) {
        let i = id as usize - 1;
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let ready = node.ready();
        let (term, leads) = (node.term(), node.is_leader());
        if leads && *self.leaders.entry(term).or_insert(id) != id {
            self.fail(&format!(
                "two leaders in term {term}: {} and {id}",
                self.leaders[&term]
            ));
        }
        self.disks[i].apply(&ready.persist);
        for (to, msg) in ready.send {
            self.enqueue(id, to, msg);
        }
        if let Some(snapshot) = &ready.restore {
            self.installs += 1;
            self.restore(id, snapshot);
        }
        for e in ready.committed {
            if e.index != self.applied[i].len() as u64 + 1 {
                self.fail(&format!("node {id} applied index {} out of order", e.index));
            }
            let first = self
                .chosen
                .entry(e.index)
                .or_insert((e.term, e.command.clone()))
                .clone();
            if first != (e.term, e.command.clone()) {
                self.fail(&format!(
                    "node {id} applied {:?} (term {}) at index {}, another node applied {:?} (term {})",
                    e.command, e.term, e.index, first.1, first.0
                ));
            }
            self.applied[i].push(e.command.clone());
            if let Some(k) = self
                .pending
                .iter()
                .position(|(n, p, _)| *n == id && p.index == e.index)
            {
                let (_, proposal, command) = self.pending.swap_remove(k);
                if proposal.term == e.term {
                    if command != e.command {
                        self.fail(&format!(
                            "index {} term {} holds another command",
                            e.index, e.term
                        ));
                    }
                    self.acked.insert(e.index, command);
                    self.acks.push((self.now, id));
                }
            }
        }
        self.compact_if_due(id);
    }

    // -- clients ----------------------------------------------------------------------------

    /// Propose at node `id` (if it leads); the command is acknowledged when it commits there.
    pub fn propose(&mut self, id: NodeId, command: &str) -> Option<Proposal> {
        let node = self.nodes[id as usize - 1].as_mut()?;
        let proposal = node.propose(command.to_string()).ok()?;
        self.pending.push((id, proposal, command.to_string()));
        self.process(id);
        Some(proposal)
    }

    /// Like the 6.5840 lab's `one()`: offer the command to a leader, wait for its
    /// acknowledgement, try again elsewhere if it does not come; the index once acknowledged.
    pub fn submit(&mut self, command: &str, max_ms: u64) -> Option<u64> {
        let deadline = self.now + max_ms;
        while self.now < deadline {
            let Some(&leader) = self.leaders_now().first() else {
                self.run(5);
                continue;
            };
            let Some(p) = self.propose(leader, command) else {
                self.run(5);
                continue;
            };
            let acked = |s: &Sim| s.acked.get(&p.index).is_some_and(|c| c == command);
            if self.run_until(2 * ELECTION_MS, acked) {
                return Some(p.index);
            }
        }
        None
    }

    /// Wait for a leader that a majority follows (one whose term nobody live has passed).
    pub fn wait_leader(&mut self, max_ms: u64) -> NodeId {
        let ok = self.run_until(max_ms, |s| {
            s.leaders_now().first().is_some_and(|&l| {
                let term = s.node(l).term();
                s.nodes.iter().flatten().all(|n| n.term() <= term)
            })
        });
        match (ok, self.leaders_now().first()) {
            (true, Some(&l)) => l,
            _ => self.fail(&format!("no leader within {max_ms} ms")),
        }
    }

    /// Heal the network, restart everyone, make it reliable, and wait until every node has
    /// applied everything acknowledged; then hold every acknowledgement against every node.
    pub fn check_converged(&mut self, max_ms: u64) {
        self.heal();
        self.faults = RELIABLE;
        for id in self.ids() {
            self.restart(id);
        }
        // A fresh command committed in the newest term commits everything before it.
        let marker = format!("final-{}", self.seed);
        if self.submit(&marker, max_ms).is_none() {
            self.fail("the healed cluster did not acknowledge a command");
        }
        let target = *self.acked.keys().last().unwrap_or(&0) as usize;
        let caught_up = |s: &Sim| s.ids.iter().all(|&id| s.applied(id).len() >= target);
        if !self.run_until(max_ms, caught_up) {
            let lens: Vec<usize> = self.applied.iter().map(|a| a.len()).collect();
            self.fail(&format!(
                "nodes did not catch up to {target}: applied {lens:?}"
            ));
        }
        for (&index, command) in &self.acked {
            for id in self.ids() {
                let got = self.applied(id).get(index as usize - 1);
                if got != Some(command) {
                    self.fail(&format!(
                        "acknowledged {command:?} at {index}, node {id} applied {got:?} there"
                    ));
                }
            }
        }
    }
}
