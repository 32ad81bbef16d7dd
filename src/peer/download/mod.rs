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
//! - `report.rs`: what a download shows: its progress line, the lines it says as it goes, and
//!   the report at the end;
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
mod buffers;
mod coordinator;
mod disk;
mod fetcher;
mod lanes;
mod prepare;
mod report;
mod state;
mod torrent;
mod verifier;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::conn::{Timeouts, Trace};
use crate::peer::events::Events;
use crate::peer::link::Link;
use crate::peer::picker::{Picker, Strategy};
use crate::peer::store::Store;
use crate::protocol::{Meta, Request};
use crate::util::Rng;
pub use access::Access;
use coordinator::Plan;
use disk::Pool;
pub use fetcher::MIN_RATE;
use prepare::{Needs, Prepared, Ready};
use report::Lines;
pub use report::{Progress, Report};
use state::{Shared, Tuning};
pub use torrent::{download_torrent, landing};

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
            window_bytes: 128 << 20,
            trace: Trace::off(),
            whole_file_check: false,
            progress: ProgressStyle::Quiet,
            report_every: Duration::from_secs(3),
            access: None,
            unverified_bench_only: false,
        }
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
