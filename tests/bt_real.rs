//! Torrentphile in real BitTorrent swarms with aria2c (issue 12), through the tracker's HTTP
//! announce and the peers' BitTorrent wire on their line port:
//!
//! - `aria2c_downloads_from_a_torrentphile_seeder`: 256 MiB, one Torrentphile seeder.
//! - `torrentphile_downloads_from_an_aria2c_seeder`: 256 MiB, one aria2c seeder.
//! - `a_mixed_swarm_completes`: a Torrentphile seeder, an aria2c leecher and a Torrentphile
//!   leecher at once.
//!
//! Every copy is compared by SHA-1 with the source. Each test skips, saying why, when aria2c
//! is not installed. Everything runs on 127.0.0.1 with DHT, LPD, PEX and IPv6 off in aria2c.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use torrentphile::torrent::Metainfo;

/// The size the issue asks for.
const SIZE: u64 = 256 << 20;
/// Bounds every wait; never reached when things work.
const PATIENCE: Duration = Duration::from_secs(240);

/// `src/big.bin` (256 MiB, seeded random) and its .torrent (256 KiB pieces) announcing to
/// `tracker`; the file's SHA-1.
pub fn big_torrent(tag: &str, tracker: &str) -> (PathBuf, PathBuf, Metainfo, String) {
    let src = temp_dir(tag);
    let sha = random_file(&src.join("big.bin"), SIZE, 12);
    let torrent = src.join("big.torrent");
    let code = torrentphile::torrent::cli::main(&[
        "create".into(),
        "-l".into(),
        "18".into(),
        "-a".into(),
        format!("http://{tracker}/announce"),
        "-o".into(),
        torrent.to_str().unwrap().into(),
        src.join("big.bin").to_str().unwrap().into(),
    ]);
    assert_eq!(code, 0);
    let t = Metainfo::parse(&fs::read(&torrent).unwrap()).unwrap();
    (src, torrent, t, sha)
}

#[test]
fn aria2c_downloads_from_a_torrentphile_seeder() {
    if !have_aria2c() {
        return;
    }
    let tracker = tracker();
    let (src, torrent, _, sha) = big_torrent("btr-a", &tracker.addr().to_string());
    let seed = peer(&tracker, &src);
    seed.share_torrent(&torrent).unwrap();
    let dl = temp_dir("btr-a-dl");
    let started = Instant::now();
    Aria2::leecher(&torrent, &dl).wait_done(&dl);
    println!("aria2c <- torrentphile: 256 MiB in {:?}", started.elapsed());
    assert_eq!(sha1_file(&dl.join("big.bin")), sha);
    drop(seed);
    let _ = fs::remove_dir_all(&src);
    let _ = fs::remove_dir_all(&dl);
}

/// Wait until the tracker lists a BitTorrent seeder of `t` (aria2c announces `left=0` once
/// it has hashed its copy).
fn wait_for_bt_seeder(tracker: &torrentphile::tracker::Tracker, t: &Metainfo) {
    eventually("aria2c announces itself as a seeder", PATIENCE, || {
        tracker
            .bt_members(&t.info_hash)
            .iter()
            .any(|(_, seed)| *seed)
    });
}

#[test]
fn torrentphile_downloads_from_an_aria2c_seeder() {
    if !have_aria2c() {
        return;
    }
    let tracker = tracker();
    let (src, torrent, t, sha) = big_torrent("btr-b", &tracker.addr().to_string());
    let _seeder = Aria2::seeder(&torrent, &src);
    wait_for_bt_seeder(&tracker, &t);
    let dl = temp_dir("btr-b-dl");
    let leecher = peer(&tracker, &dl);
    let started = Instant::now();
    let report = leecher.download_torrent(&t).unwrap();
    println!("torrentphile <- aria2c: 256 MiB in {:?}", started.elapsed());
    assert_eq!(sha1_file(&dl.join("big.bin")), sha);
    // Every piece came over the BitTorrent wire, from the one aria2c.
    let from: Vec<&String> = report.from.keys().collect();
    assert_eq!(from.len(), 1, "{from:?}");
    assert!(from[0].starts_with("bt:127.0.0.1:"), "{from:?}");
    assert_eq!(report.from[from[0]].0 as usize, t.piece_count());
    drop(leecher);
    let _ = fs::remove_dir_all(&src);
    let _ = fs::remove_dir_all(&dl);
}

#[test]
fn a_mixed_swarm_completes() {
    if !have_aria2c() {
        return;
    }
    let tracker = tracker();
    let (src, torrent, t, sha) = big_torrent("btr-c", &tracker.addr().to_string());
    let seed = peer(&tracker, &src);
    seed.share_torrent(&torrent).unwrap();
    let (dl_a, dl_t) = (temp_dir("btr-c-aria2c"), temp_dir("btr-c-tp"));
    let leecher = peer(&tracker, &dl_t);
    let started = Instant::now();
    let mut aria2c = Aria2::leecher(&torrent, &dl_a);
    let report = std::thread::scope(|s| {
        let ours = s.spawn(|| leecher.download_torrent(&t));
        aria2c.wait_done(&dl_a);
        ours.join().unwrap()
    })
    .unwrap();
    println!(
        "mixed swarm: both leechers done in {:?}; ours from {:?}",
        started.elapsed(),
        report.from
    );
    assert_eq!(sha1_file(&dl_a.join("big.bin")), sha, "aria2c's copy");
    assert_eq!(sha1_file(&dl_t.join("big.bin")), sha, "torrentphile's copy");
    assert_eq!(sha1_file(&src.join("big.bin")), sha, "the seeder's copy");
    drop((seed, leecher));
    for d in [&src, &dl_a, &dl_t] {
        let _ = fs::remove_dir_all(d);
    }
}
