//! What a download shows: its [`Progress`] (the shell's `status` and the progress line), the
//! lines it says every few seconds (`Lines`), and the [`Report`] when it is done. Read-only
//! views of the download's counters: nothing here changes how a download runs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::coordinator::Tick;
use super::{Context, ProgressStyle};
use crate::protocol::Meta;
use crate::util::plural;

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

/// `ProgressStyle::Lines`: one line every `report_every`.
pub(super) struct Lines<'a> {
    ctx: &'a Context<'a>,
    name: String,
    pieces: u32,
    size: u64,
    last: Instant,
    last_fetched: u64,
}

impl<'a> Lines<'a> {
    pub(super) fn new(ctx: &'a Context<'a>, meta: &Meta) -> Lines<'a> {
        Lines {
            ctx,
            name: meta.name.clone(),
            pieces: meta.pieces(),
            size: meta.size,
            last: Instant::now(),
            last_fetched: 0,
        }
    }

    pub(super) fn tick(&mut self, tick: &Tick) {
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
