//! `torrentphile peer` and `torrentphile get`: the options they share, the peer's start (with
//! or without its shell), and `get`'s progress line and clean Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use getopts::{Matches, Options};

use super::{Fail, bind, no_free_args, number, parse, seconds, trace, tracker_address, usage};
use crate::conn::Timeouts;
use crate::peer::download::{DownloadError, ProgressStyle};
use crate::peer::picker::Strategy;
use crate::peer::{Peer, PeerConfig, shell};
use crate::signal;

/// Options shared by `peer` and `get`.
pub(super) fn peer_options(opts: &mut Options) {
    opts.optmulti(
        "",
        "tracker",
        "a tracker's address (default 127.0.0.1:8000); repeat it for a cluster",
        "HOST:PORT",
    );
    opts.optopt(
        "",
        "trackers",
        "a file of trackers, one HOST:PORT a line (or Mini-Torrent's tracker_info.txt)",
        "FILE",
    );
    opts.optopt(
        "",
        "advertise",
        "the IP address other hosts reach this peer at, as the tracker should list it (when its connection to the tracker comes from another, e.g. loopback)",
        "HOST",
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

pub(super) fn peer_config(m: &Matches, label: &str) -> Result<PeerConfig, Fail> {
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
    if let Some(host) = m.opt_str("advertise") {
        config.advertise = Some(host.parse().map_err(|_| {
            usage(format!(
                "--advertise {host:?} must be an IP address (like 192.168.1.20), the one other hosts reach this peer at"
            ))
        })?);
    }
    config.trace = trace(m, label);
    config.download.trace = config.trace.clone();
    config.label = label.to_string();
    Ok(config)
}

pub(super) fn peer(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    peer_options(&mut opts);
    opts.optflag(
        "",
        "shell",
        "read commands from stdin (a terminal or a pipe); without it the peer only serves",
    );
    opts.optmulti(
        "",
        "torrent",
        "seed what this .torrent describes, from the data beside it (repeatable)",
        "FILE",
    );
    super::accounts::options(&mut opts, false);
    let Some(m) = parse(
        &mut opts,
        args,
        "usage: torrentphile peer --dir DIR [--torrent FILE]... [options]",
    )?
    else {
        return Ok(());
    };
    no_free_args(&m, "peer")?;
    // Check every option before binding, so a usage error never leaves a port taken.
    peer_config(&m, "peer")?;
    let login = super::accounts::credentials(&m)?;
    let listener = bind(&m, 0)?;
    let port = listener.local_addr().map_or(0, |a| a.port());
    let config = peer_config(&m, &format!("peer {port}"))?;
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    println!("listening on {}", peer.addr());
    if let Some(standby) = peer.standby() {
        eprintln!(
            "peer {port}: standby tracker on {} (the interim tracker if every tracker is gone and the peers elect this one)",
            standby.addr()
        );
    }
    if let Some((user, password)) = login {
        peer.wait_registered(peer_wait(&m)?)
            .map_err(|e| Fail(format!("cannot log in as {user}: {e}"), 1))?;
        super::accounts::login(&peer, &user, &password)?;
    }
    let torrents = m.opt_strs("torrent");
    if !torrents.is_empty() {
        let _ = peer.wait_registered(peer_wait(&m)?);
        super::torrent_get::seed_at_start(&peer, &torrents)?;
    }
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

/// How long `peer --torrent` waits for the tracker before seeding (the link announces later
/// if it is not up yet).
fn peer_wait(m: &Matches) -> Result<Duration, Fail> {
    seconds(m, "timeout", 10.0)
}

pub(super) fn get(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    peer_options(&mut opts);
    opts.optopt(
        "",
        "torrent",
        "download what this .torrent describes (no NAME then); the tracker defaults to its announce URL's host:port",
        "FILE",
    );
    super::accounts::options(&mut opts, true);
    let brief = "usage: torrentphile get NAME --dir DIR [--tracker HOST:PORT] [options]\n       torrentphile get NAME --group G --user U --password-file F --dir DIR [--out PATH]\n       torrentphile get --torrent FILE --dir DIR [options]";
    let Some(m) = parse(&mut opts, args, brief)? else {
        return Ok(());
    };
    if let Some(torrent) = m.opt_str("torrent") {
        return super::torrent_get::get_torrent(&m, &torrent);
    }
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
    let mut config = peer_config(&m, "get")?;
    // A one-shot download is no candidate for an interim tracker (it may leave any moment).
    config.standby = false;
    let login = super::accounts::credentials(&m)?;
    if let (Some(group), Some((user, password))) = (m.opt_str("group"), &login) {
        let listener = bind(&m, 0)?;
        let wait = config.timeouts.idle;
        let peer = Peer::start(listener, config).map_err(|e| Fail(e, 1))?;
        peer.wait_registered(wait).map_err(|e| Fail(e, 1))?;
        let out = m.opt_str("out").map(PathBuf::from);
        return super::accounts::group_get(&peer, (user, password), &group, name, out.as_deref());
    }
    if m.opt_present("out") {
        return Err(usage(
            "--out goes with --group (a public get saves into --dir)",
        ));
    }
    // On a terminal we draw one `\r` line; in a pipe or a log the download says a line every
    // few seconds, so a stalled `get` is never silent.
    config.download.progress = if std::io::stderr().is_terminal() {
        ProgressStyle::Terminal
    } else {
        ProgressStyle::Lines
    };
    let listener = bind(&m, 0)?;
    // Each tracker of a list may cost a connect timeout before the one that leads answers.
    let trackers = config.tracker.split(',').count().max(1) as u32;
    let wait = config.timeouts.idle * (trackers + u32::from(trackers > 1));
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
        Ok(report) if report.already_here => {
            println!("{report}");
            Ok(())
        }
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
pub(super) fn watch_get(peer: &Peer, done: &AtomicBool, name: &str, dir: &Path, terminal: bool) {
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
