//! Bench case 4: the tracker's WHOHAS rate and latency with 1, 16 and 256 clients, next to
//! the barest std server under the same load in the same run (a thread per connection echoing
//! each line back, `--echo-server`), so every figure is also a ratio to what the machine does
//! without the tracker.
//!
//! The load: every client is one connection with exactly one request in flight (a closed
//! loop: the next request leaves when the reply has been read). The connections are driven
//! by a few threads of this process (`CLIENT_THREADS`), each taking its connections' replies
//! in the order the requests left, so the bench's own threads do not crowd the server's on
//! the same two cores. Besides rates and latencies, each server's CPU time per request (from
//! /proc) is reported: what a request costs, whatever else the machine was doing.
//!
//! Knobs for profiling, never needed for `make bench`: `TORRENTPHILE_BENCH_CLIENTS=16`
//! measures only that count; `TORRENTPHILE_BENCH_CLIENT_THREADS=N` drives the load with N
//! threads; `TORRENTPHILE_BENCH_RUNS=15,500` makes 15 runs of 500 ms;
//! `TORRENTPHILE_BENCH_OLD_TRACKER=PATH` runs a second tracker binary (a build of another
//! commit) interleaved with this one, for before/after ratios (each tracker then holds half
//! the registrations, for the open-files limit).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use super::common::{fd_limit, secs};
use super::load::{CLIENT_THREADS, Target, knob, loaded_tracker, whohas_run};
use super::report::{Section, median, target};
use super::servers::spawn_listening;
use super::{BIN, Bench, FILES_PER_PEER, MIB, Res};
use torrentphile::protocol::{Digest, Meta};
use torrentphile::tracker::registry::{Limits, Registry};
use torrentphile::util::Rng;

pub(super) const DIGEST: &str = "84983e441c3bd26ebaae4aa1f95129e5e54670f1";

/// The registry alone, without sockets: the ceiling for the server.
fn registry_ceiling(peers: usize, s: &mut Section) -> Res<()> {
    let digest: Digest = DIGEST.parse().map_err(|_| "digest")?;
    let per = FILES_PER_PEER;
    let mut reg = Registry::with_limits(Limits::unlimited());
    for p in 0..peers {
        let id = format!("127.0.0.1:{}", 20_000 + p);
        let session = reg.register(&id).map_err(|e| e.message)?;
        for f in p * per..(p + 1) * per {
            let (name, size, piece_size) = (format!("f{f}"), MIB, 1 << 18);
            let meta = Meta {
                name,
                size,
                piece_size,
                sha1: digest,
                root: digest,
            };
            reg.upload(&id, session, &meta).map_err(|e| e.message)?;
        }
    }
    let (mut rng, lookups, t) = (Rng::new(3), peers * 100, Instant::now());
    for _ in 0..lookups {
        std::hint::black_box(reg.who_has(&format!("f{}", rng.below(peers * per))).is_ok());
    }
    let row = s.row(
        "Registry::who_has in memory, 1 thread",
        "req/s",
        vec![lookups as f64 / secs(t)],
    );
    row.vs = "no sockets: the ceiling".into();
    Ok(())
}

/// Samples of one server at one client count: rates, p50s, p99s, CPU per request of the
/// server and of the clients.
#[derive(Default)]
struct Samples {
    rate: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    server_cpu: Vec<f64>,
    client_cpu: Vec<f64>,
}

pub fn tracker_whohas(b: &mut Bench, s: &mut Section) -> Res<()> {
    let want = b.scale.peers;
    registry_ceiling(want, s)?;
    let old_bin = std::env::var("TORRENTPHILE_BENCH_OLD_TRACKER").ok();
    // Every registration is an open file here too: a second tracker halves the room.
    let trackers = 1 + usize::from(old_bin.is_some());
    let peers = want.min(fd_limit().saturating_sub(2 * (256 + 300)) / trackers);
    if peers < want {
        s.note(format!(
            "open files limit {}: {peers} peers instead of {want}",
            fd_limit()
        ));
    }
    let files = peers * FILES_PER_PEER;
    let tick = 1.0
        / super::common::run_text("getconf", &["CLK_TCK"])
            .trim()
            .parse()
            .unwrap_or(100.0);
    let me = std::env::current_exe()?;
    let (echo, echo_addr) = spawn_listening(Command::new(&me).arg("--echo-server"))?;
    let (tracker, addr, regs, note) = loaded_tracker(BIN, peers)?;
    s.note(format!("`torrentphile tracker` as a child process; {note}"));
    let mut targets = vec![
        Target {
            label: "echo",
            addr: echo_addr,
            answer: "WHOHAS",
            pid: echo.0.id(),
            tick,
        },
        Target {
            label: "tracker",
            addr,
            answer: "PEERS",
            pid: tracker.0.id(),
            tick,
        },
    ];
    // A second tracker binary to compare with (before/after a change), interleaved.
    let old = match old_bin {
        Some(bin) => {
            let (proc, addr, regs, note) = loaded_tracker(&bin, peers)?;
            s.note(format!("comparison tracker {bin}: {note}"));
            targets.push(Target {
                label: "old tracker",
                addr,
                answer: "PEERS",
                pid: proc.0.id(),
                tick,
            });
            Some((proc, regs))
        }
        None => None,
    };
    let threads = knob("TORRENTPHILE_BENCH_CLIENT_THREADS")
        .and_then(|v| v.first().copied())
        .unwrap_or(CLIENT_THREADS);
    let counts = knob("TORRENTPHILE_BENCH_CLIENTS").unwrap_or_else(|| vec![1, 16, 256]);
    // `TORRENTPHILE_BENCH_RUNS=15,500`: 15 runs of 500 ms (more, shorter interleaved runs
    // pair the servers more closely on a machine whose load moves).
    let (runs, measure) = match knob("TORRENTPHILE_BENCH_RUNS").as_deref() {
        Some(&[runs, ms]) => (runs, Duration::from_millis(ms as u64)),
        _ => (b.scale.runs, b.scale.measure),
    };
    let mut at16 = (f64::NAN, f64::NAN);
    for clients in counts {
        let mut got: Vec<Samples> = targets.iter().map(|_| Samples::default()).collect();
        // Interleaved: each run measures every server once, so load on the machine falls on
        // all of them alike.
        for _ in 0..runs {
            for (t, g) in targets.iter().zip(&mut got) {
                let [rate, p50, p99, server, client] =
                    whohas_run(t, clients, threads, files, measure)?;
                g.rate.push(rate);
                g.p50.push(p50);
                g.p99.push(p99);
                g.server_cpu.push(server);
                g.client_cpu.push(client);
            }
        }
        let echo = Figures::of(&got[0]);
        for (t, g) in targets.iter().zip(got) {
            let f = Figures::of(&g);
            let name = match t.label {
                "echo" => format!("baseline: echo server, {clients} client(s)"),
                "tracker" => format!("WHOHAS, {clients} client(s)"),
                label => format!("WHOHAS, {label}, {clients} client(s)"),
            };
            let is_echo = t.label == "echo";
            let row = s.row(name.clone(), "req/s", g.rate);
            if !is_echo {
                row.vs = format!("{:.2}x echo", f.rate / echo.rate);
            }
            if t.label == "tracker" {
                tracker_goals(b, row, clients, &f, &echo, &mut at16);
            }
            s.row(format!("{name}: p50"), "us", g.p50);
            let row = s.row(format!("{name}: p99"), "us", g.p99);
            row.vs = format!("{:.1}x p50", f.tail);
            if !is_echo {
                let _ = write!(row.vs, " ({:.2}x echo's)", f.tail / echo.tail);
            }
            if t.label == "tracker" && clients == 256 {
                row.target = target("<= 4x p50", f.tail <= 4.0);
                let what = "tracker WHOHAS, 256 clients, p99 vs p50";
                let value = format!("{:.1}x (echo server {:.1}x)", f.tail, echo.tail);
                b.goal(what, value, "<= 4x", f.tail <= 4.0);
                let what = "the same, vs the echo server's p99 vs p50";
                let r = f.tail / echo.tail;
                b.goal(what, format!("{r:.2}x"), "<= 1.5x", r <= 1.5);
            }
            let row = s.row(format!("{name}: server CPU"), "us/req", g.server_cpu);
            if !is_echo {
                row.vs = format!("{:.2}x echo", f.server_cpu / echo.server_cpu);
            }
            s.row(format!("{name}: clients' CPU"), "us/req", g.client_cpu);
        }
    }
    s.note(format!(
        "each client is one connection with one request in flight (the next leaves when the \
         reply is in), {:?} per measurement, every server measured in turn in each of the {} \
         runs; the connections are driven by {threads} threads of the bench process, each \
         reading its connections' replies in the order the requests left; latency includes \
         their scheduling on the same cores",
        measure, runs
    ));
    s.note(
        "baseline: the barest std server, a thread per connection (the tracker's stack size) \
         echoing each request line back (`io::copy`); same clients, same run. CPU per request: \
         user and system time of the server's process (or of the bench process, for the \
         clients) over the measurement, from /proc, divided by the requests answered",
    );
    // Kill the trackers before closing the registrations: 10,000 departures are not measured.
    drop(tracker);
    drop(old);
    drop(regs);
    Ok(())
}

/// The medians of one server's samples at one client count.
struct Figures {
    rate: f64,
    tail: f64,
    server_cpu: f64,
}

impl Figures {
    fn of(g: &Samples) -> Figures {
        Figures {
            rate: median(&g.rate),
            tail: median(&g.p99) / median(&g.p50),
            server_cpu: median(&g.server_cpu),
        }
    }
}

/// The goals of issue 13 on the tracker's rate row at `clients` clients, and the same goals
/// as ratios to the echo server under the same load (what this machine allows any server).
/// `at16` keeps the tracker's and the echo server's rates at 16 clients.
fn tracker_goals(
    b: &mut Bench,
    row: &mut super::report::Row,
    clients: usize,
    f: &Figures,
    echo: &Figures,
    at16: &mut (f64, f64),
) {
    let vs_echo = f.rate / echo.rate;
    if clients == 16 {
        *at16 = (f.rate, echo.rate);
        let met = f.rate >= 100_000.0;
        row.target = target(">= 100000 req/s", met);
        let value = format!("{:.0} req/s ({vs_echo:.2}x echo)", f.rate);
        b.goal("tracker WHOHAS, 16 clients", value, ">= 100,000 req/s", met);
        let what = "tracker WHOHAS, 16 clients, vs the echo server";
        b.goal(what, format!("{vs_echo:.2}x"), ">= 0.9x", vs_echo >= 0.9);
    }
    if clients == 256 {
        let r = f.rate / at16.0;
        let echo_r = echo.rate / at16.1;
        row.vs = format!("{r:.2}x 16 clients (echo {echo_r:.2}x), {vs_echo:.2}x echo");
        row.target = target(">= 0.9x 16 clients", r >= 0.9);
        let what = "tracker WHOHAS, 256 vs 16 clients, throughput";
        b.goal(what, format!("{r:.2}x"), ">= 0.9x", r >= 0.9);
        let what = "the same, vs the echo server's 256 vs 16 clients";
        let rr = r / echo_r;
        b.goal(what, format!("{rr:.2}x"), ">= 0.9x", rr >= 0.9);
    }
}
