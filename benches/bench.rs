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
//!
//! This file holds the options, the case list, the runner and what it writes (the header,
//! the goals table). Each case, or family of cases, is a file under `benches/bench/`:
//! `transfer.rs` (1), `swarm.rs` (2), `latency.rs` (3), `tracker.rs` (4), `memory.rs` (5, 6),
//! `bittorrent.rs` (7, 9, 13), `sim.rs` (8), `accounts.rs` (10), `cluster.rs` (11),
//! `hostile.rs` (12); beside them the baselines and helpers they share: `tcp.rs` (plain TCP
//! copies), `servers.rs` (child-process servers, the echo server), `common.rs`, and
//! `report.rs` (statistics, the tables).

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{fd_limit, proc_kib, run_text, secs};
use report::{Section, section_md};

#[path = "bench/accounts.rs"]
mod accounts;
#[path = "../tests/hostile/bind.rs"]
mod bind;
#[path = "bench/bittorrent.rs"]
mod bittorrent;
#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/common.rs"]
mod common;
#[path = "bench/hostile.rs"]
mod hostile;
#[path = "bench/latency.rs"]
mod latency;
#[path = "bench/load.rs"]
mod load;
#[path = "bench/memory.rs"]
mod memory;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/servers.rs"]
mod servers;
#[path = "bench/sim.rs"]
mod sim;
#[path = "bench/swarm.rs"]
mod swarm;
#[path = "bench/tcp.rs"]
mod tcp;
#[path = "bench/tracker.rs"]
mod tracker;
#[path = "bench/transfer.rs"]
mod transfer;

const BIN: &str = env!("CARGO_BIN_EXE_torrentphile");
const MIB: u64 = 1 << 20;
const MB: f64 = 1e6;

type Res<T> = Result<T, Box<dyn Error>>;

// ==== Scale, the state cases share ============================================================

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
            .push(format!("| {figure} | {value} | | {goal} | {state} |"));
    }

    /// A goal on rates that writing files moves (see the machine note): also the ratio of
    /// the two sides' best runs, which the host's cold memory can only lower.
    fn goal_best(&mut self, figure: &str, value: f64, best: f64, goal: &str, met: bool) {
        let state = if met { "met" } else { "not yet" };
        self.goals.push(format!(
            "| {figure} | {value:.2}x | {best:.2}x | {goal} | {state} |"
        ));
    }
}

/// The goals table: every goal, each a ratio to a baseline of the same run (medians; met or
/// not is judged on them), and for rates that writing files moves the best runs' ratio too.
fn goals_md(b: &Bench) -> String {
    let mut md = String::from("## Goals (issue 13), this run\n\n");
    md.push_str("| figure | this run | best run vs best run | goal | |\n");
    md.push_str("|---|---:|---:|---|---|\n");
    for line in &b.goals {
        md.push_str(line);
        md.push('\n');
    }
    md.push('\n');
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
    let touch = first_touch_rate(if b.scale.quick { 64 } else { 1024 });
    let reporting = page_reporting();
    format!(
        "# Torrentphile benchmarks\n\nWritten by `benches/bench.rs` (`make bench`): the {mode} \
         run, {build} build. Each figure is the median of its runs, with min and max; ratios are \
         to baselines measured in the same run.\n\n## Machine\n\n- nproc: {}\n- CPU: {model}\n\
         - kernel: {}\n- memory: {mem} MiB\n- open files limit: {}\n- SHA-1: {}\n\
         - first write to fresh memory: {touch:.0} MB/s (see the note below)\n\
         - free page reporting to the host: {reporting}\n\
         - commit: {} (the working tree may differ)\n- date: {}\n\n\
         On a virtual machine whose host backs guest memory only when it is first touched (and \
         takes idle memory back), every new page-cache page a download writes can cost that \
         first touch: on the 2-core EPYC VM it ran at 270 MB/s when cold, and it moved \
         `copy_folio_from_iter_atomic` (the write into the page cache) from 4% to 26% of a \
         profile between runs minutes apart. Figures that write files vary with it; the line \
         above says how cold memory was when this run started. With free page reporting on \
         (the line above), the guest hands freed memory back to the host, so the page cache \
         of a file the bench just deleted can be cold again for the next run: a download \
         whose writes land on such memory runs at half speed or less (in one profile \
         `copy_folio_from_iter_atomic` took 44% of the samples), and so does a baseline. \
         Cases 1, 3 and 7 do one untimed download first, and cases 1 and 3 interleave their \
         runs with their baselines'; what is left shows in the spread between min and max.\n\n",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        fd_limit(),
        torrentphile::sha1::backend(),
        git.trim(),
        date.trim()
    )
}

/// Whether the guest reports freed memory to its host (virtio-balloon free page reporting),
/// and at what block size: read from the kernel's module parameters, or "not found".
fn page_reporting() -> String {
    let dir = Path::new("/sys/module/page_reporting/parameters");
    let read = |name: &str| fs::read_to_string(dir.join(name)).map(|v| v.trim().to_string());
    match (read("page_reporting_order"), read("min_free_ms")) {
        (Ok(order), Ok(ms)) => format!("on, blocks of order {order}, after {ms} ms free"),
        (Ok(order), Err(_)) => format!("on, blocks of order {order}"),
        _ => "not found (no virtio-balloon page reporting)".into(),
    }
}

/// MB/s of writing `mib` MiB of freshly allocated memory once (the first touch of each page).
fn first_touch_rate(mib: usize) -> f64 {
    let t = Instant::now();
    let mut fresh: Vec<u8> = Vec::with_capacity(mib << 20);
    fresh.resize(mib << 20, 1);
    std::hint::black_box(&fresh);
    (mib << 20) as f64 / t.elapsed().as_secs_f64().max(1e-9) / 1e6
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
        servers::echo_server();
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
        (
            "Transfer: one download from 1, 2, 4 holders",
            transfer::transfer,
        ),
        ("Swarm: 1 seeder, 8 and 16 downloaders", swarm::swarm),
        (
            "Latency: a download over a 50 ms RTT relay",
            latency::latency,
        ),
        ("Tracker: WHOHAS rate", tracker::tracker_whohas),
        (
            "Connections: idle connections one tracker holds",
            memory::connections,
        ),
        ("Memory: peak RSS of a downloading peer", memory::memory),
        ("Comparison with aria2c", bittorrent::aria2),
        ("`make sim`: classic scenario wall time", sim::sim),
        (
            ".torrent: create vs mktorrent, get --torrent vs get",
            bittorrent::torrent_case,
        ),
        (
            "Accounts: login cost, group vs public download",
            accounts::accounts_case,
        ),
        (
            "Cluster: failover, refill, mutation rate",
            cluster::cluster_case,
        ),
        (
            "Hostile: a download under a flood, among 50 fakes",
            hostile::hostile,
        ),
        (
            "BitTorrent wire: aria2c and torrentphile, both ways",
            bittorrent::bt_wire,
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
