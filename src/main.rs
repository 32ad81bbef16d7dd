//! The `torrentphile` command: parse the command line, start the right thing. No logic here.

use std::io::{IsTerminal, Write};
use std::net::TcpListener;
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

`torrentphile <command> --help` shows the options of each.";

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
    let listener = bind(&m, 8000)?;
    let config = TrackerConfig {
        max_conns: number(&m, "max-conns", 10_000)?,
        idle: Duration::from_secs_f64(number(&m, "timeout", 30.0f64)?.max(0.3)),
        trace: trace(&m, "tracker"),
    };
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
    let tracker = m
        .opt_str("tracker")
        .unwrap_or_else(|| "127.0.0.1:8000".into());
    let mut config = PeerConfig::new(&tracker, &dir);
    let secs: f64 = number(m, "timeout", 10.0)?;
    config.timeouts = Timeouts::uniform(Duration::from_secs_f64(secs.max(0.1)));
    config.download.timeouts = config.timeouts;
    config.download.workers = number(m, "workers", 8usize)?.max(1);
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
        "read commands from stdin even when it is not a terminal",
    );
    let Some(m) = parse(
        &mut opts,
        args,
        "usage: torrentphile peer --dir DIR [options]",
    )?
    else {
        return Ok(());
    };
    let listener = bind(&m, 0)?;
    let port = listener.local_addr().map_or(0, |a| a.port());
    let config = peer_config(&m, &format!("peer {port}"))?;
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    println!("listening on {}", peer.addr());
    let _ = std::io::stdout().flush();
    if std::io::stdin().is_terminal() || m.opt_present("shell") {
        println!("type help for commands");
        shell::run(&peer);
        return Ok(());
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
    let [name] = m.free.as_slice() else {
        return Err(usage(format!(
            "get takes one file name\n\n{}",
            opts.usage(brief)
        )));
    };
    let listener = bind(&m, 0)?;
    let config = peer_config(&m, "get")?;
    let wait = config.timeouts.idle;
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    peer.wait_registered(wait).map_err(|e| Fail(e, 1))?;
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::io::stderr().is_terminal().then(|| {
        let (peer, done, name) = (peer.clone(), done.clone(), name.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(p) = peer.downloads().into_iter().find(|p| p.name == name) {
                    eprint!("\r\x1b[K{}", p.line());
                }
                thread::sleep(Duration::from_millis(250));
            }
            eprint!("\r\x1b[K");
        })
    });
    let result = peer.download(name);
    done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    match result {
        Ok(report) => {
            println!("downloaded {report}");
            Ok(())
        }
        Err(DownloadError::NotFound(msg)) => Err(Fail(format!("{name}: not found: {msg}"), 1)),
        Err(DownloadError::Failed(msg)) => Err(Fail(format!("{name}: download failed: {msg}"), 1)),
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
    let to = m
        .opt_str("to")
        .ok_or_else(|| usage("--to HOST:PORT is required"))?;
    let delay = Duration::from_secs_f64(number(&m, "delay", 25.0f64)?.max(0.0) / 1000.0);
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
    let Some(m) = parse(&mut opts, args, "usage: torrentphile sim [options]")? else {
        return Ok(());
    };
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
    };
    let summary = sim::run(scenario, &config).map_err(|e| Fail(e, 1))?;
    println!("{summary}");
    Ok(())
}
