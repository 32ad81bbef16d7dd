//! Hostile BitTorrent input against a running peer (issue 12): each case ends with the
//! connection closed (the trace says why), never a panic, and the peer still serving.
//!
//! Serving side (we are the seeder): a wrong info-hash, a 4 GiB length prefix, a request
//! outside its piece, a block we never asked for, a handshake trickled a byte at a time, an
//! encrypted (non-ASCII) opening. Downloading side (a fake BitTorrent seeder announced to our
//! tracker over HTTP): a block we never asked for, a peer that never unchokes, a wrong
//! info-hash; the download fails with the pieces kept, and the fake sees its connection end.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use torrentphile::bt::announce::{Announce, Event as AnnounceEvent};
use torrentphile::bt::announce_client;
use torrentphile::bt::bitfield::Bitfield;
use torrentphile::bt::framing::{Decoder, HandshakeReader};
use torrentphile::bt::wire::{Handshake, Message};
use torrentphile::peer::Peer;
use torrentphile::torrent::Metainfo;
use torrentphile::tracker::Tracker;

const THEIR_ID: [u8; 20] = *b"-XX0001-hostile00001";

/// A seeded torrent of 3 pieces of 32 KiB (the last one short), announcing to `tracker`.
fn seeded(tag: &str, tracker: &Tracker) -> (Peer, Metainfo, PathBuf) {
    let dir = temp_dir(tag);
    random_file(&dir.join("d.bin"), 2 * 32768 + 1000, 5);
    let torrent = dir.join("d.torrent");
    let code = torrentphile::torrent::cli::main(&[
        "create".into(),
        "-l".into(),
        "15".into(),
        "-a".into(),
        format!("http://{}/announce", tracker.addr()),
        "-o".into(),
        torrent.to_str().unwrap().into(),
        dir.join("d.bin").to_str().unwrap().into(),
    ]);
    assert_eq!(code, 0);
    let p = peer(tracker, &dir);
    let (t, _) = p.share_torrent(&torrent).unwrap();
    (p, t, dir)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Read until the other side closes; everything it sent. Panics if it stays open.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!("the peer kept the connection open: {e}"),
        }
    }
}

/// Handshake for `t`; returns the messages the peer sent first (its bitfield).
fn open_session(addr: SocketAddr, t: &Metainfo) -> (TcpStream, Decoder) {
    let mut s = connect(addr);
    s.write_all(&Handshake::new(t.info_hash, THEIR_ID).encode())
        .unwrap();
    let mut reader = HandshakeReader::new();
    let mut byte = [0u8; 1];
    loop {
        s.read_exact(&mut byte).unwrap();
        if let (_, Some(h)) = reader.feed(&byte).unwrap() {
            assert_eq!(h.info_hash, t.info_hash);
            break;
        }
    }
    (s, Decoder::new(t.piece_count()))
}

/// Read messages until one satisfies `want`.
fn until(s: &mut TcpStream, d: &mut Decoder, want: impl Fn(&Message) -> bool) -> Message {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = out.iter().position(&want) {
            return out.swap_remove(i);
        }
        out.clear();
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the expected message");
        d.feed(&buf[..n], &mut out).unwrap();
    }
}

/// The peer still serves a good session after the hostile one.
fn still_serves(addr: SocketAddr, t: &Metainfo) {
    let (mut s, mut d) = open_session(addr, t);
    s.write_all(&Message::Interested.encode()).unwrap();
    until(&mut s, &mut d, |m| *m == Message::Unchoke);
    let req = Message::Request {
        index: 2,
        begin: 0,
        length: 1000,
    };
    s.write_all(&req.encode()).unwrap();
    let got = until(&mut s, &mut d, |m| matches!(m, Message::Piece { .. }));
    assert!(matches!(got, Message::Piece { index: 2, begin: 0, ref block } if block.len() == 1000));
}

#[test]
fn a_wrong_info_hash_is_closed_before_our_handshake() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-hash", &tracker);
    let mut s = connect(p.addr());
    s.write_all(&Handshake::new([7; 20], THEIR_ID).encode())
        .unwrap();
    assert_eq!(
        read_to_close(&mut s),
        b"",
        "no handshake for a torrent we do not serve"
    );
    still_serves(p.addr(), &t);
}

#[test]
fn a_4_gib_length_prefix_is_closed_at_once() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-len", &tracker);
    let (mut s, _) = open_session(p.addr(), &t);
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    // Its bitfield may still be in flight; then the close, without waiting for a body.
    let rest = read_to_close(&mut s);
    assert!(rest.len() <= 4 + 1 + 1, "{rest:?}");
    still_serves(p.addr(), &t);
}

#[test]
fn a_request_outside_its_piece_is_closed() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-range", &tracker);
    let (mut s, mut d) = open_session(p.addr(), &t);
    s.write_all(&Message::Interested.encode()).unwrap();
    until(&mut s, &mut d, |m| *m == Message::Unchoke);
    // Piece 2 is 1000 bytes long.
    let req = Message::Request {
        index: 2,
        begin: 500,
        length: 16384,
    };
    s.write_all(&req.encode()).unwrap();
    assert_eq!(
        read_to_close(&mut s),
        b"",
        "no piece for a range past the end"
    );
    let (mut s, mut d) = open_session(p.addr(), &t);
    s.write_all(&Message::Interested.encode()).unwrap();
    until(&mut s, &mut d, |m| *m == Message::Unchoke);
    let req = Message::Request {
        index: 3,
        begin: 0,
        length: 10,
    };
    s.write_all(&req.encode()).unwrap();
    assert_eq!(
        read_to_close(&mut s),
        b"",
        "no piece 3 in a 3-piece torrent"
    );
    still_serves(p.addr(), &t);
}

#[test]
fn a_block_we_never_asked_for_is_closed() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-unasked", &tracker);
    let (mut s, _) = open_session(p.addr(), &t);
    let block = Message::Piece {
        index: 0,
        begin: 0,
        block: vec![1; 100],
    };
    s.write_all(&block.encode()).unwrap();
    let rest = read_to_close(&mut s);
    assert!(rest.len() <= 6, "{rest:?}");
    still_serves(p.addr(), &t);
}

#[test]
fn a_trickled_handshake_ends_at_the_handshake_deadline() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-trickle", &tracker);
    let mut s = connect(p.addr());
    let hs = Handshake::new(t.info_hash, THEIR_ID).encode();
    let started = Instant::now();
    // One byte every 250 ms would take 17 s; the peer's handshake deadline (its line
    // timeout, 3 s here) ends it long before.
    let mut sent = 0;
    for b in hs {
        if s.write_all(&[b]).is_err() {
            break;
        }
        sent += 1;
        thread::sleep(Duration::from_millis(250));
        let mut probe = [0u8; 1];
        s.set_nonblocking(true).unwrap();
        let closed = matches!(s.read(&mut probe), Ok(0));
        s.set_nonblocking(false).unwrap();
        if closed {
            break;
        }
    }
    assert!(sent < 68, "the whole trickled handshake was accepted");
    println!("closed after {sent} bytes, {:?}", started.elapsed());
    still_serves(p.addr(), &t);
}

#[test]
fn an_encrypted_opening_is_closed_at_once_and_a_line_still_works() {
    let tracker = tracker();
    let (p, t, _) = seeded("bth-mse", &tracker);
    let mut s = connect(p.addr());
    s.write_all(&[0x90, 0x12, 0xab, 0x00, 0xff]).unwrap();
    assert_eq!(
        read_to_close(&mut s),
        b"",
        "no ERR line for a binary opening"
    );
    let mut c = Client::connect(p.addr());
    assert_eq!(c.ask("PING"), "PONG");
    still_serves(p.addr(), &t);
}

/// A fake BitTorrent seeder of `t` that announced itself to the tracker over HTTP; it runs
/// `behave` on the first connection (after both handshakes) and reports when it closed.
fn fake_seeder(
    tracker: &Tracker,
    t: &Metainfo,
    info_hash: [u8; 20],
    behave: fn(&mut TcpStream, &Metainfo),
) -> std::sync::mpsc::Receiver<()> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let a = Announce {
        info_hash: t.info_hash,
        peer_id: THEIR_ID,
        port,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        compact: true,
        no_peer_id: true,
        event: AnnounceEvent::Started,
        numwant: 50,
    };
    let mut http = TcpStream::connect(tracker.addr()).unwrap();
    http.write_all(&announce_client::request(&a, &tracker.addr().to_string()))
        .unwrap();
    let mut reply = Vec::new();
    http.read_to_end(&mut reply).unwrap();
    assert!(reply.starts_with(b"HTTP/1."), "{reply:?}");
    let (tx, rx) = std::sync::mpsc::channel();
    let t = t.clone();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut hs = [0u8; 68];
        s.read_exact(&mut hs).unwrap();
        s.write_all(&Handshake::new(info_hash, THEIR_ID).encode())
            .unwrap();
        behave(&mut s, &t);
        let _ = read_to_close(&mut s);
        let _ = tx.send(());
    });
    rx
}

fn full_bitfield(s: &mut TcpStream, t: &Metainfo) {
    let bits = Bitfield::full(t.piece_count());
    s.write_all(&Message::Bitfield(bits).encode()).unwrap();
}

fn download_fails(tag: &str, behave: fn(&mut TcpStream, &Metainfo), wrong_hash: bool, why: &str) {
    let tracker = tracker();
    let (seed, t, dir) = seeded(tag, &tracker);
    drop(seed); // Only the fake has it now.
    let hash = if wrong_hash { [9; 20] } else { t.info_hash };
    let closed = fake_seeder(&tracker, &t, hash, behave);
    let dl = temp_dir(&format!("{tag}-dl"));
    let leecher = peer(&tracker, &dl);
    let err = leecher.download_torrent(&t).unwrap_err();
    assert!(err.to_string().contains(why), "{err}");
    closed
        .recv_timeout(Duration::from_secs(30))
        .expect("the fake seeder's connection was closed");
    assert!(!dl.join("d.bin").exists(), "nothing published");
    drop(leecher);
    let _ = fs::remove_dir_all(dir);
    let _ = fs::remove_dir_all(dl);
}

#[test]
fn our_downloader_closes_on_a_block_it_never_asked_for() {
    download_fails(
        "bth-dl-unasked",
        |s, t| {
            full_bitfield(s, t);
            s.write_all(&Message::Unchoke.encode()).unwrap();
            let block = Message::Piece {
                index: 1,
                begin: 16384,
                block: vec![0; 16384],
            };
            s.write_all(&block.encode()).unwrap();
        },
        false,
        "block 1 16384 16384 was never requested",
    );
}

#[test]
fn our_downloader_closes_on_a_peer_that_never_unchokes() {
    download_fails("bth-dl-choke", full_bitfield, false, "never unchoked us");
}

#[test]
fn our_downloader_closes_on_a_wrong_info_hash() {
    download_fails("bth-dl-hash", |_, _| {}, true, "wrong info-hash 0909");
}

#[test]
fn the_trace_decodes_bittorrent_messages_like_lines() {
    let tracker = tracker();
    let (p, t, dir) = seeded("bth-trace", &tracker);
    drop(p);
    let log = dir.join("trace.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_torrentphile"))
        .args(["peer", "--port", "0", "--trace", "--tracker"])
        .arg(tracker.addr().to_string())
        .arg("--dir")
        .arg(&dir)
        .arg("--torrent")
        .arg(dir.join("d.torrent"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    let addr: SocketAddr = ready
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("printed {ready:?}"))
        .parse()
        .unwrap();
    eventually(
        "the peer seeds the torrent",
        Duration::from_secs(20),
        || who_has(&tracker, &format!("bt-{}", t.info_hash_hex())).contains(&addr.to_string()),
    );
    let (mut s, mut d) = open_session(addr, &t);
    let me = s.local_addr().unwrap();
    s.write_all(&Message::Interested.encode()).unwrap();
    until(&mut s, &mut d, |m| *m == Message::Unchoke);
    let req = Message::Request {
        index: 2,
        begin: 0,
        length: 1000,
    };
    s.write_all(&req.encode()).unwrap();
    until(&mut s, &mut d, |m| matches!(m, Message::Piece { .. }));
    let want = [
        format!(
            "< {me}  BT handshake {} -XX0001-hostile00001",
            t.info_hash_hex()
        ),
        format!("> {me}  BT bitfield <3 bits, 3 set>"),
        format!("< {me}  BT interested"),
        format!("> {me}  BT unchoke"),
        format!("< {me}  BT request 2 0 1000"),
        format!("> {me}  BT piece 2 0 <1000 bytes>"),
    ];
    eventually("the trace shows the piece", Duration::from_secs(20), || {
        fs::read_to_string(&log).is_ok_and(|l| l.contains(&want[5]))
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = fs::read_to_string(&log).unwrap();
    let mut at = 0;
    for w in &want {
        let found = text[at..].find(w.as_str());
        assert!(
            found.is_some(),
            "no {w:?} after byte {at} of the trace:\n{text}"
        );
        at += found.unwrap_or(0);
    }
    let _ = fs::remove_dir_all(dir);
}
