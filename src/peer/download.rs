//! Downloading one file from every peer that holds it, at once: the public API (`download`,
//! its options, progress and report) and the steps before and after the transfer.
//!
//! 1. `INFO` gives the file's `FILE` line; the piece hashes come from a cache or `HASHES`,
//!    checked against its `root`.
//! 2. The part file is opened; whatever it already holds is re-hashed (resume).
//! 3. `coordinator.rs` keeps a worker per holder; `fetch.rs` has the workers, the verifier
//!    pool, the whole-file hasher and the flusher.
//! 4. Once every piece is verified: `fsync`, rename into place, `UPLOAD`.
//!
//! Nothing appears under the final name until every piece is verified.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::OpenOptions;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::conn::{Conn, Timeouts, Trace};
use crate::peer::coordinator::coordinate;
use crate::peer::fetch::{self, Job, Shared};
use crate::peer::link::Link;
use crate::peer::picker::{Picker, Strategy};
use crate::peer::store::{self, Holding, PieceSet, Store};
use crate::protocol::{Digest, ErrCode, Holder, Meta, Reply, Request, check_name};
use crate::util::Rng;

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
            "{}  {pct:5.1}%  {:.1} MB/s  {} peers  ETA {eta}",
            self.name,
            rate / 1e6,
            self.peers.load(Ordering::Relaxed)
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
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let bytes: u64 = self.from.values().map(|(_, b)| b).sum();
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        write!(
            f,
            "{} ({} bytes, sha1 {}) in {:.2}s, {:.1} MB/s from {} peer(s)",
            self.meta.name,
            self.meta.size,
            self.meta.sha1,
            secs,
            bytes as f64 / secs / 1e6,
            self.from.len()
        )?;
        if self.resumed > 0 {
            write!(f, ", {} piece(s) resumed", self.resumed)?;
        }
        Ok(())
    }
}

/// Why a download did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadError {
    /// No peer holds the name.
    NotFound(String),
    /// It started but could not finish (verified pieces are kept for a later resume).
    Failed(String),
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            DownloadError::NotFound(m) | DownloadError::Failed(m) => write!(f, "{m}"),
        }
    }
}

pub(crate) fn failed(msg: impl Into<String>) -> DownloadError {
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
}

/// Download `name` into the store's folder. Blocks until it is complete and verified, or has
/// failed.
pub fn download(ctx: &Context, name: &str) -> Result<Report, DownloadError> {
    let started = Instant::now();
    check_name(name).map_err(|e| failed(e.message))?;
    if let Some(entry) = ctx.store.get(name)
        && matches!(entry.holding, Holding::Complete)
    {
        ctx.progress.size.store(entry.meta.size, Ordering::Relaxed);
        ctx.progress
            .verified
            .store(entry.meta.size, Ordering::Relaxed);
        return Ok(Report {
            meta: entry.meta.clone(),
            elapsed: started.elapsed(),
            resumed: entry.meta.pieces(),
            from: BTreeMap::new(),
            corrupt: Vec::new(),
        });
    }
    let meta = match ctx.link.call_line(Request::Info { name: name.into() }) {
        Ok(Reply::File(meta)) if meta.name == name => meta,
        Ok(Reply::Err(ErrCode::NotFound, msg)) => return Err(DownloadError::NotFound(msg)),
        Ok(other) => return Err(failed(format!("tracker answered INFO with {other}"))),
        Err(e) => return Err(failed(e)),
    };
    ctx.progress.size.store(meta.size, Ordering::Relaxed);
    let dest = ctx.store.path(name);
    if dest.exists() {
        return Err(failed(format!(
            "{} exists but is not the shared {name} (sha1 {}); move it away and try again",
            dest.display(),
            meta.sha1
        )));
    }
    let hashes = match ctx.store.load_meta(name) {
        Some((cached, _, hashes)) if cached.same_content(&meta) => hashes,
        _ => {
            let hashes = fetch_hashes(ctx, &meta)?;
            ctx.store.save_meta(&meta, 0, &hashes).map_err(|e| {
                failed(format!(
                    "cannot write in {}: {e}",
                    ctx.store.dir().display()
                ))
            })?;
            hashes
        }
    };
    let hashes = Arc::new(hashes);
    let part_path = ctx.store.part_path(name);
    let part = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part_path)
        .map_err(|e| failed(format!("cannot open {}: {e}", part_path.display())))?;
    let have = Arc::new(PieceSet::new(meta.pieces()));
    let existing = part.metadata().map_or(0, |m| m.len());
    if existing > 0 {
        store::recheck(&part, &meta, &hashes, &have)
            .map_err(|e| failed(format!("cannot read {}: {e}", part_path.display())))?;
    }
    part.set_len(meta.size)
        .map_err(|e| failed(format!("cannot size {}: {e}", part_path.display())))?;
    let resumed = have.count();
    let resumed_bytes: u64 = (0..meta.pieces())
        .filter(|&i| have.has(i))
        .map(|i| meta.piece_range(i).1)
        .sum();
    ctx.progress
        .verified
        .store(resumed_bytes, Ordering::Relaxed);
    ctx.store.begin_partial(&meta, hashes.clone(), have.clone());
    // Tell the tracker we serve what we have; a failure here only costs the swarm our pieces.
    let _ = ctx.link.call_line(Request::Partial { name: name.into() });

    let picker = Picker::new(
        meta.pieces(),
        |i| have.has(i),
        ctx.options.strategy,
        Rng::from_time().next_u64(),
    );
    let shared = Arc::new(Shared {
        meta: meta.clone(),
        hashes: hashes.clone(),
        part,
        have,
        picker: Mutex::new(picker),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        sockets: Mutex::default(),
        from: Mutex::default(),
        spare: Mutex::default(),
        verified: AtomicU64::new(resumed_bytes),
        fetched: AtomicU64::new(0),
        me: ctx.me.to_string(),
        options: ctx.options.clone(),
    });
    let run = |f: fn(&Shared) -> Option<Digest>, name: &str| {
        let shared = shared.clone();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || f(&shared))
            .map_err(|e| failed(format!("cannot start a thread: {e}")))
    };
    // The verifier pool: one thread per core, fed by every fetcher through one channel.
    let cores = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let (jobs, queue) = mpsc::sync_channel::<Job>(2 * cores);
    let queue = Arc::new(Mutex::new(queue));
    let mut helpers = Vec::new();
    for _ in 0..cores {
        let (shared, queue) = (shared.clone(), queue.clone());
        let spawned = thread::Builder::new().name("verify".into()).spawn(move || {
            fetch::verifier(&shared, &queue);
            None
        });
        helpers.push(spawned.map_err(|e| failed(format!("cannot start a thread: {e}")))?);
    }
    helpers.push(run(
        |s| {
            fetch::flusher(s);
            None
        },
        "flush",
    )?);
    let whole = match ctx.options.whole_file_check {
        true => Some(run(fetch::hash_whole, "whole-hash")?),
        false => None,
    };
    let result = coordinate(ctx, &shared, jobs);
    shared.finish_all();
    for helper in helpers {
        let _ = helper.join();
    }
    let digest = match whole {
        Some(thread) => thread.join().ok().flatten(),
        None => Some(meta.sha1),
    };
    let corrupt = result?;
    match digest {
        Some(d) if d == meta.sha1 => {}
        Some(d) => {
            return Err(failed(format!(
                "every piece verified but the whole file hashes to {d}, not {}: the first holder announced inconsistent hashes; nothing was published",
                meta.sha1
            )));
        }
        None => return Err(failed("the whole-file hash did not finish")),
    }
    shared
        .part
        .sync_all()
        .map_err(|e| failed(format!("cannot flush {}: {e}", part_path.display())))?;
    ctx.store.publish(&meta, hashes).map_err(failed)?;
    if let Err(e) = ctx.link.call_line(Request::Upload(meta.clone())) {
        eprintln!("{name}: downloaded, but announcing it failed: {e}");
    }
    let from = shared
        .from
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(Report {
        meta,
        elapsed: started.elapsed(),
        resumed,
        from,
        corrupt,
    })
}

/// Ask the holders for the piece-hash list until one gives a list that matches `meta.root`.
fn fetch_hashes(ctx: &Context, meta: &Meta) -> Result<Vec<Digest>, DownloadError> {
    let holders = who_has(ctx.link, &meta.name).map_err(failed)?;
    let max = meta.pieces() as u64 * 41;
    let mut errors = Vec::new();
    for holder in holders.iter().filter(|h| h.addr != ctx.me) {
        let got = Conn::connect(
            &holder.addr,
            ctx.options.timeouts,
            ctx.options.trace.clone(),
        )
        .and_then(|mut c| {
            c.request_data(
                &Request::Hashes {
                    name: meta.name.clone(),
                },
                max,
            )
        });
        match got {
            Ok(bytes) => match std::str::from_utf8(&bytes)
                .ok()
                .and_then(|t| store::parse_hashes(t, meta))
            {
                Some(hashes) => return Ok(hashes),
                None => errors.push(format!(
                    "{}: piece hashes do not match the tracker's root",
                    holder.addr
                )),
            },
            Err(e) => errors.push(format!("{}: {e}", holder.addr)),
        }
    }
    if errors.is_empty() {
        errors.push("no other peer holds it".into());
    }
    Err(failed(format!(
        "cannot get the piece hashes of {}: {}",
        meta.name,
        errors.join("; ")
    )))
}

pub(crate) fn who_has(link: &Link, name: &str) -> Result<Vec<Holder>, String> {
    match link.call_line(Request::WhoHas { name: name.into() })? {
        Reply::Peers(holders) => Ok(holders),
        Reply::Err(ErrCode::NotFound, _) => Ok(Vec::new()),
        other => Err(format!("tracker answered WHOHAS with {other}")),
    }
}
