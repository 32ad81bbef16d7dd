//! The `torrentphile` command: parse the command line, start the right thing. No logic here.

use std::io::{IsTerminal, Write};
use std::net::{TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use getopts::{Matches, Options};
use torrentphile::conn::{Timeouts, Trace};
use torrentphile::peer::download::DownloadError;
use torrentphile::peer::picker::Strategy;
use torrentphile::peer::{Peer, PeerConfig, shell};
use torrentphile::signal;
use torrentphile::sim::{self, Scenario, SimConfig};
use torrentphile::tracker::{Tracker, TrackerConfig};

const USAGE: &str = "\
usage: torrentphile <command> [options]

commands:
  tracker   run the tracker (the directory of who holds what)
  peer      run a peer: share a folder, download into it, answer other peers
  get       download one file into a folder, then exit
  sim       run a simulation on this machine (classic or swarm)
  relay     forward TCP connections with added latency (to try a slow link)

`torrentphile <command> --help` shows the options of each; `torrentphile --version` the version.";

/// A command-line failure: the message, and whether it is a usage error (exit 2) or not (1).
struct Fail(String, u8);

fn usage(msg: impl Into<String>) -> Fail {
    Fail(msg.into(), 2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("tracker") => tracker(&args[1..]),
        Some("peer") => peer(&args[1..]),
        Some("get") => get(&args[1..]),
        Some("sim") => simulate(&args[1..]),
        Some("relay") => relay(&args[1..]),
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
    opts.optflag("h", "help", "show this help");
    let m = opts
        .parse(args)
        .map_err(|e| usage(format!("{e}\n\n{}", opts.usage(brief))))?;
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

/// `--tracker HOST:PORT`, checked now: a typo is a usage error at once, not ten seconds of
/// retries against an address that cannot exist.
fn tracker_address(m: &Matches) -> Result<String, Fail> {
    let addr = m
        .opt_str("tracker")
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return Err(usage(format!(
            "--tracker {addr:?} must be HOST:PORT, e.g. 127.0.0.1:8000 or [::1]:8000"
        )));
    }
    match addr.to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(_)) => Ok(addr),
        Ok(None) => Err(usage(format!(
            "--tracker {addr:?}: the name has no address"
        ))),
        Err(e) => Err(usage(format!(
            "--tracker {addr:?}: cannot resolve the host ({e}); check the spelling"
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

fn trace(m: &Matches, label: &str) -> Trace {
    if m.opt_present("trace") {
        Trace::on(label)
    } else {
        Trace::off()
    }
}

fn tracker(args: &[String]) -> Result<(), Fail> {
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
    opts.optflag("", "trace", "print every protocol line to stderr");
    let Some(m) = parse(&mut opts, args, "usage: torrentphile tracker [options]")? else {
        return Ok(());
    };
    no_free_args(&m, "tracker")?;
    let max_conns = number(&m, "max-conns", 10_000usize)?;
    if max_conns == 0 {
        return Err(usage("--max-conns must be at least 1"));
    }
    let config = TrackerConfig {
        max_conns,
        idle: seconds(&m, "timeout", 30.0)?.max(Duration::from_millis(300)),
        trace: trace(&m, "tracker"),
    };
    let listener = bind(&m, 8000)?;
    ready(&listener)?;
    let _tracker =
        Tracker::start(listener, config).map_err(|e| Fail(format!("cannot start: {e}"), 1))?;
    loop {
        thread::park();
    }
}

/// Options shared by `peer` and `get`.
fn peer_options(opts: &mut Options) {
    opts.optopt(
        "",
        "tracker",
        "the tracker's address (default 127.0.0.1:8000)",
        "HOST:PORT",
    );
    opts.optopt(
        "",
        "dir",
        "the folder to share from and download into",
        "DIR",
    );
    opts.optopt(
        "",
        "bind",
        "address to serve on (default 127.0.0.1; 0.0.0.0 for a LAN)",
        "ADDR",
    );
    opts.optopt("", "port", "port to serve on (0 picks a free one)", "PORT");
    opts.optopt(
        "",
        "workers",
        "most peers to download from at once (default 8)",
        "N",
    );
    opts.optflag(
        "",
        "random",
        "pick a random missing piece instead of the rarest (Mini-Torrent's way)",
    );
    opts.optopt(
        "",
        "timeout",
        "seconds a peer may stall before it is given up (default 10)",
        "SECS",
    );
    opts.optopt(
        "",
        "piece-size",
        "piece size for files this peer shares (power of two, default 256 KiB and up)",
        "BYTES",
    );
    opts.optflag(
        "",
        "whole-hash",
        "also check the whole file's SHA-1 before publishing (a second pass over the file)",
    );
    opts.optflag("", "trace", "print every protocol line to stderr");
}

fn peer_config(m: &Matches, label: &str) -> Result<PeerConfig, Fail> {
    let dir: PathBuf = m
        .opt_str("dir")
        .ok_or_else(|| {
            usage("--dir DIR is required: the folder this peer shares and downloads into")
        })?
        .into();
    let tracker = tracker_address(m)?;
    let mut config = PeerConfig::new(&tracker, &dir);
    config.timeouts = Timeouts::uniform(seconds(m, "timeout", 10.0)?);
    config.download.timeouts = config.timeouts;
    config.download.workers = number(m, "workers", 8usize)?;
    if config.download.workers == 0 {
        return Err(usage("--workers must be at least 1"));
    }
    config.download.whole_file_check = m.opt_present("whole-hash");
    if m.opt_present("random") {
        config.download.strategy = Strategy::Random;
    }
    if let Some(size) = m.opt_str("piece-size") {
        let size: u32 = size
            .parse()
            .ok()
            .filter(|s: &u32| s.is_power_of_two() && (1024..=1 << 26).contains(s))
            .ok_or_else(|| {
                usage(format!(
                    "--piece-size {size:?} must be a power of two from 1024 to 67108864"
                ))
            })?;
        config.piece_size = Some(size);
    }
    config.trace = trace(m, label);
    config.download.trace = config.trace.clone();
    config.label = label.to_string();
    Ok(config)
}

fn peer(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    peer_options(&mut opts);
    opts.optflag(
        "",
        "shell",
        "read commands from stdin (a terminal or a pipe); without it the peer only serves",
    );
    let Some(m) = parse(
        &mut opts,
        args,
        "usage: torrentphile peer --dir DIR [options]",
    )?
    else {
        return Ok(());
    };
    no_free_args(&m, "peer")?;
    // Check every option before binding, so a usage error never leaves a port taken.
    peer_config(&m, "peer")?;
    let listener = bind(&m, 0)?;
    let port = listener.local_addr().map_or(0, |a| a.port());
    let config = peer_config(&m, &format!("peer {port}"))?;
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    println!("listening on {}", peer.addr());
    let _ = std::io::stdout().flush();
    if m.opt_present("shell") {
        // A shell started with `&` must not be stopped by the terminal: reading then fails
        // and the shell says so, and the peer goes on serving.
        signal::ignore_tty_input_stop();
        println!("type help for commands");
        if shell::run(&peer) == shell::Ended::Quit {
            return Ok(());
        }
    } else if std::io::stdin().is_terminal() {
        println!("serving (no prompt: start the peer with --shell for one); Ctrl-C stops it");
        let _ = std::io::stdout().flush();
    }
    loop {
        thread::park();
    }
}

fn get(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    peer_options(&mut opts);
    let brief = "usage: torrentphile get NAME --dir DIR [--tracker HOST:PORT] [options]";
    let Some(m) = parse(&mut opts, args, brief)? else {
        return Ok(());
    };
    let name = match m.free.as_slice() {
        [name] => name,
        [] => {
            return Err(usage(format!(
                "get needs the name of the file to download\n\n{}",
                opts.usage(brief)
            )));
        }
        [_, extra, ..] => {
            return Err(usage(format!(
                "get takes one file name; {extra:?} is one too many (run one get per file)"
            )));
        }
    };
    let config = peer_config(&m, "get")?;
    let listener = bind(&m, 0)?;
    let wait = config.timeouts.idle;
    let dir = config.dir.clone();
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    peer.wait_registered(wait).map_err(|e| Fail(e, 1))?;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peer, done, name) = (peer.clone(), done.clone(), name.clone());
        let terminal = std::io::stderr().is_terminal();
        signal::catch_interrupt();
        thread::spawn(move || watch_get(&peer, &done, &name, &dir, terminal))
    };
    let result = peer.download(name);
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    match result {
        Ok(report) => {
            println!("downloaded {report}");
            Ok(())
        }
        Err(DownloadError::NotFound(msg)) => Err(Fail(format!("{name}: not found: {msg}"), 1)),
        Err(DownloadError::Failed(msg)) => Err(Fail(format!("{name}: download failed: {msg}"), 1)),
    }
}

/// While `get` runs: draw the progress line on a terminal, and on Ctrl-C end that line, say
/// what is kept for a resume, and exit 130 (the verified pieces are already on disk).
fn watch_get(peer: &Peer, done: &AtomicBool, name: &str, dir: &std::path::Path, terminal: bool) {
    let mut drawn = false;
    let mut tick = 0u32;
    while !done.load(Ordering::Relaxed) {
        let progress = peer.downloads().into_iter().find(|p| p.name == name);
        if signal::interrupted() {
            if drawn {
                eprint!("\r\x1b[K");
            }
            let at = progress.map_or_else(|| name.to_string(), |p| p.line());
            eprintln!(
                "torrentphile: get interrupted at {at}; the verified pieces are kept in {}: run the same get to resume",
                dir.join(".torrentphile").display()
            );
            std::process::exit(130);
        }
        if terminal
            && tick.is_multiple_of(5)
            && let Some(p) = progress
        {
            eprint!("\r\x1b[K{}", p.line());
            drawn = true;
        }
        tick = tick.wrapping_add(1);
        thread::sleep(Duration::from_millis(50));
    }
    if drawn {
        eprint!("\r\x1b[K");
    }
}

fn relay(args: &[String]) -> Result<(), Fail> {
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
    let _relay = torrentphile::relay::Relay::start(listener, &to, delay)
        .map_err(|e| Fail(format!("cannot relay to {to}: {e}"), 1))?;
    loop {
        thread::park();
    }
}

fn simulate(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "scenario",
        "classic (the first seed's run) or swarm (default classic)",
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
    opts.optflag("", "quiet", "classic: do not print the protocol lines");
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
        Some(other) => {
            return Err(usage(format!(
                "unknown scenario {other:?}: use classic or swarm"
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
    println!("{summary}");
    Ok(())
}
