//! Helpers shared by the end-to-end tests: servers on 127.0.0.1:0 in fresh temp folders, the
//! one raw protocol client (`client`), the one hand-written misbehaving peer (`fake_peer`), a
//! server process of our own, and file helpers. Nothing here asserts what a server should
//! answer: that is the tests' job.
#![allow(dead_code)]

pub mod aria2;
mod client;
mod fake_peer;

#[allow(unused_imports)]
pub use aria2::{Aria2, have_aria2c};
#[allow(unused_imports)]
pub use client::{Client, HANG, connect_stream};
#[allow(unused_imports)]
pub use fake_peer::{Behaviour, FakePeer};

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use torrentphile::conn::Timeouts;
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::tracker::{Tracker, TrackerConfig};

/// A fresh, empty folder for one test. A test's folder stays after it (to be looked at when it
/// failed) until a later test process starts: the first call in a process removes the folders
/// of processes that have ended, so repeated runs do not fill the disk (thousands of runs of
/// the swarm test once left 16 GB in /tmp).
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(sweep_ended_processes_folders);
    let dir = std::env::temp_dir().join(format!(
        "torrentphile-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Remove `torrentphile-test-<tag>-<pid>-<n>` folders whose process has ended.
fn sweep_ended_processes_folders() {
    let root = std::env::temp_dir();
    let Ok(entries) = fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("torrentphile-test-"))
        else {
            continue;
        };
        // The pid is the second number from the end (a tag may contain dashes).
        let mut fields = rest.rsplit('-');
        let (_, pid) = (fields.next(), fields.next());
        let Some(pid) = pid.and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Is `pid` a live process? (/proc/<n> also answers for a thread of another process, so its
/// thread group must be itself.)
fn process_alive(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| {
        l.strip_prefix("Tgid:")
            .is_some_and(|t| t.trim() == pid.to_string())
    })
}

pub fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

pub fn tracker() -> Tracker {
    tracker_with(TrackerConfig::default())
}

pub fn tracker_with(config: TrackerConfig) -> Tracker {
    Tracker::start(listener(), config).unwrap()
}

/// Short timeouts so a failing peer costs a test seconds, not minutes.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(3);

pub fn peer(tracker: &Tracker, dir: &Path) -> Peer {
    peer_with(tracker, dir, |_| {})
}

/// A peer on port 0 serving `dir`, registered before this returns.
pub fn peer_with(tracker: &Tracker, dir: &Path, tune: impl FnOnce(&mut PeerConfig)) -> Peer {
    let mut config = PeerConfig::new(&tracker.addr().to_string(), dir);
    config.timeouts = Timeouts::uniform(TEST_TIMEOUT);
    config.download.timeouts = config.timeouts;
    tune(&mut config);
    let peer = Peer::start(listener(), config).unwrap();
    peer.wait_registered(Duration::from_secs(10)).unwrap();
    peer
}

/// Write `size` seeded pseudo-random bytes; returns their SHA-1.
pub fn random_file(path: &Path, size: u64, seed: u64) -> String {
    torrentphile::sim::write_random(path, size, seed).unwrap();
    sha1_file(path)
}

pub fn sha1_file(path: &Path) -> String {
    torrentphile::sim::sha1_file(path).unwrap()
}

/// Names of the visible files in a folder, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Poll an observable condition until it holds (bounded). For state that changes in another
/// process or thread with no event to wait on, such as the tracker noticing a closed socket.
pub fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The holders the tracker lists for `name` (empty when none).
pub fn who_has(tracker: &Tracker, name: &str) -> Vec<String> {
    let reply = Client::connect(tracker.addr()).ask(&format!("WHOHAS {name}"));
    match reply.strip_prefix("PEERS") {
        Some(rest) => rest.split_whitespace().map(String::from).collect(),
        None => Vec::new(),
    }
}

/// A server process of our own, killed when dropped.
pub struct Process {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Process {
    /// Start the `torrentphile` binary with `args` and wait for its `listening on` line.
    pub fn start(args: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        let addr = ready
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{args:?} printed {ready:?}"))
            .parse()
            .unwrap();
        Process { child, addr }
    }

    /// A field of /proc/<pid>/status, in KiB.
    pub fn kib(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.child.id()))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
