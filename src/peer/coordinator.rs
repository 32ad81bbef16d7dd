//! The coordinator of one download: it asks the tracker who holds the file, keeps a worker
//! running per holder (at most `workers`), retires peers that fail, and decides when the
//! download is finished or hopeless. The workers themselves are in `fetch.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::peer::download::{Context, DownloadError, failed, who_has};
use crate::peer::fetch::{self, Job, Shared, WorkerEnd};
use crate::protocol::Holder;
use crate::util::Rng;

/// How long a download waits without progress before it asks seeders for other downloaders'
/// shares too.
const RELAX_AFTER: Duration = Duration::from_secs(1);

/// The coordinator: keep workers running on the holders until the file is done.
/// Returns the peers dropped as corrupt.
pub fn coordinate(
    ctx: &Context,
    shared: &Arc<Shared>,
    verifiers: SyncSender<Job>,
) -> Result<Vec<String>, DownloadError> {
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
                        let (shared2, events2, addr, jobs) = (
                            shared.clone(),
                            events_tx.clone(),
                            holder.addr.clone(),
                            verifiers.clone(),
                        );
                        let w = next_worker;
                        next_worker += 1;
                        let spawned =
                            thread::Builder::new().name("fetch".into()).spawn(move || {
                                let end = fetch::worker(&shared2, w, &addr, jobs);
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
        show_progress(ctx, shared, running.len());
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
    show_progress(ctx, shared, 0);
    result.map(|()| corrupt.into_iter().collect())
}

/// Copy the download's counters to its `Progress` (what `status` and the progress line read).
fn show_progress(ctx: &Context, shared: &Shared, peers: usize) {
    let progress = ctx.progress;
    progress.peers.store(peers, Ordering::Relaxed);
    let verified = shared.verified.load(Ordering::Relaxed);
    progress.verified.store(verified, Ordering::Relaxed);
    let fetched = shared.fetched.load(Ordering::Relaxed);
    progress.fetched.store(fetched, Ordering::Relaxed);
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
