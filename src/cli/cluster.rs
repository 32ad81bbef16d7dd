//! `torrentphile tracker --cluster FILE --id N --state DIR`: check the three options, read the
//! cluster file, and start this tracker's cluster member. Every mistake is one line naming the
//! file or the option and the fix.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;

use getopts::Matches;

use super::{Fail, usage};
use crate::conn::Trace;
use crate::tracker::cluster::{Cluster, ClusterConfig, Options};

/// The environment variable that turns on the `NOTE <text>` test hook on the cluster port.
/// TEST ONLY: the accounts verbs will be what trackers propose; until then real-process tests
/// replicate notes, and each member prints `applied <text>` on stdout for every commit.
pub const TEST_NOTES: &str = "TORRENTPHILE_TEST_NOTES";

/// Start the cluster member the options ask for, or `None` without `--cluster`.
pub(super) fn member(
    m: &Matches,
    client: &TcpListener,
    trace: &Trace,
) -> Result<Option<Cluster>, Fail> {
    // `--state` alone is a lone tracker's journal folder; `--cluster` needs all three.
    let given = ["cluster", "id", "state"].map(|o| m.opt_str(o));
    let [Some(file), Some(id), Some(state)] = given else {
        if given[0].is_none() && given[1].is_none() {
            return Ok(None);
        }
        return Err(usage(
            "--cluster FILE, --id N and --state DIR go together: give all three",
        ));
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
    let test_notes = std::env::var(TEST_NOTES).is_ok_and(|v| v == "1");
    let options = Options {
        client_addr: Some(advertised),
        test_notes,
        ..Options::default()
    };
    let apply = Box::new(move |command: &str| {
        if test_notes {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "applied {command}");
            let _ = out.flush();
        }
    });
    let cluster = Cluster::start_with(
        config,
        id,
        &PathBuf::from(&state),
        trace.clone(),
        options,
        apply,
    )
    .map_err(|e| Fail(e, 1))?;
    eprintln!("tracker: cluster member {id} of {file}, Raft state in {state}");
    Ok(Some(cluster))
}
