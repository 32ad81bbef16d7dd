//! `torrentphile tracker --cluster FILE --id N --state DIR [--cluster-key KEY]`: check the
//! options, read the cluster file and the key, and start this tracker's cluster member with the
//! accounts replica as its state machine; and `torrentphile cluster-key FILE`, which makes a
//! key. Every mistake is one line naming the file or the option and the fix.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use getopts::Matches;

use super::{Fail, usage};
use crate::conn::Trace;
use crate::tracker::cluster::{self as raft_cluster, Cluster, ClusterConfig, ClusterKey, Options};
use crate::tracker::replica::{self, Replica, SNAPSHOT_EVERY};

/// How long a tracker waits for its accounts record to commit before `ERR timeout`.
pub const PROPOSE_WAIT: Duration = Duration::from_secs(5);

/// Start the cluster member the options ask for, or `None` without `--cluster`. The accounts
/// replica it returns starts from the Raft snapshot, if any, and the Raft log after it.
pub(super) fn member(
    m: &Matches,
    client: &TcpListener,
    trace: &Trace,
) -> Result<Option<(Cluster, Arc<Replica>)>, Fail> {
    // `--state` alone is a lone tracker's journal folder; `--cluster` needs all three.
    let given = ["cluster", "id", "state"].map(|o| m.opt_str(o));
    let [Some(file), Some(id), Some(state)] = given else {
        if given[0].is_none() && given[1].is_none() {
            if m.opt_present("cluster-key") {
                return Err(usage(
                    "--cluster-key goes with --cluster FILE --id N --state DIR",
                ));
            }
            if m.opt_present("snapshot-every") {
                return Err(usage(
                    "--snapshot-every goes with --cluster FILE --id N --state DIR",
                ));
            }
            return Ok(None);
        }
        return Err(usage(
            "--cluster FILE, --id N and --state DIR go together: give all three",
        ));
    };
    let every = match m.opt_str("snapshot-every") {
        None => SNAPSHOT_EVERY,
        Some(n) => n.parse().map_err(|_| {
            usage(format!(
                "--snapshot-every {n:?} must be a whole number of log entries (0: never compact)"
            ))
        })?,
    };
    let id: u64 = id
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| usage(format!("--id {id:?} must be a whole number from 1 up")))?;
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Fail(format!("cannot read the cluster file {file}: {e}"), 2))?;
    let config = ClusterConfig::parse(&text, &file).map_err(|e| Fail(e, 2))?;
    config.check_member(id, &file).map_err(|e| Fail(e, 2))?;
    // Read before anything listens: a key file others may read stops the start.
    let key = match m.opt_str("cluster-key") {
        Some(k) => Some(ClusterKey::load(Path::new(&k)).map_err(|e| Fail(e, 2))?),
        None => None,
    };
    let keyed = key.is_some();
    let client_addr = client
        .local_addr()
        .map_err(|e| Fail(format!("cannot read the listening address: {e}"), 1))?;
    // Peers must be able to reach the address a follower names: if the tracker listens on
    // every interface, name the host of its cluster address instead.
    let advertised = if client_addr.ip().is_unspecified() {
        let cluster_host = config.members[&id]
            .rsplit_once(':')
            .map_or("127.0.0.1", |(h, _)| h);
        format!("{cluster_host}:{}", client_addr.port())
    } else {
        client_addr.to_string()
    };
    let config_addr = config.members[&id].clone();
    let replica = Replica::new(crate::util::Rng::from_time().next_u64());
    let inspect = replica.clone();
    let options = Options {
        client_addr: Some(advertised),
        inspect: Some(Arc::new(move || inspect.inspect())),
        snapshots: Some(replica::snapshots(&replica, every)),
        key,
        ..Options::default()
    };
    let applier = replica.clone();
    let apply = Box::new(move |command: &str| applier.apply(command));
    let cluster = Cluster::start_with(
        config,
        id,
        &PathBuf::from(&state),
        trace.clone(),
        options,
        apply,
    )
    .map_err(|e| Fail(e, 1))?;
    replica.set_propose(Arc::new(cluster.proposer(PROPOSE_WAIT)));
    eprintln!("tracker: cluster member {id} of {file}, Raft state in {state}");
    if !keyed {
        let port = &config_addr;
        eprintln!(
            "tracker: the cluster port {port} is unauthenticated: anyone who can reach it and knows the cluster's fingerprint can send Raft messages; give every member --cluster-key FILE (make one with `torrentphile cluster-key FILE`)"
        );
    }
    Ok(Some((cluster, replica)))
}

/// `torrentphile cluster-key FILE`: write a new cluster key (32 bytes from /dev/urandom,
/// base64) to FILE with mode 0600; copy it to every member the same way.
pub(super) fn new_key(args: &[String]) -> Result<(), Fail> {
    match args {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{KEY_USAGE}");
            Ok(())
        }
        [file] if !file.starts_with('-') => {
            raft_cluster::write_new(Path::new(file)).map_err(|e| Fail(e, 1))?;
            eprintln!(
                "cluster-key: wrote a new key to {file} (mode 0600); give every member a copy with --cluster-key {file}"
            );
            Ok(())
        }
        _ => Err(usage(KEY_USAGE)),
    }
}

const KEY_USAGE: &str = "\
usage: torrentphile cluster-key FILE

Write a new cluster key (32 random bytes from /dev/urandom, as base64) to FILE, readable by
its owner only (mode 0600); an existing FILE is never overwritten. Give every tracker of the
cluster a copy: `torrentphile tracker --cluster C --id N --state DIR --cluster-key FILE`.
The members then prove to each other that they hold it before any Raft message is read.";
