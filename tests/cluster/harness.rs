//! A cluster of real members in one process, on real sockets at 127.0.0.1:0, and the checker
//! that holds the acknowledged history against what every member applied.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use torrentphile::conn::Trace;
use torrentphile::raft::NodeId;
use torrentphile::tracker::cluster::{Cluster, ClusterConfig, ClusterKey, Options, ProposeError};

/// What one incarnation of a member applied, in order, and a signal for each new entry.
pub type Applied = Arc<(Mutex<Vec<String>>, Condvar)>;

pub struct Member {
    pub id: NodeId,
    pub addr: String,
    /// The client address it announces (a tracker's, or a fake one).
    pub client: String,
    pub dir: PathBuf,
    pub cluster: Option<Cluster>,
    pub applied: Applied,
    /// Its cluster key, if any.
    pub key: Option<ClusterKey>,
}

pub struct Harness {
    pub config: ClusterConfig,
    pub members: Vec<Member>,
}

/// The client address a member announces: fake, but unique and recognisable.
pub fn client_addr(id: NodeId) -> String {
    format!("127.0.0.1:{}", 18000 + id)
}

impl Harness {
    pub fn start(n: u64, tag: &str) -> Harness {
        Harness::start_with(n, tag, &(1..=n).map(client_addr).collect::<Vec<_>>())
    }

    /// `n` members announcing `clients[i]` as member `i + 1`'s client address.
    pub fn start_with(n: u64, tag: &str, clients: &[String]) -> Harness {
        Harness::start_keyed(n, tag, clients, &vec![None; n as usize])
    }

    /// `n` members, member `i + 1` with cluster key `keys[i]`.
    pub fn start_keyed(
        n: u64,
        tag: &str,
        clients: &[String],
        keys: &[Option<ClusterKey>],
    ) -> Harness {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut text = String::from("# test cluster\n");
        for (i, l) in listeners.iter().enumerate() {
            text.push_str(&format!("{} {}\n", i + 1, l.local_addr().unwrap()));
        }
        let config = ClusterConfig::parse(&text, "test").unwrap();
        let mut h = Harness {
            config,
            members: Vec::new(),
        };
        for (i, l) in listeners.into_iter().enumerate() {
            let id = i as NodeId + 1;
            let dir = std::env::temp_dir().join(format!(
                "torrentphile-cluster-{tag}-{}-{id}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            h.members.push(Member {
                id,
                addr: h.config.members[&id].clone(),
                client: clients[i].clone(),
                dir,
                cluster: None,
                applied: Applied::default(),
                key: keys[i].clone(),
            });
            h.boot(id, Some(l));
        }
        h
    }

    /// Start member `id` (again) from its state folder.
    pub fn boot(&mut self, id: NodeId, listener: Option<TcpListener>) {
        let m = &mut self.members[id as usize - 1];
        let listener = listener.unwrap_or_else(|| TcpListener::bind(&m.addr).unwrap());
        m.applied = Applied::default();
        let applied = m.applied.clone();
        let options = Options {
            client_addr: Some(m.client.clone()),
            listener: Some(listener),
            key: m.key.clone(),
            ..Options::default()
        };
        let apply = Box::new(move |command: &str| {
            let (list, cv) = &*applied;
            list.lock().unwrap().push(command.to_string());
            cv.notify_all();
        });
        let cluster = Cluster::start_with(
            self.config.clone(),
            id,
            &m.dir,
            Trace::off(),
            options,
            apply,
        )
        .unwrap();
        m.cluster = Some(cluster);
    }

    /// Stop member `id`: to the others, a crash.
    pub fn kill(&mut self, id: NodeId) {
        let m = &mut self.members[id as usize - 1];
        if let Some(mut c) = m.cluster.take() {
            c.stop();
        }
    }

    pub fn live(&self) -> impl Iterator<Item = (&Member, &Cluster)> {
        self.members
            .iter()
            .filter_map(|m| m.cluster.as_ref().map(|c| (m, c)))
    }

    /// The live member that leads, once one does.
    pub fn leader(&self, timeout: Duration) -> NodeId {
        self.try_leader(timeout)
            .unwrap_or_else(|| panic!("no leader within {timeout:?}"))
    }

    /// The live member that leads, if one does within `timeout`.
    pub fn try_leader(&self, timeout: Duration) -> Option<NodeId> {
        let end = Instant::now() + timeout;
        loop {
            for (m, c) in self.live() {
                if c.wait_for(Duration::from_millis(20), |leading, _| leading) {
                    return Some(m.id);
                }
            }
            if Instant::now() >= end {
                return None;
            }
        }
    }

    pub fn cluster(&self, id: NodeId) -> &Cluster {
        self.members[id as usize - 1]
            .cluster
            .as_ref()
            .expect("a live member")
    }

    /// Propose `command` wherever the leader is, until acknowledged or `timeout`. Each attempt
    /// carries its own suffix, so a retried command that committed twice is not mistaken for
    /// one acknowledgement. Returns the acknowledged text.
    pub fn propose(&self, command: &str, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        let mut attempt = 0;
        while Instant::now() < end {
            attempt += 1;
            let text = format!("{command}#{attempt}");
            let Some(leader) = self.live().find(|(_, c)| c.is_leader()).map(|(m, _)| m.id) else {
                self.try_leader(end.saturating_duration_since(Instant::now()));
                continue;
            };
            match self
                .cluster(leader)
                .propose(vec![text.clone()], Duration::from_secs(3))
            {
                Ok(()) => return Some(text),
                Err(ProposeError::NotLeader { .. } | ProposeError::Lost) => {}
                Err(ProposeError::Timeout) => {}
                Err(e) => panic!("propose {text}: {e}"),
            }
        }
        None
    }

    /// Wait until every live member has applied at least `n` commands.
    pub fn wait_applied(&self, n: usize, timeout: Duration) {
        let end = Instant::now() + timeout;
        for (m, _) in self.live() {
            let (list, cv) = &*m.applied;
            let guard = list.lock().unwrap();
            let left = end.saturating_duration_since(Instant::now());
            let (guard, _) = cv.wait_timeout_while(guard, left, |l| l.len() < n).unwrap();
            assert!(
                guard.len() >= n,
                "member {} applied {} of {n} commands",
                m.id,
                guard.len()
            );
        }
    }

    /// The checker: every live member applied the same sequence (one a prefix of another),
    /// and every acknowledged command is in it, in the order it was acknowledged.
    pub fn check(&self, acked: &[String]) -> Vec<String> {
        let logs: Vec<(NodeId, Vec<String>)> = self
            .live()
            .map(|(m, _)| (m.id, m.applied.0.lock().unwrap().clone()))
            .collect();
        let longest = logs
            .iter()
            .max_by_key(|(_, l)| l.len())
            .map(|(_, l)| l.clone())
            .unwrap_or_default();
        for (id, log) in &logs {
            assert_eq!(
                log[..],
                longest[..log.len()],
                "member {id} applied another history"
            );
        }
        let mut at = 0;
        for a in acked {
            let found = longest[at..].iter().position(|c| c == a);
            let Some(k) = found else {
                panic!("acknowledged {a} is missing or out of order in {longest:?}");
            };
            at += k + 1;
        }
        longest
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.cluster.take() {
                c.stop();
            }
            let _ = fs::remove_dir_all(&m.dir);
        }
    }
}
