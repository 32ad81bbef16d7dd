//! The `torrentphile` command line: parse the arguments with getopts, check every value, and
//! start the right thing. No logic of the system lives here: each command builds a config and
//! calls the library.
//!
//! - `mod.rs`: dispatch, and the checks every command shares (numbers, seconds, addresses,
//!   stray words), each failure a `Fail` with its exit code (1 failure, 2 usage).
//! - `peer.rs`: `peer` and `get` (and `get`'s progress line and Ctrl-C).
//! - `accounts.rs`: `--user`, `--password-file`, `get --group` (log in at start, group get).
//! - `servers.rs`: `tracker`, `relay`, `sim`.
//! - `torrent_get.rs`: `get --torrent`, `download -o DEST FILE.torrent`, `peer --torrent`.
//! - `cluster.rs`: `tracker --cluster FILE --id N --state DIR`.

mod accounts;
mod cluster;
mod peer;
mod servers;
mod torrent_get;

use std::io::Write;
use std::net::{TcpListener, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use getopts::{Matches, Options};

use crate::conn::Trace;

const USAGE: &str = "\
usage: torrentphile <command> [options]

commands:
  tracker   run the tracker (the directory of who holds what)
  cluster-key  make the secret key a tracker cluster's members share (cluster-key FILE)
  peer      run a peer: share a folder, download into it, answer other peers
  get       download one file into a folder, then exit (--torrent FILE: what a .torrent describes)
  download  download what a .torrent describes: download -o DEST FILE.torrent
  sim       run a simulation on this machine (classic, swarm or groups)
  relay     forward TCP connections with added latency (to try a slow link)
  torrent   make a .torrent file (torrent create) or describe one (torrent show)

`torrentphile <command> --help` shows the options of each; `torrentphile --version` the version.";

/// A command-line failure: the message, and whether it is a usage error (exit 2) or not (1).
struct Fail(String, u8);

fn usage(msg: impl Into<String>) -> Fail {
    Fail(msg.into(), 2)
}

/// Run the command line `args` (without the program name); returns the exit code.
pub fn main(args: &[String]) -> ExitCode {
    let result = match args.first().map(String::as_str) {
        Some("tracker") => servers::tracker(&args[1..]),
        Some("cluster-key") => cluster::new_key(&args[1..]),
        Some("peer") => peer::peer(&args[1..]),
        Some("get") => peer::get(&args[1..]),
        Some("download") => torrent_get::download(&args[1..]),
        Some("sim") => servers::simulate(&args[1..]),
        Some("relay") => servers::relay(&args[1..]),
        Some("torrent") => {
            return match crate::torrent::cli::main(&args[1..]) {
                0 => ExitCode::SUCCESS,
                code => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            };
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("-V" | "--version" | "version") => {
            println!("torrentphile {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(usage(format!("unknown command {other:?}\n\n{USAGE}"))),
        None => Err(usage(USAGE)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("torrentphile: {msg}");
            ExitCode::from(code)
        }
    }
}

/// Parse `args` with `opts`; `Ok(None)` means `--help` was printed.
fn parse(opts: &mut Options, args: &[String], brief: &str) -> Result<Option<Matches>, Fail> {
    parse_or_help(opts, args, brief).map_err(usage)
}

/// Parse `args` with `opts` plus `--help`: `Ok(None)` when the help was printed, `Err` the
/// usage message (the error, then the help). Every command line parses through it.
pub(crate) fn parse_or_help(
    opts: &mut Options,
    args: &[String],
    brief: &str,
) -> Result<Option<Matches>, String> {
    opts.optflag("h", "help", "show this help");
    let m = opts
        .parse(args)
        .map_err(|e| format!("{e}\n\n{}", opts.usage(brief)))?;
    if m.opt_present("help") {
        println!("{}", opts.usage(brief));
        return Ok(None);
    }
    Ok(Some(m))
}

/// Refuse words the command does not take (a typo such as `--dir /tmp/a b` would otherwise be
/// ignored silently).
fn no_free_args(m: &Matches, command: &str) -> Result<(), Fail> {
    match m.free.first() {
        None => Ok(()),
        Some(word) => Err(usage(format!(
            "{command} takes no argument {word:?}; options start with -- (see torrentphile {command} --help)"
        ))),
    }
}

/// A positive number of seconds (`0`, negative or not a number is a usage error).
fn seconds(m: &Matches, name: &str, default: f64) -> Result<Duration, Fail> {
    let secs: f64 = number(m, name, default)?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(usage(format!(
            "--{name} must be a number of seconds above 0, not {secs}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--tracker HOST:PORT` (repeatable) and, where the command has it, `--trackers FILE`,
/// checked now: a typo is a usage error at once, not ten seconds of retries against an
/// address that cannot exist. Several trackers come back separated by commas (what
/// `PeerConfig::tracker` takes); none given means `127.0.0.1:8000`.
fn tracker_address(m: &Matches) -> Result<String, Fail> {
    let mut addrs = Vec::new();
    for addr in m.opt_strs("tracker") {
        check_tracker(&addr, &format!("--tracker {addr:?}"))?;
        addrs.push(addr);
    }
    if m.opt_defined("trackers")
        && let Some(file) = m.opt_str("trackers")
    {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| usage(format!("cannot read the trackers file {file}: {e}")))?;
        let listed = crate::peer::trackers::parse_file(&text, &file).map_err(usage)?;
        for addr in listed {
            check_tracker(&addr, &format!("{file}: {addr:?}"))?;
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        addrs.push("127.0.0.1:8000".into());
    }
    Ok(addrs.join(","))
}

/// One tracker address: `HOST:PORT` that resolves. `what` names where it came from.
fn check_tracker(addr: &str, what: &str) -> Result<(), Fail> {
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(usage(format!(
            "{what} must be HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000"
        )));
    }
    match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(usage(format!("{what}: the name has no address"))),
        Err(e) => Err(usage(format!(
            "{what}: cannot resolve the host ({e}); check the spelling"
        ))),
    }
}

fn number<T: std::str::FromStr>(m: &Matches, name: &str, default: T) -> Result<T, Fail> {
    match m.opt_str(name) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| usage(format!("--{name} {s:?} is not a valid number"))),
    }
}

fn bind(m: &Matches, default_port: u16) -> Result<TcpListener, Fail> {
    let host = m.opt_str("bind").unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = number(m, "port", default_port)?;
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpListener::bind(&addr).map_err(|e| {
        Fail(
            format!("cannot listen on {addr}: {e} (is another process using port {port}? pick another with --port, or --port 0 for any free one)"),
            1,
        )
    })
}

fn ready(listener: &TcpListener) -> Result<(), Fail> {
    let addr = listener
        .local_addr()
        .map_err(|e| Fail(format!("cannot read the listening address: {e}"), 1))?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    Ok(())
}

/// The tracker's `--state` and `--iterations`; `TORRENTPHILE_TEST_SEED` (tests only) makes
/// salts and nonces reproducible.
fn accounts_config(m: &Matches) -> Result<crate::tracker::accounts::AccountsConfig, Fail> {
    use crate::tracker::accounts::{AccountsConfig, DEFAULT_ITERATIONS};
    let iterations = number(m, "iterations", DEFAULT_ITERATIONS)?;
    if iterations == 0 || iterations > crate::auth::scram::MAX_ITERATIONS {
        return Err(usage("--iterations must be 1 to 10000000"));
    }
    let test_seed = match std::env::var("TORRENTPHILE_TEST_SEED") {
        Ok(seed) => Some(seed.parse().map_err(|_| {
            usage("TORRENTPHILE_TEST_SEED must be a number (and is for tests only)")
        })?),
        Err(_) => None,
    };
    Ok(AccountsConfig {
        state: m.opt_str("state").map(std::path::PathBuf::from),
        iterations,
        test_seed,
        ..AccountsConfig::default()
    })
}

fn trace(m: &Matches, label: &str) -> Trace {
    if m.opt_present("trace") {
        Trace::on(label)
    } else {
        Trace::off()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker_opt(value: &str) -> Result<String, Fail> {
        let mut opts = Options::new();
        opts.optopt("", "tracker", "", "");
        let m = opts
            .parse(["--tracker", value])
            .map_err(|e| usage(e.to_string()))?;
        tracker_address(&m)
    }

    #[test]
    fn tracker_addresses_are_checked_before_anything_starts() {
        for good in ["127.0.0.1:8000", "[::1]:8000", "localhost:8000"] {
            assert_eq!(tracker_opt(good).ok().as_deref(), Some(good));
        }
        for bad in [
            "nowhere",
            ":8000",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "127.0.0.1:x",
            "",
        ] {
            match tracker_opt(bad) {
                Err(Fail(msg, 2)) => assert!(msg.contains("HOST:PORT"), "{bad}: {msg}"),
                Err(Fail(msg, code)) => panic!("{bad}: exit {code}: {msg}"),
                Ok(a) => panic!("{bad} was accepted as {a}"),
            }
        }
    }

    #[test]
    fn stray_words_and_zero_seconds_are_usage_errors() {
        let mut opts = Options::new();
        opts.optopt("", "timeout", "", "");
        let m = opts.parse(["extra", "--timeout", "0"]).expect("parses");
        assert!(matches!(no_free_args(&m, "peer"), Err(Fail(_, 2))));
        assert!(matches!(seconds(&m, "timeout", 10.0), Err(Fail(_, 2))));
        let m = opts.parse(["--timeout", "0.5"]).expect("parses");
        assert_eq!(
            seconds(&m, "timeout", 10.0).ok(),
            Some(Duration::from_millis(500))
        );
    }
}
