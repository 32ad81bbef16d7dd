//! Hostile timing and load (the hardening issue): clients that send one byte a second, clients
//! that say nothing, clients that never read, and a thousand clients at once against a
//! connection cap. Every read has a timeout and every wait a generous bound: these are hang
//! detectors, never speed tests.

#[path = "hostile/attacks.rs"]
mod attacks;
#[path = "hostile/bind.rs"]
mod bind;
mod common;
#[path = "hostile/memory.rs"]
mod memory;
#[path = "hostile/peers.rs"]
mod peers;
#[path = "hostile/trust.rs"]
mod trust;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use torrentphile::conn::Timeouts;
use torrentphile::peer::Peer;
use torrentphile::tracker::{Tracker, TrackerConfig};

/// A tracker with `idle` as its idle timeout, and a peer (serving an empty folder) with `idle`
/// and `line` as its own.
fn servers_with_timeouts(tag: &str, idle: Duration, line: Duration) -> (Tracker, Peer) {
    let tracker = tracker_with(TrackerConfig {
        idle,
        ..TrackerConfig::default()
    });
    let dir = temp_dir(tag);
    let peer = peer_with(&tracker, &dir, |c| {
        c.timeouts = Timeouts {
            idle,
            line,
            io: TEST_TIMEOUT,
        }
    });
    (tracker, peer)
}

/// What a slow client saw.
#[derive(Debug)]
struct Slow {
    /// Bytes it got out before the server spoke or closed.
    sent: usize,
    /// Everything the server sent.
    reply: String,
    /// The server closed the connection after its reply.
    closed: bool,
    /// From the first byte sent to the reply.
    took: Duration,
}

/// A client typing a request one byte a second, listening between bytes. `started` is told
/// once the first byte is out (the line has begun).
fn one_byte_a_second(addr: SocketAddr, started: mpsc::Sender<()>) -> Slow {
    let mut stream = connect_stream(addr);
    let text = b"WHOHAS a-name-typed-one-byte-every-second.txt\n";
    let mut sent = 0;
    let mut got = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 256];
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    // Fifteen bytes at most: six times the deadline under test. If the server has not spoken
    // by then it never cuts slow lines, and the test fails without typing on for a minute.
    for &byte in text.iter().take(15) {
        if stream.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        if sent == 1 {
            first = Some(Instant::now());
            let _ = started.send(());
        }
        // The pause between bytes is a read with a one-second timeout: it ends early only if
        // the server speaks (or closes).
        match stream.read(&mut buf) {
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let took = first.map_or(Duration::ZERO, |t| t.elapsed());
    // The rest of the reply, then the end of the stream.
    stream.set_read_timeout(Some(HANG)).unwrap();
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e.kind() == io::ErrorKind::ConnectionReset,
        }
    };
    Slow {
        sent,
        reply: String::from_utf8_lossy(&got).into_owned(),
        closed,
        took,
    }
}

#[test]
fn clients_sending_one_byte_a_second_are_cut_off_and_others_are_served_meanwhile() {
    // Idle 2.5 s, so the line deadline is min(10 s, 2.5 s) = 2.5 s. A byte every second never
    // lets the idle timer fire: only the line deadline can end these connections, and it
    // falls between two bytes.
    // A peer's server applies its own timeouts the same way.
    let (tracker, peer) = servers_with_timeouts(
        "hostile-slow",
        Duration::from_millis(2500),
        Duration::from_millis(2500),
    );
    // Fifty slow clients on the tracker, ten on the peer.
    let targets: Vec<SocketAddr> = [tracker.addr(); 50]
        .into_iter()
        .chain([peer.addr(); 10])
        .collect();
    let (started, begun) = mpsc::channel();
    let slow: Vec<_> = targets
        .iter()
        .map(|&addr| {
            let started = started.clone();
            thread::spawn(move || one_byte_a_second(addr, started))
        })
        .collect();
    for _ in &targets {
        begun
            .recv_timeout(HANG)
            .expect("a slow client did not start");
    }
    // Sixty half-typed lines hold sixty server threads; everyone else is still served.
    let mut other = Client::connect(tracker.addr());
    let mut other_peer = Client::connect(peer.addr());
    for _ in 0..20 {
        assert_eq!(other.ask("PING"), "PONG");
        assert_eq!(other_peer.ask("PING"), "PONG");
    }
    for _ in 0..5 {
        assert_eq!(
            Client::connect(tracker.addr()).ask("WHOHAS x"),
            "ERR not-found no peer holds x"
        );
        assert_eq!(
            Client::connect(peer.addr()).ask("HAVE x"),
            "ERR not-found this peer does not hold x"
        );
    }
    for (handle, addr) in slow.into_iter().zip(targets) {
        let slow = handle.join().unwrap();
        assert!(
            slow.reply.starts_with("ERR timeout ") && slow.reply.ends_with('\n'),
            "{addr}: {slow:?}"
        );
        assert_eq!(slow.reply.lines().count(), 1, "{addr}: {slow:?}");
        assert!(
            slow.reply.contains("line"),
            "{addr}: not the line-deadline message: {slow:?}"
        );
        assert!(slow.closed, "{addr}: {slow:?}");
        // It was let in for a while (two bytes at least), just not forever.
        assert!(slow.sent >= 2 && slow.sent < 15, "{addr}: {slow:?}");
        assert!(slow.took >= Duration::from_secs(2), "{addr}: {slow:?}");
    }
    // Both still serve (on new connections: the old ones have been idle past the timeout).
    assert_eq!(Client::connect(tracker.addr()).ask("PING"), "PONG");
    assert_eq!(Client::connect(peer.addr()).ask("PING"), "PONG");
}

#[test]
fn a_client_that_says_nothing_is_told_and_closed_after_the_idle_timeout() {
    let (tracker, peer) =
        servers_with_timeouts("hostile-silent", Duration::from_secs(1), TEST_TIMEOUT);
    for addr in [tracker.addr(), peer.addr()] {
        // Several silent clients at once, and one that starts a line and stops.
        let mut silent: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
        let mut partial = Client::connect(addr);
        partial.send(b"WHOHAS half-a-li");
        for c in &mut silent {
            let reply = c.line();
            assert!(
                reply.starts_with("ERR timeout nothing received"),
                "{addr}: {reply}"
            );
            assert!(c.closed(), "{addr}");
        }
        let reply = partial.line();
        assert!(
            reply.starts_with("ERR timeout a line must end"),
            "{addr}: {reply}"
        );
        assert!(partial.closed(), "{addr}");
    }
}

#[test]
fn a_client_that_talks_often_enough_is_never_timed_out() {
    // Idle 2 s; a complete line every half second keeps the connection for 4 s, twice the
    // idle timeout. The idle clock restarts at every line.
    let tracker = tracker_with(TrackerConfig {
        idle: Duration::from_secs(2),
        ..TrackerConfig::default()
    });
    let mut c = Client::connect(tracker.addr());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        assert_eq!(c.ask("PING"), "PONG");
        thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(c.ask("PING"), "PONG");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_does_not_stall_others() {
    let tracker = tracker();
    let dir = temp_dir("hostile-noread");
    random_file(&dir.join("big.bin"), 8 << 20, 21);
    let peer = peer_with(&tracker, &dir, |c| {
        c.timeouts = Timeouts::uniform(Duration::from_secs(1));
    });
    let addr = peer.addr();
    // Ask for 160 MiB and read none of it: the server's writes block on a full socket.
    let mut hog = connect_stream(addr);
    hog.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    hog.write_all("GET big.bin\n".repeat(20).as_bytes())
        .unwrap();
    // Meanwhile the peer serves everyone else.
    let mut other = Client::connect(addr);
    for _ in 0..10 {
        assert_eq!(other.ask("PING"), "PONG");
        assert_eq!(other.ask("GET big.bin 0 3"), "DATA 3");
        other.bytes(3);
    }
    // Within its write timeout the server gives up on the hog and closes it; more requests
    // from the hog then meet a reset. Polled: nothing else says when the server gave up.
    let start = Instant::now();
    let cut = loop {
        match hog.write_all(b"PING\n") {
            Err(_) => break true,
            Ok(()) if start.elapsed() > HANG => break false,
            Ok(()) => thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(cut, "the peer kept writing to a client that never reads");
    assert_eq!(Client::connect(addr).ask("PING"), "PONG");
}

/// The soft limit on open files (the flood needs two descriptors per served connection).
fn open_files_limit() -> usize {
    fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1024)
}

/// What one flood connection has received so far.
struct Flooder {
    stream: TcpStream,
    got: Vec<u8>,
    closed: bool,
}

#[test]
fn a_thousand_clients_at_once_are_each_served_or_told_busy() {
    // One thousand connections against a cap of 500; fewer on a host with a low file limit
    // (each served connection costs this process two descriptors, client and server).
    let limit = open_files_limit();
    let total = 1000.min(limit.saturating_sub(100) * 2 / 3) & !1;
    assert!(
        total >= 100,
        "open files limit {limit} is too low for this test"
    );
    if total < 1000 {
        eprintln!("open files limit {limit}: flooding with {total} clients instead of 1000");
    }
    let cap = total / 2;
    // All from 127.0.0.1: the per-address cap is the one met (the global cap would evict).
    let tracker = tracker_with(TrackerConfig {
        max_conns: total,
        max_conns_per_addr: cap,
        idle: Duration::from_secs(300),
        ..TrackerConfig::default()
    });
    let addr = tracker.addr();
    let began = Instant::now();
    // All at once: eight threads connecting as fast as they can. Nobody sends anything, so a
    // refused client reads `ERR busy` and a clean end (no unread request, so no reset), and a
    // served client holds its slot until the end of the test.
    let threads = 8;
    let connectors: Vec<_> = (0..threads)
        .map(|t| {
            thread::spawn(move || {
                (0..total / threads + usize::from(t < total % threads))
                    .map(|_| {
                        let stream = connect_stream(addr);
                        stream.set_nonblocking(true).unwrap();
                        Flooder {
                            stream,
                            got: Vec::new(),
                            closed: false,
                        }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut clients: Vec<Flooder> = connectors
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(clients.len(), total);
    // Wait until every refused client has its answer and its close. The served ones say
    // nothing, so the readiness signal is the refusals: `total - cap` of them. Polled (std has
    // no select), bounded.
    let start = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        for c in clients.iter_mut().filter(|c| !c.closed) {
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        c.closed = true;
                        break;
                    }
                    Ok(n) => c.got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("a flood client: {e}"),
                }
            }
        }
        let refused = clients.iter().filter(|c| c.closed).count();
        if refused >= total - cap {
            break;
        }
        assert!(
            start.elapsed() < HANG * 2,
            "after {:?}, {refused} of the {} clients past the cap were refused",
            start.elapsed(),
            total - cap
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut busy = 0;
    for c in clients.iter().filter(|c| c.closed) {
        let text = String::from_utf8_lossy(&c.got);
        assert!(
            text.starts_with("ERR busy ") && text.ends_with('\n') && text.lines().count() == 1,
            "a closed flood client got {text:?}"
        );
        busy += 1;
    }
    // Exactly `cap` clients hold a slot; each of them is served.
    let mut served = 0;
    for c in clients.iter_mut().filter(|c| !c.closed) {
        assert!(c.got.is_empty(), "{:?}", String::from_utf8_lossy(&c.got));
        c.stream.set_nonblocking(false).unwrap();
        let mut talk = BufReader::new(c.stream.try_clone().unwrap());
        c.stream.write_all(b"PING\n").unwrap();
        let mut line = String::new();
        talk.read_line(&mut line).unwrap();
        assert_eq!(line, "PONG\n");
        served += 1;
    }
    eprintln!(
        "{total} clients, cap {cap}: {served} served, {busy} busy, in {:?}",
        began.elapsed()
    );
    assert_eq!(served + busy, total);
    assert_eq!(
        served, cap,
        "the cap admitted {served} connections, not {cap}"
    );
    // Every slot frees when its client leaves, and the tracker serves again.
    drop(clients);
    eventually("the tracker serves again once the flood left", HANG, || {
        // A refused client's PING may meet a reset: any failure just means not yet.
        let mut c = Client::connect(addr);
        c.try_send(b"PING\n").is_ok() && c.try_line().is_ok_and(|l| l.as_deref() == Some("PONG"))
    });
}
