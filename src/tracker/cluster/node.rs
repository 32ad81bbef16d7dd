//! The driver thread: the one owner of a member's Raft [`Node`], its disk and its transport.
//!
//! It turns time into ticks, incoming messages into `step`, proposals into `propose`, and
//! handles every [`crate::raft::Ready`] in the order the Raft module's docs require: persist
//! (fsync), then send, then apply committed entries in order to the tracker's callback, then
//! answer the proposals those entries settle; a snapshot from the leader is restored before
//! those entries, and once `snapshot_every` entries were applied since the last snapshot the
//! driver asks the state machine for one and compacts the log (§7). It never holds a lock
//! across I/O: the shared status is updated after each round, under a short lock.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::storage::Storage;
use super::transport::Transport;
use super::{ProposeError, Shared};
use crate::raft::{self, MAX_COMMAND, Message, Node, Proposal, Role, escape};

/// What the driver is told, through its one channel.
pub(crate) enum Input {
    Message(Message),
    Propose {
        commands: Vec<String>,
        done: Sender<Result<(), ProposeError>>,
    },
    Stop,
}

/// Most inputs handled before one `Ready` is written (batching fsyncs under load).
const BATCH: usize = 64;

/// The tracker's state machine: gets each committed command, in log order.
pub type Apply = Box<dyn FnMut(&str) + Send>;

/// Replace the whole state machine by a snapshot's bytes, or say why they are not one.
pub type Restore = Box<dyn FnMut(&[u8]) -> Result<(), String> + Send>;

/// The state machine's side of log compaction (Raft §7).
pub struct Snapshots {
    /// Compact once this many entries were applied since the last snapshot (0: never).
    pub every: u64,
    /// The state machine's bytes as of the last applied entry, whose index is given.
    pub take: Box<dyn FnMut(u64) -> Vec<u8> + Send>,
    /// Replace the whole state machine by a snapshot's bytes (at start, and when the leader
    /// sends one); an error says why the bytes are not a snapshot.
    pub restore: Restore,
}

pub(super) struct Driver {
    pub(super) node: Node,
    pub(super) storage: Storage,
    pub(super) transport: Transport,
    pub(super) shared: Arc<Shared>,
    pub(super) apply: Apply,
    pub(super) snapshots: Option<Snapshots>,
    pub(super) tick: Duration,
    /// Proposals waiting for their last entry to commit.
    pub(super) pending: Vec<(Proposal, Sender<Result<(), ProposeError>>)>,
}

impl Driver {
    /// Run until told to stop (or until the disk fails: then nothing more may be sent).
    pub(super) fn run(mut self, inbox: &Receiver<Input>) {
        let mut next_tick = Instant::now() + self.tick;
        self.publish();
        'run: loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle(input) {
                        break;
                    }
                    for _ in 1..BATCH {
                        match inbox.try_recv() {
                            Ok(input) => {
                                if !self.handle(input) {
                                    break 'run;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.node.tick();
                    next_tick += self.tick;
                    // Far behind (a stalled machine): do not fire a burst of ticks.
                    let now = Instant::now();
                    if next_tick < now {
                        next_tick = now + self.tick;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if let Err(e) = self.process() {
                eprintln!(
                    "cluster member {}: cannot write its Raft state ({e}); it stops taking part",
                    self.shared.id
                );
                self.shared.update(|s| s.failed = Some(e.to_string()));
                break;
            }
        }
        self.transport.stop();
        self.shared.update(|s| {
            s.role = Role::Follower;
            s.leader = None;
            s.stopped = true;
        });
        for (_, done) in self.pending.drain(..) {
            let _ = done.send(Err(ProposeError::Stopped));
        }
    }

    /// Feed one input to the node; false means stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Message(msg) => self.node.step(msg),
            Input::Propose { commands, done } => self.propose(commands, done),
            Input::Stop => return false,
        }
        true
    }

    fn propose(&mut self, commands: Vec<String>, done: Sender<Result<(), ProposeError>>) {
        if !self.node.is_leader() {
            let leader = self
                .node
                .leader()
                .and_then(|id| self.shared.client_addr_of(id));
            let _ = done.send(Err(ProposeError::NotLeader { leader }));
            return;
        }
        // Check every command first, so that a batch goes in whole or not at all.
        if let Some(len) = commands
            .iter()
            .map(|c| escape(c).len())
            .find(|&len| len > MAX_COMMAND)
        {
            let _ = done.send(Err(ProposeError::TooLong { len }));
            return;
        }
        let mut last = None;
        for command in commands {
            match self.node.propose(command) {
                Ok(p) => last = Some(p),
                Err(raft::ProposeError::TooLong { len }) => {
                    let _ = done.send(Err(ProposeError::TooLong { len }));
                    return;
                }
                Err(raft::ProposeError::NotLeader { .. }) => {
                    let _ = done.send(Err(ProposeError::NotLeader { leader: None }));
                    return;
                }
            }
        }
        match last {
            // Log matching: when the last entry commits with our term, so did the earlier ones.
            Some(p) => self.pending.push((p, done)),
            None => {
                let _ = done.send(Ok(()));
            }
        }
    }

    /// Persist, then send, then restore and apply, then settle proposals; then compact if
    /// due (persisted in the round that follows at once); then publish the status.
    fn process(&mut self) -> std::io::Result<()> {
        loop {
            let ready = self.node.ready();
            if ready.is_empty() {
                break;
            }
            if ready.persist != raft::Persist::default() {
                self.storage.save(&ready.persist)?;
            }
            for (to, msg) in ready.send {
                self.transport.send(to, msg);
            }
            if let Some(snapshot) = &ready.restore {
                self.restore(snapshot)?;
            }
            for entry in &ready.committed {
                if !entry.command.is_empty() {
                    (self.apply)(&entry.command);
                }
                self.settle(|p| {
                    (p.index == entry.index).then_some(if p.term == entry.term {
                        Ok(())
                    } else {
                        Err(ProposeError::Lost)
                    })
                });
            }
            if !self.compact_if_due() {
                break;
            }
        }
        self.publish();
        Ok(())
    }

    /// Answer the pending proposals `outcome` has an answer for.
    fn settle(&mut self, outcome: impl Fn(&Proposal) -> Option<Result<(), ProposeError>>) {
        self.pending.retain(|(p, done)| match outcome(p) {
            Some(result) => {
                let _ = done.send(result);
                false
            }
            None => true,
        });
    }

    /// The leader sent a snapshot: the state machine becomes it. A proposal it covers may or
    /// may not be in it (this member lost the lead meanwhile): the caller must not assume.
    fn restore(&mut self, snapshot: &raft::Snapshot) -> std::io::Result<()> {
        let restored = match &mut self.snapshots {
            Some(s) => (s.restore)(&snapshot.data),
            None => Err("this member cannot restore snapshots".into()),
        };
        restored.map_err(|e| {
            std::io::Error::other(format!(
                "the snapshot up to entry {} does not restore: {e}",
                snapshot.index
            ))
        })?;
        self.settle(|p| (p.index <= snapshot.index).then_some(Err(ProposeError::Timeout)));
        Ok(())
    }

    /// Compact the log when enough entries were applied since the last snapshot; true if it
    /// did (there is a snapshot to persist).
    fn compact_if_due(&mut self) -> bool {
        let Some(s) = &mut self.snapshots else {
            return false;
        };
        let applied = self.node.applied_index();
        if s.every == 0 || applied < self.node.snapshot_index() + s.every {
            return false;
        }
        let data = (s.take)(applied);
        self.node.compact(applied, data).is_ok()
    }

    fn publish(&self) {
        let node = &self.node;
        // A change of role or term is a line of the trace, so a student reading it sees the
        // election's outcome, not only its messages.
        let before = self.shared.status();
        if before.role != node.role() || before.term != node.term() {
            let role = node.role().name();
            let leader = node.leader().map_or("none".to_string(), |l| l.to_string());
            let text = format!("now {role} in term {} (leader: {leader})", node.term());
            self.shared.trace.note("raft", "-", &text);
        }
        self.shared.update(|s| {
            s.role = node.role();
            s.term = node.term();
            s.leader = node.leader();
            s.commit = node.commit_index();
            s.last_index = node.last_index();
            s.snapshot = node.snapshot_index();
        });
    }
}
