//! The load for bench case 4 (`tracker.rs`): a tracker child process (or the echo server)
//! with many registrations, closed-loop clients driven by a few threads, and each server's
//! CPU time per request from /proc. No figures or goals here: `tracker.rs` makes those.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use super::common::{Proc, pid_kib, secs};
use super::servers::{open_conns, spawn_listening};
use super::tracker::DIGEST;
use super::{FILES_PER_PEER, MIB, Res};
use torrentphile::protocol::Digest;
use torrentphile::util::Rng;

/// Most threads driving the load (each with its share of the connections). With a thread
/// per client, 256 client threads and 256 connection threads shared 2 cores, and the p99
/// measured the bench's own scheduling (40x p50 for the tracker, 5x for the echo server;
/// with 4 threads, 2.5x-4.6x for both). With 2 threads the echo server ran slower than with
/// a thread per client (the load generator was the bound); 4 drove it at least as fast as
/// 16 threads did, at 16 clients.
pub(super) const CLIENT_THREADS: usize = 4;

/// Numbers from the environment (a profiling knob: `12` or `15,500`), if set.
pub(super) fn knob(name: &str) -> Option<Vec<usize>> {
    let text = std::env::var(name).ok()?;
    Some(
        text.split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
    )
}

/// CPU time a process has used so far (user and system, all its threads), in seconds:
/// `pid` 0 is this process. From /proc, in clock ticks of `tick` seconds.
pub(super) fn cpu_secs(pid: u32, tick: f64) -> f64 {
    let path = match pid {
        0 => "/proc/self/stat".to_string(),
        pid => format!("/proc/{pid}/stat"),
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |i: usize| -> f64 {
        rest.split_whitespace()
            .nth(i - 3)
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (field(14) + field(15)) * tick
}

/// A tracker binary as a child process, its per-address caps lifted (every bench client is
/// 127.0.0.1).
pub(super) fn spawn_tracker_bin(bin: &str, max_conns: usize) -> Res<(Proc, SocketAddr)> {
    let n = max_conns.to_string();
    let mut cmd = Command::new(bin);
    cmd.args(["tracker", "--port", "0", "--timeout", "600"]);
    cmd.args(["--max-conns", &n, "--max-conns-per-addr", &n]);
    cmd.args([
        "--max-peers-per-addr",
        &n,
        "--max-files-per-addr",
        "100000000",
    ]);
    spawn_listening(&mut cmd)
}

/// One load thread: keeps one WHOHAS in flight on each of `conns` for `measure`, reading the
/// replies in the order the requests left; each reply must start with `answer`. Latencies
/// in ns, from just before the request's write to the end of its reply's read.
pub(super) fn drive(
    conns: &[TcpStream],
    seed: u64,
    files: usize,
    measure: Duration,
    answer: &str,
) -> Result<Vec<u64>, String> {
    let (mut rng, mut ask, mut reply) = (Rng::new(seed), String::new(), Vec::new());
    let mut send = |c: &TcpStream, rng: &mut Rng| -> Result<Instant, String> {
        ask.clear();
        let _ = writeln!(ask, "WHOHAS f{}", rng.below(files));
        let t = Instant::now();
        let mut c = c;
        c.write_all(ask.as_bytes())
            .map_err(|e| format!("WHOHAS: {e}"))?;
        Ok(t)
    };
    let mut flying = VecDeque::with_capacity(conns.len());
    for (i, c) in conns.iter().enumerate() {
        flying.push_back((i, send(c, &mut rng)?));
    }
    let (start, mut lat, mut buf) = (Instant::now(), Vec::new(), [0u8; 1024]);
    while start.elapsed() < measure && lat.len() < 10_000_000 {
        let Some((i, sent)) = flying.pop_front() else {
            break;
        };
        let mut c = &conns[i];
        reply.clear();
        while reply.last() != Some(&b'\n') {
            match c.read(&mut buf) {
                Ok(0) => return Err("the server closed a connection".into()),
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) => return Err(format!("reading a reply: {e}")),
            }
        }
        lat.push(sent.elapsed().as_nanos() as u64);
        let lines = reply.iter().filter(|&&b| b == b'\n').count();
        if lines != 1 || !reply.starts_with(answer.as_bytes()) {
            let text = String::from_utf8_lossy(&reply);
            return Err(format!(
                "WHOHAS was answered {text:?} (expected one {answer} line)"
            ));
        }
        flying.push_back((i, send(c, &mut rng)?));
    }
    Ok(lat)
}

/// `clients` connections to `addr`, one request in flight on each, driven by `threads`
/// threads for `measure`: requests per second, p50 and p99 latency in microseconds.
pub(super) fn whohas_run(
    t: &Target,
    clients: usize,
    threads: usize,
    files: usize,
    measure: Duration,
) -> Res<[f64; 5]> {
    let (addr, answer) = (t.addr, t.answer);
    let conns = open_conns(addr, clients, 1, |_| "PING\n".into())?;
    for c in &conns {
        c.set_nodelay(true)?;
    }
    let per = clients.div_ceil(threads.clamp(1, clients));
    let barrier = Barrier::new(clients.div_ceil(per) + 1);
    type Got = (f64, f64, f64, Vec<u64>);
    let (took, server, client, mut lat) = thread::scope(|s| -> Result<Got, String> {
        let barrier = &barrier;
        let workers: Vec<_> = conns
            .chunks(per)
            .enumerate()
            .map(|(k, group)| {
                s.spawn(move || {
                    barrier.wait();
                    drive(group, k as u64, files, measure, answer)
                })
            })
            .collect();
        let cpu = (cpu_secs(t.pid, t.tick), cpu_secs(0, t.tick));
        barrier.wait();
        let (start, mut all) = (Instant::now(), Vec::new());
        for w in workers {
            all.extend(w.join().map_err(|_| "a client thread panicked")??);
        }
        let took = secs(start);
        let server = cpu_secs(t.pid, t.tick) - cpu.0;
        Ok((took, server, cpu_secs(0, t.tick) - cpu.1, all))
    })?;
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize)
            .map_or(f64::NAN, |&n| n as f64 / 1e3)
    };
    let n = lat.len() as f64;
    Ok([
        n / took,
        pct(0.5),
        pct(0.99),
        server / n * 1e6,
        client / n * 1e6,
    ])
}

/// A tracker child process with `peers` registered peers (each on its own live connection)
/// announcing `FILES_PER_PEER` files each: the process, its address, the registrations, and
/// a note on how long they took.
pub(super) fn loaded_tracker(
    bin: &str,
    peers: usize,
) -> Res<(Proc, SocketAddr, Vec<TcpStream>, String)> {
    let digest: Digest = DIGEST.parse().map_err(|_| "digest")?;
    let per = FILES_PER_PEER;
    let (tracker, addr) = spawn_tracker_bin(bin, peers + 256 + 100)?;
    let t = Instant::now();
    let regs = open_conns(addr, peers, 1 + per, |i| {
        let mut lines = format!("REGISTER {}\n", 20_000 + i);
        for f in i * per..(i + 1) * per {
            let _ = writeln!(lines, "UPLOAD f{f} {MIB} 262144 {:040x} {digest}", f + 1);
        }
        lines
    })?;
    let note = format!(
        "{peers} peers registered, each on its own live connection, and {} files announced \
         in {:.1}s; tracker RSS then {} MiB",
        peers * per,
        secs(t),
        pid_kib(tracker.0.id(), "VmRSS").unwrap_or(0) / 1024
    );
    Ok((tracker, addr, regs, note))
}

/// One server under test: a label, its address, what its replies start with.
pub(super) struct Target {
    pub(super) label: &'static str,
    pub(super) addr: SocketAddr,
    pub(super) answer: &'static str,
    /// Its process (for its CPU time) and the length of a clock tick there, in seconds.
    pub(super) pid: u32,
    pub(super) tick: f64,
}
