//! The attacks of issue 14, each mounted from loopback (127.0.0.0/8: many "hosts" in one
//! process, see `bind.rs`), bounded in count and time, and each next to the honest user it
//! must not harm. Times are printed (for the notes), never asserted beyond "it finished".

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::bind::{connect_from, lo};
use crate::common::*;
use torrentphile::peer::Peer;
use torrentphile::tracker::{Limits, Tracker, TrackerConfig};

/// A flood of connections from the addresses `hosts`, `per_host` slots each, every open one
/// sending `PING` every `every`; a slot whose connection is refused or closed connects again
/// after a short pause, until the flood is stopped. Counts what it saw.
struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
    /// Connections opened, and of those, refused with `ERR busy` or closed under it.
    opened: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Flood {
    fn start(target: SocketAddr, hosts: &[u8], per_host: usize, every: Duration) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, busy, closed) = (Arc::default(), Arc::default(), Arc::default());
        let mut threads = Vec::new();
        for &host in hosts {
            for _ in 0..per_host {
                let (stop, opened, busy, closed): (
                    Arc<AtomicBool>,
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                    Arc<AtomicUsize>,
                ) = (
                    stop.clone(),
                    Arc::clone(&opened),
                    Arc::clone(&busy),
                    Arc::clone(&closed),
                );
                threads.push(thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let Ok(stream) = connect_from(lo(host), target) else {
                            thread::sleep(Duration::from_millis(50));
                            continue;
                        };
                        opened.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.set_read_timeout(Some(HANG));
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        let mut w = stream;
                        loop {
                            let mut line = String::new();
                            let ok = w.write_all(b"PING\n").is_ok()
                                && reader.read_line(&mut line).is_ok_and(|n| n > 0);
                            if line.starts_with("ERR busy") {
                                busy.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            if !ok || line != "PONG\n" {
                                closed.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            // Hold the slot, pinging, until stopped.
                            let until = Instant::now() + every;
                            while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                                thread::sleep(Duration::from_millis(20));
                            }
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                }));
            }
        }
        Flood {
            stop,
            threads,
            opened,
            busy,
            closed,
        }
    }

    /// Stop and say what happened: (opened, busy, closed).
    fn stop(self) -> (usize, usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        (
            self.opened.load(Ordering::SeqCst),
            self.busy.load(Ordering::SeqCst),
            self.closed.load(Ordering::SeqCst),
        )
    }
}

/// A holder of `big.bin` (4 MiB in 64 KiB pieces) whose server takes `max_conns` connections,
/// `per_addr` from one address; returns it, its folder's file SHA-1 and its tracker.
fn holder(tag: &str, tracker: &Tracker, max_conns: usize, per_addr: usize) -> (Peer, String) {
    let dir = temp_dir(tag);
    let sha = random_file(&dir.join("big.bin"), 4 << 20, 14);
    let peer = peer_with(tracker, &dir, |c| {
        c.max_conns = max_conns;
        c.max_conns_per_addr = per_addr;
        c.piece_size = Some(64 * 1024);
    });
    eventually("the holder is listed", HANG, || {
        !who_has(tracker, "big.bin").is_empty()
    });
    (peer, sha)
}

/// A fresh honest downloader fetches `big.bin`; returns how long it took.
fn honest_download(tag: &str, tracker: &Tracker, sha: &str) -> Duration {
    let dir = temp_dir(tag);
    let me = peer(tracker, &dir);
    let started = Instant::now();
    let report = me.download("big.bin").expect("the honest download failed");
    let took = started.elapsed();
    assert_eq!(sha1_file(&dir.join("big.bin")), sha);
    assert_eq!(report.meta.size, 4 << 20);
    took
}

#[test]
fn a_connection_flood_from_one_address_or_many_does_not_lock_out_an_honest_download() {
    let tracker = tracker();
    // A peer with a cap of 48 connections, 8 per address: a one-host flood of 48 would have
    // held every slot before (every honest GET was `ERR busy`).
    let (holder, sha) = holder("flood-holder", &tracker, 48, 8);
    let quiet = honest_download("flood-quiet", &tracker, &sha);

    // One attacking host, 48 connections pinging every 300 ms.
    let flood = Flood::start(holder.addr(), &[2], 48, Duration::from_millis(300));
    eventually("the one-host flood is refused past its cap", HANG, || {
        flood.busy.load(Ordering::SeqCst) >= 40
    });
    let one = honest_download("flood-one", &tracker, &sha);
    let (opened, busy, closed) = flood.stop();
    eprintln!("one host: {opened} opened, {busy} told busy, {closed} closed");
    assert!(busy >= 40, "{busy}");

    // Twelve attacking hosts, 8 connections each: 96 against a cap of 48. At the cap the
    // heaviest address's longest-idle connection makes room, so the flood churns among itself
    // and the honest downloader (one or two connections from 127.0.0.1) gets in.
    let hosts: Vec<u8> = (10..22).collect();
    let flood = Flood::start(holder.addr(), &hosts, 8, Duration::from_millis(300));
    eventually("the many-host flood fills the cap and churns", HANG, || {
        flood.closed.load(Ordering::SeqCst) >= 20
    });
    let many = honest_download("flood-many", &tracker, &sha);
    let (opened, busy, closed) = flood.stop();
    eprintln!("12 hosts: {opened} opened, {busy} told busy, {closed} evicted or closed");
    eprintln!(
        "honest 4 MiB download: {quiet:.2?} alone, {one:.2?} under a one-host flood, {many:.2?} under a 12-host flood"
    );
    drop(holder);
}

#[test]
fn a_connection_flood_on_the_tracker_does_not_lock_out_honest_peers() {
    let tracker = tracker_with(TrackerConfig {
        max_conns: 32,
        max_conns_per_addr: 8,
        ..TrackerConfig::default()
    });
    let hosts: Vec<u8> = (30..38).collect();
    let flood = Flood::start(tracker.addr(), &hosts, 8, Duration::from_millis(300));
    eventually("the flood fills the tracker and churns", HANG, || {
        flood.closed.load(Ordering::SeqCst) >= 10
    });
    // Honest peers register, announce and download while the flood runs.
    let (holder, sha) = holder("tflood-holder", &tracker, 1024, 32);
    let took = honest_download("tflood-get", &tracker, &sha);
    let (opened, busy, closed) = flood.stop();
    eprintln!(
        "tracker flood, 8 hosts x 8: {opened} opened, {busy} busy, {closed} evicted; honest download {took:.2?}"
    );
    drop(holder);
}

/// A fake holder that registers, announces `meta` and then never answers anything on its own
/// server: it accepts connections and keeps them, silent.
struct Silent {
    _tracker_conn: TcpStream,
    _keep: thread::JoinHandle<()>,
}

fn silent_holder(tracker: SocketAddr, upload: &str) -> Silent {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let keep = thread::spawn(move || {
        let mut held = Vec::new();
        // Bounded: a download opens a handful of connections to each holder.
        for stream in listener.incoming().take(64) {
            held.push(stream);
        }
    });
    let mut conn = connect_stream(tracker);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for line in [format!("REGISTER {port}"), upload.to_string()] {
        conn.write_all(format!("{line}\n").as_bytes()).unwrap();
        let mut reply = String::new();
        reader.read_line(&mut reply).unwrap();
        assert!(reply.starts_with("ACK "), "{line}: {reply}");
    }
    Silent {
        _tracker_conn: conn,
        _keep: keep,
    }
}

/// A tracker that lets one address register many peers (the fakes stand for many hosts).
fn roomy_tracker() -> Tracker {
    tracker_with(TrackerConfig {
        max_conns_per_addr: 1000,
        limits: Limits {
            peers_per_addr: 1000,
            ..Limits::default()
        },
        ..TrackerConfig::default()
    })
}

fn upload_line(tracker: &Tracker) -> String {
    let info = Client::connect(tracker.addr()).ask("INFO big.bin");
    let file = info.strip_prefix("FILE ").expect("INFO big.bin");
    format!("UPLOAD {file}")
}

fn fake_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("copy.bin");
    random_file(&path, 4 << 20, 14);
    path
}

/// Fakes in the attacks below: more than one `PEERS` reply lists (`PEERS_PER_REPLY`, 50), so
/// the honest holder is missing from some replies and the download must find it over several.
const FAKES: usize = 80;

/// Every holder the tracker has for `big.bin` (its registry: a reply lists at most 50).
fn holder_count(tracker: &Tracker) -> usize {
    tracker.registry().who_has("big.bin").map_or(0, |h| h.len())
}

#[test]
fn eighty_fake_holders_that_refuse_every_piece_do_not_stop_a_download() {
    let tracker = roomy_tracker();
    let (holder, sha) = holder("refuse-holder", &tracker, 1024, 32);
    let quiet = honest_download("refuse-quiet", &tracker, &sha);
    // Eighty holders of the same file (the FILE line copied from INFO) that answer HELLO, HAVE
    // (all pieces) and HASHES, and `ERR unavailable` to every PIECE.
    let copy = fake_file(&temp_dir("refuse-fakes"));
    let fakes: Vec<FakePeer> = (0..FAKES)
        .map(|_| FakePeer::start(&tracker, &copy, "big.bin", 64 * 1024, Behaviour::Refuse))
        .collect();
    assert_eq!(holder_count(&tracker), FAKES + 1);
    assert_eq!(who_has(&tracker, "big.bin").len(), 50);
    let mut times = Vec::new();
    for run in 0..3 {
        times.push(honest_download(&format!("refuse-get{run}"), &tracker, &sha));
    }
    let asked: usize = fakes.iter().map(FakePeer::asked).sum();
    eprintln!(
        "4 MiB with {FAKES} refusing fakes: {times:.2?} (alone {quiet:.2?}); the fakes were asked {asked} pieces"
    );
    // Each fake loses its slot at its first refusal: a handful of requests each, not a stream.
    assert!(asked <= FAKES * 3 * 64, "{asked}");
    drop(holder);
}

#[test]
fn eighty_fake_holders_that_stall_do_not_stop_a_download() {
    let tracker = roomy_tracker();
    let (holder, sha) = holder("stall-holder", &tracker, 1024, 32);
    let quiet = honest_download("stall-quiet", &tracker, &sha);
    let upload = upload_line(&tracker);
    // Forty that never say a word (HASHES stalls too), forty that answer HELLO, HAVE and
    // HASHES and then stall on the first PIECE.
    let _silent: Vec<Silent> = (0..FAKES / 2)
        .map(|_| silent_holder(tracker.addr(), &upload))
        .collect();
    let copy = fake_file(&temp_dir("stall-fakes"));
    let _stallers: Vec<FakePeer> = (0..FAKES / 2)
        .map(|_| {
            FakePeer::start(
                &tracker,
                &copy,
                "big.bin",
                64 * 1024,
                Behaviour::StallAfter(0),
            )
        })
        .collect();
    assert_eq!(holder_count(&tracker), FAKES + 1);
    let mut times = Vec::new();
    for run in 0..2 {
        times.push(honest_download(&format!("stall-get{run}"), &tracker, &sha));
    }
    eprintln!("4 MiB with {FAKES} stalling fakes: {times:.2?} (alone {quiet:.2?})");
    drop(holder);
}

/// A raw client from `127.0.0.n`.
fn client_from(n: u8, tracker: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let s = connect_from(lo(n), tracker).unwrap();
    s.set_read_timeout(Some(HANG)).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn ask(c: &mut (TcpStream, BufReader<TcpStream>), line: &str) -> String {
    c.0.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    c.1.read_line(&mut reply).unwrap();
    reply.trim_end().to_string()
}

const SHA: &str = "0a4d55a8d778e5022fab701977c5d840bbc486d0";

#[test]
fn the_tracker_caps_registrations_and_announcements_per_address_and_in_total() {
    let tracker = tracker_with(TrackerConfig {
        limits: Limits {
            peers_per_addr: 3,
            files_per_peer: 8,
            files_per_addr: 10,
            files_total: 16,
        },
        ..TrackerConfig::default()
    });
    let addr = tracker.addr();
    // 127.0.0.2 registers three peers; the fourth is refused, and its connection goes on.
    let mut a: Vec<_> = (0..4).map(|_| client_from(2, addr)).collect();
    for (i, c) in a.iter_mut().enumerate().take(3) {
        assert!(ask(c, &format!("REGISTER {}", 9000 + i)).starts_with("ACK 127.0.0.2:"));
    }
    assert_eq!(
        ask(&mut a[3], "REGISTER 9003"),
        "ERR limit 127.0.0.2 already has 3 peers registered, the most one address may"
    );
    assert_eq!(ask(&mut a[3], "PING"), "PONG");
    // Files: 8 per peer, 10 per address.
    let upload = |n: usize| format!("UPLOAD f{n} 1 1024 {SHA} {SHA}");
    for n in 0..8 {
        assert!(ask(&mut a[0], &upload(n)).starts_with("ACK"));
    }
    assert_eq!(
        ask(&mut a[0], &upload(8)),
        "ERR limit a peer may announce at most 8 files"
    );
    assert!(ask(&mut a[1], &upload(8)).starts_with("ACK"));
    assert!(ask(&mut a[1], &upload(9)).starts_with("ACK"));
    assert_eq!(
        ask(&mut a[1], &upload(10)),
        "ERR limit the peers of 127.0.0.2 have announced 10 files, the most one address may"
    );
    // Another address still may, up to the total of 16.
    let mut b = client_from(3, addr);
    assert!(ask(&mut b, "REGISTER 9000").starts_with("ACK 127.0.0.3:9000"));
    for n in 20..26 {
        assert!(ask(&mut b, &upload(n)).starts_with("ACK"));
    }
    assert_eq!(
        ask(&mut b, &upload(26)),
        "ERR limit the tracker holds 16 announcements, its limit; try again later"
    );
    // A registration that ends gives its room back.
    drop(a.remove(0));
    eventually("the tracker forgets 127.0.0.2:9000", HANG, || {
        tracker.registry().peer_count() == 3
    });
    assert!(ask(&mut b, &upload(26)).starts_with("ACK"));
    assert!(ask(&mut a[2], "REGISTER 9003").starts_with("ACK"));
}

#[test]
fn list_is_paged_and_every_page_is_small() {
    let tracker = tracker();
    let mut c = Client::connect(tracker.addr());
    assert!(c.ask("REGISTER 9000").starts_with("ACK"));
    let long = "n".repeat(240);
    for n in 0..250 {
        let line = format!("UPLOAD {long}{n:03} 1 1024 {SHA} {SHA}");
        assert!(c.ask(&line).starts_with("ACK"), "{line}");
    }
    let mut q = Client::connect(tracker.addr());
    let mut names = Vec::new();
    let mut pages = 0;
    let mut after: Option<String> = None;
    loop {
        let ask = match &after {
            None => "LIST".to_string(),
            Some(name) => format!("LIST {name}"),
        };
        let data = q.data(&ask);
        // A page is at most 100 lines of at most ~350 bytes, whatever the registry holds.
        assert!(data.len() <= 100 * 350, "{}", data.len());
        let text = String::from_utf8(data).unwrap();
        let page: Vec<String> = text
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect();
        pages += 1;
        names.extend(page.iter().cloned());
        if page.len() < 100 {
            break;
        }
        after = page.last().cloned();
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..250).map(|n| format!("{long}{n:03}")).collect();
    assert_eq!(names, want);
    assert_eq!(q.data(&format!("LIST {long}249")), b"");
}
