//! Hostile input for the BitTorrent codecs: valid, mutated and random byte streams through
//! the peer-wire decoder in random fragments, random handshakes, random announce requests,
//! and the connection sniffer.
//!
//! What must hold: nothing panics; the decoder never buffers or holds more than one frame's
//! worth ([`Decoder::max_buffered`]); a valid stream decodes to exactly its messages however
//! it is cut; after an error the decoder stays failed; every refused announce becomes a
//! bencoded `failure reason` that decodes back to the same text.
//!
//! One seed per run, printed; replay with `TORRENTPHILE_FUZZ_SEED=<seed> cargo test --test
//! bt_fuzz`.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use torrentphile::bt::announce::{self, Kind};
use torrentphile::bt::bitfield::Bitfield;
use torrentphile::bt::framing::{Decoder, HandshakeReader};
use torrentphile::bt::wire::{BLOCK, HANDSHAKE_LEN, Handshake, Message};
use torrentphile::torrent::bencode::{self, Value};
use torrentphile::util::Rng;

const STREAMS: usize = 10_000;
const ANNOUNCES: usize = 100_000;

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let seed = match std::env::var("TORRENTPHILE_FUZZ_SEED") {
            Ok(text) => {
                let text = text.trim();
                let parsed = match text.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => text.parse().ok(),
                };
                parsed.unwrap_or_else(|| panic!("TORRENTPHILE_FUZZ_SEED={text:?} is not a u64"))
            }
            Err(_) => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        eprintln!("bt fuzz seed {seed} (replay with TORRENTPHILE_FUZZ_SEED={seed})");
        seed
    })
}

/// The test's own stream from the run's seed (so tests do not depend on their order).
fn rng(test: &str) -> Rng {
    let name = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    Rng::new(seed() ^ name)
}

fn bytes(r: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    r.fill(&mut v);
    v
}

/// Random bytes, fewer than `max` of them.
fn some_bytes(r: &mut Rng, max: usize) -> Vec<u8> {
    let len = r.below(max);
    bytes(r, len)
}

fn message(r: &mut Rng, pieces: usize) -> Message {
    let n = |r: &mut Rng| match r.below(4) {
        0 => 0,
        1 => u32::MAX,
        _ => r.next_u64() as u32 % 1000,
    };
    match r.below(12) {
        0 => Message::KeepAlive,
        1 => Message::Choke,
        2 => Message::Unchoke,
        3 => Message::Interested,
        4 => Message::NotInterested,
        5 => Message::Have(n(r)),
        6 => {
            let mut b = Bitfield::new(pieces);
            for _ in 0..r.below(pieces + 1) {
                b.set(r.below(pieces));
            }
            Message::Bitfield(b)
        }
        7 => Message::Request {
            index: n(r),
            begin: n(r),
            length: n(r),
        },
        8 => {
            let len = if r.below(3) == 0 {
                BLOCK as usize
            } else {
                r.below(300)
            };
            Message::Piece {
                index: n(r),
                begin: n(r),
                block: bytes(r, len),
            }
        }
        9 => Message::Cancel {
            index: n(r),
            begin: n(r),
            length: n(r),
        },
        10 => Message::Port(r.next_u64() as u16),
        _ => Message::Unknown {
            id: 10 + r.below(246) as u8,
            payload: some_bytes(r, 100),
        },
    }
}

/// Feed `stream` in random fragments; check the bound after every call. Returns what was
/// decoded and whether it ended in an error.
fn feed_in_pieces(r: &mut Rng, dec: &mut Decoder, stream: &[u8]) -> (Vec<Message>, bool) {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut failed = false;
    while !rest.is_empty() {
        let cut = match r.below(4) {
            0 => 1,
            1 => r.below(20) + 1,
            _ => r.below(40_000) + 1,
        }
        .min(rest.len());
        let result = dec.feed(&rest[..cut], &mut out);
        rest = &rest[cut..];
        assert!(
            dec.buffered() <= dec.max_buffered() && dec.held() <= dec.max_buffered(),
            "seed {}: decoder holds {} bytes (capacity {}), bound {}",
            seed(),
            dec.buffered(),
            dec.held(),
            dec.max_buffered()
        );
        if failed {
            assert!(
                result.is_err(),
                "seed {}: a failed decoder recovered",
                seed()
            );
        }
        failed |= result.is_err();
    }
    (out, failed)
}

#[test]
fn valid_streams_decode_the_same_however_they_are_cut() {
    let mut r = rng("valid");
    for _ in 0..STREAMS {
        let pieces = 1 + r.below(3000);
        let msgs: Vec<Message> = (0..r.below(30)).map(|_| message(&mut r, pieces)).collect();
        let stream: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        let mut dec = Decoder::new(pieces);
        let (out, failed) = feed_in_pieces(&mut r, &mut dec, &stream);
        assert!(!failed, "seed {}: a valid stream failed", seed());
        assert_eq!(out, msgs, "seed {}", seed());
        assert_eq!(dec.buffered(), 0);
    }
}

#[test]
fn mutated_and_random_streams_never_panic_or_overbuffer() {
    let mut r = rng("mutated");
    let (mut failures, mut decoded) = (0, 0);
    for round in 0..STREAMS {
        let pieces = 1 + r.below(3000);
        let mut stream: Vec<u8> = if round % 4 == 0 {
            some_bytes(&mut r, 50_000)
        } else {
            (0..r.below(20))
                .flat_map(|_| message(&mut r, pieces).encode())
                .collect()
        };
        for _ in 0..r.below(4) {
            if stream.is_empty() {
                break;
            }
            let at = r.below(stream.len());
            match r.below(5) {
                0 => stream[at] ^= 1 << r.below(8),
                1 => stream.truncate(at),
                2 => {
                    let junk = some_bytes(&mut r, 10);
                    stream.splice(at..at, junk);
                }
                3 => {
                    // A length prefix from the edges: 4 GiB, just over a block, a bitfield
                    // one byte off.
                    let len = [u32::MAX, 1 << 31, BLOCK + 10, 2 + pieces.div_ceil(8) as u32];
                    let len = len[r.below(len.len())].to_be_bytes();
                    let end = (at + 4).min(stream.len());
                    stream.splice(at..end, len);
                }
                _ => {
                    let end = (at + r.below(30)).min(stream.len());
                    stream.drain(at..end);
                }
            }
        }
        let mut dec = Decoder::new(pieces);
        let (out, failed) = feed_in_pieces(&mut r, &mut dec, &stream);
        failures += failed as usize;
        decoded += out.len();
        // Whatever decoded is a value that encodes back to a frame the decoder accepts.
        for m in out {
            let mut again = Vec::new();
            assert_eq!(
                Decoder::new(pieces).feed(&m.encode(), &mut again),
                Ok(()),
                "seed {}",
                seed()
            );
            assert_eq!(again, vec![m], "seed {}", seed());
        }
    }
    println!("{STREAMS} mutated streams: {failures} refused, {decoded} messages decoded");
    assert!(
        failures > 0 && decoded > 0,
        "the mutations reach both outcomes"
    );
}

#[test]
fn handshakes_in_fragments() {
    let mut r = rng("handshake");
    for _ in 0..STREAMS {
        let good = Handshake::new(bytes(&mut r, 20).try_into().unwrap(), [7; 20]);
        let mut stream = good.encode().to_vec();
        let mutate = r.below(2) == 0;
        if mutate {
            let at = r.below(stream.len());
            stream[at] ^= 1 << r.below(8);
        }
        stream.extend(some_bytes(&mut r, 10));
        let mut reader = HandshakeReader::new();
        let mut rest = &stream[..];
        let result = loop {
            let cut = (1 + r.below(30)).min(rest.len());
            let got = reader.feed(&rest[..cut]);
            assert!(reader.buffered() <= HANDSHAKE_LEN);
            match got {
                Ok((used, Some(h))) => break Ok((h, rest.len() - used)),
                Ok((used, None)) => {
                    assert_eq!(used, cut);
                    rest = &rest[cut..];
                }
                Err(e) => break Err(e),
            }
        };
        match result {
            Ok((h, _)) if !mutate => assert_eq!(h, good),
            // A flipped bit in the reserved bytes, info-hash or peer id still decodes; one
            // in the first 20 bytes never does.
            Ok((h, _)) => assert_ne!(h, good, "seed {}", seed()),
            Err(e) => assert!(mutate && e.to_string().starts_with("not a BitTorrent handshake")),
        }
    }
}

fn query_value(r: &mut Rng) -> String {
    match r.below(8) {
        0 => announce::percent_encode(&bytes(r, 20)),
        1 => announce::percent_encode(&some_bytes(r, 40)),
        2 => (r.next_u64() >> r.below(64)).to_string(),
        3 => ["started", "completed", "stopped", "", "1", "0"][r.below(6)].to_string(),
        4 => "%".to_string() + &"G1%4"[..r.below(5)],
        5 => "9".repeat(r.below(30)),
        6 => "x".repeat(r.below(400)),
        _ => String::from_utf8_lossy(&some_bytes(r, 10)).into_owned(),
    }
}

#[test]
fn random_announces_parse_or_fail_with_a_bencoded_reason() {
    let keys = [
        "info_hash",
        "peer_id",
        "port",
        "uploaded",
        "downloaded",
        "left",
        "compact",
        "event",
        "numwant",
        "no_peer_id",
        "key",
        "ip",
        "",
        "x",
    ];
    let mut r = rng("announce");
    let mut good = 0;
    for _ in 0..ANNOUNCES {
        let mut pairs = Vec::new();
        for _ in 0..r.below(16) {
            pairs.push(format!(
                "{}={}",
                keys[r.below(keys.len())],
                query_value(&mut r)
            ));
        }
        if r.below(2) == 0 {
            // Mostly valid: the six required ones, in a random order.
            let mut req = vec![
                format!("info_hash={}", announce::percent_encode(&bytes(&mut r, 20))),
                format!("peer_id={}", announce::percent_encode(&bytes(&mut r, 20))),
                format!("port={}", 1 + r.below(65535)),
                "uploaded=0".into(),
                "downloaded=0".into(),
                format!("left={}", r.next_u64() >> 1),
            ];
            r.shuffle(&mut req);
            pairs.truncate(r.below(3));
            pairs.extend(req);
        }
        let sep = ["&", "&&", ";", "&amp;"][r.below(4).min(r.below(4))];
        let head = format!(
            "GET /announce?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            pairs.join(sep)
        );
        match announce::parse_request(head.as_bytes()) {
            Ok(a) => {
                good += 1;
                assert!(a.port >= 1 && a.numwant <= announce::MAX_NUMWANT);
            }
            Err(e) => {
                let body = announce::failure_body(&e.0);
                let v = bencode::decode(&body).expect("failure body is bencode");
                assert_eq!(
                    v.get(b"failure reason"),
                    Some(&Value::Bytes(e.0.as_bytes())),
                    "seed {}",
                    seed()
                );
            }
        }
        // Any bytes at all as a head: an answer, never a panic.
        let raw = some_bytes(&mut r, 200);
        let _ = announce::parse_request(&raw);
    }
    println!("{ANNOUNCES} announces, {good} accepted");
    assert!(good > 0 && good < ANNOUNCES);
}

#[test]
fn sniff_never_changes_its_mind() {
    let mut r = rng("sniff");
    let starts: [&[u8]; 5] = [b"GET /announce", b"GET name\n", b"\x13Bit", b"GE", b""];
    for _ in 0..ANNOUNCES {
        let mut stream = starts[r.below(starts.len())].to_vec();
        stream.extend(some_bytes(&mut r, 8));
        let mut decided: Option<Kind> = None;
        for end in 0..=stream.len() {
            let k = announce::sniff(&stream[..end]);
            if let Some(d) = decided {
                assert_eq!(k, Some(d), "seed {}: {stream:?}", seed());
            }
            decided = decided.or(k);
            if end >= 5 {
                assert!(k.is_some(), "five bytes always decide");
            }
        }
    }
}

#[test]
fn tracker_answers_round_trip_and_garbage_never_panics() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use torrentphile::bt::announce::{Reply, SwarmPeer};
    use torrentphile::bt::announce_client::parse_reply;
    let mut r = rng("replies");
    let sample = "GET /announce?info_hash=%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
        &peer_id=-TP0001-aaaaaaaaaaaa&port=1&uploaded=0&downloaded=0&left=0 HTTP/1.0\r\n\r\n";
    let mut a = announce::parse_request(sample.as_bytes()).unwrap();
    for _ in 0..STREAMS {
        let peers = (0..r.below(20))
            .map(|_| {
                let ip = if r.below(2) == 0 {
                    IpAddr::V4(Ipv4Addr::from(r.next_u64() as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(
                        (r.next_u64() as u128) << 64 | r.next_u64() as u128,
                    ))
                };
                SwarmPeer {
                    addr: SocketAddr::new(ip, r.next_u64() as u16),
                    peer_id: Some(bytes(&mut r, 20).try_into().unwrap()),
                }
            })
            .collect::<Vec<_>>();
        let reply = Reply {
            interval: r.next_u64() as u32,
            complete: r.next_u64() as u32,
            incomplete: r.next_u64() as u32,
            peers,
        };
        a.compact = r.below(2) == 0;
        let body = announce::reply_body(&reply, &a);
        let back = parse_reply(&body).unwrap_or_else(|e| panic!("seed {}: {e}", seed()));
        // Compact lists put IPv4 peers before IPv6 ones and carry no ids.
        let mut want: Vec<_> = reply.peers.iter().map(|p| p.addr).collect();
        if a.compact {
            want.sort_by_key(|p| p.is_ipv6());
        }
        let got: Vec<_> = back.peers.iter().map(|p| p.addr).collect();
        assert_eq!(got, want, "seed {}", seed());
        assert_eq!(back.interval, reply.interval);
        // The same body with a byte flipped or cut: an answer or an error, never a panic.
        let mut bad = body.clone();
        if !bad.is_empty() {
            let at = r.below(bad.len());
            if r.below(2) == 0 {
                bad[at] ^= 1 << r.below(8);
            } else {
                bad.truncate(at);
            }
        }
        let _ = parse_reply(&bad);
    }
}
