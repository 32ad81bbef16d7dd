//! Our BitTorrent codec against a real client, aria2c, before any of it is wired into the
//! peer: a tracker written here on `bt::announce`, and a leecher and a seeder written here on
//! `bt::wire`, `bt::framing` and `bt::session` over plain std sockets.
//!
//! - `aria2c_seeds_to_our_wire_leecher`: aria2c seeds a torrent made by
//!   `torrentphile torrent create`; it announces to our tracker, we connect to the port it
//!   announced, and fetch every 16 KiB block, checking every piece's SHA-1.
//! - `aria2c_leeches_from_our_wire_seeder`: our tracker hands aria2c our seeder's address;
//!   aria2c downloads the file from it and exits; its copy must equal ours byte for byte.
//!
//! Both skip, saying why, when aria2c is not installed (`make test` installs it as root).
//! Everything is on 127.0.0.1; aria2c runs with DHT, local peer discovery, peer exchange and
//! IPv6 off, so it talks to nobody but us.

mod common;

use common::{Aria2, have_aria2c};

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use torrentphile::bt::announce::{self, Announce, Reply, SwarmPeer};
use torrentphile::bt::bitfield::Bitfield;
use torrentphile::bt::framing::{Decoder, HandshakeReader};
use torrentphile::bt::session::{Event, Geometry, Session};
use torrentphile::bt::wire::{Handshake, Message, WireError};
use torrentphile::sha1::Sha1;
use torrentphile::torrent::Metainfo;
use torrentphile::util::Rng;

/// Long enough for aria2c to start and hash on a loaded 2-core machine; never reached when
/// things work (every wait below ends on an event, not on this).
const PATIENCE: Duration = Duration::from_secs(60);
const OUR_PEER_ID: [u8; 20] = *b"-TP0001-wiretest0001";

/// A tracker on 127.0.0.1:0 that answers every announce with `peers` and reports each
/// announce (with the address it came from) on the channel.
fn tracker(peers: Vec<SwarmPeer>) -> (SocketAddr, mpsc::Receiver<(Announce, SocketAddr)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(PATIENCE));
            let _ = conn.set_write_timeout(Some(PATIENCE));
            let from = conn.peer_addr().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while announce::head_end(&head).is_none() && head.len() <= announce::MAX_HEAD {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let end = announce::head_end(&head).unwrap_or(head.len());
            let line_end = head.iter().position(|&b| b == b'\r').unwrap_or(end);
            println!("tracker < {}", String::from_utf8_lossy(&head[..line_end]));
            let answer = announce::respond(&head[..end], |a| {
                let _ = tx.send((a.clone(), from));
                Ok(Reply {
                    interval: 1800,
                    complete: 1,
                    incomplete: 1,
                    peers: peers.clone(),
                })
            });
            let _ = conn.write_all(&answer);
        }
    });
    (addr, rx)
}

/// A folder holding `bt-data.bin` (random, 10 pieces of 32 KiB with a short last one) and
/// its .torrent announcing to `tracker`, made by our own `torrent create`.
fn make_torrent(tag: &str, tracker: SocketAddr) -> (PathBuf, PathBuf, Vec<u8>, Metainfo) {
    let dir = common::temp_dir(tag);
    let mut data = vec![0u8; 9 * 32768 + 5088];
    Rng::new(12).fill(&mut data);
    fs::write(dir.join("bt-data.bin"), &data).unwrap();
    let torrent = dir.join("bt-data.torrent");
    let status = Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["torrent", "create", "-l", "15", "-a"])
        .arg(format!("http://{tracker}/announce"))
        .arg("-o")
        .arg(&torrent)
        .arg(dir.join("bt-data.bin"))
        .status()
        .unwrap();
    assert!(status.success());
    let meta = Metainfo::parse(&fs::read(&torrent).unwrap()).unwrap();
    assert_eq!(meta.piece_count(), 10);
    (dir, torrent, data, meta)
}

fn send(stream: &mut TcpStream, msg: &Message, trace: &mut Vec<String>) {
    trace.push(format!("> {msg}"));
    stream.write_all(&msg.encode()).unwrap();
}

/// Read until the decoder yields at least one message.
fn read_messages(
    stream: &mut TcpStream,
    dec: &mut Decoder,
    trace: &mut Vec<String>,
) -> Vec<Message> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    while out.is_empty() {
        let n = stream.read(&mut buf).expect("read from aria2c");
        assert!(
            n > 0,
            "aria2c closed the connection; trace:\n{}",
            trace.join("\n")
        );
        dec.feed(&buf[..n], &mut out)
            .expect("aria2c sent a bad frame");
        assert!(dec.buffered() <= dec.max_buffered());
    }
    for m in &out {
        trace.push(format!("< {m}"));
    }
    out
}

/// Exchange handshakes; returns the other side's and any bytes that came after it.
fn handshake(
    stream: &mut TcpStream,
    ours: &Handshake,
    send_first: bool,
) -> Result<(Handshake, Vec<u8>), WireError> {
    if send_first {
        stream.write_all(&ours.encode()).unwrap();
    }
    let mut reader = HandshakeReader::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed during the handshake");
        let (used, got) = reader.feed(&buf[..n])?;
        if let Some(theirs) = got {
            if !send_first {
                stream.write_all(&ours.encode()).unwrap();
            }
            return Ok((theirs, buf[used..n].to_vec()));
        }
    }
}

#[test]
fn aria2c_seeds_to_our_wire_leecher() {
    if !have_aria2c() {
        return;
    }
    let (tracker_addr, announces) = tracker(Vec::new());
    let (dir, torrent, data, meta) = make_torrent("bt-aria2-seed", tracker_addr);
    let _aria = Aria2::start(
        &torrent,
        &dir,
        &[
            "--seed-ratio=0.0",
            "--check-integrity=true",
            "--bt-seed-unverified=false",
        ],
    );

    // aria2c hashes the file, then announces as a seeder (left=0) with its listen port.
    let (seen, from) = loop {
        let (a, from) = announces.recv_timeout(PATIENCE).expect("aria2c announces");
        println!("aria2c announced from {from}: {a:?}");
        if a.left == 0 {
            break (a, from);
        }
    };
    assert_eq!(seen.info_hash, meta.info_hash);
    assert!(seen.compact, "aria2c asks for compact peer lists");

    let mut stream = TcpStream::connect(("127.0.0.1", seen.port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    let mut trace = Vec::new();
    let ours = Handshake::new(meta.info_hash, OUR_PEER_ID);
    trace.push(format!("> {ours}"));
    let (theirs, rest) = handshake(&mut stream, &ours, true).expect("a plain handshake");
    trace.push(format!("< {theirs}"));
    assert_eq!(theirs.info_hash, meta.info_hash);
    assert_eq!(
        theirs.peer_id, seen.peer_id,
        "same peer id on the wire as announced"
    );
    assert!(theirs.peer_id.starts_with(b"A2-"), "aria2's peer id prefix");
    println!(
        "aria2c at {from}, handshake reserved bytes {:02x?}",
        theirs.reserved
    );

    let geometry = Geometry {
        piece_length: meta.piece_length,
        total_length: meta.total_length,
    };
    let mut session = Session::new(geometry, 8);
    let mut dec = Decoder::new(meta.piece_count());
    let mut pending = Vec::new();
    dec.feed(&rest, &mut pending).unwrap();
    trace.extend(pending.iter().map(|m| format!("< {m}")));
    let interested = session.set_interested(true).unwrap();
    send(&mut stream, &interested, &mut trace);

    let mut blocks: Vec<_> = (0..meta.piece_count() as u32)
        .flat_map(|i| geometry.blocks(i))
        .collect();
    blocks.reverse(); // pop() hands them out in order
    let mut got = vec![0u8; data.len()];
    let mut received = 0;
    while received < data.len() {
        if pending.is_empty() {
            pending = read_messages(&mut stream, &mut dec, &mut trace);
        }
        for msg in std::mem::take(&mut pending) {
            match session.receive(msg).expect("aria2c keeps the rules") {
                Event::Received(b, bytes) => {
                    let at = (b.index as u64 * meta.piece_length) as usize + b.begin as usize;
                    got[at..at + bytes.len()].copy_from_slice(&bytes);
                    received += bytes.len();
                }
                Event::Choked(back) => blocks.extend(back),
                _ => {}
            }
        }
        while session.can_request() {
            let Some(b) = blocks.pop() else { break };
            let req = session.request(b).expect("a valid block");
            send(&mut stream, &req, &mut trace);
        }
    }
    assert!(
        session.their_pieces().is_complete(),
        "aria2c sent a full bitfield"
    );
    for (i, want) in meta.pieces.iter().enumerate() {
        let len = meta.piece_size(i) as usize;
        let at = i * meta.piece_length as usize;
        assert_eq!(
            Sha1::from(&got[at..at + len]).digest().bytes(),
            *want,
            "piece {i} from aria2c fails its hash"
        );
    }
    assert_eq!(got, data);
    println!("trace of our leecher:\n{}", trace.join("\n"));
    drop(_aria);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn aria2c_leeches_from_our_wire_seeder() {
    if !have_aria2c() {
        return;
    }
    let seeder = TcpListener::bind("127.0.0.1:0").unwrap();
    let seeder_addr = seeder.local_addr().unwrap();
    let (tracker_addr, announces) = tracker(vec![SwarmPeer {
        addr: seeder_addr,
        peer_id: Some(OUR_PEER_ID),
    }]);
    let (dir, torrent, data, meta) = make_torrent("bt-aria2-leech", tracker_addr);
    let leech_dir = dir.join("leech");
    fs::create_dir_all(&leech_dir).unwrap();
    let mut aria = Aria2::start(&torrent, &leech_dir, &["--seed-time=0"]);

    let (first, _) = announces.recv_timeout(PATIENCE).expect("aria2c announces");
    assert_eq!(first.left, data.len() as u64);

    // aria2c opens with the encrypted handshake (MSE) even though it does not require it; we
    // close such a connection, and it comes back with the plain one.
    let ours = Handshake::new(meta.info_hash, OUR_PEER_ID);
    let mut tries = 0;
    let (mut stream, from, theirs, rest) = loop {
        tries += 1;
        assert!(tries <= 5, "aria2c never sent a plain handshake");
        let (mut stream, from) = seeder.accept().expect("aria2c connects to our seeder");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        match handshake(&mut stream, &ours, false) {
            Ok((theirs, rest)) => break (stream, from, theirs, rest),
            Err(e) => println!("connection {tries} from aria2c at {from} refused: {e}"),
        }
    };
    let mut trace = Vec::new();
    trace.push(format!("< {theirs}"));
    trace.push(format!("> {ours}"));
    assert_eq!(theirs.info_hash, meta.info_hash);
    println!("aria2c connected from {from}");

    let geometry = Geometry {
        piece_length: meta.piece_length,
        total_length: meta.total_length,
    };
    let mut session = Session::new(geometry, 8);
    let mut dec = Decoder::new(meta.piece_count());
    send(
        &mut stream,
        &Message::Bitfield(Bitfield::full(meta.piece_count())),
        &mut trace,
    );
    let mut pending = Vec::new();
    dec.feed(&rest, &mut pending).unwrap();
    trace.extend(pending.iter().map(|m| format!("< {m}")));
    let (mut served, mut deepest, mut sizes) = (0usize, 0usize, Vec::new());
    while served < data.len() {
        if pending.is_empty() {
            pending = read_messages(&mut stream, &mut dec, &mut trace);
        }
        // How many requests aria2c had in flight at once, as seen from one read.
        let batch = pending
            .iter()
            .filter(|m| matches!(m, Message::Request { .. }))
            .count();
        deepest = deepest.max(batch);
        for msg in std::mem::take(&mut pending) {
            let event = session.receive(msg);
            let event = event.unwrap_or_else(|e| panic!("{e}; trace:\n{}", trace.join("\n")));
            match event {
                Event::Serve(b) => {
                    sizes.push(b.length);
                    let at = (b.index as u64 * meta.piece_length) as usize + b.begin as usize;
                    let piece = Message::Piece {
                        index: b.index,
                        begin: b.begin,
                        block: data[at..at + b.length as usize].to_vec(),
                    };
                    send(&mut stream, &piece, &mut trace);
                    served += b.length as usize;
                }
                _ => {
                    if session.peer_interested && session.am_choking {
                        let unchoke = session.set_choking(false).unwrap();
                        send(&mut stream, &unchoke, &mut trace);
                    }
                }
            }
        }
    }
    println!(
        "aria2c requested {} blocks of sizes {:?}..., at most {deepest} in one read",
        sizes.len(),
        &sizes[..sizes.len().min(4)]
    );
    // With --seed-time=0 aria2c exits once it has verified the file. std has no wait with a
    // timeout, so poll its exit status (the process's end is the signal; the poll only
    // bounds how late we notice it).
    let deadline = std::time::Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = aria.0.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "aria2c did not exit 0 ({status:?}); see {}",
        leech_dir.join("aria2c.log").display()
    );
    assert_eq!(fs::read(leech_dir.join("bt-data.bin")).unwrap(), data);
    println!(
        "trace of our seeder (first 12):\n{}",
        trace[..trace.len().min(12)].join("\n")
    );
    let _ = fs::remove_dir_all(&dir);
}
