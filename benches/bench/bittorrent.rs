//! Cases 7, 9 and 13, against BitTorrent tools. Case 7: Torrentphile from one seeder against
//! aria2c from an aria2c seeder, found through a minimal HTTP tracker of the bench's own (goal:
//! at least 5x). Case 9: `torrent create` against mktorrent (same pieces), and `get --torrent`
//! against a plain `get` of the same bytes. Case 13: the BitTorrent wire both ways with
//! aria2c, one tracker (ours, its HTTP announce): aria2c from our seeder against aria2c from
//! an aria2c seeder, and Torrentphile from the aria2c seeder.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::common::{
    Proc, TempDir, random_file, rate, secs, start_peer, start_tracker, timed_download,
    wait_bounded, which,
};
use super::report::{Section, best_run, median, target};
use super::tcp::Acceptor;
use super::{BIN, Bench, MIB, Res};
use torrentphile::sim::sha1_file;

// ==== 7. aria2c ===============================================================================

/// A minimal HTTP BitTorrent tracker: remembers the port of every announce and answers with
/// every other announced peer, on 127.0.0.1, in compact form.
fn http_tracker(announced: Arc<Mutex<BTreeSet<u16>>>) -> Res<Acceptor> {
    Acceptor::start(move |mut c| {
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let (mut req, mut buf) = (Vec::new(), [0u8; 2048]);
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 << 10 {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&req);
        let mut words = text
            .lines()
            .next()
            .unwrap_or_default()
            .split(['?', '&', ' ']);
        let port = words.find_map(|kv| kv.strip_prefix("port=")?.parse().ok());
        let mut set = announced.lock().unwrap_or_else(|e| e.into_inner());
        set.extend(port);
        let mut peers = Vec::new();
        for p in set.iter().filter(|&&p| Some(p) != port) {
            peers.extend_from_slice(&[127, 0, 0, 1]);
            peers.extend_from_slice(&p.to_be_bytes());
        }
        drop(set);
        let body = format!("d8:intervali5e12:min intervali5e5:peers{}:", peers.len());
        let mut body = body.into_bytes();
        body.extend_from_slice(&peers);
        body.push(b'e');
        let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        let _ = c
            .write_all(head.as_bytes())
            .and_then(|()| c.write_all(&body));
    })
}

fn aria2c(dir: &Path) -> Res<Command> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut c = Command::new("aria2c");
    c.arg(format!("--dir={}", dir.display()))
        .arg(format!("--listen-port={port}"));
    c.args("--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --quiet=true".split(' '));
    c.args("--enable-peer-exchange=false --file-allocation=none --summary-interval=0".split(' '));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    Ok(c)
}

/// Case 7: Torrentphile and aria2c, each from a seeder of its own kind.
pub fn aria2(b: &mut Bench, s: &mut Section) -> Res<()> {
    if !which("aria2c") || !which("mktorrent") {
        s.note("skipped: aria2c or mktorrent is not installed (apt-get install aria2 mktorrent)");
        b.goal("from 1 seeder vs aria2c", "skipped".into(), ">= 5x", false);
        return Ok(());
    }
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("aria2"))?;
    let seed_dir = dir.0.join("seed");
    let (file, meta, _) = random_file(&seed_dir, "big.bin", size)?;
    let announced = Arc::new(Mutex::new(BTreeSet::new()));
    let bt = http_tracker(announced.clone())?;
    let torrent = dir.0.join("big.torrent");
    let url = format!("http://{}/announce", bt.addr);
    let mut mk = Command::new("mktorrent");
    mk.args(["-l", "18", "-a", &url, "-o"])
        .arg(&torrent)
        .arg(&file);
    if !mk.stdout(Stdio::null()).status()?.success() {
        return Err("mktorrent failed".into());
    }
    let mut seed = aria2c(&seed_dir)?;
    seed.args(["--seed-ratio=0.0", "--bt-seed-unverified=true"])
        .arg(&torrent);
    let _seed = Proc(seed.spawn()?);
    for _ in 0..400 {
        if !announced.lock().map_or(true, |s| s.is_empty()) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    // Each side's first download is not timed (run 0 here, the warm-up below): see case 1.
    let mut aria = Vec::new();
    for r in 0..=b.scale.runs {
        let dl = dir.0.join(format!("aria-dl{r}"));
        let mut cmd = aria2c(&dl)?;
        cmd.args(["--seed-time=0", "--bt-hash-check-seed=false"])
            .arg(&torrent);
        let t = Instant::now();
        wait_bounded(&mut cmd.spawn()?, Duration::from_secs(600), |_| {})?;
        if r > 0 {
            aria.push(rate(size, secs(t)));
        }
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("aria2c's copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
    }
    let tracker = start_tracker()?;
    let _seeder = start_peer(tracker.addr(), &seed_dir)?;
    let mut ours = Vec::new();
    timed_download(tracker.addr(), &dir.0.join("tp-warm-up"), "big.bin")?;
    for r in 0..b.scale.runs {
        let (t, _) = timed_download(tracker.addr(), &dir.0.join(format!("tp-dl{r}")), "big.bin")?;
        ours.push(rate(size, t));
    }
    let ratio = median(&ours) / median(&aria);
    let best_ratio = best_run(&ours) / best_run(&aria);
    s.row("aria2c from 1 aria2c seeder", "MB/s", aria);
    let row = s.row("torrentphile from 1 seeder", "MB/s", ours);
    row.vs = format!("{ratio:.2}x aria2c");
    row.target = target(">= 5x aria2c", ratio >= 5.0);
    let what = format!(
        "{} MiB from 1 seeder vs aria2c from an aria2c seeder",
        size / MIB
    );
    b.goal_best(&what, ratio, best_ratio, ">= 5x", ratio >= 5.0);
    s.note(format!(
        "{} MiB file, 256 KiB pieces for both. aria2c finds the seeder through a minimal HTTP \
         tracker in the bench (no DHT, LPD or PEX); its time is the whole process, start-up \
         included",
        size / MIB
    ));
    Ok(())
}

// ==== 9. .torrent create and get ==============================================================

/// `torrent create` against mktorrent on one file (same run, alternating, 256 KiB pieces),
/// then a download of the same bytes as a plain name and as a torrent from one seeder.
pub fn torrent_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("torrent"))?;
    let seed_dir = dir.0.join("seed");
    let (file, _, _) = random_file(&seed_dir, "big.bin", size)?;
    let torrent = seed_dir.join("big.torrent");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        if which("mktorrent") {
            let out = dir.0.join(format!("m{r}.torrent"));
            let mut mk = Command::new("mktorrent");
            mk.args(["-l", "18", "-o"]).arg(&out).arg(&file);
            let t = Instant::now();
            wait_bounded(
                &mut mk.stdout(Stdio::null()).spawn()?,
                Duration::from_secs(600),
                |_| {},
            )?;
            theirs.push(secs(t));
        }
        let _ = fs::remove_file(&torrent);
        let mut tp = Command::new(BIN);
        tp.args(["torrent", "create", "-l", "18", "-o"])
            .arg(&torrent)
            .arg(&file);
        let t = Instant::now();
        wait_bounded(
            &mut tp.stdout(Stdio::null()).spawn()?,
            Duration::from_secs(600),
            |_| {},
        )?;
        ours.push(secs(t));
    }
    let row = s.row("torrent create, 256 KiB pieces", "s", ours.clone());
    if theirs.is_empty() {
        s.note("mktorrent is not installed (apt-get install mktorrent): no baseline");
    } else {
        let ratio = median(&theirs) / median(&ours);
        row.vs = format!("{ratio:.2}x mktorrent's speed");
        row.target = target(">= 1x mktorrent", ratio >= 1.0);
        s.row("mktorrent, 256 KiB pieces", "s", theirs);
    }
    let tracker = start_tracker()?;
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    let t = torrentphile::torrent::cli::load_torrent(&torrent)?;
    seeder.share_torrent(&torrent)?;
    let (mut plain, mut bt) = (Vec::new(), Vec::new());
    for r in 0..b.scale.runs {
        let (took, _) =
            timed_download(tracker.addr(), &dir.0.join(format!("plain{r}")), "big.bin")?;
        plain.push(rate(size, took));
        let dl = dir.0.join(format!("bt{r}"));
        let peer = start_peer(tracker.addr(), &dl)?;
        let start = Instant::now();
        peer.download_torrent(&t)
            .map_err(|e| format!("download of the torrent: {e}"))?;
        bt.push(rate(size, secs(start)));
        drop(peer);
        let _ = fs::remove_dir_all(&dl);
    }
    let ratio = median(&bt) / median(&plain);
    s.row("get NAME (plain), 1 seeder", "MB/s", plain);
    s.row("get --torrent, 1 seeder", "MB/s", bt).vs = format!("{ratio:.2}x plain get");
    s.note(format!(
        "{} MiB random file; create times are whole processes; both downloads verify every \
         piece (the torrent against the .torrent's hashes)",
        size / MIB
    ));
    Ok(())
}

// ==== 13. The BitTorrent wire =================================================================

/// aria2c on loopback only, with a listening port from a range below the ephemeral ports.
fn aria2c_bt(dir: &Path, torrent: &Path) -> Command {
    let mut c = Command::new("aria2c");
    c.arg(torrent).arg(format!("--dir={}", dir.display()));
    c.args("--interface=127.0.0.1 --listen-port=20000-32000 --no-conf=true".split(' '));
    c.args("--enable-dht=false --enable-dht6=false --bt-enable-lpd=false --quiet=true".split(' '));
    c.args("--enable-peer-exchange=false --disable-ipv6=true --file-allocation=none".split(' '));
    c.args(["--summary-interval=0", "--bt-tracker-interval=1"]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Issue 12 in one run: aria2c leeching from a Torrentphile seeder against aria2c from an
/// aria2c seeder, and Torrentphile leeching from the aria2c seeder; one tracker (ours, its
/// HTTP announce), one .torrent.
pub fn bt_wire(b: &mut Bench, s: &mut Section) -> Res<()> {
    if !which("aria2c") {
        s.note("skipped: aria2c is not installed (apt-get install aria2)");
        return Ok(());
    }
    let size = b.scale.aria2;
    let dir = TempDir::new(b.root.join("bt"))?;
    let seed_dir = dir.0.join("seed");
    let (file, meta, _) = random_file(&seed_dir, "big.bin", size)?;
    let tracker = start_tracker()?;
    let torrent = seed_dir.join("big.torrent");
    let mut tp = Command::new(BIN);
    tp.args(["torrent", "create", "-l", "18", "-a"])
        .arg(format!("http://{}/announce", tracker.addr()))
        .arg("-o")
        .arg(&torrent)
        .arg(&file);
    if !tp.stdout(Stdio::null()).status()?.success() {
        return Err("torrent create failed".into());
    }
    let t = torrentphile::torrent::cli::load_torrent(&torrent)?;
    let aria_leech = |tag: &str, r: usize| -> Res<f64> {
        let dl = dir.0.join(format!("{tag}{r}"));
        let mut cmd = aria2c_bt(&dl, &torrent);
        cmd.args(["--seed-time=0"]);
        let start = Instant::now();
        wait_bounded(&mut cmd.spawn()?, Duration::from_secs(600), |_| {})?;
        let took = secs(start);
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("aria2c's copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
        Ok(rate(size, took))
    };
    let seeder = start_peer(tracker.addr(), &seed_dir)?;
    seeder.share_torrent(&torrent)?;
    let mut from_tp = Vec::new();
    for r in 0..b.scale.runs {
        from_tp.push(aria_leech("a-tp", r)?);
    }
    drop(seeder);
    let mut seed = aria2c_bt(&seed_dir, &torrent);
    seed.args(["--seed-ratio=0.0", "--check-integrity=true"]);
    let _seed = Proc(seed.spawn()?);
    let ready = Instant::now();
    while !tracker
        .bt_members(&t.info_hash)
        .iter()
        .any(|(_, seed)| *seed)
    {
        if ready.elapsed() > Duration::from_secs(300) {
            return Err("the aria2c seeder never announced itself".into());
        }
        thread::sleep(Duration::from_millis(50));
    }
    let mut from_aria = Vec::new();
    for r in 0..b.scale.runs {
        from_aria.push(aria_leech("a-a", r)?);
    }
    let mut ours = Vec::new();
    for r in 0..b.scale.runs {
        let dl = dir.0.join(format!("tp-a{r}"));
        let peer = start_peer(tracker.addr(), &dl)?;
        let start = Instant::now();
        peer.download_torrent(&t)
            .map_err(|e| format!("download from aria2c: {e}"))?;
        ours.push(rate(size, secs(start)));
        drop(peer);
        if sha1_file(&dl.join("big.bin"))? != meta.sha1.to_string() {
            return Err("our copy differs from the original".into());
        }
        let _ = fs::remove_dir_all(&dl);
    }
    let ratio = median(&from_tp) / median(&from_aria);
    let ours_ratio = median(&ours) / median(&from_aria);
    s.row("aria2c from 1 aria2c seeder", "MB/s", from_aria);
    s.row("aria2c from 1 torrentphile seeder", "MB/s", from_tp)
        .vs = format!("{ratio:.2}x an aria2c seeder");
    s.row("torrentphile from 1 aria2c seeder", "MB/s", ours).vs =
        format!("{ours_ratio:.2}x aria2c from the same seeder");
    s.note(format!(
        "{} MiB file, 256 KiB pieces, one .torrent made by `torrent create`, our tracker's \
         HTTP announce for all; aria2c's time is the whole process, start-up included; every \
         copy's SHA-1 checked",
        size / MIB
    ));
    Ok(())
}
