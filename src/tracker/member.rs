//! One cluster member in process: a [`Tracker`] whose accounts go through a [`Cluster`] to a
//! [`Replica`], wired as `torrentphile tracker --cluster` wires them. For the simulation, the
//! benchmarks and the in-process tests; the CLI does the same in `cli/cluster.rs`.
//!
//! It owns the three parts' lifetimes and nothing else: no socket of its own, no state.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::Trace;
use crate::raft::NodeId;
use crate::tracker::cluster::{Cluster, ClusterConfig, ClusterKey, Options};
use crate::tracker::replica::{self, Replica, SNAPSHOT_EVERY};
use crate::tracker::{Gate, Tracker, TrackerConfig};

/// How long a member waits for a record to commit before `ERR timeout`.
pub const PROPOSE_WAIT: Duration = Duration::from_secs(5);

/// A running member: tracker, cluster, replica.
pub struct Member {
    tracker: Tracker,
    cluster: Cluster,
    replica: Arc<Replica>,
}

impl Member {
    /// Start member `id` of `config`: its cluster port on `cluster_port`, its client port on
    /// `client`, its Raft state in `state_dir/raft/`. `tracker` gives the other settings; its
    /// gate and accounts state are replaced (the Raft log is the journal).
    pub fn start(
        config: ClusterConfig,
        id: NodeId,
        state_dir: &Path,
        cluster_port: TcpListener,
        client: TcpListener,
        tracker: TrackerConfig,
    ) -> Result<Member, String> {
        let (ports, every) = ((cluster_port, client), SNAPSHOT_EVERY);
        Member::start_with(config, id, state_dir, ports, tracker, every)
    }

    /// [`Member::start`] with the Raft log compacted every `snapshot_every` applied entries
    /// (0: never); `ports` are the cluster and the client listeners.
    pub fn start_with(
        config: ClusterConfig,
        id: NodeId,
        state_dir: &Path,
        ports: (TcpListener, TcpListener),
        tracker: TrackerConfig,
        snapshot_every: u64,
    ) -> Result<Member, String> {
        Member::start_keyed(config, id, state_dir, ports, tracker, snapshot_every, None)
    }

    /// [`Member::start_with`] with a cluster key (see [`ClusterKey`]): the members prove to
    /// each other that they hold it before any Raft message is read.
    pub fn start_keyed(
        config: ClusterConfig,
        id: NodeId,
        state_dir: &Path,
        ports: (TcpListener, TcpListener),
        mut tracker: TrackerConfig,
        snapshot_every: u64,
        key: Option<ClusterKey>,
    ) -> Result<Member, String> {
        let (cluster_port, client) = ports;
        let client_addr = client
            .local_addr()
            .map_err(|e| format!("cannot read the listening address: {e}"))?;
        let replica = Replica::new(crate::util::Rng::from_time().next_u64());
        let (inspect, applier) = (replica.clone(), replica.clone());
        let options = Options {
            client_addr: Some(client_addr.to_string()),
            listener: Some(cluster_port),
            inspect: Some(Arc::new(move || inspect.inspect())),
            snapshots: Some(replica::snapshots(&replica, snapshot_every)),
            key,
            ..Options::default()
        };
        let apply = Box::new(move |command: &str| applier.apply(command));
        let cluster = Cluster::start_with(config, id, state_dir, Trace::off(), options, apply)?;
        replica.set_propose(Arc::new(cluster.proposer(PROPOSE_WAIT)));
        let leader_check = cluster.leader_check();
        tracker.gate = Gate(Some(Arc::new(move |_: &crate::protocol::Request| {
            leader_check()
        })));
        tracker.accounts.state = None;
        tracker.accounts.replica = Some(replica.clone());
        let tracker = Tracker::start(client, tracker).map_err(|e| format!("cannot start: {e}"))?;
        Ok(Member {
            tracker,
            cluster,
            replica,
        })
    }

    /// The tracker (its client address, registry, accounts).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The cluster member.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The replicated accounts (`STATE`).
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Stop everything at once, as a crash would look to the others: connections closed, no
    /// goodbye to the cluster.
    pub fn kill(&mut self) {
        self.tracker.stop();
        self.cluster.stop();
    }
}

/// Bind `n` members' cluster and client ports on 127.0.0.1 (any free ones) and the cluster
/// file text that lists them: `(cluster ports, client ports, config)`.
pub fn bind_loopback(
    n: usize,
) -> Result<(Vec<TcpListener>, Vec<TcpListener>, ClusterConfig), String> {
    let bind =
        || TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot listen on 127.0.0.1: {e}"));
    let mut cluster = Vec::new();
    let mut client = Vec::new();
    let mut text = String::new();
    for i in 0..n {
        let l = bind()?;
        let addr = l.local_addr().map_err(|e| e.to_string())?;
        text.push_str(&format!("{} {addr}\n", i + 1));
        cluster.push(l);
        client.push(bind()?);
    }
    let config = ClusterConfig::parse(&text, "(in-process cluster)")?;
    Ok((cluster, client, config))
}
