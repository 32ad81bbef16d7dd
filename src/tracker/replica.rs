//! The accounts state of a cluster member: the join of `accounts.rs` and `cluster/`.
//!
//! In cluster mode the accounts records do not go to the local journal: the leader checks a
//! mutation, proposes its record through Raft as one command line `<tag> <record>`, and every
//! member applies committed commands here, in log order, on the Raft driver thread. Apply
//! checks each record again against the state it meets (two proposals checked against the same
//! state can both commit); one that no longer applies is skipped, the same way on every member,
//! since every member applies the same commands to the same state. The tag (unique per proposing
//! process) lets the proposer learn what became of its own record: applied, already so, or
//! refused.
//!
//! The state starts empty and is rebuilt at every start from the member's Raft snapshot, if
//! any ([`Replica::restore`]), then the committed log after it. A snapshot
//! ([`Replica::snapshot`]) is the lone tracker's journal snapshot format (`journal::
//! snapshot_text`): a first record `REPLICA <applied> <skipped> <chain> <order>` (so that
//! `STATE` reads the same as after replaying the whole log), then the accounts as records,
//! then `END <raft index>`.
//!
//! What it must never do: touch a socket or the disk, or call back into the cluster (apply runs
//! on the driver thread). Its locks are held for a few map operations.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::auth::accounts::{Accounts, AuthError, Effect, Record};
use crate::protocol::ProtoError;

/// How many applied records [`Replica::inspect`] lists (the newest): enough for tests and `nc`.
const ORDER_KEPT: usize = 300;

/// Replicate record lines: returns once they are committed (and applied on this member), or why
/// not, as the `ERR` to answer.
pub type Propose = Arc<dyn Fn(Vec<String>) -> Result<(), ProtoError> + Send + Sync>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each holder leaves the value consistent; a panic elsewhere must not stop the member.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What this member has applied, for `STATE` on the cluster port.
#[derive(Default)]
struct Applied {
    count: u64,
    skipped: u64,
    /// SHA-1 chained over every applied command: equal chains, equal histories.
    chain: String,
    order: std::collections::VecDeque<String>,
}

/// The replicated accounts of one cluster member.
pub struct Replica {
    state: Arc<Mutex<Accounts>>,
    /// Outcomes of this process's own proposals, by tag, until the proposer takes them.
    outcomes: Mutex<HashMap<String, Option<Result<Effect, AuthError>>>>,
    applied: Mutex<Applied>,
    boot: u64,
    next: AtomicU64,
    propose: Mutex<Option<Propose>>,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "Replica({})", self.inspect())
    }
}

impl Replica {
    /// An empty replica; `boot` makes this process's tags unique (a random number).
    pub fn new(boot: u64) -> Arc<Replica> {
        Arc::new(Replica {
            state: Arc::new(Mutex::new(Accounts::new())),
            outcomes: Mutex::default(),
            applied: Mutex::new(Applied {
                chain: "0".repeat(40),
                ..Applied::default()
            }),
            boot,
            next: AtomicU64::new(1),
            propose: Mutex::default(),
        })
    }

    /// The accounts this replica applies to (the tracker's `Auth` reads them).
    pub fn state(&self) -> Arc<Mutex<Accounts>> {
        self.state.clone()
    }

    /// Connect the proposing side (once the cluster runs).
    pub fn set_propose(&self, propose: Propose) {
        *lock(&self.propose) = Some(propose);
    }

    /// Apply one committed command (the cluster's apply callback). Deterministic: the same
    /// commands in the same order give the same state on every member.
    pub fn apply(&self, command: &str) {
        let (tag, line) = command.split_once(' ').unwrap_or(("", command));
        let outcome = line.parse::<Record>().and_then(|record| {
            let mut state = lock(&self.state);
            let effect = state.check(&record)?;
            if effect == Effect::Change {
                state.apply(&record)?;
            }
            Ok(effect)
        });
        {
            let mut a = lock(&self.applied);
            let mut h = sha1_smol::Sha1::new();
            h.update(a.chain.as_bytes());
            h.update(command.as_bytes());
            a.chain = h.digest().to_string();
            match &outcome {
                Ok(Effect::Change) => {
                    a.count += 1;
                    let words = if line.starts_with("CREATE-USER") {
                        2
                    } else {
                        3
                    };
                    let key: Vec<&str> = line.split(' ').take(words).collect();
                    a.order.push_back(key.join(":"));
                    if a.order.len() > ORDER_KEPT {
                        a.order.pop_front();
                    }
                }
                Ok(Effect::Unchanged(_)) => a.count += 1,
                Err(_) => a.skipped += 1,
            }
        }
        if let Some(slot) = lock(&self.outcomes).get_mut(tag) {
            *slot = Some(outcome);
        }
    }

    /// The state as of the last applied command, as snapshot bytes for Raft entry `index`.
    pub fn snapshot(&self, index: u64) -> Vec<u8> {
        let mut lines = Vec::new();
        {
            let a = lock(&self.applied);
            let order: Vec<&str> = a.order.iter().map(String::as_str).collect();
            let order = if order.is_empty() {
                "-".to_string()
            } else {
                order.join(",")
            };
            lines.push(format!(
                "REPLICA {} {} {} {order}",
                a.count, a.skipped, a.chain
            ));
        }
        lines.extend(lock(&self.state).to_records().iter().map(Record::to_string));
        crate::journal::snapshot_text(&lines, index).into_bytes()
    }

    /// Replace the whole state by a snapshot's bytes (from [`Replica::snapshot`] on any
    /// member). Nothing changes if they do not parse; the error says why.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), String> {
        let (lines, _) = crate::journal::read_snapshot(bytes)?;
        let (meta, records) = lines
            .split_first()
            .ok_or("the snapshot has no REPLICA record")?;
        let w: Vec<&str> = meta.split(' ').collect();
        let applied = match w[..] {
            ["REPLICA", count, skipped, chain, order] => {
                let count = count.parse().map_err(|_| "bad REPLICA count")?;
                let skipped = skipped.parse().map_err(|_| "bad REPLICA skipped")?;
                let order = match order {
                    "-" => Default::default(),
                    o => o.split(',').map(str::to_string).collect(),
                };
                Applied {
                    count,
                    skipped,
                    chain: chain.to_string(),
                    order,
                }
            }
            _ => return Err("the snapshot's first record is not REPLICA".into()),
        };
        let records = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.parse::<Record>()
                    .map_err(|e| format!("snapshot record {}: {e}", i + 2))
            })
            .collect::<Result<Vec<Record>, String>>()?;
        let accounts = Accounts::replay(&records)
            .map_err(|(i, e)| format!("snapshot record {}: {e}", i + 2))?;
        *lock(&self.state) = accounts;
        *lock(&self.applied) = applied;
        Ok(())
    }

    /// Propose `record` and wait for its outcome at apply. `None` when there is no cluster.
    pub fn mutate(&self, record: &Record) -> Option<Result<Effect, Refusal>> {
        let propose = lock(&self.propose).clone()?;
        let tag = format!(
            "{:016x}.{}",
            self.boot,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        lock(&self.outcomes).insert(tag.clone(), None);
        let sent = propose(vec![format!("{tag} {record}")]);
        let outcome = lock(&self.outcomes).remove(&tag).flatten();
        Some(match (sent, outcome) {
            (Err(e), _) => Err(Refusal::Cluster(e)),
            (Ok(()), Some(Ok(effect))) => Ok(effect),
            (Ok(()), Some(Err(e))) => Err(Refusal::Rule(e)),
            // Committed means applied here first (the driver applies, then settles): unreachable
            // unless the member stopped in between.
            (Ok(()), None) => Err(Refusal::Cluster(ProtoError::new(
                crate::protocol::ErrCode::Unavailable,
                "committed but not applied here; ask again",
            ))),
        })
    }

    /// One line: `applied=N skipped=M chain=HEX order=KIND:NAME,...` (the newest 300).
    pub fn inspect(&self) -> String {
        let a = lock(&self.applied);
        let order: Vec<&str> = a.order.iter().map(String::as_str).collect();
        let mut line = format!(
            "applied={} skipped={} chain={} order={}",
            a.count,
            a.skipped,
            a.chain,
            order.join(",")
        );
        // A `STATE` reply is one protocol line.
        while line.len() > crate::protocol::MAX_LINE - 64 {
            match line.rfind(',') {
                Some(i) => line.truncate(i),
                None => break,
            }
        }
        line
    }
}

/// The Raft log is compacted once this many entries were applied past the last snapshot,
/// unless told otherwise (`tracker --snapshot-every N`).
pub const SNAPSHOT_EVERY: u64 = 10_000;

/// Log compaction for a cluster whose state machine is `replica`: every `every` applied
/// entries (0: never), snapshot it; restore it from a leader's snapshot or the one on disk.
pub fn snapshots(replica: &Arc<Replica>, every: u64) -> crate::tracker::cluster::Snapshots {
    let (take, restore) = (replica.clone(), replica.clone());
    crate::tracker::cluster::Snapshots {
        every,
        take: Box::new(move |index| take.snapshot(index)),
        restore: Box::new(move |bytes| restore.restore(bytes)),
    }
}

/// Why a replicated mutation was not made.
#[derive(Debug)]
pub enum Refusal {
    /// The cluster did not commit it (not the leader, no majority, ...).
    Cluster(ProtoError),
    /// It committed, but no longer applied when its turn came (a racing record won).
    Rule(AuthError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::Credentials;

    fn user(u: &str) -> String {
        Record::CreateUser {
            user: u.into(),
            credentials: Credentials {
                salt: vec![1; 16],
                iterations: 1,
                stored_key: [2; 20],
                server_key: [3; 20],
            },
        }
        .to_string()
    }

    fn group(g: &str, admin: &str) -> String {
        Record::CreateGroup {
            group: g.into(),
            admin: admin.into(),
        }
        .to_string()
    }

    #[test]
    fn a_racing_record_is_skipped_the_same_way_on_every_member() {
        let (a, b) = (Replica::new(1), Replica::new(2));
        for r in [&a, &b] {
            r.apply(&format!("x.0 {}", user("alice")));
            r.apply(&format!("y.0 {}", user("bob")));
            r.apply(&format!("x.1 {}", group("g1", "alice")));
            r.apply(&format!("y.1 {}", group("g1", "bob")));
            r.apply("z.1 NOT-A-RECORD");
        }
        assert_eq!(a.inspect(), b.inspect());
        assert!(a.inspect().starts_with("applied=3 skipped=2 chain="));
        assert!(
            a.inspect()
                .ends_with(" order=CREATE-USER:alice,CREATE-USER:bob,CREATE-GROUP:g1:alice")
        );
        assert_eq!(
            a.state()
                .lock()
                .unwrap()
                .group("g1")
                .map(|g| g.admin.clone()),
            Some("alice".to_string())
        );
    }

    #[test]
    fn a_restored_snapshot_reads_the_same_as_the_replayed_log() {
        let (a, b) = (Replica::new(1), Replica::new(2));
        a.apply(&format!("x.0 {}", user("alice")));
        a.apply(&format!("x.1 {}", group("g1", "alice")));
        a.apply("x.2 NOT-A-RECORD");
        let bytes = a.snapshot(3);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.ends_with(" END 3\n"), "{text}");
        b.apply(&format!("y.0 {}", user("zed"))); // replaced whole by the restore
        b.restore(&bytes).unwrap();
        assert_eq!(a.inspect(), b.inspect());
        assert_eq!(*a.state().lock().unwrap(), *b.state().lock().unwrap());
        // And they go on alike.
        for r in [&a, &b] {
            r.apply(&format!("x.3 {}", user("bob")));
        }
        assert_eq!(a.inspect(), b.inspect());
        let mut damaged = bytes;
        damaged[20] ^= 1;
        assert!(b.restore(&damaged).is_err());
        assert_eq!(a.inspect(), b.inspect());
        assert!(Replica::new(3).restore(&a.snapshot(0)).is_ok());
    }

    #[test]
    fn the_proposer_learns_its_records_fate() {
        let r = Replica::new(7);
        assert!(
            r.mutate(&Record::Leave {
                group: "g".into(),
                user: "u".into()
            })
            .is_none()
        );
        let me = Arc::downgrade(&r);
        r.set_propose(Arc::new(move |lines: Vec<String>| {
            let r = me.upgrade().expect("alive");
            for l in &lines {
                r.apply(l); // commit at once, as a lone member would
            }
            Ok(())
        }));
        r.apply(&format!("other.1 {}", user("a")));
        r.apply(&format!("other.2 {}", user("b")));
        let first = Record::CreateGroup {
            group: "g".into(),
            admin: "a".into(),
        };
        assert_eq!(r.mutate(&first).map(|x| x.ok()), Some(Some(Effect::Change)));
        let again = Record::CreateGroup {
            group: "g".into(),
            admin: "b".into(),
        };
        assert!(matches!(
            r.mutate(&again),
            Some(Err(Refusal::Rule(AuthError::Exists { .. })))
        ));
    }
}
