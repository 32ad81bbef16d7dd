//! Simulations on this machine: a tracker and several peers in one process, each on its own
//! loopback port and folder, standing for separate machines.
//!
//! - `Classic` replays the first seed's run: peer 10000 shares `test1.txt` and `test3.txt`,
//!   10001 asks for `test2.txt` (which nobody has), 10002, 10003 and 10004 download; every
//!   protocol line is narrated, and the final folders are checked byte for byte.
//! - `Swarm` starts one seeder and many downloaders of a large random file at once and reports
//!   who fed whom, how much the seeder uploaded, and every copy's SHA-1.
//! - `Groups` tells Mini-Torrent's story of users and groups (`sim/groups.rs`).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::conn::Trace;
use crate::peer::download::DownloadError;
use crate::peer::{Peer, PeerConfig};
use crate::tracker::{Tracker, TrackerConfig};
use crate::util::Rng;

mod failover;
mod groups;
mod swarm;

pub use swarm::{SwarmResult, swarm_run};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    Classic,
    Swarm,
    /// Users, a group, a member's download, a stranger refused, logout and login.
    Groups,
    Failover,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Peers' folders go here (`ROOT/10000` ...).
    pub root: PathBuf,
    /// 0 picks a free port.
    pub tracker_port: u16,
    /// First peer's port; 0 picks free ports (folders are still named 10000 ...).
    pub base_port: u16,
    pub size_mib: u64,
    pub downloaders: usize,
    pub narrate: bool,
    /// Swarm: downloaders pick random pieces (Mini-Torrent's way) instead of rarest first.
    pub random: bool,
}

/// Run a scenario; returns its one-line result.
pub fn run(scenario: Scenario, config: &SimConfig) -> Result<String, String> {
    match scenario {
        Scenario::Classic => classic(config),
        Scenario::Swarm => swarm::scenario(config),
        Scenario::Groups => groups::run(config),
        Scenario::Failover => failover::run(config),
    }
}

fn listen(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        format!("cannot listen on 127.0.0.1:{port}: {e} (is another simulation running? pass other ports)")
    })
}

/// The file that marks a folder as made by a simulation. A later run clears such a folder; a
/// folder without it (a user's own `/tmp/10000`) is never touched.
pub const SIM_MARK: &str = ".torrentphile-sim";

/// A clean, empty folder for a simulated peer: made now, or left by an earlier simulation.
/// A folder with anything else in it is refused with a message, never deleted.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        let ours = dir.join(SIM_MARK).is_file();
        let empty = fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none());
        if !ours && !empty {
            return Err(format!(
                "{} already exists and was not made by a simulation, so it is left alone; \
                 move it away, or give the simulation another folder (--root DIR, or make sim SIM_ROOT=DIR)",
                dir.display()
            ));
        }
        if ours {
            fs::remove_dir_all(dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
        }
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mark = dir.join(SIM_MARK);
    fs::write(
        &mark,
        "made by `torrentphile sim`; the next simulation clears this folder\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", mark.display()))
}

/// Visible files in a folder, sorted.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn start_tracker(port: u16) -> Result<Tracker, String> {
    // Every peer of a simulation is this machine, 127.0.0.1: no per-address caps.
    Tracker::start(listen(port)?, TrackerConfig::one_host()).map_err(|e| format!("tracker: {e}"))
}

fn start_peer(
    tracker: &str,
    dir: &Path,
    port: u16,
    label: &str,
    trace: bool,
) -> Result<Peer, String> {
    start_peer_with(tracker, dir, port, label, trace, false)
}

fn start_peer_with(
    tracker: &str,
    dir: &Path,
    port: u16,
    label: &str,
    trace: bool,
    random: bool,
) -> Result<Peer, String> {
    let mut config = PeerConfig::new(tracker, dir);
    config.label = label.to_string();
    // Every downloader of a simulation is 127.0.0.1: no per-address cap.
    config.max_conns_per_addr = config.max_conns;
    if random {
        config.download.strategy = crate::peer::picker::Strategy::Random;
    }
    if trace {
        config.trace = Trace::on(label);
        config.download.trace = config.trace.clone();
    }
    let peer = Peer::start(listen(port)?, config)?;
    peer.wait_registered(Duration::from_secs(10))?;
    Ok(peer)
}

fn classic(config: &SimConfig) -> Result<String, String> {
    let say = |text: &str| {
        if config.narrate {
            crate::util::say(text);
        }
    };
    Trace::to_stdout(config.narrate);
    let started = Instant::now();
    let tracker = start_tracker(config.tracker_port)?;
    let tracker_addr = tracker.addr().to_string();
    say(&format!("== tracker listening on {tracker_addr}"));
    let labels: Vec<String> = (0..5u16)
        .map(|i| {
            (if config.base_port == 0 {
                10000
            } else {
                config.base_port
            } + i)
                .to_string()
        })
        .collect();
    let mut peers = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let dir = config.root.join(label);
        fresh_dir(&dir)?;
        let port = if config.base_port == 0 {
            0
        } else {
            config.base_port + i as u16
        };
        say(&format!(
            "== peer {label} starts with folder {} and registers",
            dir.display()
        ));
        peers.push(start_peer(
            &tracker_addr,
            &dir,
            port,
            label,
            config.narrate,
        )?);
    }
    let originals = [
        ("test1.txt", format!("test1.txt from peer {}\n", labels[0])),
        ("test3.txt", format!("test3.txt from peer {}\n", labels[0])),
    ];
    for (name, text) in &originals {
        let path = config.root.join(&labels[0]).join(name);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        say(&format!(
            "== peer {} creates {name} and uploads it",
            labels[0]
        ));
        peers[0].share(&path)?;
    }
    let get = |who: usize, name: &str| -> Result<(), String> {
        say(&format!("== peer {} downloads {name}", labels[who]));
        match peers[who].download(name) {
            Ok(report) => {
                say(&format!("== peer {} has {report}", labels[who]));
                Ok(())
            }
            Err(DownloadError::NotFound(msg)) => {
                say(&format!(
                    "== peer {}: {name} not found ({msg})",
                    labels[who]
                ));
                Ok(())
            }
            Err(e) => Err(format!("peer {}: get {name}: {e}", labels[who])),
        }
    };
    get(1, "test2.txt")?;
    get(2, "test1.txt")?;
    get(3, "test3.txt")?;
    get(4, "test1.txt")?;
    get(4, "test3.txt")?;
    drop(peers);
    drop(tracker);
    Trace::to_stdout(false);

    // The result: the tree, and every copy byte-identical to the original.
    say(&format!("== {}", config.root.display()));
    let mut summary = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let dir = config.root.join(label);
        let names = files_in(&dir);
        let branch = if i + 1 == labels.len() {
            "└──"
        } else {
            "├──"
        };
        say(&format!("{branch} {label}"));
        for (j, name) in names.iter().enumerate() {
            let stem = if i + 1 == labels.len() {
                "    "
            } else {
                "│   "
            };
            let leaf = if j + 1 == names.len() {
                "└──"
            } else {
                "├──"
            };
            say(&format!("{stem}{leaf} {name}"));
            let original = originals
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| format!("{} holds an unexpected file {name}", dir.display()))?;
            let copy = fs::read(dir.join(name))
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))?;
            if copy != original.1.as_bytes() {
                return Err(format!(
                    "{} differs from the original",
                    dir.join(name).display()
                ));
            }
        }
        let list = if names.is_empty() {
            "(empty)".to_string()
        } else {
            names.join(" ")
        };
        summary.push(format!("{label}: {list}"));
    }
    say(&format!(
        "== every copy is byte-identical to the original; {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(summary.join(" | "))
}

/// Write `size` pseudo-random bytes (seeded, so runs are comparable).
pub fn write_random(path: &Path, size: u64, seed: u64) -> Result<(), String> {
    use std::io::Write;
    let mut file =
        fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        left -= n as u64;
    }
    Ok(())
}

/// SHA-1 of a file, as `sha1sum` prints it.
pub fn sha1_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut file = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sha = crate::sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    Ok(sha.digest().to_string())
}
