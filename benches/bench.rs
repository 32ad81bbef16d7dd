//! `make bench`: Torrentphile's benchmarks, std only (the crate's whole dependency tree is
//! sha1_smol and getopts, so no criterion: a small harness of our own).
//!
//! `cargo bench --bench bench` runs every case several times and prints, per figure, the
//! median, min and max, its ratio to a baseline measured in the same run, and its target; the
//! same tables go to BENCH.md. `-- --quick` runs smaller cases once and writes
//! `<target>/BENCH-quick.md` instead. Under `cargo test` (no `--bench` argument) the quick
//! version runs as a smoke test: it fails when a case breaks, never on a timing.
//!
//! Cases: 1 transfer, 2 swarm, 3 latency (through a delaying relay), 4 tracker WHOHAS rate,
//! 5 idle connections, 6 peak memory of `get`, 7 aria2c, 8 `make sim` wall time, and at the
//! end of the list the BitTorrent wire with aria2c (both ways, one tracker). All traffic
//! stays on 127.0.0.1; temporary files live under /tmp and are removed after each case.

use std::collections::BTreeSet;
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use torrentphile::peer::store::{self, Store};
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::protocol::{Digest, Meta, Request, default_piece_size};
use torrentphile::relay::Relay;
use torrentphile::sha1::{Backend, Sha1};
use torrentphile::sim::{SimConfig, sha1_file, swarm_run, write_random};
use torrentphile::tracker::{Tracker, TrackerConfig};
use torrentphile::util::Rng;

#[path = "../tests/hostile/bind.rs"]
mod bind;
#[path = "bench/hostile.rs"]
mod hostile;
#[path = "bench/tracker.rs"]
mod tracker;

const BIN: &str = env!("CARGO_BIN_EXE_torrentphile");
const MIB: u64 = 1 << 20;
const MB: f64 = 1e6;

type Res<T> = Result<T, Box<dyn Error>>;

// ==== Scale, results, report ==================================================================

/// How big each case is (the full run takes < 10 minutes on 2 cores).
struct Scale {
    quick: bool,
    runs: usize,
    transfer: u64,
    swarm_mib: u64,
    latency: u64,
    peers: usize,
    measure: Duration,
    conns: &'static [usize],
    memory: u64,
    aria2: u64,
    sim_runs: usize,
}

/// The full run's sizes, or the quick run's (`q`).
fn scale(q: bool) -> Scale {
    let pick = |quick: u64, full: u64| if q { quick } else { full };
    Scale {
        quick: q,
        runs: pick(1, 5) as usize,
        transfer: pick(64, 1024) * MIB,
        swarm_mib: pick(16, 256),
        latency: pick(32, 1024) * MIB,
        peers: pick(1_000, 10_000) as usize,
        measure: Duration::from_millis(pick(300, 2_000)),
        conns: if q {
            &[200, 1_000]
        } else {
            &[1_000, 5_000, 10_000]
        },
        memory: pick(256, 4096) * MIB,
        aria2: pick(16, 1024) * MIB,
        sim_runs: pick(1, 5) as usize,
    }
}

/// Files each registered peer announces in case 4 (10,000 peers: 100,000 files).
const FILES_PER_PEER: usize = 10;

/// One figure: its samples, and text for the baseline and target columns.
struct Row {
    label: String,
    unit: &'static str,
    samples: Vec<f64>,
    vs: String,
    target: String,
}

struct Section {
    title: &'static str,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Section {
    fn row(&mut self, label: impl Into<String>, unit: &'static str, samples: Vec<f64>) -> &mut Row {
        let (label, vs, target) = (label.into(), String::new(), String::new());
        self.rows.push(Row {
            label,
            unit,
            samples,
            vs,
            target,
        });
        self.rows.last_mut().expect("just pushed")
    }
    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// What cases share: the scale, the temp root, baselines measured by earlier cases, and the
/// goals met or not so far (the table at the top of BENCH.md).
struct Bench {
    scale: Scale,
    root: PathBuf,
    sha1_2t: Option<f64>,
    goals: Vec<String>,
}

impl Bench {
    /// Record one goal of issue 13: `figure`, its measured `value` (a ratio, or a rate), the
    /// `goal` text, and whether it was met.
    fn goal(&mut self, figure: &str, value: String, goal: &str, met: bool) {
        let state = if met { "met" } else { "not yet" };
        self.goals
            .push(format!("| {figure} | {value} | {goal} | {state} |"));
    }
}

/// The goals table: every goal, each a ratio to a baseline of the same run.
fn goals_md(b: &Bench) -> String {
    let mut md = String::from("## Goals (issue 13), this run\n\n");
    md.push_str("| figure | this run | goal | |\n|---|---:|---|---|\n");
    for line in &b.goals {
        md.push_str(line);
        md.push('\n');
    }
    md.push('\n');
    md
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

fn num(v: f64) -> String {
    match v.abs() {
        a if a >= 1000.0 => format!("{v:.0}"),
        a if a >= 100.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

fn target(text: &str, met: bool) -> String {
    format!("{text}: {}", if met { "met" } else { "not yet" })
}

/// A section as Markdown, padded so that it also reads as a table on the console.
fn section_md(n: usize, s: &Section) -> String {
    let mut md = format!("## {n}. {}\n\n", s.title);
    if !s.rows.is_empty() {
        md.push_str("| case | median | min | max | unit | vs baseline | target |\n");
        md.push_str("|---|---:|---:|---:|---|---|---|\n");
    }
    for r in &s.rows {
        let min = num(r.samples.iter().copied().fold(f64::INFINITY, f64::min));
        let max = num(r.samples.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        let (med, label, unit) = (num(median(&r.samples)), &r.label, r.unit);
        let _ = writeln!(
            md,
            "| {label:<38} | {med:>8} | {min:>8} | {max:>8} | {unit:<6} | {} | {} |",
            r.vs, r.target
        );
    }
    md.push('\n');
    for note in &s.notes {
        let _ = writeln!(md, "- {note}");
    }
    md
}

fn header(b: &Bench) -> String {
    let mode = if b.scale.quick { "quick" } else { "full" };
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name"));
    let model = model.map_or("unknown", |l| l.trim_start_matches([' ', '\t', ':']));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = proc_kib("/proc/meminfo", "MemTotal").unwrap_or(0) / 1024;
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = run_text("git", &["-C", dir, "rev-parse", "--short", "HEAD"]);
    let date = run_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    format!(
        "# Torrentphile benchmarks\n\nWritten by `benches/bench.rs` (`make bench`): the {mode} \
         run, {build} build. Each figure is the median of its runs, with min and max; ratios are \
         to baselines measured in the same run.\n\n## Machine\n\n- nproc: {}\n- CPU: {model}\n\
         - kernel: {}\n- memory: {mem} MiB\n- open files limit: {}\n- SHA-1: {}\n\
         - commit: {} (the working tree may differ)\n- date: {}\n\n",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        fd_limit(),
        torrentphile::sha1::backend(),
        git.trim(),
        date.trim()
    )
}

// ==== Small helpers ===========================================================================

fn run_text(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().map(|o| o.stdout);
    String::from_utf8_lossy(&out.unwrap_or_default()).into_owned()
}

/// A `kB` field of a /proc status-like file (`VmRSS`, `VmHWM`, `MemTotal`; `Threads` as is).
fn proc_kib(path: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn pid_kib(pid: u32, field: &str) -> Option<u64> {
    proc_kib(&format!("/proc/{pid}/status"), field)
}

/// The soft limit on open files of this process.
fn fd_limit() -> usize {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits.lines().find(|l| l.starts_with("Max open files"));
    let soft = line.and_then(|l| l.split_whitespace().nth(3));
    soft.map_or(1024, |v| v.parse().unwrap_or(usize::MAX))
}

/// Bytes free on the file system holding `path` (`df -Pk`: the 4th field of the 2nd line).
fn free_bytes(path: &Path) -> Option<u64> {
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

fn which(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).is_file())
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / MB
}

/// A folder removed when dropped (multi-GiB files must not outlive their case).
struct TempDir(PathBuf);

impl TempDir {
    fn new(path: PathBuf) -> Res<TempDir> {
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
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait for a child, killing it after `limit`; `poll` gets its pid every 20 ms meanwhile.
fn wait_bounded(child: &mut Child, limit: Duration, mut poll: impl FnMut(u32)) -> Res<()> {
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

fn start_tracker() -> Res<Tracker> {
    let idle = Duration::from_secs(300); // outlasts every case: no heartbeat needed
    let config = TrackerConfig {
        idle,
        ..TrackerConfig::one_host()
    };
    Ok(Tracker::start(TcpListener::bind("127.0.0.1:0")?, config)?)
}

fn start_peer(tracker: SocketAddr, dir: &Path) -> Res<Peer> {
    start_peer_with(tracker, dir, false)
}

/// A peer on `dir`; with `unverified`, its downloads skip hashing (the bench-only baseline).
fn start_peer_with(tracker: SocketAddr, dir: &Path, unverified: bool) -> Res<Peer> {
    fs::create_dir_all(dir)?;
    let mut config = PeerConfig::new(&tracker.to_string(), dir);
    config.download.unverified_bench_only = unverified;
    let peer = Peer::start(TcpListener::bind("127.0.0.1:0")?, config)?;
    peer.wait_registered(Duration::from_secs(10))?;
    Ok(peer)
}

/// Write a random file of `size` bytes into `dir` and hash it once.
fn random_file(dir: &Path, name: &str, size: u64) -> Res<(PathBuf, Meta, Vec<Digest>)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    write_random(&path, size, 1)?;
    let (meta, hashes) = store::hash_file(&path, name, default_piece_size(size))?;
    holder_dir(dir, &path, &meta, &hashes)?;
    Ok((path, meta, hashes))
}

/// Put `file` into `dir` (a hard link) with the store's hash cache already filled, so a peer
/// started on `dir` shares it at once instead of hashing it again.
fn holder_dir(dir: &Path, file: &Path, meta: &Meta, hashes: &[Digest]) -> Res<()> {
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
fn timed_download(tracker: SocketAddr, dir: &Path, name: &str) -> Res<(f64, String)> {
    timed_download_with(tracker, dir, name, false)
}

/// `timed_download`, or with `unverified` the same transfer with hashing switched off.
fn timed_download_with(
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

// ==== Plain TCP copies, the delaying relay ====================================================

/// An accept loop on 127.0.0.1 that ends when dropped.
struct Acceptor {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Acceptor {
    fn start(handle: impl Fn(TcpStream) + Send + 'static) -> Res<Acceptor> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (addr, stop) = (listener.local_addr()?, Arc::new(AtomicBool::new(false)));
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    _ if stop2.load(Ordering::SeqCst) => break,
                    Ok(conn) => handle(conn),
                    Err(_) => break,
                }
            }
        });
        Ok(Acceptor { addr, stop })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A delaying relay (`torrentphile::relay`) on a free port in front of `target`.
fn relay(target: SocketAddr, one_way: Duration) -> Res<Relay> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(Relay::start(listener, &target.to_string(), one_way)?)
}

/// Receive everything `conn` sends into `file` as fast as std allows: one reused 1 MiB
/// buffer, each read written where it belongs with a positioned write; bytes received.
fn receive_into(mut conn: &TcpStream, file: &fs::File) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let (mut buf, mut at) = (vec![0u8; 1 << 20], 0u64);
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Ok(at),
            Ok(n) => {
                file.write_all_at(&buf[..n], at)?;
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Copy `src` over one TCP connection into a file in `dir`, optionally through a relay with
/// `delay` each way, and with `durable` write it to disk as a download does (a side thread
/// `fdatasync`s every 250 ms, then one `fsync` at the end);
/// seconds. The best plain copy std gives: `io::copy` from a file into a socket is `sendfile`
/// from the page cache on Linux, and the receiver is `receive_into`.
fn tcp_copy(src: &Path, dir: &Path, delay: Option<Duration>, durable: bool) -> Res<f64> {
    let dst = dir.join("tcp-copy.bin");
    let (done_tx, done_rx) = mpsc::channel();
    let dst2 = dst.clone();
    let sink = Acceptor::start(move |conn| {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
        let copied = fs::File::create(&dst2).and_then(|f| {
            if !durable {
                return receive_into(&conn, &f);
            }
            // As a download does: a side thread writes the file out every 250 ms while it
            // grows, so the last fsync has little left.
            let done = AtomicBool::new(false);
            let n = thread::scope(|s| {
                let flusher = s.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        thread::park_timeout(Duration::from_millis(250));
                        let _ = f.sync_data();
                    }
                });
                let n = receive_into(&conn, &f);
                done.store(true, Ordering::SeqCst);
                flusher.thread().unpark();
                n
            })?;
            f.sync_all()?;
            Ok(n)
        });
        let _ = done_tx.send(copied.map_err(|e| e.to_string()));
    })?;
    let via = delay.map(|d| relay(sink.addr, d)).transpose()?;
    let t = Instant::now();
    let mut conn = TcpStream::connect(via.as_ref().map_or(sink.addr, Relay::addr))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    let sent = io::copy(&mut fs::File::open(src)?, &mut conn)?;
    drop(conn);
    let got = done_rx.recv_timeout(Duration::from_secs(120))??;
    let took = secs(t);
    let _ = fs::remove_file(&dst);
    if got != sent {
        return Err(format!("tcp copy: sent {sent} bytes, received {got}").into());
    }
    Ok(took)
}

// ==== 1. Transfer =============================================================================

/// SHA-1 rate on `backend` over `data`, split across `threads` threads.
fn sha1_rate(backend: Backend, data: &[u8], threads: usize) -> f64 {
    let t = Instant::now();
    thread::scope(|s| {
        for part in data.chunks(data.len().div_ceil(threads).max(1)) {
            s.spawn(move || {
                let mut sha = Sha1::with_backend(backend).unwrap_or_else(Sha1::portable);
                sha.update(part);
                sha.digest()
            });
        }
    });
    rate(data.len() as u64, secs(t))
}

fn transfer(b: &mut Bench, s: &mut Section) -> Res<()> {
    let (size, runs) = (b.scale.transfer, b.scale.runs);
    if free_bytes(Path::new("/tmp")).unwrap_or(u64::MAX) < 3 * size {
        s.note("skipped: not enough free disk space under /tmp");
        return Ok(());
    }
    let dir = TempDir::new(b.root.join("transfer"))?;
    let (file, meta, hashes) = random_file(&dir.0, "big.bin", size)?;
    let data = fs::read(&file)?;
    // The baselines hash on the path the crate uses; sha1_smol alongside, when that differs.
    let best = Backend::best();
    let h1: Vec<f64> = (0..runs).map(|_| sha1_rate(best, &data, 1)).collect();
    let h2: Vec<f64> = (0..runs).map(|_| sha1_rate(best, &data, 2)).collect();
    let portable: Vec<f64> = match best {
        Backend::Portable => Vec::new(),
        Backend::ShaNi => (0..runs)
            .map(|_| sha1_rate(Backend::Portable, &data, 1))
            .collect(),
    };
    drop(data);
    let (mut fast, mut copy) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        fast.push(rate(size, tcp_copy(&file, &dir.0, None, false)?));
        copy.push(rate(size, tcp_copy(&file, &dir.0, None, true)?));
    }
    let (sha1, sha2, tcp) = (median(&h1), median(&h2), median(&copy));
    b.sha1_2t = Some(sha2);
    s.row(
        format!("baseline: sha1 ({}), 1 thread", best.name()),
        "MB/s",
        h1,
    );
    s.row(
        format!("baseline: sha1 ({}), 2 threads", best.name()),
        "MB/s",
        h2,
    );
    if !portable.is_empty() {
        let p = median(&portable);
        let row = s.row("sha1_smol (portable), 1 thread", "MB/s", portable);
        row.vs = format!("sha-ni is {:.2}x this", sha1 / p);
    }
    s.note(format!(
        "SHA-1 rates hash the file in memory; the baselines ran on {}, the path `Sha1::new` \
         picks on this CPU",
        best.name()
    ));
    s.row("baseline: plain TCP copy, no fsync", "MB/s", fast);
    s.row("baseline: plain TCP copy file->file", "MB/s", copy);
    let openssl = openssl_rates(&file, &meta, runs)?;
    if openssl.is_empty() {
        s.note("openssl is not installed: the openssl baseline is skipped");
    } else {
        s.row(
            "baseline: openssl sha1 of the file, 1 core",
            "MB/s",
            openssl.clone(),
        );
    }
    let mut one_holder = f64::NAN;
    for holders in [1usize, 2, 4] {
        let tracker = start_tracker()?;
        let mut peers = Vec::new();
        for i in 0..holders {
            let hd = dir.0.join(format!("holders{holders}-{i}"));
            holder_dir(&hd, &file, &meta, &hashes)?;
            peers.push(start_peer(tracker.addr(), &hd)?);
        }
        let (mut rates, mut bare, mut split) = (Vec::new(), Vec::new(), String::new());
        for r in 0..runs {
            let dl = dir.0.join(format!("dl{r}"));
            let (t, from) = timed_download(tracker.addr(), &dl, "big.bin")?;
            rates.push(rate(size, t));
            split = from;
            if holders == 1 {
                // The same transfer with hashing switched off, runs interleaved with the
                // verified ones so both see the same machine.
                let (t, _) = timed_download_with(tracker.addr(), &dl, "big.bin", true)?;
                bare.push(rate(size, t));
            }
        }
        drop(peers);
        let m = median(&rates);
        let label = format!("download from {holders} holder(s)");
        if holders == 1 {
            one_holder = m;
            let u = median(&bare);
            let row = s.row("baseline: same download, unverified", "MB/s", bare);
            row.vs = format!("{:.2}x tcp", u / tcp);
            let row = s.row(label, "MB/s", rates);
            row.vs = format!("{:.2}x unverified, {:.2}x tcp", m / u, m / tcp);
            row.target = target(">= 0.8x unverified", m >= 0.8 * u);
            let what = format!("{} MiB verified from 1 holder", size / MIB);
            let r = m / u;
            b.goal(
                &format!("{what} vs the same unverified"),
                format!("{r:.2}x"),
                ">= 0.8x",
                r >= 0.8,
            );
            if !openssl.is_empty() {
                let o = m / median(&openssl);
                let row = s.row("download from 1 holder vs openssl", "ratio", vec![o]);
                row.target = target(">= 0.6x openssl sha1", o >= 0.6);
                b.goal(
                    &format!("{what} vs openssl sha1, 1 core"),
                    format!("{o:.2}x"),
                    ">= 0.6x",
                    o >= 0.6,
                );
            } else {
                b.goal(
                    &format!("{what} vs openssl sha1, 1 core"),
                    "skipped".into(),
                    ">= 0.6x",
                    false,
                );
            }
        } else {
            let ratio = m / one_holder;
            let row = s.row(label, "MB/s", rates);
            row.vs = format!("{ratio:.2}x 1 holder, {:.2}x tcp", m / tcp);
            row.target = target(">= 1.0x 1 holder", ratio >= 1.0);
            let what = format!("{holders} holders vs 1 holder");
            b.goal(&what, format!("{ratio:.2}x"), ">= 1.0x", ratio >= 1.0);
        }
        s.note(format!(
            "{holders} holder(s), MiB by holder in the last run: {split}"
        ));
    }
    s.note(format!(
        "{} MiB random file; verified downloads by an in-process peer from in-process holders \
         (hard links of one page-cached file), all on loopback and sharing the CPUs. The plain \
         TCP copy is sendfile out, a reused 1 MiB buffer and positioned writes in, written to \
         disk as the downloads do (fdatasync every 250 ms on a side thread, fsync at the \
         end): \"tcp\" in the ratios. The unverified download is the same code with hashing \
         switched off by a bench-only option",
        size / MIB
    ));
    Ok(())
}

/// `openssl dgst -sha1` of the page-cached `file` (one process, one core), `runs` times: MB/s,
/// start-up included. Empty if openssl is not installed; an error if its digest is wrong.
fn openssl_rates(file: &Path, meta: &Meta, runs: usize) -> Res<Vec<f64>> {
    if !which("openssl") {
        return Ok(Vec::new());
    }
    let mut rates = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let out = Command::new("openssl")
            .args(["dgst", "-sha1", "-r"])
            .arg(file)
            .output()?;
        let took = secs(t);
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.starts_with(&meta.sha1.to_string()) {
            return Err(format!("openssl sha1 said {text:?}, not {}", meta.sha1).into());
        }
        rates.push(rate(meta.size, took));
    }
    Ok(rates)
}

// ==== 2. Swarm ================================================================================

fn swarm(b: &mut Bench, s: &mut Section) -> Res<()> {
    let dir = TempDir::new(b.root.join("swarm"))?;
    let (mib, runs) = (b.scale.swarm_mib, b.scale.runs.min(3));
    let hash2 = b.sha1_2t.unwrap_or_else(|| {
        let mut data = vec![0u8; (mib * MIB) as usize];
        Rng::new(7).fill(&mut data);
        sha1_rate(Backend::best(), &data, 2)
    });
    let run = |downloaders: usize| -> Res<(f64, f64)> {
        let (root, narrate) = (dir.0.clone(), false);
        let (tracker_port, base_port, size_mib) = (0, 0, mib);
        let config = SimConfig {
            root,
            tracker_port,
            base_port,
            size_mib,
            downloaders,
            narrate,
            random: false,
        };
        let r = swarm_run(&config, true)?;
        let _ = fs::remove_dir_all(dir.0.join("swarm"));
        Ok((r.elapsed.as_secs_f64(), r.seeder_copies()))
    };
    // The rebased baseline: the same bytes moved by plain TCP copies, one sender fanning the
    // file out to n receivers at once, each writing its own file to disk as a download does.
    let src = dir.0.join("fanout-src.bin");
    write_random(&src, mib * MIB, 9)?;
    let mut fanout = std::collections::BTreeMap::new();
    for n in [8usize, 16] {
        let rates = (0..runs)
            .map(|_| Ok(rate(n as u64 * mib * MIB, tcp_fanout(&src, &dir.0, n)?)))
            .collect::<Res<Vec<f64>>>()?;
        fanout.insert(n, median(&rates));
        s.row(
            format!("baseline: plain TCP copy fan-out to {n}"),
            "MB/s",
            rates,
        );
    }
    let _ = fs::remove_file(&src);
    let alone = (0..runs)
        .map(|_| Ok(run(1)?.0))
        .collect::<Res<Vec<f64>>>()?;
    let alone_m = median(&alone);
    s.row("1 downloader alone: time", "s", alone);
    for n in [8usize, 16] {
        let (mut times, mut copies) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t, c) = run(n)?;
            times.push(t);
            copies.push(c);
        }
        let rates: Vec<f64> = times
            .iter()
            .map(|&t| rate(n as u64 * mib * MIB, t))
            .collect();
        let (tm, cm, rm) = (median(&times), median(&copies), median(&rates));
        let row = s.row(format!("{n} downloaders: total time"), "s", times);
        row.vs = format!("{:.2}x the time of 1 alone", tm / alone_m);
        let row = s.row(format!("{n} downloaders: seeder upload"), "copies", copies);
        row.target = target("<= 1.5 copies", cm <= 1.5);
        let row = s.row(
            format!("{n} downloaders: aggregate verified"),
            "MB/s",
            rates,
        );
        let f = rm / fanout[&n];
        row.vs = format!(
            "{:.2}x sha1 2T ({} MB/s), {f:.2}x TCP fan-out",
            rm / hash2,
            num(hash2)
        );
        row.target = target(">= 0.7x sha1 2T", rm >= 0.7 * hash2);
        let what = format!("swarm 1 -> {n} aggregate vs sha1 on 2 threads");
        let r = rm / hash2;
        b.goal(&what, format!("{r:.2}x"), ">= 0.7x", r >= 0.7);
        let what = format!("swarm 1 -> {n} aggregate vs a plain TCP copy fan-out (proposed)");
        b.goal(&what, format!("{f:.2}x"), ">= 0.6x", f >= 0.6);
    }
    s.note(format!(
        "sim::swarm_run: 1 seeder and the downloaders in this process, {mib} MiB random file, \
         all starting at once; time is until the last copy is verified. The TCP fan-out \
         sends the same size to n receivers at once over n connections (sendfile out, \
         positioned writes in, each file fdatasync'd every 250 ms and fsync'd at the end): \
         the same bytes into the same number of files with no protocol and no hashing"
    ));
    Ok(())
}

/// `src` sent to `n` receivers at once, one connection and one sender thread each, every
/// receiver writing its own file as `tcp_copy` does when durable; seconds until the last
/// file is on disk.
fn tcp_fanout(src: &Path, dir: &Path, n: usize) -> Res<f64> {
    let (done_tx, done_rx) = mpsc::channel();
    let out = dir.join("fanout");
    fs::create_dir_all(&out)?;
    let out2 = out.clone();
    let next = Arc::new(Mutex::new(0usize));
    let sink = Acceptor::start(move |conn| {
        let (done_tx, out) = (done_tx.clone(), out2.clone());
        let k = {
            let mut next = next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *next += 1;
            *next
        };
        thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
            let copied = fs::File::create(out.join(format!("{k}.bin"))).and_then(|f| {
                let done = AtomicBool::new(false);
                let got = thread::scope(|s| {
                    let flusher = s.spawn(|| {
                        while !done.load(Ordering::SeqCst) {
                            thread::park_timeout(Duration::from_millis(250));
                            let _ = f.sync_data();
                        }
                    });
                    let got = receive_into(&conn, &f);
                    done.store(true, Ordering::SeqCst);
                    flusher.thread().unpark();
                    got
                })?;
                f.sync_all()?;
                Ok(got)
            });
            let _ = done_tx.send(copied.map_err(|e| e.to_string()));
        });
    })?;
    let size = fs::metadata(src)?.len();
    let t = Instant::now();
    let senders: Vec<_> = (0..n)
        .map(|_| {
            let (src, addr) = (src.to_path_buf(), sink.addr);
            thread::spawn(move || -> io::Result<u64> {
                let mut conn = TcpStream::connect(addr)?;
                conn.set_write_timeout(Some(Duration::from_secs(60)))?;
                io::copy(&mut fs::File::open(src)?, &mut conn)
            })
        })
        .collect();
    for sender in senders {
        let sent = sender.join().map_err(|_| "a fan-out sender panicked")??;
        if sent != size {
            return Err(format!("fan-out: sent {sent} bytes of {size}").into());
        }
    }
    for _ in 0..n {
        let got = done_rx.recv_timeout(Duration::from_secs(120))??;
        if got != size {
            return Err(format!("fan-out: received {got} bytes of {size}").into());
        }
    }
    let took = secs(t);
    let _ = fs::remove_dir_all(&out);
    Ok(took)
}

// ==== 3. Latency ==============================================================================

fn latency(b: &mut Bench, s: &mut Section) -> Res<()> {
    let (size, one_way) = (b.scale.latency, Duration::from_millis(25));
    let dir = TempDir::new(b.root.join("latency"))?;
    let seed_dir = dir.0.join("seed");
    let (file, ..) = random_file(&seed_dir, "far.bin", size)?;
    // The seeder registers with a throwaway tracker, so the real one lists only the relay.
    let elsewhere = start_tracker()?;
    let seeder = start_peer(elsewhere.addr(), &seed_dir)?;
    let meta = seeder
        .store()
        .get("far.bin")
        .ok_or("the seeder lacks far.bin")?
        .meta
        .clone();
    let link = relay(seeder.addr(), one_way)?;
    let tracker = start_tracker()?;
    let fake = TcpStream::connect(tracker.addr())?;
    fake.set_read_timeout(Some(Duration::from_secs(10)))?;
    let port = link.addr().port();
    let lines = format!(
        "{}\n{}\n",
        Request::Register { port },
        Request::Upload(meta)
    );
    (&fake).write_all(lines.as_bytes())?;
    let answer = read_replies(&fake, 2)?;
    if answer.lines().any(|l| !l.starts_with("ACK")) {
        return Err(format!("registering the relay: {answer}").into());
    }
    let (mut copy, mut down, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        copy.push(rate(size, tcp_copy(&file, &dir.0, Some(one_way), true)?));
        (&fake).write_all(b"PING\n")?; // keep the fake registration alive
        read_replies(&fake, 1)?;
        let (t, _) = timed_download(tracker.addr(), &dir.0.join(format!("dl{r}")), "far.bin")?;
        down.push(rate(size, t));
        // The same download without the relay: what the delay costs, hashing aside.
        let (t, _) = timed_download(elsewhere.addr(), &dir.0.join(format!("near{r}")), "far.bin")?;
        direct.push(rate(size, t));
    }
    let (cm, dm, nm) = (median(&copy), median(&down), median(&direct));
    s.row("plain TCP copy through the relay", "MB/s", copy);
    s.row("download without the relay", "MB/s", direct);
    let row = s.row("download through the relay", "MB/s", down);
    row.vs = format!(
        "{:.2}x tcp copy via relay, {:.2}x the download without it",
        dm / cm,
        dm / nm
    );
    row.target = target(">= 0.8x tcp copy", dm >= 0.8 * cm);
    let r = dm / cm;
    let what = "through the 50 ms relay vs a plain TCP copy through it";
    b.goal(what, format!("{r:.2}x"), ">= 0.8x", r >= 0.8);
    s.note(format!(
        "{} MiB file. The relay (torrentphile::relay) holds every chunk {one_way:?} each way \
         (RTT 50 ms) without capping bandwidth; it splits TCP, so the protocol's round trips feel \
         the delay but kernel windows do not. The downloader reaches the seeder through a \
         registration of the relay's port made on the tracker over a raw connection. The TCP \
         copy writes its file to disk as a download does.",
        size / MIB
    ));
    Ok(())
}

// ==== 4 and 5. Tracker: WHOHAS rate, idle connections (the tracker is a child process) ========

fn spawn_tracker(max_conns: usize) -> Res<(Proc, SocketAddr)> {
    let mut cmd = Command::new(BIN);
    let n = max_conns.to_string();
    cmd.args([
        "tracker",
        "--port",
        "0",
        "--timeout",
        "600",
        "--max-conns",
        &n,
    ]);
    // Every bench client comes from 127.0.0.1: lift the per-address caps to the global one.
    cmd.args(["--max-conns-per-addr", &n, "--max-peers-per-addr", &n]);
    spawn_listening(cmd.args(["--max-files-per-addr", "100000000"]))
}

/// Start a server process that says `listening on ADDR` first: the process and the address.
fn spawn_listening(cmd: &mut Command) -> Res<(Proc, SocketAddr)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn()?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    Ok((
        proc,
        addr.ok_or_else(|| format!("the tracker said {line:?}"))?,
    ))
}

/// Read from `stream` until `k` lines have arrived (the replies to what was sent).
fn read_replies(mut stream: &TcpStream, k: usize) -> Res<String> {
    let (mut got, mut buf) = (Vec::new(), [0u8; 4096]);
    while got.iter().filter(|&&c| c == b'\n').count() < k {
        let n = stream.read(&mut buf)?;
        if n == 0 || got.len() > 1 << 20 {
            return Err("the tracker closed the connection".into());
        }
        got.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&got).into_owned())
}

/// Open `n` connections (4 threads), send each `lines(i)`, and check its `k` replies.
fn open_conns(
    addr: SocketAddr,
    n: usize,
    k: usize,
    lines: impl Fn(usize) -> String + Sync,
) -> Result<Vec<TcpStream>, String> {
    let one = |i: usize| -> Res<TcpStream> {
        let c = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        (&c).write_all(lines(i).as_bytes())?;
        match read_replies(&c, k)?.lines().find(|l| l.starts_with("ERR")) {
            Some(err) => Err(format!("connection {i}: {err}").into()),
            None => Ok(c),
        }
    };
    let chunk = move |t: usize| -> Result<Vec<TcpStream>, String> {
        (t..n)
            .step_by(4)
            .map(|i| one(i).map_err(|e| e.to_string()))
            .collect()
    };
    thread::scope(|s| {
        let workers: Vec<_> = (0..4).map(|t| s.spawn(move || chunk(t))).collect();
        let mut all = Vec::with_capacity(n);
        for w in workers {
            all.extend(w.join().map_err(|_| "a worker panicked")??);
        }
        Ok(all)
    })
}

/// Send PING on every connection, then expect `answer` (PONG, or PING from an echo) on each.
fn ping_all(conns: &[TcpStream], answer: &str) -> Res<()> {
    for mut c in conns {
        c.write_all(b"PING\n")?;
    }
    for c in conns {
        if !read_replies(c, 1)?.starts_with(answer) {
            return Err(format!("PING was not answered {answer}").into());
        }
    }
    Ok(())
}

/// The baseline of case 5, run as a child process (this bench binary with `--echo-server`):
/// the barest std server there is, a thread per connection with the tracker's stack size
/// (`server::CONN_STACK`), each echoing what it reads through `io::copy`. Never returns.
fn echo_server() -> ! {
    let listener = match TcpListener::bind("127.0.0.1:0").and_then(|l| Ok((l.local_addr()?, l))) {
        Ok((addr, l)) => {
            println!("listening on {addr}");
            let _ = io::stdout().flush();
            l
        }
        Err(e) => {
            eprintln!("echo server: {e}");
            std::process::exit(1);
        }
    };
    for conn in listener.incoming().flatten() {
        let _ = thread::Builder::new()
            .name("echo-conn".into())
            .stack_size(torrentphile::server::CONN_STACK)
            .spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(600)));
                let _ = conn.set_write_timeout(Some(Duration::from_secs(10)));
                let _ = io::copy(&mut &conn, &mut &conn);
            });
    }
    std::process::exit(0)
}

/// Open `n` idle connections to `addr`, PING each twice (all held at once): the server's
/// RSS in KiB before and after, its thread count, and how long opening took.
fn hold_idle(pid: u32, addr: SocketAddr, n: usize, answer: &str) -> Res<(u64, u64, u64, f64)> {
    thread::sleep(Duration::from_millis(200));
    let before = pid_kib(pid, "VmRSS").unwrap_or(0);
    let t = Instant::now();
    let conns = open_conns(addr, n, 1, |_| "PING\n".into())?;
    let opened = secs(t);
    ping_all(&conns, answer)?;
    thread::sleep(Duration::from_millis(300));
    ping_all(&conns, answer)?;
    let after = pid_kib(pid, "VmRSS").unwrap_or(0);
    Ok((before, after, pid_kib(pid, "Threads").unwrap_or(0), opened))
}

fn connections(b: &mut Bench, s: &mut Section) -> Res<()> {
    let limit = fd_limit();
    let me = std::env::current_exe()?;
    for &n in b.scale.conns {
        if n + 300 > limit {
            s.note(format!(
                "{n} connections skipped: the open files limit is {limit}"
            ));
            continue;
        }
        let (echo, addr) = spawn_listening(Command::new(&me).arg("--echo-server"))?;
        let (_, bare, _, _) = hold_idle(echo.0.id(), addr, n, "PING")?;
        drop(echo);
        let (tracker, addr) = spawn_tracker(n + 100)?;
        let (before, after, threads, opened) = hold_idle(tracker.0.id(), addr, n, "PONG")?;
        drop(tracker);
        let grew = after.saturating_sub(before) as f64;
        let row = s.row(
            format!("{n} idle connections: echo server RSS"),
            "MiB",
            vec![bare as f64 / 1024.0],
        );
        row.vs = "baseline".into();
        let ratio = after as f64 / bare.max(1) as f64;
        let row = s.row(
            format!("{n} idle connections: tracker RSS"),
            "MiB",
            vec![after as f64 / 1024.0],
        );
        row.vs = format!(
            "{ratio:.2}x echo; +{:.1} MiB, {:.1} KiB/conn, {threads} threads, opened in \
             {opened:.2}s",
            grew / 1024.0,
            grew / n as f64,
        );
        if n == 10_000 || (b.scale.quick && Some(&n) == b.scale.conns.last()) {
            row.target = target("<= 1.5x echo", ratio <= 1.5);
            let what = format!("{n} idle connections, tracker RSS vs a bare std echo server");
            b.goal(&what, format!("{ratio:.2}x"), "<= 1.5x", ratio <= 1.5);
        }
    }
    s.note(
        "`torrentphile tracker` and the echo server (this bench binary with `--echo-server`: a \
         thread per connection with the tracker's stack size, `io::copy` from the socket to \
         itself) as child processes, connections from the bench process; every connection is \
         PINGed twice once all are open, so all are held at the same time",
    );
    Ok(())
}

// ==== 6. Memory of a downloading peer =========================================================

fn memory(b: &mut Bench, s: &mut Section) -> Res<()> {
    let size = b.scale.memory;
    let need = 2 * size + (1 << 30);
    if let Some(free) = free_bytes(Path::new("/tmp")).filter(|&f| f < need) {
        s.note(format!(
            "skipped: {} MiB free in /tmp, {} MiB needed",
            free / MIB,
            need / MIB
        ));
        return Ok(());
    }
    let dir = TempDir::new(b.root.join("memory"))?;
    let seed_dir = dir.0.join("seed");
    random_file(&seed_dir, "huge.bin", size)?;
    let tracker = start_tracker()?;
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    let dl = dir.0.join("dl");
    let t = Instant::now();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "get",
        "huge.bin",
        "--tracker",
        &tracker.addr().to_string(),
        "--dir",
    ]);
    let mut child = cmd.arg(&dl).stdout(Stdio::null()).spawn()?;
    // VmHWM is a high-water mark, so the last reading before the exit is the peak (it agreed
    // with /usr/bin/time -v within 1%).
    let (mut hwm, limit) = (
        0,
        Duration::from_secs(if b.scale.quick { 120 } else { 400 }),
    );
    wait_bounded(&mut child, limit, |pid| {
        hwm = hwm.max(pid_kib(pid, "VmHWM").unwrap_or(0))
    })?;
    let took = secs(t);
    let got = fs::metadata(dl.join("huge.bin")).map_or(0, |m| m.len());
    if got != size {
        return Err(format!("get left {got} bytes, not {size}").into());
    }
    let mib = hwm as f64 / 1024.0;
    let row = s.row(
        format!("get of a {} MiB file: peak RSS", size / MIB),
        "MiB",
        vec![mib],
    );
    row.vs = format!("{} MB/s with start-up", num(rate(size, took)));
    row.target = target("< 64 MiB", mib < 64.0);
    s.note("`torrentphile get` as a child process, from one in-process seeder; VmHWM polled");
    drop(seeder);
    Ok(())
}

// ==== 7. aria2c ===============================================================================

/// A minimal HTTP BitTorrent tracker: remembers the port of every announce and answers with
/// every other announced peer, on 127.0.0.1, in compact form.
fn http_tracker(announced: Arc<Mutex<BTreeSet<u16>>>) -> Res<Acceptor> {
    Acceptor::start(move |mut c| {
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let (mut req, mut buf) = (Vec::new(), [0u8; 2048]);
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 << 10 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&req);
        let mut words = text
            .lines()
            .next()
            .unwrap_or_default()
            .split(['?', '&', ' ']);
        let port = words.find_map(|kv| kv.strip_prefix("port=")?.parse().ok());
        let mut set = announced.lock().unwrap_or_else(|e| e.into_inner());
        set.extend(port);
        let mut peers = Vec::new();
        for p in set.iter().filter(|&&p| Some(p) != port) {
            peers.extend_from_slice(&[127, 0, 0, 1]);
            peers.extend_from_slice(&p.to_be_bytes());
        }
        drop(set);
        let body = format!("d8:intervali5e12:min intervali5e5:peers{}:", peers.len());
        let mut body = body.into_bytes();
        body.extend_from_slice(&peers);
        body.push(b'e');
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = c
            .write_all(head.as_bytes())
            .and_then(|()| c.write_all(&body));
    })
}

fn aria2c(dir: &Path) -> Res<Command> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut c = Command::new("aria2c");
    c.arg(format!("--dir={}", dir.display()))
        .arg(format!("--listen-port={port}"));
    c.args("--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --quiet=true".split(' '));
    c.args("--enable-peer-exchange=false --file-allocation=none --summary-interval=0".split(' '));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    Ok(c)
}

fn aria2(b: &mut Bench, s: &mut Section) -> Res<()> {
    if !which("aria2c") || !which("mktorrent") {
        s.note("skipped: aria2c or mktorrent is not installed (apt-get install aria2 mktorrent)");
        b.goal("from 1 seeder vs aria2c", "skipped".into(), ">= 5x", false);
        return Ok(());
    }
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("aria2"))?;
    let seed_dir = dir.0.join("seed");
    let (file, meta, _) = random_file(&seed_dir, "big.bin", size)?;
    let announced = Arc::new(Mutex::new(BTreeSet::new()));
    let bt = http_tracker(announced.clone())?;
    let torrent = dir.0.join("big.torrent");
    let url = format!("http://{}/announce", bt.addr);
    let mut mk = Command::new("mktorrent");
    mk.args(["-l", "18", "-a", &url, "-o"])
        .arg(&torrent)
        .arg(&file);
    if !mk.stdout(Stdio::null()).status()?.success() {
        return Err("mktorrent failed".into());
    }
    let mut seed = aria2c(&seed_dir)?;
    seed.args(["--seed-ratio=0.0", "--bt-seed-unverified=true"])
        .arg(&torrent);
    let _seed = Proc(seed.spawn()?);
    for _ in 0..400 {
        if !announced.lock().map_or(true, |s| s.is_empty()) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut aria = Vec::new();
    for r in 0..b.scale.runs {
        let dl = dir.0.join(format!("aria-dl{r}"));
        let mut cmd = aria2c(&dl)?;
        cmd.args(["--seed-time=0", "--bt-hash-check-seed=false"])
            .arg(&torrent);
        let t = Instant::now();
        wait_bounded(&mut cmd.spawn()?, Duration::from_secs(600), |_| {})?;
        aria.push(rate(size, secs(t)));
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("aria2c's copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
    }
    let tracker = start_tracker()?;
    let _seeder = start_peer(tracker.addr(), &seed_dir)?;
    let mut ours = Vec::new();
    for r in 0..b.scale.runs {
        let (t, _) = timed_download(tracker.addr(), &dir.0.join(format!("tp-dl{r}")), "big.bin")?;
        ours.push(rate(size, t));
    }
    let ratio = median(&ours) / median(&aria);
    s.row("aria2c from 1 aria2c seeder", "MB/s", aria);
    let row = s.row("torrentphile from 1 seeder", "MB/s", ours);
    row.vs = format!("{ratio:.2}x aria2c");
    row.target = target(">= 5x aria2c", ratio >= 5.0);
    let what = format!(
        "{} MiB from 1 seeder vs aria2c from an aria2c seeder",
        size / MIB
    );
    b.goal(&what, format!("{ratio:.2}x"), ">= 5x", ratio >= 5.0);
    s.note(format!(
        "{} MiB file, 256 KiB pieces for both. aria2c finds the seeder through a minimal HTTP \
         tracker in the bench (no DHT, LPD or PEX); its time is the whole process, start-up \
         included",
        size / MIB
    ));
    Ok(())
}

// ==== 8. make sim =============================================================================

fn sim(b: &mut Bench, s: &mut Section) -> Res<()> {
    let dir = TempDir::new(b.root.join("sim"))?;
    let mut times = Vec::new();
    for _ in 0..b.scale.sim_runs {
        let mut cmd = Command::new(BIN);
        cmd.args("sim --scenario classic --tracker-port 0 --base-port 0 --quiet --root".split(' '));
        let t = Instant::now();
        wait_bounded(
            &mut cmd.arg(&dir.0).stdout(Stdio::null()).spawn()?,
            Duration::from_secs(60),
            |_| {},
        )?;
        times.push(secs(t));
    }
    let m = median(&times);
    s.row("sim --scenario classic, built binary", "s", times)
        .target = target("< 2 s", m < 2.0);
    s.note(format!("wall time of `{BIN} sim ...` as a whole process"));
    Ok(())
}

// ==== 9. .torrent create and get ==============================================================

/// `torrent create` against mktorrent on one file (same run, alternating, 256 KiB pieces),
/// then a download of the same bytes as a plain name and as a torrent from one seeder.
fn torrent_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("torrent"))?;
    let seed_dir = dir.0.join("seed");
    let (file, _, _) = random_file(&seed_dir, "big.bin", size)?;
    let torrent = seed_dir.join("big.torrent");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        if which("mktorrent") {
            let out = dir.0.join(format!("m{r}.torrent"));
            let mut mk = Command::new("mktorrent");
            mk.args(["-l", "18", "-o"]).arg(&out).arg(&file);
            let t = Instant::now();
            wait_bounded(
                &mut mk.stdout(Stdio::null()).spawn()?,
                Duration::from_secs(600),
                |_| {},
            )?;
            theirs.push(secs(t));
        }
        let _ = fs::remove_file(&torrent);
        let mut tp = Command::new(BIN);
        tp.args(["torrent", "create", "-l", "18", "-o"])
            .arg(&torrent)
            .arg(&file);
        let t = Instant::now();
        wait_bounded(
            &mut tp.stdout(Stdio::null()).spawn()?,
            Duration::from_secs(600),
            |_| {},
        )?;
        ours.push(secs(t));
    }
    let row = s.row("torrent create, 256 KiB pieces", "s", ours.clone());
    if theirs.is_empty() {
        s.note("mktorrent is not installed (apt-get install mktorrent): no baseline");
    } else {
        let ratio = median(&theirs) / median(&ours);
        row.vs = format!("{ratio:.2}x mktorrent's speed");
        row.target = target(">= 1x mktorrent", ratio >= 1.0);
        s.row("mktorrent, 256 KiB pieces", "s", theirs);
    }
    let tracker = start_tracker()?;
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    let t = torrentphile::torrent::cli::load_torrent(&torrent)?;
    seeder.share_torrent(&torrent)?;
    let (mut plain, mut bt) = (Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        let (took, _) =
            timed_download(tracker.addr(), &dir.0.join(format!("plain{r}")), "big.bin")?;
        plain.push(rate(size, took));
        let dl = dir.0.join(format!("bt{r}"));
        let peer = start_peer(tracker.addr(), &dl)?;
        let start = Instant::now();
        peer.download_torrent(&t)
            .map_err(|e| format!("download of the torrent: {e}"))?;
        bt.push(rate(size, secs(start)));
        drop(peer);
        let _ = fs::remove_dir_all(&dl);
    }
    let ratio = median(&bt) / median(&plain);
    s.row("get NAME (plain), 1 seeder", "MB/s", plain);
    s.row("get --torrent, 1 seeder", "MB/s", bt).vs = format!("{ratio:.2}x plain get");
    s.note(format!(
        "{} MiB random file; create times are whole processes; both downloads verify every \
         piece (the torrent against the .torrent's hashes)",
        size / MIB
    ));
    Ok(())
}

// ==== 10. Accounts: login cost, a ticketed group download =====================================

/// Login at the default PBKDF2 count (the client's derivation alone, and a whole login over
/// the tracker link), then the same file fetched as a group file (GRANT, TICKET, pieces) and
/// as a public one from one holder, alternating in the same run.
fn accounts_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    use torrentphile::auth::scram::ClientKeys;
    use torrentphile::protocol::AccountRequest as R;
    use torrentphile::tracker::accounts::{AccountsConfig, DEFAULT_ITERATIONS};
    let (size, runs) = (b.scale.transfer, b.scale.runs);
    if free_bytes(Path::new("/tmp")).unwrap_or(u64::MAX) < 3 * size {
        s.note("skipped: not enough free disk space under /tmp");
        return Ok(());
    }
    let derive: Vec<f64> = (0..runs.max(3))
        .map(|_| {
            let t = Instant::now();
            let _ = ClientKeys::derive(b"bench password", b"0123456789abcdef", DEFAULT_ITERATIONS);
            secs(t) * 1000.0
        })
        .collect();
    let dir = TempDir::new(b.root.join("accounts"))?;
    let config = TrackerConfig {
        idle: Duration::from_secs(300),
        accounts: AccountsConfig::default(),
        ..TrackerConfig::one_host()
    };
    let tracker = Tracker::start(TcpListener::bind("127.0.0.1:0")?, config)?;
    let holder_at = dir.0.join("holder");
    let (file, _, _) = random_file(&holder_at, "big.bin", size)?;
    let holder = start_peer(tracker.addr(), &holder_at)?;
    let fail = |e: String| -> Box<dyn Error> { e.into() };
    holder.create_user("alice", "alice pw").map_err(fail)?;
    holder.login("alice", "alice pw").map_err(fail)?;
    holder
        .account(R::CreateGroup { group: "g".into() })
        .map_err(fail)?;
    holder.upload_group(&file, "g").map_err(fail)?;
    let (mut logins, mut public, mut group) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs {
        let (took, _) = timed_download(tracker.addr(), &dir.0.join(format!("pub{r}")), "big.bin")?;
        public.push(rate(size, took));
        let dl = dir.0.join(format!("grp{r}"));
        let bob = start_peer(tracker.addr(), &dl)?;
        if r == 0 {
            bob.create_user("bob", "bob pw").map_err(fail)?;
        }
        let t = Instant::now();
        bob.login("bob", "bob pw").map_err(fail)?;
        logins.push(secs(t) * 1000.0);
        if r == 0 {
            bob.account(R::Join { group: "g".into() }).map_err(fail)?;
            holder
                .account(R::Accept {
                    group: "g".into(),
                    user: "bob".into(),
                })
                .map_err(fail)?;
        }
        let out = dir.0.join(format!("grp-out{r}"));
        fs::create_dir_all(&out)?;
        let t = Instant::now();
        bob.download_group("g", "big.bin", &out).map_err(fail)?;
        group.push(rate(size, secs(t)));
        let _ = bob.logout();
        drop(bob);
        let _ = fs::remove_dir_all(&dl);
        let _ = fs::remove_dir_all(&out);
    }
    s.row(
        format!("PBKDF2-HMAC-SHA1, {DEFAULT_ITERATIONS} iterations (client side)"),
        "ms",
        derive,
    );
    s.row(
        "login over the tracker link (SCRAM, password)",
        "ms",
        logins,
    );
    let ratio = median(&group) / median(&public);
    s.row("public download, 1 holder", "MB/s", public);
    let row = s.row("group download (ticket), 1 holder", "MB/s", group);
    row.vs = format!("{ratio:.2}x public");
    row.target = target(">= 0.97x public", ratio >= 0.97);
    s.note(format!(
        "{} MiB random file from one in-process holder; the group download asks GINFO, GWHOHAS, \
         GRANT, presents the ticket, then fetches through the multi-holder downloader (a ticket on each worker connection); the public \
         one uses the multi-holder downloader. {DEFAULT_ITERATIONS} iterations: about 50 ms per \
         password login on a laptop core, paid by the client (the tracker never runs PBKDF2), \
         and by an attacker per guess against a stolen state folder",
        size / MIB
    ));
    Ok(())
}

// ==== 13. The BitTorrent wire =================================================================

/// aria2c on loopback only, with a listening port from a range below the ephemeral ports.
fn aria2c_bt(dir: &Path, torrent: &Path) -> Command {
    let mut c = Command::new("aria2c");
    c.arg(torrent).arg(format!("--dir={}", dir.display()));
    c.args("--interface=127.0.0.1 --listen-port=20000-32000 --no-conf=true".split(' '));
    c.args("--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --quiet=true".split(' '));
    c.args("--enable-peer-exchange=false --disable-ipv6=true --file-allocation=none".split(' '));
    c.args(["--summary-interval=0", "--bt-tracker-interval=1"]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Issue 12 in one run: aria2c leeching from a Torrentphile seeder against aria2c from an
/// aria2c seeder, and Torrentphile leeching from the aria2c seeder; one tracker (ours, its
/// HTTP announce), one .torrent.
fn bt_wire(b: &mut Bench, s: &mut Section) -> Res<()> {
    if !which("aria2c") {
        s.note("skipped: aria2c is not installed (apt-get install aria2)");
        return Ok(());
    }
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("bt"))?;
    let seed_dir = dir.0.join("seed");
    let (file, meta, _) = random_file(&seed_dir, "big.bin", size)?;
    let tracker = start_tracker()?;
    let torrent = seed_dir.join("big.torrent");
    let mut tp = Command::new(BIN);
    tp.args(["torrent", "create", "-l", "18", "-a"])
        .arg(format!("http://{}/announce", tracker.addr()))
        .arg("-o")
        .arg(&torrent)
        .arg(&file);
    if !tp.stdout(Stdio::null()).status()?.success() {
        return Err("torrent create failed".into());
    }
    let t = torrentphile::torrent::cli::load_torrent(&torrent)?;
    let aria_leech = |tag: &str, r: usize| -> Res<f64> {
        let dl = dir.0.join(format!("{tag}{r}"));
        let mut cmd = aria2c_bt(&dl, &torrent);
        cmd.args(["--seed-time=0"]);
        let start = Instant::now();
        wait_bounded(&mut cmd.spawn()?, Duration::from_secs(600), |_| {})?;
        let took = secs(start);
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("aria2c's copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
        Ok(rate(size, took))
    };
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    seeder.share_torrent(&torrent)?;
    let mut from_tp = Vec::new();
    for r in 0..b.scale.runs {
        from_tp.push(aria_leech("a-tp", r)?);
    }
    drop(seeder);
    let mut seed = aria2c_bt(&seed_dir, &torrent);
    seed.args(["--seed-ratio=0.0", "--check-integrity=true"]);
    let _seed = Proc(seed.spawn()?);
    let ready = Instant::now();
    while !tracker
        .bt_members(&t.info_hash)
        .iter()
        .any(|(_, seed)| *seed)
    {
        if ready.elapsed() > Duration::from_secs(300) {
            return Err("the aria2c seeder never announced itself".into());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut from_aria = Vec::new();
    for r in 0..b.scale.runs {
        from_aria.push(aria_leech("a-a", r)?);
    }
    let mut ours = Vec::new();
    for r in 0..b.scale.runs {
        let dl = dir.0.join(format!("tp-a{r}"));
        let peer = start_peer(tracker.addr(), &dl)?;
        let start = Instant::now();
        peer.download_torrent(&t)
            .map_err(|e| format!("download from aria2c: {e}"))?;
        ours.push(rate(size, secs(start)));
        drop(peer);
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("our copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
    }
    let ratio = median(&from_tp) / median(&from_aria);
    s.row("aria2c from 1 aria2c seeder", "MB/s", from_aria);
    s.row("aria2c from 1 torrentphile seeder", "MB/s", from_tp)
        .vs = format!("{ratio:.2}x an aria2c seeder");
    s.row("torrentphile from 1 aria2c seeder", "MB/s", ours);
    s.note(format!(
        "{} MiB file, 256 KiB pieces, one .torrent made by `torrent create`, our tracker's \
         HTTP announce for all; aria2c's time is the whole process, start-up included; every \
         copy's SHA-1 checked",
        size / MIB
    ));
    Ok(())
}

// ==== main ====================================================================================

type Case = fn(&mut Bench, &mut Section) -> Res<()>;

/// The cases the `cargo test` smoke run leaves out: each takes seconds of process start-ups
/// (aria2c, leader kills) that its own integration tests already spend.
fn smoke_skips(title: &str) -> bool {
    title.starts_with("Cluster:") || title.starts_with("BitTorrent wire:")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--echo-server") {
        echo_server();
    }
    // `cargo bench` passes --bench; `cargo test` does not: then this is a quick smoke test.
    let benching = args.iter().any(|a| a == "--bench");
    let quick = !benching || args.iter().any(|a| a == "--quick");
    // `--only 1,4` runs those cases alone (and writes next to the quick results).
    let only: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        });
    let mut b = Bench {
        scale: scale(quick),
        root: PathBuf::from(format!("/tmp/torrentphile-bench-{}", std::process::id())),
        sha1_2t: None,
        goals: Vec::new(),
    };
    // One line per case: a new case is one more line here.
    let cases: &[(&'static str, Case)] = &[
        ("Transfer: one download from 1, 2, 4 holders", transfer),
        ("Swarm: 1 seeder, 8 and 16 downloaders", swarm),
        ("Latency: a download over a 50 ms RTT relay", latency),
        ("Tracker: WHOHAS rate", tracker::tracker_whohas),
        (
            "Connections: idle connections one tracker holds",
            connections,
        ),
        ("Memory: peak RSS of a downloading peer", memory),
        ("Comparison with aria2c", aria2),
        ("`make sim`: classic scenario wall time", sim),
        (
            ".torrent: create vs mktorrent, get --torrent vs get",
            torrent_case,
        ),
        (
            "Accounts: login cost, group vs public download",
            accounts_case,
        ),
        ("Cluster: failover, refill, mutation rate", cluster_case),
        (
            "Hostile: a download under a flood, among 50 fakes",
            hostile::hostile,
        ),
        (
            "BitTorrent wire: aria2c and torrentphile, both ways",
            bt_wire,
        ),
    ];
    let mut md = header(&b);
    print!("{md}");
    let header_len = md.len();
    let (started, mut failed) = (Instant::now(), 0);
    for (i, &(title, case)) in cases.iter().enumerate() {
        if only.as_ref().is_some_and(|o| !o.contains(&(i + 1))) {
            continue;
        }
        // Under `cargo test` (the smoke run `make test` does) the two slowest cases are left
        // to their own tests, which drive the same code harder: `make bench-quick` runs them.
        if !benching && smoke_skips(title) {
            println!(
                "({}. {title}: left to tests/cluster*.rs and tests/bt_real.rs under cargo test; make bench-quick runs it)",
                i + 1
            );
            continue;
        }
        let mut s = Section {
            title,
            rows: Vec::new(),
            notes: Vec::new(),
        };
        println!("(running {}. {title})", i + 1);
        let t = Instant::now();
        if let Err(e) = case(&mut b, &mut s) {
            failed += 1;
            s.note(format!("FAILED: {e}"));
        }
        s.note(format!("the case took {:.1}s", secs(t)));
        let text = section_md(i + 1, &s);
        println!("{text}");
        md.push_str(&text);
        md.push('\n');
    }
    let _ = fs::remove_dir_all(&b.root);
    let out = if quick || only.is_some() {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent();
        target.unwrap_or(Path::new(".")).join("BENCH-quick.md")
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCH.md")
    };
    // The goals table goes right after the machine, before the cases it summarises.
    let goals = goals_md(&b);
    print!("{goals}");
    md.insert_str(header_len, &goals);
    match fs::write(&out, md) {
        Ok(()) => println!("wrote {} ({:.1}s in all)", out.display(), secs(started)),
        Err(e) => println!("cannot write {}: {e}", out.display()),
    }
    if failed > 0 {
        eprintln!("{failed} case(s) failed");
        std::process::exit(1);
    }
}

// ==== 10. Cluster: failover, refill, mutation rate ===========================================

/// In-process members (`tracker::member`), killed the way a crash looks to the others: the
/// listener and every connection closed, no goodbye. Figures: time from the kill to the next
/// acknowledged mutation (a client that follows `ERR not-leader`), the refill of a new leader
/// by re-registering peers, and the acknowledged mutation rate with 1 and with 3 members.
fn cluster_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    use torrentphile::tracker::member::{Member, bind_loopback};
    let dir = TempDir::new(b.root.join("cluster"))?;
    let start = |n: usize, tag: &str| -> Res<(Vec<Option<Member>>, Vec<SocketAddr>)> {
        let (cps, clients, config) = bind_loopback(n)?;
        let mut members = Vec::new();
        let mut addrs = Vec::new();
        for (i, (cp, client)) in cps.into_iter().zip(clients).enumerate() {
            addrs.push(client.local_addr()?);
            let mut t = TrackerConfig::one_host();
            t.accounts.iterations = 1;
            let state = dir.0.join(format!("{tag}-{}", i + 1));
            members.push(Some(Member::start(
                config.clone(),
                i as u64 + 1,
                &state,
                cp,
                client,
                t,
            )?));
        }
        Ok((members, addrs))
    };
    let leader = |m: &[Option<Member>]| {
        m.iter()
            .position(|x| x.as_ref().is_some_and(|x| x.cluster().is_leader()))
    };
    let wait_leader = |m: &[Option<Member>]| -> Res<usize> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = leader(m) {
                return Ok(i);
            }
            if Instant::now() > end {
                return Err("no leader in 20 s".into());
            }
            thread::sleep(Duration::from_millis(2));
        }
    };
    // One acknowledged CREATE-USER on whichever tracker leads (following ERR not-leader).
    let create = |addrs: &[SocketAddr], user: &str| -> bool {
        for addr in addrs {
            let Ok(c) = TcpStream::connect_timeout(addr, Duration::from_secs(1)) else {
                continue;
            };
            let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
            let mut r = BufReader::new(&c);
            let mut line = String::new();
            if (&c).write_all(format!("SALT {user}\n").as_bytes()).is_err()
                || r.read_line(&mut line).is_err()
            {
                continue;
            }
            if !line.starts_with("ACK salt=") {
                continue;
            }
            let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
            line.clear();
            let sent = (&c).write_all(format!("CREATE-USER {user} {key} {key}\n").as_bytes());
            if sent.is_ok()
                && r.read_line(&mut line).is_ok()
                && line.starts_with("ACK created user")
            {
                return true;
            }
        }
        false
    };
    // 1. kill the leader, time to the next acknowledged mutation.
    let runs = if b.scale.quick { 3 } else { 20 };
    let mut failover = Vec::new();
    for run in 0..runs {
        let (mut members, addrs) = start(3, &format!("f{run}"))?;
        wait_leader(&members)?;
        if !create(&addrs, "before") {
            return Err("no mutation acknowledged before the kill".into());
        }
        let old = wait_leader(&members)?;
        let t = Instant::now();
        if let Some(m) = members[old].as_mut() {
            m.kill();
        }
        members[old] = None;
        let mut n = 0;
        while !create(&addrs, &format!("after{n}")) {
            n += 1;
            if t.elapsed() > Duration::from_secs(30) {
                return Err("no mutation acknowledged 30 s after the kill".into());
            }
        }
        failover.push(secs(t));
    }
    let mut sorted = failover.clone();
    sorted.sort_by(f64::total_cmp);
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    s.row(
        format!("kill the leader → next acknowledged mutation, p50 over {runs} runs"),
        "s",
        failover,
    )
    .target = target("≤ 2 s", median(&sorted) <= 2.0);
    s.note(format!(
        "failover p99 (max of {runs}): {p99:.3} s; 3 members, default timing (election 0.5-1 s)"
    ));
    // 2. refill: peers re-register and re-announce to the new leader.
    let (peers, files) = if b.scale.quick {
        (200, 20)
    } else {
        (1_000, 100)
    };
    let (mut members, addrs) = start(3, "refill")?;
    let first = wait_leader(&members)?;
    let announce = |addr: SocketAddr| -> Res<Vec<TcpStream>> {
        let digest: Digest = "0".repeat(40).parse().map_err(|_| "digest")?;
        let lines = |p: usize| {
            let mut text = format!("REGISTER {}\n", 20_000 + p);
            for f in 0..files {
                let meta = Meta {
                    name: format!("p{p}f{f}"),
                    size: MIB,
                    piece_size: 1 << 18,
                    sha1: digest,
                    root: digest,
                };
                text.push_str(&format!("{}\n", Request::Upload(meta)));
            }
            text
        };
        // The registrations live as long as their connections.
        Ok(open_conns(addr, peers, files + 1, lines)?)
    };
    let old_conns = announce(addrs[first])?;
    let t = Instant::now();
    if let Some(m) = members[first].as_mut() {
        m.kill();
    }
    members[first] = None;
    let new = wait_leader(&members)?;
    let elected = secs(t);
    drop(old_conns);
    let r = Instant::now();
    let conns = announce(addrs[new])?;
    let refill = secs(r);
    let held = members[new]
        .as_ref()
        .map_or(0, |m| m.tracker().registry().file_count());
    s.row(
        format!("refill a new leader: {peers} peers × {files} files re-announced"),
        "s",
        vec![refill],
    )
    .target = target("≤ 2 s", refill <= 2.0);
    s.note(format!("refill: election {elected:.3} s after the kill, then {refill:.3} s for the peers (4 threads, pipelined), {held} files held"));
    drop(conns);
    drop(members);
    // 3. acknowledged mutations per second, 1 member and 3 members, 4 clients each.
    let measure = b.scale.measure;
    for n in [1, 3] {
        let (members, addrs) = start(n, &format!("rate{n}"))?;
        let l = wait_leader(&members)?;
        let only = [addrs[l]];
        let count = std::sync::atomic::AtomicUsize::new(0);
        thread::scope(|sc| {
            for c in 0..4 {
                let (count, only) = (&count, &only);
                sc.spawn(move || {
                    let t = Instant::now();
                    let mut k = 0;
                    while t.elapsed() < measure {
                        if create(only, &format!("r{c}x{k}")) {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        k += 1;
                    }
                });
            }
        });
        let rate = count.load(Ordering::Relaxed) as f64 / measure.as_secs_f64();
        s.row(
            format!("acknowledged CREATE-USER per second, {n} member(s), 4 clients"),
            "/s",
            vec![rate],
        );
        drop(members);
    }
    s.note("each mutation is durable on a majority's disk (fsync) before its ACK; a new connection per mutation");
    Ok(())
}
