//! The swarm scenario: one seeder and many downloaders of a large random file, all at once,
//! in this process; it reports who fed whom, how much the seeder uploaded, and checks every
//! copy's SHA-1. `make bench` (case 2) and `tests/swarm.rs` run it through [`swarm_run`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    SimConfig, fresh_dir, sha1_file, start_peer, start_peer_with, start_tracker, write_random,
};
use crate::util::say;

/// What the swarm scenario measured.
#[derive(Debug)]
pub struct SwarmResult {
    pub elapsed: Duration,
    pub size: u64,
    /// Bytes the seeder uploaded.
    pub seeder_upload: u64,
    /// The downloaders the seeder fed.
    pub seeder_fed: Vec<String>,
    /// Where the peers' folders are (`seed`, `peer1` ...).
    pub root: PathBuf,
    /// Per downloader: (label, bytes downloaded, bytes uploaded, peers it fed).
    pub peers: Vec<(String, u64, u64, Vec<String>)>,
}

impl SwarmResult {
    pub fn seeder_copies(&self) -> f64 {
        self.seeder_upload as f64 / self.size.max(1) as f64
    }
}

/// Run the swarm scenario and return its measurements (the bench uses this too).
pub fn swarm_run(config: &SimConfig, quiet: bool) -> Result<SwarmResult, String> {
    let say = |text: String| {
        if !quiet {
            crate::util::say(&text);
        }
    };
    let root = config.root.join("swarm");
    let tracker = start_tracker(config.tracker_port)?;
    let tracker_addr = tracker.addr().to_string();
    let seed_dir = root.join("seed");
    fresh_dir(&seed_dir)?;
    let size = config.size_mib << 20;
    say(format!("== writing a {} MiB random file", config.size_mib));
    write_random(&seed_dir.join("swarm.bin"), size, 42)?;
    let seed = start_peer(&tracker_addr, &seed_dir, 0, "seed", false)?;
    let expected = seed
        .store()
        .get("swarm.bin")
        .map(|e| e.meta.sha1)
        .ok_or("the seeder did not share swarm.bin")?;
    let mut downloaders = Vec::new();
    for i in 1..=config.downloaders {
        let dir = root.join(format!("peer{i}"));
        fresh_dir(&dir)?;
        downloaders.push(Arc::new(start_peer_with(
            &tracker_addr,
            &dir,
            0,
            &format!("peer{i}"),
            false,
            config.random,
        )?));
    }
    say(format!(
        "== 1 seeder and {} downloaders start together, picking {}",
        downloaders.len(),
        if config.random {
            "random pieces"
        } else {
            "the rarest pieces first"
        }
    ));
    let started = Instant::now();
    let handles: Vec<_> = downloaders
        .iter()
        .map(|p| {
            let p = p.clone();
            thread::spawn(move || p.download("swarm.bin"))
        })
        .collect();
    let mut reports = Vec::new();
    for h in handles {
        let report = h
            .join()
            .map_err(|_| "a downloader panicked".to_string())?
            .map_err(|e| e.to_string())?;
        reports.push(report);
    }
    let elapsed = started.elapsed();
    // Names by address, for the "fed" lists.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    names.insert(seed.addr().to_string(), "seed".into());
    for (i, p) in downloaders.iter().enumerate() {
        names.insert(p.addr().to_string(), format!("peer{}", i + 1));
    }
    let name_of = |addr: &str| names.get(addr).cloned().unwrap_or_else(|| addr.to_string());
    let seed_uploads = seed.store().uploads();
    let seeder_upload: u64 = seed_uploads.values().sum();
    let mut seeder_fed: Vec<String> = seed_uploads.keys().map(|a| name_of(a)).collect();
    seeder_fed.sort();
    let mut peers = Vec::new();
    for (i, (p, report)) in downloaders.iter().zip(&reports).enumerate() {
        let got = sha1_file(&p.store().path("swarm.bin"))?;
        if got != expected.to_string() {
            return Err(format!(
                "peer{}'s copy hashes to {got}, not {expected}",
                i + 1
            ));
        }
        let uploads = p.store().uploads();
        let mut fed: Vec<String> = uploads.keys().map(|a| name_of(a)).collect();
        fed.sort();
        let downloaded: u64 = report.from.values().map(|(_, b)| b).sum();
        peers.push((
            format!("peer{}", i + 1),
            downloaded,
            uploads.values().sum(),
            fed,
        ));
    }
    drop(downloaders);
    drop(seed);
    drop(tracker);
    Ok(SwarmResult {
        elapsed,
        size,
        seeder_upload,
        seeder_fed,
        root,
        peers,
    })
}

pub(super) fn scenario(config: &SimConfig) -> Result<String, String> {
    let r = swarm_run(config, false)?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    say(&format!(
        "{:<8} {:>12} {:>12}  fed",
        "peer", "down MiB", "up MiB"
    ));
    say(&format!(
        "{:<8} {:>12} {:>12.1}  {}",
        "seed",
        "-",
        mib(r.seeder_upload),
        r.seeder_fed.join(" ")
    ));
    for (name, down, up, fed) in &r.peers {
        say(&format!(
            "{name:<8} {:>12.1} {:>12.1}  {}",
            mib(*down),
            mib(*up),
            fed.join(" ")
        ));
    }
    say(&format!(
        "(down: bytes this peer downloaded; up: bytes it served; fed: who it served)\n\
         == the folders are in {}: seed, peer1 ... peer{} (the next swarm run clears them)",
        r.root.display(),
        r.peers.len()
    ));
    let mut out = String::new();
    let _ = write!(
        out,
        "swarm: {} downloaders got {} MiB each in {:.2}s; the seeder uploaded {:.2} copies; every copy's SHA-1 matches",
        r.peers.len(),
        config.size_mib,
        r.elapsed.as_secs_f64(),
        r.seeder_copies()
    );
    Ok(out)
}
