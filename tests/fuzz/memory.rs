//! Memory: floods of overlong lines from many connections at once against real server
//! processes, and a client naming a new downloader id in every `HELLO`. Asserts that resident
//! memory and per-client accounting stay bounded, and that the servers still answer.

use std::net::SocketAddr;
use std::thread;

use torrentphile::protocol::MAX_LINE;

use super::common::*;
use super::{A_BIN, live_peer, live_peer_dir};

/// Many connections at once, each sending overlong lines, lines just past the limit, and
/// finally a line with no end.
fn flood_with_long_lines(addr: SocketAddr) {
    let threads: Vec<_> = (0..16)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut long = vec![b'L'; 200_000 + t * 1000];
                long.push(b'\n');
                let mut past = vec![b'P'; MAX_LINE + 1];
                past.push(b'\n');
                for i in 0..60 {
                    c.send(if i % 3 == 0 { &long } else { &past });
                    let reply = c.line();
                    assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
                }
                c.send(&vec![b'E'; (1 << 20) + 1]);
                let reply = c.line();
                assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
                assert!(c.closed());
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// A client that names a new downloader id in every `HELLO` (or simply reconnects from a new
/// port without one) must not leave a new entry behind each time: whatever a peer keeps per
/// client has to be bounded, or a long-running peer grows without limit.
#[test]
fn upload_accounting_does_not_grow_with_every_id_a_client_names() {
    let (_tracker, _dir, peer) = live_peer("fuzz-ids");
    let mut c = Client::connect(peer.addr());
    let mut name_ids = |ids: std::ops::Range<usize>| {
        for chunk in ids.collect::<Vec<_>>().chunks(500) {
            let mut lines = String::new();
            for i in chunk {
                lines.push_str(&format!("HELLO downloader-{i:050}\nGET {A_BIN} 0 1\n"));
            }
            c.send(lines.as_bytes());
            for i in chunk {
                let hello = c.line();
                assert!(hello.starts_with("ACK hello "), "{i}: {hello}");
                assert_eq!(c.try_line().unwrap().as_deref(), Some("DATA 1"));
                c.bytes(1);
            }
        }
        // The server handles a connection's lines in order: once PING is answered, every GET
        // before it has been counted.
        assert_eq!(c.ask("PING"), "PONG");
    };
    name_ids(0..1000);
    let after_1000 = peer.store().uploads().len();
    name_ids(1000..20_000);
    let after_20000 = peer.store().uploads().len();
    assert!(
        after_20000 < 2 * after_1000 + 100,
        "one client left {after_1000} accounting entries after 1000 ids and {after_20000} after 20000"
    );
}

#[test]
fn memory_stays_bounded_under_a_flood_of_long_lines() {
    let tracker = Process::start(&["tracker", "--port", "0"]);
    let dir = live_peer_dir("fuzz-mem");
    let tracker_addr = tracker.addr.to_string();
    let peer = Process::start(&[
        "peer",
        "--port",
        "0",
        "--tracker",
        &tracker_addr,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    for server in [&tracker, &peer] {
        let before = server.kib("VmRSS:");
        flood_with_long_lines(server.addr);
        let after_one = server.kib("VmRSS:");
        flood_with_long_lines(server.addr);
        let after_two = server.kib("VmRSS:");
        let peak = server.kib("VmHWM:");
        eprintln!(
            "{}: VmRSS {before} KiB -> {after_one} -> {after_two}, peak {peak} KiB",
            server.addr
        );
        // About 2 x 16 x 21 MB went through it; what it keeps is per-connection buffers.
        assert!(
            peak.saturating_sub(before) < 64 * 1024,
            "{}: peak grew from {before} to {peak} KiB",
            server.addr
        );
        assert!(
            after_two.saturating_sub(after_one) < 32 * 1024,
            "{}: a second flood grew VmRSS from {after_one} to {after_two} KiB",
            server.addr
        );
        assert_eq!(Client::connect(server.addr).ask("PING"), "PONG");
    }
}
