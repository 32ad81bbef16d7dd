//! The coordinator of one download (it runs on the calling thread): it asks the tracker who
//! holds the file, keeps a worker running per holder (at most `workers`), retires peers that
//! fail, and decides when the download is finished or hopeless. The workers themselves are in
//! `fetcher.rs`; how progress is shown is the caller's business (`on_tick`).
//!
//! Peers that fail are struck: a closed, timed-out or nonsense-speaking peer is retried after
//! a pause that grows with its strikes, and three strikes put it out; a peer that sent a piece
//! failing its hash, or refused a piece it advertised, is out at once.
//!
//! Slots rotate: a worker whose peer has given no verified piece for `probation` while some
//! listed holder waits for a slot is cut (no strike: it may be a partial holder with nothing
//! for us yet) and the slot goes to the holder tried least. Holders that answered `HASHES`
//! (`Plan::preferred`) are tried first, and while fewer than `workers` holders have delivered,
//! up to `PROBE_FACTOR × workers` are tried at once. So fake holders that stall or refuse cost
//! a slot a couple of seconds at most, and every listed holder gets its turn. The download
//! gives up for lack of progress only once every listed holder has been tried since the last
//! verified piece.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::peer::download::Access;
use crate::peer::download::bt_fetch;
use crate::peer::download::fetcher::{self, WorkerEnd};
use crate::peer::download::state::Shared;
use crate::peer::link::Link;
use crate::protocol::Holder;
use crate::util::{Rng, plural};

/// How long a download waits without progress before it asks seeders for other downloaders'
/// shares too.
const RELAX_AFTER: Duration = Duration::from_secs(1);
/// Strikes that put a failing peer out of this download.
const MAX_STRIKES: u32 = 3;
/// While fewer than `workers` holders have delivered a piece, up to this many times
/// `workers` are tried at once, so fake holders are got past in a round or two.
const PROBE_FACTOR: usize = 4;

/// What the coordinator works with.
pub struct Plan<'a> {
    pub link: &'a Link,
    /// This peer's id, never a holder to fetch from.
    pub me: &'a str,
    /// Most workers at once.
    pub workers: usize,
    /// The peers' I/O timeout: a download with nothing verified for 3 × this gives up.
    pub io_timeout: Duration,
    /// Holders known to answer (they sent the piece hashes): tried first.
    pub preferred: &'a [String],
    /// A torrent's BitTorrent swarm: its peers become workers too, keyed `bt:<addr>`.
    pub bt: Option<Arc<crate::peer::download::bt_fetch::BtSwarm>>,
    /// For a group's file: whom to ask for its holders instead of `WHOHAS`.
    pub access: Option<&'a dyn Access>,
}

/// A worker running on one holder.
struct Running {
    handle: thread::JoinHandle<()>,
    w: usize,
    /// Verified pieces credited to its holder when last seen changing, and when.
    pieces: u32,
    since: Instant,
    /// Cut for giving nothing while others waited (its end is no strike).
    cut: bool,
    /// Its holder has delivered a verified piece to this worker.
    proven: bool,
}

/// How long a worker may go without a verified piece while other holders wait for a slot:
/// two seconds, plus the time a piece takes at 4 MiB/s.
fn probation(piece_size: u32) -> Duration {
    Duration::from_secs(2) + Duration::from_millis(u64::from(piece_size) * 1000 / (4 << 20))
}

/// How the download is doing, handed to `on_tick` about every 100 ms.
#[derive(Debug, Clone, Copy)]
pub struct Tick {
    /// Workers connected or connecting.
    pub peers: usize,
    /// Bytes verified, resumed ones included.
    pub verified: u64,
    /// Bytes verified in this run.
    pub fetched: u64,
    /// Pieces verified.
    pub pieces: u32,
    /// Time since a piece was last verified (or since the start).
    pub quiet_for: Duration,
}

/// Keep workers running on the holders until the file is done. Returns the peers dropped as
/// corrupt, or why the download cannot finish.
pub fn coordinate(
    plan: &Plan,
    shared: &Arc<Shared>,
    on_tick: &mut dyn FnMut(&Tick),
) -> Result<Vec<String>, String> {
    let name = &shared.meta().name;
    let (events_tx, events) = mpsc::channel::<(String, WorkerEnd)>();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut strikes: HashMap<String, (u32, Instant)> = HashMap::new();
    let mut corrupt: HashSet<String> = HashSet::new();
    // Dropped for refusing pieces they advertised.
    let mut liars: HashSet<String> = HashSet::new();
    let mut tries: HashMap<String, u32> = HashMap::new();
    let mut waiting_holders = false;
    // A holder listed but not given a worker since the last verified piece is waiting: the
    // download does not give up for lack of progress while one is (with slots rotating,
    // the honest holder among many stalling fakes may come round only after a while).
    let mut untried_waiting = false;
    let mut tried_since_progress: HashSet<String> = HashSet::new();
    let probation = probation(shared.meta().piece_size);
    let mut errors: Vec<String> = Vec::new();
    let mut known = Known::default();
    let mut next_worker = 0usize;
    let mut last_refresh: Option<Instant> = None;
    let mut last_progress = (shared.verified(), Instant::now());
    let stall_limit = (plan.io_timeout * 3).max(Duration::from_secs(3));
    // Ask the tracker often at first (downloaders starting together learn of each other and
    // settle their shares quickly), then every half second.
    let mut refresh_every = Duration::from_millis(25);
    let tick = |running: usize, since: Instant| Tick {
        peers: running,
        verified: shared.verified(),
        fetched: shared.fetched(),
        pieces: shared.have().count(),
        quiet_for: since.elapsed(),
    };
    let result = loop {
        if shared.picker().is_done() {
            break Ok(());
        }
        if let Some(msg) = shared.fatal() {
            break Err(msg);
        }
        // Progress watchdog: peers that are connected but give nothing useful.
        let verified = shared.verified();
        if verified != last_progress.0 {
            last_progress = (verified, Instant::now());
            tried_since_progress.clear();
        } else if last_progress.1.elapsed() > RELAX_AFTER {
            // The other downloaders are not delivering their shares: take them from seeders.
            shared.picker().relax_share();
        }
        if last_progress.1.elapsed() > stall_limit && !running.is_empty() && !untried_waiting {
            break Err(format!(
                "no piece arrived for {}s from {}; keeping the {} verified",
                stall_limit.as_secs(),
                plural(running.len() as u64, "connected peer"),
                plural(shared.have().count().into(), "piece")
            ));
        }
        if last_refresh.is_none_or(|t| t.elapsed() >= refresh_every) {
            last_refresh = Some(Instant::now());
            refresh_every = (refresh_every * 2).min(Duration::from_millis(500));
            let holders = match plan.access {
                Some(access) => access.who_has(name),
                None => plan.link.who_has(name),
            };
            // Every holder a reply ever listed stays a candidate: a `PEERS` reply is a
            // window of at most 50, and a tracker that dies or fails over (its successor
            // knows nobody until the peers re-announce) must not stop a download that knows
            // where the pieces are. A holder that is really gone is struck out by its worker.
            let listed = match holders.map(|h| with_bt(plan, shared, h)) {
                Ok(fresh) => {
                    set_share(shared, &fresh, plan.me);
                    known.remember(fresh);
                    Ok(known.all())
                }
                Err(e) if known.is_empty() => Err(e),
                Err(e) => {
                    if !errors.iter().any(|x| x.starts_with("tracker: ")) {
                        errors.push(format!("tracker: {e}"));
                    }
                    Ok(known.all())
                }
            };
            match listed {
                Ok(holders) => {
                    let now = Instant::now();
                    let mut eligible: Vec<&Holder> = holders
                        .iter()
                        .filter(|h| h.addr != plan.me && !corrupt.contains(&h.addr))
                        .filter(|h| !liars.contains(&h.addr))
                        .filter(|h| !running.contains_key(&h.addr))
                        .filter(|h| {
                            strikes
                                .get(&h.addr)
                                .is_none_or(|(n, until)| *n < MAX_STRIKES && now >= *until)
                        })
                        .collect();
                    // The holder tried least first; among equals, those that answered HASHES,
                    // then full holders before partial ones, each in random order.
                    Rng::from_time().shuffle(&mut eligible);
                    eligible.sort_by_key(|h| {
                        let tried = tries.get(&h.addr).copied().unwrap_or(0);
                        (tried, !plan.preferred.contains(&h.addr), h.partial)
                    });
                    let free = slots(plan.workers, &running).saturating_sub(running.len());
                    waiting_holders = eligible.len() > free;
                    untried_waiting = eligible
                        .iter()
                        .any(|h| !tried_since_progress.contains(&h.addr));
                    for holder in eligible {
                        if running.len() >= slots(plan.workers, &running) {
                            break;
                        }
                        let (shared2, events2, addr) =
                            (shared.clone(), events_tx.clone(), holder.addr.clone());
                        let full = !holder.partial;
                        let bt = plan.bt.clone();
                        let w = next_worker;
                        next_worker += 1;
                        let spawned =
                            thread::Builder::new().name("fetch".into()).spawn(move || {
                                let end = match (addr.strip_prefix("bt:"), bt) {
                                    (Some(a), Some(bt)) => bt_fetch::worker(&shared2, w, a, &bt),
                                    _ => fetcher::worker(&shared2, w, &addr, full),
                                };
                                let _ = events2.send((addr, end));
                            });
                        if let Ok(handle) = spawned {
                            *tries.entry(holder.addr.clone()).or_insert(0) += 1;
                            tried_since_progress.insert(holder.addr.clone());
                            let pieces = shared.from().get(&holder.addr).map_or(0, |p| p.0);
                            let run = Running {
                                handle,
                                w,
                                pieces,
                                since: Instant::now(),
                                cut: false,
                                proven: false,
                            };
                            running.insert(holder.addr.clone(), run);
                        }
                    }
                    let waiting = holders.iter().any(|h| {
                        h.addr != plan.me
                            && !corrupt.contains(&h.addr)
                            && !liars.contains(&h.addr)
                            && strikes.get(&h.addr).is_none_or(|(n, _)| *n < MAX_STRIKES)
                    });
                    if running.is_empty() && !waiting {
                        let why = if errors.is_empty() {
                            "no other peer holds it now".to_string()
                        } else {
                            errors.join("; ")
                        };
                        break Err(format!(
                            "every holder of {name} is gone or failed ({why}); kept {} for a later resume",
                            plural(shared.have().count().into(), "verified piece")
                        ));
                    }
                }
                Err(e) if running.is_empty() => break Err(e),
                Err(_) => {}
            }
        }
        rotate(shared, &mut running, probation, waiting_holders);
        on_tick(&tick(running.len(), last_progress.1));
        if let Ok((addr, end)) = events.recv_timeout(refresh_every.min(Duration::from_millis(100)))
        {
            let mut cut = false;
            if let Some(run) = running.remove(&addr) {
                cut = run.cut;
                let _ = run.handle.join();
            }
            // A cut worker's end is the cut, not its peer's failure.
            let end = match end {
                WorkerEnd::Failed(_) if cut => WorkerEnd::Done,
                end => end,
            };
            match end {
                WorkerEnd::Done => {}
                WorkerEnd::Corrupt(piece) => {
                    eprintln!(
                        "{name}: piece {piece} from {addr} failed its SHA-1; that peer is dropped from this download"
                    );
                    errors.push(format!("{addr} sent a corrupt piece"));
                    corrupt.insert(addr);
                }
                WorkerEnd::Refused(piece) => {
                    eprintln!(
                        "{name}: {addr} advertised piece {piece}, then refused it; that peer is dropped from this download"
                    );
                    errors.push(format!("{addr} refused a piece it advertised"));
                    liars.insert(addr);
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
    for (_, run) in running.drain() {
        let _ = run.handle.join();
    }
    on_tick(&tick(0, last_progress.1));
    result.map(|()| corrupt.into_iter().collect())
}

/// The holders every reply so far listed, newest flags first, at most `KNOWN_MAX`.
#[derive(Default)]
struct Known(HashMap<String, Holder>);

/// Most holders one download remembers (a reply lists at most 50; a file held by more is
/// reached through the windows of later replies).
const KNOWN_MAX: usize = 4096;

impl Known {
    fn remember(&mut self, fresh: Vec<Holder>) {
        for holder in fresh {
            if self.0.len() < KNOWN_MAX || self.0.contains_key(&holder.addr) {
                self.0.insert(holder.addr.clone(), holder);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn all(&self) -> Vec<Holder> {
        self.0.values().cloned().collect()
    }
}

/// The tracker's holders and the torrent's BitTorrent peers (`bt:<addr>`), each address once:
/// a Torrentphile holder is fetched from over lines, not twice.
fn with_bt(plan: &Plan, shared: &Shared, mut holders: Vec<Holder>) -> Vec<Holder> {
    let Some(bt) = &plan.bt else { return holders };
    let left = shared.meta().size.saturating_sub(shared.verified());
    for addr in bt.peers(left) {
        let addr = addr.to_string();
        if addr != plan.me && !holders.iter().any(|h| h.addr == addr) {
            holders.push(Holder {
                addr: format!("bt:{addr}"),
                partial: true,
            });
        }
    }
    holders
}

/// How many workers may run: `workers`, or up to `PROBE_FACTOR` times that while fewer than
/// `workers` of the running ones have delivered.
fn slots(workers: usize, running: &HashMap<String, Running>) -> usize {
    let workers = workers.max(1);
    if running.values().filter(|r| r.proven).count() >= workers {
        workers
    } else {
        workers * PROBE_FACTOR
    }
}

/// Note which workers delivered; when other holders wait for a slot, cut every worker whose
/// peer has verified nothing for `probation`.
fn rotate(
    shared: &Shared,
    running: &mut HashMap<String, Running>,
    probation: Duration,
    waiting: bool,
) {
    let from = shared.from();
    for (addr, run) in running.iter_mut() {
        let pieces = from.get(addr).map_or(0, |p| p.0);
        if pieces != run.pieces {
            (run.pieces, run.since, run.proven) = (pieces, Instant::now(), true);
        }
        if waiting && !run.cut && run.since.elapsed() > probation {
            run.cut = true;
            shared.drop_worker(run.w);
        }
    }
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
        shared.notify();
    }
}
