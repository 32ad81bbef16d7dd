//! Downloading one file from every peer that holds it, at once. Read top-down:
//!
//! - here: the API (`download`, its options, progress, report and errors), and `download`
//!   itself, which reads as its three steps: prepare, transfer, publish;
//! - `prepare.rs`: `INFO`, the download lock, a file already under the name, the piece
//!   hashes, the part file and its resume recheck;
//! - `coordinator.rs`: asks `WHOHAS`, keeps a worker per holder, strikes and bans failing
//!   peers, decides when to stop;
//! - `fetcher.rs`: a worker per holder, with its pipelined fetcher, streaming each piece to
//!   the part file and to the worker's hasher;
//! - `verifier.rs`: the workers' hashers, the flusher, the whole-file hasher;
//! - `lanes.rs`: a hasher's bookkeeping for hashing two pieces at once;
//! - `state.rs`: `Shared`, the state all those threads share;
//! - `access.rs`: the hook for a file that is not public (a group's): other tracker verbs, and
//!   a ticket presented on every holder connection;
//! - `torrent.rs`: a download of what a .torrent describes: its own prepare and publish
//!   around the same transfer.
//!
//! Dependencies point one way: this file → `prepare`, `coordinator` → `fetcher` →
//! `verifier` → `state`; none of them imports this file. Nothing appears under the final name
//! until every piece is verified.

mod access;
pub mod bt_fetch;
mod coordinator;
mod fetcher;
mod lanes;
mod prepare;
mod state;
mod torrent;
mod verifier;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::conn::{Timeouts, Trace};
use crate::peer::events::Events;
use crate::peer::link::Link;
use crate::peer::picker::{Picker, Strategy};
use crate::peer::store::Store;
use crate::protocol::{Meta, Request};
use crate::util::{Rng, plural};
pub use access::Access;
use coordinator::{Plan, Tick};
pub use fetcher::MIN_RATE;
use prepare::{Needs, Prepared, Ready};
use state::{Shared, Tuning};
pub use torrent::{download_torrent, landing};
use verifier::Pool;

/// How a download shows its progress while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressStyle {
    /// The caller draws `Progress::line` itself (a `\r` line on a terminal); the download
    /// prints nothing while it runs.
    Terminal,
    /// For output that is not a terminal (a pipe, a log): the download says one line every
    /// `report_every`, its progress or, when nothing arrives, `still waiting: ...`.
    Lines,
    /// Nothing while it runs.
    #[default]
    Quiet,
}

/// How a download runs.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Most remote peers fetched from at once (one connection and two threads each).
    pub workers: usize,
    pub strategy: Strategy,
    pub timeouts: Timeouts,
    /// Bytes of requests kept in flight per peer (pipelining depth).
    pub window_bytes: u64,
    pub trace: Trace,
    /// Also hash the whole file before publishing it (a second SHA-1 pass, run as the verified
    /// prefix grows). The piece hashes, bound to the tracker's `root`, already vouch for every
    /// byte; this catches a first holder whose announced SHA-1 does not match its own pieces.
    /// Off by default: SHA-1 bounds a transfer, and a second pass halves its speed.
    pub whole_file_check: bool,
    /// How progress is shown while the download runs.
    pub progress: ProgressStyle,
    /// With `ProgressStyle::Lines`: how often a line is said (default 3 s).
    pub report_every: Duration,
    /// `None` for a public file. For a group's file: how to ask about it and be let in.
    pub access: Option<Arc<dyn Access>>,
    /// BENCHMARKS ONLY: store pieces without hashing them, so `make bench` can measure the
    /// same transfer unverified and show what verification costs. Never set by the CLI or the
    /// shell; a download with it set is not checked at all. Always `false` in real use.
    #[doc(hidden)]
    pub unverified_bench_only: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            workers: 8,
            strategy: Strategy::RarestFirst,
            timeouts: Timeouts::default(),
            window_bytes: 64 << 20,
            trace: Trace::off(),
            whole_file_check: false,
            progress: ProgressStyle::Quiet,
            report_every: Duration::from_secs(3),
            access: None,
            unverified_bench_only: false,
        }
    }
}
/// A download's progress, shared with the shell's `status` and the progress line.
#[derive(Debug)]
pub struct Progress {
    pub name: String,
    pub started: Instant,
    pub size: AtomicU64,
    /// Bytes verified, including pieces resumed from an earlier run.
    pub verified: AtomicU64,
    /// Bytes verified in this run (for the rate).
    pub fetched: AtomicU64,
    pub peers: AtomicUsize,
    /// `None` while running; then the one-line outcome.
    pub outcome: Mutex<Option<Result<String, String>>>,
}

impl Progress {
    pub fn new(name: &str) -> Progress {
        Progress {
            name: name.to_string(),
            started: Instant::now(),
            size: AtomicU64::new(0),
            verified: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            peers: AtomicUsize::new(0),
            outcome: Mutex::new(None),
        }
    }

    /// One line: `big.bin  42.0%  310.5 MB/s  3 peers  ETA 2s`, or the outcome.
    pub fn line(&self) -> String {
        if let Some(outcome) = &*self.outcome.lock().unwrap_or_else(PoisonError::into_inner) {
            return match outcome {
                Ok(msg) => format!("{}  done: {msg}", self.name),
                Err(msg) => format!("{}  failed: {msg}", self.name),
            };
        }
        let size = self.size.load(Ordering::Relaxed);
        let verified = self.verified.load(Ordering::Relaxed);
        if size == 0 && self.peers.load(Ordering::Relaxed) == 0 {
            return format!("{}  starting", self.name);
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.fetched.load(Ordering::Relaxed) as f64 / secs;
        let pct = if size == 0 {
            100.0
        } else {
            verified as f64 * 100.0 / size as f64
        };
        let eta = if rate > 0.0 {
            format!("{:.0}s", (size - verified.min(size)) as f64 / rate)
        } else {
            "?".into()
        };
        format!(
            "{}  {pct:5.1}%  {:.1} MB/s  {}  ETA {eta}",
            self.name,
            rate / 1e6,
            plural(self.peers.load(Ordering::Relaxed) as u64, "peer")
        )
    }
}

/// What a finished download did.
#[derive(Debug, Clone)]
pub struct Report {
    pub meta: Meta,
    pub elapsed: Duration,
    /// Pieces already held and verified when the download started (resume).
    pub resumed: u32,
    /// Verified pieces and bytes, by the peer they came from.
    pub from: BTreeMap<String, (u32, u64)>,
    /// Peers dropped for sending a piece that failed its hash.
    pub corrupt: Vec<String>,
    /// The file was already in the folder, and it is the tracker's file: nothing was fetched.
    pub already_here: bool,
    /// The whole file was hashed and matched the announced `sha1` (`--whole-hash`). Without
    /// it only every piece was checked against `root`, and the `sha1` is the first holder's
    /// word, so it is not printed as a result.
    pub whole_checked: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let meta = &self.meta;
        if self.already_here {
            return write!(
                f,
                "{} ({} bytes, sha1 {}) was already here, verified: it is the tracker's file; nothing fetched",
                meta.name, meta.size, meta.sha1
            );
        }
        let bytes: u64 = self.from.values().map(|(_, b)| b).sum();
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        let checked = if self.whole_checked {
            format!("sha1 {} checked", meta.sha1)
        } else {
            format!(
                "every piece checked against root {}; whole-file sha1 not computed (--whole-hash)",
                meta.root
            )
        };
        write!(
            f,
            "{} ({} bytes, {checked}) in {:.2}s, {:.1} MB/s from {}",
            meta.name,
            meta.size,
            secs,
            bytes as f64 / secs / 1e6,
            plural(self.from.len() as u64, "peer")
        )?;
        if self.resumed > 0 {
            write!(f, ", {} resumed", plural(self.resumed.into(), "piece"))?;
        }
        Ok(())
    }
}

/// Why a download did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadError {
    /// No peer holds the name.
    NotFound(String),
    /// It could not start or could not finish (verified pieces are kept for a later resume).
    /// Among the reasons: another download of the same name into the same folder is running
    /// (it fails at once: "another download of NAME into DIR is running"); a different file
    /// already has the name; a file appeared under the name while downloading (the verified
    /// download stays in `.torrentphile/NAME.part`).
    Failed(String),
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DownloadError::NotFound(m) | DownloadError::Failed(m) => write!(f, "{m}"),
        }
    }
}

fn failed(msg: impl Into<String>) -> DownloadError {
    DownloadError::Failed(msg.into())
}

/// Everything a download needs from its peer.
pub struct Context<'a> {
    pub store: &'a Arc<Store>,
    pub link: &'a Link,
    /// This peer's id as the tracker knows it (`ip:port`).
    pub me: &'a str,
    pub options: &'a DownloadOptions,
    pub progress: &'a Progress,
    /// Where the download's lines go (`ProgressStyle::Lines`).
    pub events: &'a Events,
}

/// Download `name` into the store's folder. Blocks until it is complete and verified, or has
/// failed.
pub fn download(ctx: &Context, name: &str) -> Result<Report, DownloadError> {
    let started = Instant::now();
    let needs = Needs {
        store: ctx.store,
        link: ctx.link,
        me: ctx.me,
        timeouts: ctx.options.timeouts,
        trace: ctx.options.trace.clone(),
        access: ctx.options.access.clone(),
    };
    let prepared = match prepare::prepare(&needs, name).map_err(failed)? {
        Ready::Fetch(prepared) => prepared,
        Ready::AlreadyHere(meta) => return Ok(already_here(ctx, meta, started)),
        Ready::NotFound(why) => return Err(DownloadError::NotFound(why)),
    };
    let resumed = prepared.have.count();
    let preferred = prepared.responsive.clone();
    let (shared, lock) = transfer_state(ctx, prepared);
    let corrupt = transfer(ctx, &shared, &preferred)?;
    publish(ctx, &shared)?;
    drop(lock);
    Ok(Report {
        meta: shared.meta().clone(),
        elapsed: started.elapsed(),
        resumed,
        from: shared.from(),
        corrupt,
        already_here: false,
        whole_checked: ctx.options.whole_file_check,
    })
}

/// The file is already here and is the tracker's: make sure the tracker lists us.
fn already_here(ctx: &Context, meta: Meta, started: Instant) -> Report {
    ctx.progress.size.store(meta.size, Ordering::Relaxed);
    ctx.progress.verified.store(meta.size, Ordering::Relaxed);
    let _ = announce(ctx, &meta);
    Report {
        resumed: meta.pieces(),
        meta,
        elapsed: started.elapsed(),
        from: BTreeMap::new(),
        corrupt: Vec::new(),
        already_here: true,
        whole_checked: false,
    }
}

/// The state the download's threads share, built from what `prepare` found; and the lock,
/// kept until the end.
fn transfer_state(ctx: &Context, p: Prepared) -> (Arc<Shared>, prepare::Lock) {
    ctx.progress.size.store(p.meta.size, Ordering::Relaxed);
    ctx.progress
        .verified
        .store(p.resumed_bytes, Ordering::Relaxed);
    let have = p.have.clone();
    let picker = Picker::new(
        p.meta.pieces(),
        |i| have.has(i),
        ctx.options.strategy,
        Rng::from_time().next_u64(),
    );
    let shared = Shared::new(state::Start {
        meta: p.meta,
        hashes: p.hashes,
        part: p.part,
        have: p.have,
        picker,
        verified: p.resumed_bytes,
        me: ctx.me.to_string(),
        tuning: Tuning {
            timeouts: ctx.options.timeouts,
            trace: ctx.options.trace.clone(),
            window_bytes: ctx.options.window_bytes,
            access: ctx.options.access.clone(),
            unverified_bench_only: ctx.options.unverified_bench_only,
        },
    });
    (Arc::new(shared), p.lock)
}

/// Fetch and verify every missing piece: the flusher, then the coordinator until done.
/// Returns the peers dropped as corrupt.
fn transfer(
    ctx: &Context,
    shared: &Arc<Shared>,
    preferred: &[String],
) -> Result<Vec<String>, DownloadError> {
    transfer_bt(ctx, shared, preferred, None)
}

/// `transfer`, with a torrent's BitTorrent swarm as more holders.
fn transfer_bt(
    ctx: &Context,
    shared: &Arc<Shared>,
    preferred: &[String],
    bt: Option<Arc<bt_fetch::BtSwarm>>,
) -> Result<Vec<String>, DownloadError> {
    let meta = shared.meta().clone();
    let pool = Pool::start(shared, ctx.options.whole_file_check).map_err(failed)?;
    let plan = Plan {
        link: ctx.link,
        me: ctx.me,
        workers: ctx.options.workers,
        io_timeout: ctx.options.timeouts.io,
        preferred,
        bt,
        access: ctx.options.access.as_deref(),
    };
    let mut lines = Lines::new(ctx, &meta);
    let result = coordinator::coordinate(&plan, shared, &mut |tick| {
        ctx.progress.peers.store(tick.peers, Ordering::Relaxed);
        ctx.progress
            .verified
            .store(tick.verified, Ordering::Relaxed);
        ctx.progress.fetched.store(tick.fetched, Ordering::Relaxed);
        lines.tick(tick);
    });
    let digest = pool.finish(shared, meta.sha1);
    let corrupt = result.map_err(failed)?;
    match digest {
        Some(d) if d == meta.sha1 => Ok(corrupt),
        Some(d) => Err(failed(format!(
            "every piece verified but the whole file hashes to {d}, not {}: the first holder announced inconsistent hashes; nothing was published",
            meta.sha1
        ))),
        None => Err(failed("the whole-file hash did not finish")),
    }
}

/// Every piece verified: `fsync`, give the part file its name, announce it.
fn publish(ctx: &Context, shared: &Shared) -> Result<(), DownloadError> {
    let meta = shared.meta();
    shared.part().sync_all().map_err(|e| {
        failed(format!(
            "cannot flush {}: {e}",
            ctx.store.part_path(&meta.name).display()
        ))
    })?;
    ctx.store.publish(meta, shared.hashes()).map_err(failed)?;
    if let Err(e) = announce(ctx, meta) {
        ctx.events.say(&format!(
            "{}: downloaded, but announcing it failed: {e}",
            meta.name
        ));
    }
    Ok(())
}

/// Tell the tracker we hold the whole file: `UPLOAD`, or the access's own announcement.
fn announce(ctx: &Context, meta: &Meta) -> Result<(), String> {
    match &ctx.options.access {
        Some(access) => access.announce(meta),
        None => ctx.link.call_line(Request::Upload(meta.clone())).map(drop),
    }
}

/// `ProgressStyle::Lines`: one line every `report_every`.
struct Lines<'a> {
    ctx: &'a Context<'a>,
    name: String,
    pieces: u32,
    size: u64,
    last: Instant,
    last_fetched: u64,
}

impl<'a> Lines<'a> {
    fn new(ctx: &'a Context<'a>, meta: &Meta) -> Lines<'a> {
        Lines {
            ctx,
            name: meta.name.clone(),
            pieces: meta.pieces(),
            size: meta.size,
            last: Instant::now(),
            last_fetched: 0,
        }
    }

    fn tick(&mut self, tick: &Tick) {
        let every = self.ctx.options.report_every;
        if self.ctx.options.progress != ProgressStyle::Lines || self.last.elapsed() < every {
            return;
        }
        let secs = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let line = if tick.quiet_for >= every {
            format!(
                "{}: still waiting: {} of {} pieces, {}, nothing received for {} s",
                self.name,
                tick.pieces,
                self.pieces,
                plural(tick.peers as u64, "holder"),
                tick.quiet_for.as_secs()
            )
        } else {
            let pct = tick.verified as f64 * 100.0 / self.size.max(1) as f64;
            let rate = (tick.fetched - self.last_fetched.min(tick.fetched)) as f64 / secs / 1e6;
            format!(
                "{}: {pct:.1}% ({} of {} pieces) from {}, {rate:.1} MB/s",
                self.name,
                tick.pieces,
                self.pieces,
                plural(tick.peers as u64, "peer")
            )
        };
        self.last_fetched = tick.fetched;
        self.ctx.events.say(&line);
    }
}
