//! Helpers every case shares: readings from /proc, `df` and `PATH`; a temp folder and a child
//! process that clean up when dropped; in-process trackers and peers; random files whose
//! hashes are cached for the peers that share them; a timed fresh download. Measures nothing
//! itself.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::{MB, MIB, Res};
use torrentphile::peer::store::{self, Store};
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::protocol::{Digest, Meta, default_piece_size};
use torrentphile::sim::write_random;
use torrentphile::tracker::{Tracker, TrackerConfig};

/// The standard output of `cmd args`, or nothing if it could not run.
pub fn run_text(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().map(|o| o.stdout);
    String::from_utf8_lossy(&out.unwrap_or_default()).into_owned()
}

/// A `kB` field of a /proc status-like file (`VmRSS`, `VmHWM`, `MemTotal`; `Threads` as is).
pub fn proc_kib(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `kB` field of `/proc/<pid>/status`.
pub fn pid_kib(pid: u32, field: &str) -> Option<u64> {
    proc_kib(&format!("/proc/{pid}/status"), field)
}

/// The soft limit on open files of this process.
pub fn fd_limit() -> usize {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files"));
    let soft = line.and_then(|l| l.split_whitespace().nth(3));
    soft.map_or(1024, |v| v.parse().unwrap_or(usize::MAX))
}

/// Bytes free on the file system holding `path` (`df -Pk`: the 4th field of the 2nd line).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let out = run_text("df", &["-Pk", &path.to_string_lossy()]);
    let kib: u64 = out
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Whether `program` is on the `PATH`.
pub fn which(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).is_file())
}

/// Seconds since `t`.
pub fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// `bytes` in `secs` seconds, in MB/s.
pub fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / MB
}

/// A folder removed when dropped (multi-GiB files must not outlive their case).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// An empty folder at `path` (whatever was there is removed).
    pub fn new(path: PathBuf) -> Res<TempDir> {
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait for a child, killing it after `limit`; `poll` gets its pid every 20 ms meanwhile.
pub fn wait_bounded(child: &mut Child, limit: Duration, mut poll: impl FnMut(u32)) -> Res<()> {
    let t = Instant::now();
    while t.elapsed() < limit {
        match child.try_wait()? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => return Err(format!("child {} exited: {status}", child.id()).into()),
            None => poll(child.id()),
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("a child process took longer than {limit:?}; killed").into())
}

/// An in-process tracker on a free loopback port.
pub fn start_tracker() -> Res<Tracker> {
    let idle = Duration::from_secs(300); // outlasts every case: no heartbeat needed
    let config = TrackerConfig {
        idle,
        ..TrackerConfig::one_host()
    };
    Ok(Tracker::start(TcpListener::bind("127.0.0.1:0")?, config)?)
}

/// A peer on `dir`, registered with `tracker`.
pub fn start_peer(tracker: SocketAddr, dir: &Path) -> Res<Peer> {
    start_peer_with(tracker, dir, false)
}

/// A peer on `dir`; with `unverified`, its downloads skip hashing (the bench-only baseline).
pub fn start_peer_with(tracker: SocketAddr, dir: &Path, unverified: bool) -> Res<Peer> {
    fs::create_dir_all(dir)?;
    let mut config = PeerConfig::new(&tracker.to_string(), dir);
    config.download.unverified_bench_only = unverified;
    let peer = Peer::start(TcpListener::bind("127.0.0.1:0")?, config)?;
    peer.wait_registered(Duration::from_secs(10))?;
    Ok(peer)
}

/// Write a random file of `size` bytes into `dir` and hash it once.
pub fn random_file(dir: &Path, name: &str, size: u64) -> Res<(PathBuf, Meta, Vec<Digest>)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    write_random(&path, size, 1)?;
    let (meta, hashes) = store::hash_file(&path, name, default_piece_size(size))?;
    holder_dir(dir, &path, &meta, &hashes)?;
    Ok((path, meta, hashes))
}

/// Put `file` into `dir` (a hard link) with the store's hash cache already filled, so a peer
/// started on `dir` shares it at once instead of hashing it again.
pub fn holder_dir(dir: &Path, file: &Path, meta: &Meta, hashes: &[Digest]) -> Res<()> {
    fs::create_dir_all(dir)?;
    let dest = dir.join(&meta.name);
    if dest != file {
        fs::hard_link(file, &dest)?;
    }
    let modified = fs::metadata(&dest)?.modified()?;
    let mtime = modified.duration_since(UNIX_EPOCH)?.as_nanos();
    Ok(Store::open(dir, None)?.save_meta(meta, mtime, hashes)?)
}

/// A fresh downloader in `dir` fetches `name`, verified: seconds, and MiB by holder.
pub fn timed_download(tracker: SocketAddr, dir: &Path, name: &str) -> Res<(f64, String)> {
    timed_download_with(tracker, dir, name, false)
}

/// `timed_download`, or with `unverified` the same transfer with hashing switched off.
pub fn timed_download_with(
    tracker: SocketAddr,
    dir: &Path,
    name: &str,
    unverified: bool,
) -> Res<(f64, String)> {
    let peer = start_peer_with(tracker, dir, unverified)?;
    let t = Instant::now();
    let report = peer
        .download(name)
        .map_err(|e| format!("download {name}: {e}"))?;
    let took = secs(t);
    let from = report
        .from
        .iter()
        .map(|(who, (_, b))| format!("{who} {}", b / MIB));
    let from = from.collect::<Vec<_>>().join(", ");
    drop(peer);
    let _ = fs::remove_dir_all(dir);
    Ok((took, from))
}
