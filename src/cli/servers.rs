//! `torrentphile tracker`, `relay` and `sim`: check the options, start the server (or run the
//! simulation), print `listening on ADDR` when ready.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use getopts::Options;

use super::{Fail, bind, cluster, no_free_args, number, parse, ready, seconds, trace, usage};
use crate::sim::{self, Scenario, SimConfig};
use crate::tracker::{Gate, Tracker, TrackerConfig};
use std::sync::Arc;

pub(super) fn tracker(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "bind",
        "address to listen on (default 127.0.0.1; 0.0.0.0 for a LAN)",
        "ADDR",
    );
    opts.optopt(
        "",
        "port",
        "port to listen on (default 8000; 0 picks a free one)",
        "PORT",
    );
    opts.optopt(
        "",
        "timeout",
        "close connections silent this long; peers ping every third of it (default 30)",
        "SECS",
    );
    opts.optopt(
        "",
        "max-conns",
        "most open connections; the next gets ERR busy (default 10000)",
        "N",
    );
    opts.optopt(
        "",
        "max-conns-per-addr",
        "most open connections from one IP address; the next gets ERR busy (default 64)",
        "N",
    );
    opts.optopt(
        "",
        "max-peers-per-addr",
        "most peers registered from one IP address; the next gets ERR limit (default 16)",
        "N",
    );
    opts.optopt(
        "",
        "max-files-per-addr",
        "most files the peers of one IP address may announce (default 100000)",
        "N",
    );
    opts.optopt(
        "",
        "cluster",
        "run as a member of the Raft cluster this file lists (`<id> <host:port>` a line)",
        "FILE",
    );
    opts.optopt("", "id", "with --cluster: this tracker's id in FILE", "N");
    opts.optopt(
        "",
        "cluster-key",
        "with --cluster: the members' shared secret (mode 0600; make one with `torrentphile cluster-key KEY`); without it the cluster port trusts anyone who knows the cluster's fingerprint",
        "KEY",
    );
    opts.optopt(
        "",
        "snapshot-every",
        "with --cluster: compact the Raft log into a snapshot every N applied entries (default 10000; 0: never)",
        "N",
    );
    opts.optflag("", "trace", "print every protocol line to stderr");
    opts.optopt(
        "",
        "state",
        "keep accounts and groups in a journal in DIR, and with --cluster its Raft state (default: in memory only)",
        "DIR",
    );
    opts.optopt(
        "",
        "iterations",
        "PBKDF2 iterations for new users' passwords (default 100000)",
        "N",
    );
    let Some(m) = parse(&mut opts, args, "usage: torrentphile tracker [options]")? else {
        return Ok(());
    };
    no_free_args(&m, "tracker")?;
    let max_conns = number(&m, "max-conns", 10_000usize)?;
    if max_conns == 0 {
        return Err(usage("--max-conns must be at least 1"));
    }
    let defaults = TrackerConfig::default();
    let at_least_one = |flag: &str, n: usize| {
        if n == 0 {
            Err(usage(format!("--{flag} must be at least 1")))
        } else {
            Ok(n)
        }
    };
    let mut limits = defaults.limits;
    limits.peers_per_addr = at_least_one(
        "max-peers-per-addr",
        number(&m, "max-peers-per-addr", limits.peers_per_addr)?,
    )?;
    limits.files_per_addr = number(&m, "max-files-per-addr", limits.files_per_addr)?;
    let mut config = TrackerConfig {
        max_conns,
        max_conns_per_addr: at_least_one(
            "max-conns-per-addr",
            number(&m, "max-conns-per-addr", defaults.max_conns_per_addr)?,
        )?,
        limits,
        idle: seconds(&m, "timeout", 30.0)?.max(Duration::from_millis(300)),
        trace: trace(&m, "tracker"),
        accounts: super::accounts_config(&m)?,
        ..TrackerConfig::default()
    };
    let listener = bind(&m, 8000)?;
    let _cluster = match cluster::member(&m, &listener, &config.trace)? {
        Some((member, replica)) => {
            let leader_check = member.leader_check();
            config.gate = Gate(Some(Arc::new(move |_: &crate::protocol::Request| {
                leader_check()
            })));
            // The Raft log is the journal: no local journal in cluster mode.
            config.accounts.state = None;
            config.accounts.replica = Some(replica);
            Some(member)
        }
        None => None,
    };
    let open_files = crate::rlimit::raise_open_files();
    eprintln!(
        "{}",
        crate::rlimit::ceiling_line("tracker", config.max_conns, &open_files)
    );
    ready(&listener)?;
    let _tracker =
        Tracker::start(listener, config).map_err(|e| Fail(format!("cannot start: {e}"), 1))?;
    loop {
        thread::park();
    }
}

pub(super) fn relay(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "bind",
        "address to listen on (default 127.0.0.1)",
        "ADDR",
    );
    opts.optopt(
        "",
        "port",
        "port to listen on (default 0: any free one)",
        "PORT",
    );
    opts.optopt("", "to", "where to forward connections", "HOST:PORT");
    opts.optopt(
        "",
        "delay",
        "milliseconds each direction is held back (default 25)",
        "MS",
    );
    let Some(m) = parse(
        &mut opts,
        args,
        "usage: torrentphile relay --to HOST:PORT [options]",
    )?
    else {
        return Ok(());
    };
    no_free_args(&m, "relay")?;
    let to = m
        .opt_str("to")
        .ok_or_else(|| usage("--to HOST:PORT is required"))?;
    let delay_ms: f64 = number(&m, "delay", 25.0f64)?;
    if !(delay_ms.is_finite() && delay_ms >= 0.0) {
        return Err(usage(format!(
            "--delay must be 0 or more milliseconds, not {delay_ms}"
        )));
    }
    let delay = Duration::from_secs_f64(delay_ms / 1000.0);
    let listener = bind(&m, 0)?;
    ready(&listener)?;
    let _relay = crate::relay::Relay::start(listener, &to, delay)
        .map_err(|e| Fail(format!("cannot relay to {to}: {e}"), 1))?;
    loop {
        thread::park();
    }
}

pub(super) fn simulate(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "scenario",
        "classic (the first seed's run), swarm, groups (users and groups) or failover (three trackers; default classic)",
        "NAME",
    );
    opts.optopt(
        "",
        "root",
        "folder for the peers' folders (default /tmp)",
        "DIR",
    );
    opts.optopt(
        "",
        "tracker-port",
        "tracker port (default 8000; 0 for any free one)",
        "PORT",
    );
    opts.optopt(
        "",
        "base-port",
        "first peer port (default 10000; 0 for any free ones)",
        "PORT",
    );
    opts.optopt("", "size", "swarm: file size in MiB (default 256)", "MIB");
    opts.optopt(
        "",
        "downloaders",
        "swarm: how many downloaders (default 8)",
        "N",
    );
    opts.optflag(
        "",
        "quiet",
        "classic, groups: do not print the protocol lines",
    );
    opts.optflag(
        "",
        "random",
        "swarm: downloaders pick random pieces instead of the rarest first",
    );
    let Some(m) = parse(&mut opts, args, "usage: torrentphile sim [options]")? else {
        return Ok(());
    };
    no_free_args(&m, "sim")?;
    let scenario = match m.opt_str("scenario").as_deref() {
        None | Some("classic") => Scenario::Classic,
        Some("swarm") => Scenario::Swarm,
        Some("groups") => Scenario::Groups,
        Some("failover") => Scenario::Failover,
        Some(other) => {
            return Err(usage(format!(
                "unknown scenario {other:?}: use classic, swarm, groups or failover"
            )));
        }
    };
    let config = SimConfig {
        root: m
            .opt_str("root")
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from),
        tracker_port: number(&m, "tracker-port", 8000)?,
        base_port: number(&m, "base-port", 10000)?,
        size_mib: number(&m, "size", 256)?,
        downloaders: number(&m, "downloaders", 8)?,
        narrate: !m.opt_present("quiet"),
        random: m.opt_present("random"),
    };
    let summary = sim::run(scenario, &config).map_err(|e| Fail(e, 1))?;
    crate::util::say(&summary);
    Ok(())
}
