//! End to end over loopback: downloading from every holder at once (issue 3).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::*;
use torrentphile::conn::Timeouts;
use torrentphile::peer::Peer;
use torrentphile::peer::download::{DownloadError, Report};
use torrentphile::sim::{self, SimConfig};

const PIECE: u32 = 64 * 1024;

/// Start `peer.download(name)` on its own thread; the result arrives on the channel.
fn spawn_download(peer: &Arc<Peer>, name: &str) -> mpsc::Receiver<Result<Report, DownloadError>> {
    let (tx, rx) = mpsc::channel();
    let (peer, name) = (peer.clone(), name.to_string());
    thread::spawn(move || {
        let _ = tx.send(peer.download(&name));
    });
    rx
}

/// Wait for a background download with a generous bound: a hang detector, not a speed test.
fn join_within<T: Send + 'static>(what: &str, rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}

#[test]
fn a_file_from_three_holders_has_pieces_from_each() {
    let tracker = tracker();
    let src = temp_dir("three-src");
    let sha = random_file(&src.join("f.bin"), 8 << 20, 11);
    let holders: Vec<_> = (0..3)
        .map(|i| {
            let dir = temp_dir(&format!("three-{i}"));
            fs::hard_link(src.join("f.bin"), dir.join("f.bin")).unwrap();
            peer_with(&tracker, &dir, |c| c.piece_size = Some(PIECE))
        })
        .collect();
    let dl = temp_dir("three-dl");
    let downloader = peer(&tracker, &dl);
    let report = downloader.download("f.bin").unwrap();
    assert_eq!(sha1_file(&dl.join("f.bin")), sha);
    for h in &holders {
        let (pieces, _) = report
            .from
            .get(&h.addr().to_string())
            .copied()
            .unwrap_or_default();
        assert!(pieces > 0, "no piece from {}: {:?}", h.addr(), report.from);
    }
    let total: u32 = report.from.values().map(|(p, _)| p).sum();
    assert_eq!(total, 128, "every piece counted once: {:?}", report.from);
}

#[test]
fn a_partial_holder_lists_as_partial_and_serves_its_verified_pieces() {
    let tracker = tracker();
    let src = temp_dir("partial-src");
    let sha = random_file(&src.join("f.bin"), 4 << 20, 12);
    let original = fs::read(src.join("f.bin")).unwrap();
    // The only seeder serves 10 pieces, then stalls: the first downloader stays partial.
    let _stalling = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        PIECE,
        Behaviour::StallAfter(10),
    );
    let first_dir = temp_dir("partial-first");
    let first = Arc::new(peer(&tracker, &first_dir));
    let rx = spawn_download(&first, "f.bin");
    let first_addr = first.addr().to_string();
    let mut c = Client::connect(first.addr());
    eventually(
        "the first downloader verifies 10 pieces",
        Duration::from_secs(30),
        || c.ask("HAVE f.bin").matches('1').count() == 10,
    );
    assert!(who_has(&tracker, "f.bin").contains(&format!("{first_addr}-partial")));
    let bits = c.ask("HAVE f.bin");
    let bits = bits.strip_prefix("BITFIELD ").unwrap();
    let held = bits.find('1').unwrap();
    let missing = bits.find('0').unwrap();
    let start = held * PIECE as usize;
    assert_eq!(
        c.data(&format!("PIECE f.bin {held}")),
        &original[start..start + PIECE as usize]
    );
    assert!(
        c.ask(&format!("PIECE f.bin {missing}"))
            .starts_with("ERR unavailable ")
    );
    assert!(c.ask("GET f.bin").starts_with("ERR unavailable "));

    // A second downloader takes the partial holder's pieces from it, the rest from a seeder.
    let seed_dir = temp_dir("partial-seed");
    fs::hard_link(src.join("f.bin"), seed_dir.join("f.bin")).unwrap();
    let _seed = peer_with(&tracker, &seed_dir, |c| c.piece_size = Some(PIECE));
    let second_dir = temp_dir("partial-second");
    let second = peer(&tracker, &second_dir);
    let report = second.download("f.bin").unwrap();
    assert_eq!(sha1_file(&second_dir.join("f.bin")), sha);
    assert!(report.from.contains_key(&first_addr), "{:?}", report.from);
    // The first download finishes too, now that a good seeder is there.
    join_within("the first download", &rx).unwrap();
    assert_eq!(sha1_file(&first_dir.join("f.bin")), sha);
}

#[test]
fn the_end_game_finishes_a_download_whose_other_holder_stalls() {
    let tracker = tracker();
    let src = temp_dir("endgame-src");
    let sha = random_file(&src.join("f.bin"), 4 << 20, 13);
    let _stalling = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        PIECE,
        Behaviour::StallAfter(3),
    );
    let seed_dir = temp_dir("endgame-seed");
    fs::hard_link(src.join("f.bin"), seed_dir.join("f.bin")).unwrap();
    let seed = peer_with(&tracker, &seed_dir, |c| c.piece_size = Some(PIECE));
    let dl = temp_dir("endgame-dl");
    // Stall timeouts far longer than the test: only the end game can finish it in time.
    let downloader = Arc::new(peer_with(&tracker, &dl, |c| {
        c.download.timeouts = Timeouts::uniform(Duration::from_secs(600));
    }));
    let rx = spawn_download(&downloader, "f.bin");
    let report = join_within("the download", &rx).unwrap();
    assert_eq!(sha1_file(&dl.join("f.bin")), sha);
    assert!(
        report.from[&seed.addr().to_string()].0 >= 61,
        "{:?}",
        report.from
    );
}

#[test]
fn corrupt_dead_and_stalled_holders_in_a_swarm_cost_nothing_but_retries() {
    let tracker = tracker();
    let src = temp_dir("mixed-src");
    let sha = random_file(&src.join("f.bin"), 6 << 20, 14);
    let path = src.join("f.bin");
    let _liar = FakePeer::start(&tracker, &path, "f.bin", PIECE, Behaviour::Corrupt);
    let _dying = FakePeer::start(&tracker, &path, "f.bin", PIECE, Behaviour::DieAfter(4));
    let _stalling = FakePeer::start(&tracker, &path, "f.bin", PIECE, Behaviour::StallAfter(4));
    let seed_dir = temp_dir("mixed-seed");
    fs::hard_link(&path, seed_dir.join("f.bin")).unwrap();
    let _seed = peer_with(&tracker, &seed_dir, |c| c.piece_size = Some(PIECE));
    let dirs: Vec<_> = (0..3).map(|i| temp_dir(&format!("mixed-dl{i}"))).collect();
    let downloaders: Vec<_> = dirs.iter().map(|d| Arc::new(peer(&tracker, d))).collect();
    let rxs: Vec<_> = downloaders
        .iter()
        .map(|d| spawn_download(d, "f.bin"))
        .collect();
    for (rx, dir) in rxs.iter().zip(&dirs) {
        join_within("a download", rx).unwrap();
        assert_eq!(sha1_file(&dir.join("f.bin")), sha);
    }
}

#[test]
fn a_download_killed_with_sigkill_resumes_from_its_verified_pieces() {
    let tracker = tracker();
    let src = temp_dir("resume-src");
    let sha = random_file(&src.join("f.bin"), 4 << 20, 15);
    let _slow = FakePeer::start(
        &tracker,
        &src.join("f.bin"),
        "f.bin",
        PIECE,
        Behaviour::Slow(Duration::from_millis(20)),
    );
    let dl = temp_dir("resume-dl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args([
            "get",
            "f.bin",
            "--port",
            "0",
            "--tracker",
            &tracker.addr().to_string(),
        ])
        .arg("--dir")
        .arg(&dl)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Find the child among the holders (it lists itself as partial) and watch its bitfield.
    let mut partial = String::new();
    eventually(
        "the downloader announces itself",
        Duration::from_secs(30),
        || {
            partial = who_has(&tracker, "f.bin")
                .into_iter()
                .find_map(|h| h.strip_suffix("-partial").map(String::from))
                .unwrap_or_default();
            !partial.is_empty()
        },
    );
    let mut c = Client::connect(partial.as_str());
    eventually(
        "a third of the pieces are verified",
        Duration::from_secs(30),
        || c.ask("HAVE f.bin").matches('1').count() >= 20,
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut out);
    assert!(out.is_empty(), "the killed download did not finish: {out}");
    assert!(files_in(&dl).is_empty(), "nothing under the final name");

    // Damage one verified piece on disk: a resumed download must not trust it.
    let part = dl.join(".torrentphile/f.bin.part");
    let file = fs::OpenOptions::new().write(true).open(&part).unwrap();
    file.write_all_at(b"garbage", 0).unwrap();

    let peer = peer(&tracker, &dl);
    let report = peer.download("f.bin").unwrap();
    assert_eq!(sha1_file(&dl.join("f.bin")), sha);
    assert!(report.resumed >= 19, "resumed {}", report.resumed);
    let fetched: u32 = report.from.values().map(|(p, _)| p).sum();
    assert_eq!(
        fetched + report.resumed,
        64,
        "no verified piece fetched twice"
    );
}

#[test]
fn in_the_swarm_scenario_the_seeder_uploads_well_under_a_copy_per_downloader() {
    let config = SimConfig {
        root: temp_dir("swarm-sim"),
        tracker_port: 0,
        base_port: 0,
        size_mib: 16,
        downloaders: 6,
        narrate: false,
        random: false,
    };
    let result = sim::swarm_run(&config, true).unwrap();
    assert_eq!(result.peers.len(), 6);
    for (name, down, _, _) in &result.peers {
        assert_eq!(*down, 16 << 20, "{name}");
    }
    // Without trading, the seeder would upload 6 copies.
    assert!(
        result.seeder_copies() <= 3.0,
        "seeder uploaded {:.2} copies",
        result.seeder_copies()
    );
    let traded: u64 = result.peers.iter().map(|(_, _, up, _)| up).sum();
    assert!(
        traded >= 3 * (16 << 20),
        "downloaders fed each other only {traded} bytes"
    );
}
