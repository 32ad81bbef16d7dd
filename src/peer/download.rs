//! Downloading one file from every peer that holds it, at once.
//!
//! The shape, per download:
//! - a **coordinator** (the calling thread) asks the tracker who holds the file, starts one
//!   worker per holder (at most `workers`), retires peers that fail, and decides when the
//!   download is finished or hopeless;
//! - per remote peer, a **fetcher** thread keeps up to `window` `PIECE` requests in flight on
//!   its one connection (pipelining: a 50 ms link stays full because the next requests are
//!   already queued at the sender), reads each `DATA` block and hands it to
//! - its **verifier** thread through a small bounded channel, which hashes the piece, writes it
//!   into the part file with a positioned write and only then marks it held, so receiving the
//!   next piece overlaps hashing this one, and pieces from different peers hash on different
//!   cores;
//! - a **whole-file hasher** follows the verified prefix of the part file, so the file's SHA-1
//!   is ready moments after the last piece.
//!
//! Pieces are chosen by `Picker` (rarest first, seeders spared, end game). A piece that fails
//! its hash drops its sender from this download; a dead or stalled peer costs one timeout.
//! Nothing appears under the final name until every piece and the whole file are verified.
//!
//! Locks: `Shared::picker` is the only mutex workers share, held for picker calls only (never
//! across I/O); `wake` is its condition variable. `sockets` and `from` are leaf locks.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnError, Timeouts, Trace};
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
    /// Also hash the whole file before publishing it (a second SHA-1 pass, run on the spare
    /// core as the verified prefix grows). The piece hashes, bound to the tracker's `root`,
    /// already vouch for every byte; this catches a first holder whose announced SHA-1 does
    /// not match its own pieces.
    pub whole_file_check: bool,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            workers: 8,
            strategy: Strategy::RarestFirst,
            timeouts: Timeouts::default(),
            window_bytes: 16 << 20,
            trace: Trace::off(),
            whole_file_check: true,
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
        verified: AtomicU64::new(resumed_bytes),
        fetched: AtomicU64::new(0),
        me: ctx.me.to_string(),
        options: ctx.options.clone(),
    });
    let whole = if ctx.options.whole_file_check {
        let shared = shared.clone();
        let thread = thread::Builder::new()
            .name("whole-hash".into())
            .spawn(move || hash_whole(&shared))
            .map_err(|e| failed(format!("cannot start a thread: {e}")))?;
        Some(thread)
    } else {
        None
    };
    let result = coordinate(ctx, &shared);
    shared.finish_all();
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

fn who_has(link: &Link, name: &str) -> Result<Vec<Holder>, String> {
    match link.call_line(Request::WhoHas { name: name.into() })? {
        Reply::Peers(holders) => Ok(holders),
        Reply::Err(ErrCode::NotFound, _) => Ok(Vec::new()),
        other => Err(format!("tracker answered WHOHAS with {other}")),
    }
}

/// State shared by the coordinator, the workers and the whole-file hasher of one download.
struct Shared {
    meta: Meta,
    hashes: Arc<Vec<Digest>>,
    part: File,
    have: Arc<PieceSet>,
    picker: Mutex<Picker>,
    /// Signalled (with `picker`) when a piece completes or returns, or the download stops.
    wake: Condvar,
    stop: AtomicBool,
    /// A failure that ends the whole download (the disk, not a peer).
    fatal: Mutex<Option<String>>,
    /// One handle per worker connection, to shut them all down when the download ends.
    sockets: Mutex<HashMap<usize, Arc<TcpStream>>>,
    from: Mutex<BTreeMap<String, (u32, u64)>>,
    verified: AtomicU64,
    fetched: AtomicU64,
    me: String,
    options: DownloadOptions,
}

impl Shared {
    fn picker(&self) -> MutexGuard<'_, Picker> {
        self.picker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// End the download: stop every worker now, even one blocked on a stalled socket.
    fn finish_all(&self) {
        self.stop.store(true, Ordering::Release);
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _guard = self.picker();
        self.wake.notify_all();
    }

    fn fail(&self, msg: String) {
        self.fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(msg);
        self.finish_all();
    }
}

/// How a worker ended.
enum WorkerEnd {
    /// The download finished (or stopped) while it was working.
    Done,
    /// Its peer sent a piece that failed its hash.
    Corrupt(u32),
    /// Its peer failed: could not connect, timed out, closed, spoke nonsense.
    Failed(String),
}

/// The coordinator: keep workers running on the holders until the file is done.
/// Returns the peers dropped as corrupt.
fn coordinate(ctx: &Context, shared: &Arc<Shared>) -> Result<Vec<String>, DownloadError> {
    let (events_tx, events) = mpsc::channel::<(String, WorkerEnd)>();
    let mut running: HashMap<String, thread::JoinHandle<()>> = HashMap::new();
    let mut strikes: HashMap<String, (u32, Instant)> = HashMap::new();
    let mut corrupt: HashSet<String> = HashSet::new();
    let mut errors: Vec<String> = Vec::new();
    let mut next_worker = 0usize;
    let mut last_refresh: Option<Instant> = None;
    let mut last_progress = (shared.verified.load(Ordering::Relaxed), Instant::now());
    let stall_limit = (ctx.options.timeouts.io * 3).max(Duration::from_secs(3));
    // Ask the tracker often at first (downloaders starting together learn of each other and
    // settle their shares quickly), then every half second.
    let mut refresh_every = Duration::from_millis(25);
    let result = loop {
        if shared.picker().is_done() {
            break Ok(());
        }
        if let Some(msg) = shared
            .fatal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            break Err(failed(msg));
        }
        // Progress watchdog: peers that are connected but give nothing useful.
        let verified = shared.verified.load(Ordering::Relaxed);
        if verified != last_progress.0 {
            last_progress = (verified, Instant::now());
        } else if last_progress.1.elapsed() > RELAX_AFTER {
            // The other downloaders are not delivering their shares: take them from seeders.
            shared.picker().relax_share();
        }
        if last_progress.1.elapsed() > stall_limit && !running.is_empty() {
            break Err(failed(format!(
                "no piece arrived for {}s from {} connected peer(s); keeping the {} verified piece(s)",
                stall_limit.as_secs(),
                running.len(),
                shared.have.count()
            )));
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= refresh_every) {
            last_refresh = Some(Instant::now());
            refresh_every = (refresh_every * 2).min(Duration::from_millis(500));
            match who_has(ctx.link, &shared.meta.name) {
                Ok(holders) => {
                    set_share(shared, &holders, ctx.me);
                    let now = Instant::now();
                    let mut eligible: Vec<&Holder> = holders
                        .iter()
                        .filter(|h| h.addr != ctx.me && !corrupt.contains(&h.addr))
                        .filter(|h| !running.contains_key(&h.addr))
                        .filter(|h| {
                            strikes
                                .get(&h.addr)
                                .is_none_or(|(n, until)| *n < 3 && now >= *until)
                        })
                        .collect();
                    // Full holders first, then partial ones, each in random order.
                    Rng::from_time().shuffle(&mut eligible);
                    eligible.sort_by_key(|h| h.partial);
                    for holder in eligible {
                        if running.len() >= ctx.options.workers.max(1) {
                            break;
                        }
                        let (shared2, events2, addr) =
                            (shared.clone(), events_tx.clone(), holder.addr.clone());
                        let w = next_worker;
                        next_worker += 1;
                        let spawned =
                            thread::Builder::new().name("fetch".into()).spawn(move || {
                                let end = worker(&shared2, w, &addr);
                                let _ = events2.send((addr, end));
                            });
                        if let Ok(handle) = spawned {
                            running.insert(holder.addr.clone(), handle);
                        }
                    }
                    let waiting = holders.iter().any(|h| {
                        h.addr != ctx.me
                            && !corrupt.contains(&h.addr)
                            && strikes.get(&h.addr).is_none_or(|(n, _)| *n < 3)
                    });
                    if running.is_empty() && !waiting {
                        let why = if errors.is_empty() {
                            "no other peer holds it now".to_string()
                        } else {
                            errors.join("; ")
                        };
                        break Err(failed(format!(
                            "every holder of {} is gone or failed ({why}); kept {} verified piece(s) for a later resume",
                            shared.meta.name,
                            shared.have.count()
                        )));
                    }
                }
                Err(e) if running.is_empty() => break Err(failed(e)),
                Err(_) => {}
            }
        }
        ctx.progress.peers.store(running.len(), Ordering::Relaxed);
        ctx.progress
            .verified
            .store(shared.verified.load(Ordering::Relaxed), Ordering::Relaxed);
        ctx.progress
            .fetched
            .store(shared.fetched.load(Ordering::Relaxed), Ordering::Relaxed);
        if let Ok((addr, end)) = events.recv_timeout(refresh_every.min(Duration::from_millis(100)))
        {
            if let Some(handle) = running.remove(&addr) {
                let _ = handle.join();
            }
            match end {
                WorkerEnd::Done => {}
                WorkerEnd::Corrupt(piece) => {
                    eprintln!(
                        "{}: piece {piece} from {addr} failed its SHA-1; that peer is dropped from this download",
                        shared.meta.name
                    );
                    errors.push(format!("{addr} sent a corrupt piece"));
                    corrupt.insert(addr);
                }
                WorkerEnd::Failed(e) if !shared.stopped() => {
                    let strike = strikes.entry(addr.clone()).or_insert((0, Instant::now()));
                    strike.0 += 1;
                    strike.1 = Instant::now() + Duration::from_millis(500) * strike.0;
                    errors.push(format!("{addr}: {e}"));
                }
                WorkerEnd::Failed(_) => {}
            }
        }
    };
    shared.finish_all();
    for (_, handle) in running.drain() {
        let _ = handle.join();
    }
    ctx.progress.peers.store(0, Ordering::Relaxed);
    ctx.progress
        .verified
        .store(shared.verified.load(Ordering::Relaxed), Ordering::Relaxed);
    ctx.progress
        .fetched
        .store(shared.fetched.load(Ordering::Relaxed), Ordering::Relaxed);
    result.map(|()| corrupt.into_iter().collect())
}

/// This downloader's share of the seeders' pieces: its place among the partial holders.
fn set_share(shared: &Shared, holders: &[Holder], me: &str) {
    let mut downloaders: Vec<&str> = holders
        .iter()
        .filter(|h| h.partial)
        .map(|h| h.addr.as_str())
        .collect();
    if !downloaders.contains(&me) {
        downloaders.push(me);
    }
    downloaders.sort();
    if let Some(index) = downloaders.iter().position(|d| *d == me) {
        shared
            .picker()
            .set_share(index as u32, downloaders.len() as u32);
        shared.wake.notify_all();
    }
}

/// What a fetcher has asked its peer for, in order.
enum Ask {
    Piece(u32),
    Have,
}

/// One remote peer: connect, learn its pieces, fetch and verify until done.
fn worker(shared: &Shared, w: usize, addr: &str) -> WorkerEnd {
    let opts = &shared.options;
    let mut conn = match Conn::connect(addr, opts.timeouts, opts.trace.clone()) {
        Ok(conn) => conn,
        Err(e) => return WorkerEnd::Failed(format!("cannot connect: {e}")),
    };
    shared
        .sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(w, conn.stream());
    if shared.stopped() {
        return WorkerEnd::Done;
    }
    let end = match hello(shared, &mut conn).and_then(|bits| {
        shared.picker().set_peer(w, bits);
        let bad = AtomicBool::new(false);
        let (tx, rx) = mpsc::sync_channel::<(u32, Vec<u8>)>(2);
        thread::scope(|s| {
            let verifier = s.spawn(|| verify(shared, w, addr, rx, &bad));
            let fetched = fetch(shared, w, &mut conn, tx, &bad);
            match verifier.join() {
                Ok(Some(piece)) => Ok(WorkerEnd::Corrupt(piece)),
                _ => fetched.map(|()| WorkerEnd::Done),
            }
        })
    }) {
        Ok(end) => end,
        Err(_) if shared.stopped() => WorkerEnd::Done,
        Err(e) => WorkerEnd::Failed(e.to_string()),
    };
    shared.picker().remove_peer(w);
    shared
        .sockets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&w);
    shared.wake.notify_all();
    end
}

/// `HELLO` and the first `HAVE`.
fn hello(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    match conn.request(&Request::Hello {
        id: shared.me.clone(),
    })? {
        Reply::Ack(_) => {}
        other => return Err(ConnError::Protocol(format!("HELLO answered {other}"))),
    }
    ask_have(shared, conn)
}

fn ask_have(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    conn.send_line(
        &Request::Have {
            name: shared.meta.name.clone(),
        }
        .to_string(),
    )?;
    read_bits(shared, conn)
}

fn read_bits(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    match conn.read_reply()? {
        Reply::Bitfield(bits) if bits.len() == shared.meta.pieces() as usize => {
            Ok(bits.bytes().map(|b| b == b'1').collect())
        }
        Reply::Bitfield(bits) if shared.meta.pieces() == 0 && bits.is_empty() => Ok(Vec::new()),
        other => Err(ConnError::Protocol(format!("HAVE answered {other}"))),
    }
}

/// How long a download waits without progress before it asks seeders for other downloaders'
/// shares too.
const RELAX_AFTER: Duration = Duration::from_secs(1);
/// How often a fetcher re-asks a partial holder which pieces it has.
const HAVE_EVERY: Duration = Duration::from_millis(300);
/// How often an idle connection to a seed is kept alive with a `HAVE`.
const SEED_KEEPALIVE: Duration = Duration::from_secs(2);
/// Slowest data rate tolerated within one piece before the peer counts as stalled.
const MIN_RATE: u64 = 64 * 1024;

/// The fetcher: keep the pipeline full, read replies in order, pass pieces to the verifier.
fn fetch(
    shared: &Shared,
    w: usize,
    conn: &mut Conn,
    verifier: SyncSender<(u32, Vec<u8>)>,
    bad: &AtomicBool,
) -> Result<(), ConnError> {
    let meta = &shared.meta;
    let window = (shared.options.window_bytes / meta.piece_size as u64).clamp(2, 256) as usize;
    let mut queue: VecDeque<Ask> = VecDeque::new();
    let mut last_have = Instant::now();
    let mut have_pending = false;
    let result = loop {
        if shared.stopped() || bad.load(Ordering::Acquire) {
            break Ok(());
        }
        let mut lines = Vec::new();
        let seed = {
            let mut picker = shared.picker();
            let mut asked = queue.iter().filter(|a| matches!(a, Ask::Piece(_))).count();
            let window = picker.window(window);
            while asked < window {
                let Some(i) = picker.next(w) else { break };
                asked += 1;
                queue.push_back(Ask::Piece(i));
                lines.push(
                    Request::Piece {
                        name: meta.name.clone(),
                        index: i,
                    }
                    .to_string(),
                );
            }
            picker.peer_is_seed(w)
        };
        // A partial holder's pieces change: ask again often. A seed's do not, but an idle
        // connection to it is kept alive the same way, so its server does not time it out.
        let have_every = if seed { SEED_KEEPALIVE } else { HAVE_EVERY };
        if !have_pending && last_have.elapsed() >= have_every && (!seed || queue.is_empty()) {
            queue.push_back(Ask::Have);
            lines.push(
                Request::Have {
                    name: meta.name.clone(),
                }
                .to_string(),
            );
            have_pending = true;
        }
        if !lines.is_empty()
            && let Err(e) = conn.send_lines(&lines)
        {
            break Err(e.into());
        }
        let Some(ask) = queue.pop_front() else {
            // Nothing to ask of this peer right now: wait for the picture to change.
            let picker = shared.picker();
            if picker.is_done() || shared.stopped() {
                break Ok(());
            }
            let _ = shared.wake.wait_timeout(picker, HAVE_EVERY);
            continue;
        };
        let step = match ask {
            Ask::Have => read_bits(shared, conn).map(|bits| {
                shared.picker().set_peer(w, bits);
                last_have = Instant::now();
                have_pending = false;
            }),
            Ask::Piece(i) => match receive_piece(shared, conn, i) {
                Ok(Some(buf)) => {
                    if verifier.send((i, buf)).is_err() {
                        break Ok(());
                    }
                    Ok(())
                }
                Ok(None) => {
                    let mut picker = shared.picker();
                    picker.peer_lacks(w, i);
                    picker.finish(w, i, false);
                    Ok(())
                }
                Err(e) => {
                    shared.picker().finish(w, i, false);
                    Err(e)
                }
            },
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    // Give back what was asked but never received.
    let mut picker = shared.picker();
    for ask in queue {
        if let Ask::Piece(i) = ask {
            picker.finish(w, i, false);
        }
    }
    shared.wake.notify_all();
    result
}

/// Read the reply to `PIECE i`: the piece's bytes, or `None` if the peer does not have it.
fn receive_piece(shared: &Shared, conn: &mut Conn, i: u32) -> Result<Option<Vec<u8>>, ConnError> {
    let (_, len) = shared.meta.piece_range(i);
    match conn.read_reply()? {
        Reply::Data(n) if n == len => {
            let mut buf = vec![0u8; len as usize];
            let allowed = conn.timeouts().io + Duration::from_secs(len / MIN_RATE);
            conn.read_data(&mut buf, Instant::now() + allowed)?;
            Ok(Some(buf))
        }
        Reply::Err(ErrCode::Unavailable, _) => Ok(None),
        other => Err(ConnError::Protocol(format!("PIECE {i} answered {other}"))),
    }
}

/// The verifier: hash, write, mark held. Returns the index of a corrupt piece, if one came.
fn verify(
    shared: &Shared,
    w: usize,
    addr: &str,
    pieces: Receiver<(u32, Vec<u8>)>,
    bad: &AtomicBool,
) -> Option<u32> {
    let mut corrupt = None;
    for (i, buf) in pieces {
        if corrupt.is_some() || shared.stopped() || shared.have.has(i) {
            // After a corrupt piece, or a duplicate from the end game: give it back unused.
            shared.picker().finish(w, i, false);
            continue;
        }
        if sha1_smol::Sha1::from(&buf).digest() != shared.hashes[i as usize] {
            corrupt = Some(i);
            bad.store(true, Ordering::Release);
            shared.picker().finish(w, i, false);
            // The fetcher sees `bad` at its next step; pieces still coming are discarded above.
            shared.wake.notify_all();
            continue;
        }
        let (offset, len) = shared.meta.piece_range(i);
        if let Err(e) = shared.part.write_all_at(&buf, offset) {
            shared.picker().finish(w, i, false);
            shared.fail(format!(
                "cannot write the download of {}: {e}",
                shared.meta.name
            ));
            continue;
        }
        // Held only once written: from here on our own server may serve it.
        let first = shared.have.set(i);
        let mut picker = shared.picker();
        picker.finish(w, i, first);
        if first {
            shared.verified.fetch_add(len, Ordering::Relaxed);
            shared.fetched.fetch_add(len, Ordering::Relaxed);
            let mut from = shared.from.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = from.entry(addr.to_string()).or_default();
            entry.0 += 1;
            entry.1 += len;
        }
        if picker.is_done() {
            drop(picker);
            shared.finish_all();
        } else {
            shared.wake.notify_all();
        }
    }
    corrupt
}

/// Hash the part file front to back as its verified prefix grows; the file's SHA-1 once
/// complete, `None` if the download stopped first.
fn hash_whole(shared: &Shared) -> Option<Digest> {
    let meta = &shared.meta;
    let mut sha = sha1_smol::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut pos, mut next_piece) = (0u64, 0u32);
    loop {
        while next_piece < meta.pieces() && shared.have.has(next_piece) {
            next_piece += 1;
        }
        let end = if next_piece == meta.pieces() {
            meta.size
        } else {
            next_piece as u64 * meta.piece_size as u64
        };
        if pos < end {
            let n = (end - pos).min(buf.len() as u64) as usize;
            shared.part.read_exact_at(&mut buf[..n], pos).ok()?;
            sha.update(&buf[..n]);
            pos += n as u64;
            continue;
        }
        if pos == meta.size {
            return Some(sha.digest());
        }
        let picker = shared.picker();
        if shared.stopped() && !shared.have.is_full() {
            return None;
        }
        let _ = shared.wake.wait_timeout(picker, Duration::from_millis(200));
    }
}
