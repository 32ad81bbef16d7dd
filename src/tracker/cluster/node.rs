//! The driver thread: the one owner of a member's Raft [`Node`], its disk and its transport.
//!
//! It turns time into ticks, incoming messages into `step`, proposals into `propose`, and
//! handles every [`crate::raft::Ready`] in the order the Raft module's docs require: persist
//! (fsync), then send, then apply committed entries in order to the tracker's callback, then
//! answer the proposals those entries settle. It never holds a lock across I/O: the shared
//! status is updated after each round, under a short lock.

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

pub(super) struct Driver {
    pub(super) node: Node,
    pub(super) storage: Storage,
    pub(super) transport: Transport,
    pub(super) shared: Arc<Shared>,
    pub(super) apply: Apply,
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

    /// Persist, then send, then apply, then settle proposals; then publish the status.
    fn process(&mut self) -> std::io::Result<()> {
        let ready = self.node.ready();
        if !ready.is_empty() {
            if ready.persist != raft::Persist::default() {
                self.storage.save(&ready.persist)?;
            }
            for (to, msg) in ready.send {
                self.transport.send(to, msg);
            }
            for entry in &ready.committed {
                if !entry.command.is_empty() {
                    (self.apply)(&entry.command);
                }
                self.pending.retain(|(p, done)| {
                    if p.index != entry.index {
                        return true;
                    }
                    let result = if p.term == entry.term {
                        Ok(())
                    } else {
                        Err(ProposeError::Lost)
                    };
                    let _ = done.send(result);
                    false
                });
            }
        }
        self.publish();
        Ok(())
    }

    fn publish(&self) {
        let node = &self.node;
        self.shared.update(|s| {
            s.role = node.role();
            s.term = node.term();
            s.leader = node.leader();
            s.commit = node.commit_index();
            s.last_index = node.last_index();
        });
    }
}
