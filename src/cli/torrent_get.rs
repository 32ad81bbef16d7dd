//! The command line of .torrent downloads and seeds:
//!
//! - `torrentphile get --torrent FILE --dir DIR`: download what FILE describes into DIR;
//! - `torrentphile download -o DEST FILE.torrent`: the same, in the seed project's words;
//! - `torrentphile peer --torrent FILE` (repeatable): seed FILE's data at start
//!   (`seed_at_start`, called by `peer`).
//!
//! The tracker is `--tracker`, or else the host and port of the .torrent's announce URL, or
//! else 127.0.0.1:8000. No logic of the download lives here.

use std::io::{IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use getopts::{Matches, Options};

use super::peer::{peer_config, peer_options, watch_get};
use super::{Fail, bind, parse, usage};
use crate::peer::download::{DownloadError, ProgressStyle, landing};
use crate::peer::{Peer, PeerConfig};
use crate::signal;
use crate::torrent::Metainfo;
use crate::torrent::cli::load_torrent;
use crate::torrent::wire::announce_address;

/// The .torrent at `path`, or a failure naming it.
fn read(path: &str) -> Result<Metainfo, Fail> {
    load_torrent(Path::new(path)).map_err(|e| Fail(e, 1))
}

/// `--tracker` if given (already checked by `peer_config`), else the announce URL's
/// `host:port`, checked here.
fn pick_tracker(m: &Matches, t: &Metainfo, config: &mut PeerConfig) -> Result<(), Fail> {
    if m.opt_present("tracker") {
        return Ok(());
    }
    if let Some(addr) = announce_address(t) {
        match addr.to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(_)) => config.tracker = addr,
            _ => {
                return Err(usage(format!(
                    "the .torrent announces to {addr}, which does not resolve; give the tracker with --tracker HOST:PORT"
                )));
            }
        }
    }
    Ok(())
}

/// `get --torrent FILE` (called by `get` when `--torrent` is given).
pub(super) fn get_torrent(m: &Matches, torrent: &str) -> Result<(), Fail> {
    if let Some(word) = m.free.first() {
        return Err(usage(format!(
            "get --torrent FILE takes no file name ({word:?}): the .torrent says what to download"
        )));
    }
    let t = read(torrent)?;
    let config = peer_config(m, "get")?;
    run_download(m, &t, config)
}

/// `torrentphile download -o DEST FILE.torrent`.
pub(super) fn download(args: &[String]) -> Result<(), Fail> {
    let mut opts = Options::new();
    peer_options(&mut opts);
    opts.optopt(
        "o",
        "output",
        "the folder to download into (the same as --dir)",
        "DEST",
    );
    let brief = "usage: torrentphile download -o DEST FILE.torrent [--tracker HOST:PORT] [options]";
    let Some(mut m) = parse(&mut opts, args, brief)? else {
        return Ok(());
    };
    let torrent = match m.free.as_slice() {
        [t] => t.clone(),
        [] => {
            return Err(usage(format!(
                "download needs a .torrent file\n\n{}",
                opts.usage(brief)
            )));
        }
        [_, extra, ..] => {
            return Err(usage(format!(
                "download takes one .torrent; {extra:?} is one too many"
            )));
        }
    };
    let dest = match (m.opt_str("output"), m.opt_str("dir")) {
        (Some(o), Some(d)) if o != d => {
            return Err(usage("give the destination once: -o DEST or --dir DIR"));
        }
        (Some(o), None) => Some(o),
        (_, Some(_)) => None,
        (None, None) => {
            return Err(usage(format!(
                "-o DEST is required\n\n{}",
                opts.usage(brief)
            )));
        }
    };
    if let Some(dest) = dest {
        // `-o DEST` is `--dir DEST`: parse again with it, so every check is `peer_config`'s.
        let mut again = args.to_vec();
        again.extend(["--dir".to_string(), dest]);
        m = opts.parse(&again).map_err(|e| usage(e.to_string()))?;
    }
    let t = read(&torrent)?;
    let config = peer_config(&m, "download")?;
    run_download(&m, &t, config)
}

fn run_download(m: &Matches, t: &Metainfo, mut config: PeerConfig) -> Result<(), Fail> {
    pick_tracker(m, t, &mut config)?;
    config.download.progress = if std::io::stderr().is_terminal() {
        ProgressStyle::Terminal
    } else {
        ProgressStyle::Lines
    };
    let listener = bind(m, 0)?;
    let wait = config.timeouts.idle;
    let dir = config.dir.clone();
    let peer = Arc::new(Peer::start(listener, config).map_err(|e| Fail(e, 1))?);
    peer.wait_registered(wait).map_err(|e| Fail(e, 1))?;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peer, done, name, dir) = (peer.clone(), done.clone(), t.name.clone(), dir.clone());
        let terminal = std::io::stderr().is_terminal();
        signal::catch_interrupt();
        thread::spawn(move || watch_get(&peer, &done, &name, &dir, terminal))
    };
    let result = peer.download_torrent(t);
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let place = dir.join(&t.name);
    match result {
        Ok(report) if report.already_here => {
            println!(
                "{} is already in {}, every piece verified against the .torrent; seeded as {}",
                t.name,
                place.display(),
                report.meta.name
            );
            Ok(())
        }
        Ok(report) => {
            let files = landing(t, &dir).len();
            println!(
                "downloaded {} into {} ({} file{}, every piece checked against the .torrent): {report}",
                t.name,
                place.display(),
                files,
                if files == 1 { "" } else { "s" }
            );
            Ok(())
        }
        Err(DownloadError::NotFound(msg)) => Err(Fail(format!("{}: not found: {msg}", t.name), 1)),
        Err(DownloadError::Failed(msg)) => {
            Err(Fail(format!("{}: download failed: {msg}", t.name), 1))
        }
    }
}

/// `peer --torrent FILE ...`: seed each .torrent's data (checked piece by piece first).
pub(super) fn seed_at_start(peer: &Peer, torrents: &[String]) -> Result<(), Fail> {
    for path in torrents {
        let (t, meta) = peer
            .share_torrent(Path::new(path))
            .map_err(|e| Fail(format!("--torrent {path}: {e}"), 1))?;
        // `let _ =`: a closed stdout (a test that read only the first line) must not stop a
        // seed that is otherwise serving.
        let _ = writeln!(
            std::io::stdout(),
            "seeding {} as {} ({} bytes, {} pieces)",
            t.name,
            meta.name,
            meta.size,
            meta.pieces()
        );
    }
    Ok(())
}
