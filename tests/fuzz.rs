//! Bad input (the hardening issue): random and mutated lines through the parsers and through
//! live servers, byte ranges and piece indices past the end of a file, names that try to leave
//! a peer's folder, holders that lie about a block's length or a file's size, and memory that
//! stays bounded under a stream of overlong lines.
//!
//! The randomized tests draw from one seed, printed when they start and named in every
//! assertion. Replay a failure with `TORRENTPHILE_FUZZ_SEED=<seed> cargo test --test fuzz`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use torrentphile::conn::Timeouts;
use torrentphile::peer::download::{DownloadError, Report};
use torrentphile::peer::store::{hash_file, hashes_text};
use torrentphile::protocol::{
    Digest, ErrCode, Holder, MAX_LINE, Meta, ProtoError, Reply, Request, Role, parse_reply,
    parse_request, parse_request_for,
};
use torrentphile::util::Rng;

// ---------------------------------------------------------------------------------------------
// The seed

/// The error codes PROTOCOL.md documents (its "Errors" section).
const CODES: [&str; 12] = [
    "bad-request",
    "unknown-verb",
    "bad-name",
    "too-long",
    "not-found",
    "conflict",
    "not-registered",
    "range",
    "unavailable",
    "busy",
    "timeout",
    "internal",
];

/// The run's seed: `TORRENTPHILE_FUZZ_SEED` if set (decimal or 0x-hex), else a fixed value
/// mixed with the clock. Printed once.
fn base_seed() -> u64 {
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
            Err(_) => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                0x7450_6869_6c65_2d46 ^ nanos
            }
        };
        eprintln!("fuzz seed {seed} (replay with TORRENTPHILE_FUZZ_SEED={seed})");
        seed
    })
}

/// One test's random stream, derived from the run's seed and the test's name. If the test
/// panics, dropping it prints how to replay the run.
struct Fuzz {
    seed: u64,
    test: &'static str,
    rng: Rng,
}

impl Fuzz {
    fn new(test: &'static str) -> Fuzz {
        let seed = base_seed();
        // FNV-1a of the test name, so every test has its own stream from the same seed.
        let tag = test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        eprintln!("{test}: TORRENTPHILE_FUZZ_SEED={seed}");
        Fuzz {
            seed,
            test,
            rng: Rng::new(seed ^ tag),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.rng.below(n) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.below(items.len())]
    }
}

impl Drop for Fuzz {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} failed; replay with TORRENTPHILE_FUZZ_SEED={} cargo test --test fuzz {}",
                self.test, self.seed, self.test
            );
        }
    }
}

/// A byte string for assertion messages: escaped, and cut in the middle if long.
fn show(bytes: &[u8]) -> String {
    const KEEP: usize = 120;
    if bytes.len() <= 2 * KEEP {
        return bytes.escape_ascii().to_string();
    }
    format!(
        "{}<... {} bytes ...>{}",
        bytes[..KEEP].escape_ascii(),
        bytes.len() - 2 * KEEP,
        bytes[bytes.len() - KEEP..].escape_ascii()
    )
}

fn printable(text: &str) -> bool {
    text.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Generators

const VERBS: [&str; 16] = [
    "REGISTER", "UPLOAD", "PARTIAL", "REMOVE", "WHOHAS", "INFO", "LIST", "HELLO", "GET", "PIECE",
    "HAVE", "HASHES", "PING", "HELP", "BYE", "QUIT",
];

/// Bytes that tend to break parsers.
const ODD_BYTES: &[u8] = b" \t\r\n\0\x0b\x0c\x1b\x7f\x80\xc3\xa9\xff-+./\\:0123456789aAfFxz~%\"";

/// The files the live peer of these tests shares (names are used by the generators so that
/// random requests hit real data too).
const A_BIN: &str = "a.bin";
const A_SIZE: usize = 5000;
const EMPTY: &str = "empty.txt";
const LIVE_PIECE: u32 = 1024;

fn a_bin_bytes() -> Vec<u8> {
    (0..A_SIZE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

#[derive(Clone, Copy)]
enum Arg {
    Name,
    Num,
    Digest,
    Any,
}

fn verb_args(verb: &str, f: &mut Fuzz) -> Vec<Arg> {
    use Arg::*;
    match verb {
        "REGISTER" => vec![Num],
        "UPLOAD" => vec![Name, Num, Num, Digest, Digest],
        "PARTIAL" | "REMOVE" | "WHOHAS" | "INFO" | "HAVE" | "HASHES" => vec![Name],
        "HELLO" => vec![Any],
        "GET" if f.one_in(2) => vec![Name, Num, Num],
        "GET" => vec![Name],
        "PIECE" => vec![Name, Num],
        _ => vec![],
    }
}

fn random_bytes(f: &mut Fuzz, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.rng.fill(&mut buf);
    buf
}

/// A length: mostly short, sometimes near the line limit, rarely far past it.
fn length(f: &mut Fuzz) -> usize {
    match f.below(100) {
        0 => 4000 + f.below(200),
        1 => 10_000 + f.below(60_000),
        2..=9 => 20 + f.below(300),
        _ => f.below(16),
    }
}

fn number(f: &mut Fuzz) -> Vec<u8> {
    const EDGES: [&str; 30] = [
        "0",
        "1",
        "-1",
        "-0",
        "+1",
        "+0",
        "65535",
        "65536",
        "4999",
        "5000",
        "5001",
        "1024",
        "262144",
        "67108864",
        "134217728",
        "512",
        "4294967295",
        "4294967296",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999999999",
        "-18446744073709551616",
        "0x10",
        "1e3",
        "1.5",
        "",
        "00000000000000000000000000000001",
        "\u{ff11}",
        "٣",
        "NaN",
    ];
    match f.below(8) {
        0 | 1 => f.pick(&EDGES).as_bytes().to_vec(),
        2 => f.below(10_000).to_string().into_bytes(),
        3 => f.rng.next_u64().to_string().into_bytes(),
        4 => (f.rng.next_u64() >> f.below(64)).to_string().into_bytes(),
        5 => format!("-{}", f.rng.next_u64() >> f.below(64)).into_bytes(),
        6 => {
            let len = 20 + f.below(200);
            (0..len).map(|_| b'0' + f.below(10) as u8).collect()
        }
        _ => f.below(8).to_string().into_bytes(),
    }
}

/// A name as a peer would accept it: printable ASCII, no `/` or `\`, not starting with `.`.
fn valid_name(f: &mut Fuzz) -> String {
    if f.one_in(3) {
        return f.pick(&[A_BIN, EMPTY, "ok.txt", "nope.txt"]).to_string();
    }
    let len = match f.below(20) {
        0 => 255,
        1 => 200 + f.below(56),
        _ => 1 + f.below(16),
    };
    (0..len)
        .map(|i| {
            loop {
                let c = (0x21 + f.below(0x7f - 0x21)) as u8 as char;
                if c != '/' && c != '\\' && !(i == 0 && c == '.') {
                    break c;
                }
            }
        })
        .collect()
}

fn name(f: &mut Fuzz) -> Vec<u8> {
    const ESCAPES: [&str; 18] = [
        "..",
        ".",
        "../etc/passwd",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "..\\..\\x",
        ".torrentphile",
        ".torrentphile/a.bin.meta",
        "a.bin/..",
        "x/../../y",
        "~",
        "%2e%2e",
        "%2e%2e%2fetc%2fpasswd",
        "C:\\x",
        "\\\\host\\share",
        ".hidden",
        "./a.bin",
    ];
    match f.below(10) {
        0..=4 => valid_name(f).into_bytes(),
        5 | 6 => f.pick(&ESCAPES).as_bytes().to_vec(),
        7 => {
            let len = 1 + f.below(12);
            random_bytes(f, len)
        }
        8 => f
            .pick(&[
                "\u{e9}t\u{e9}.txt",
                "\u{202e}txt.exe",
                "a\u{0}b",
                "\u{feff}a.bin",
            ])
            .as_bytes()
            .to_vec(),
        _ => {
            let len = length(f).max(1);
            vec![b'n'; len]
        }
    }
}

fn digest_text(f: &mut Fuzz) -> Vec<u8> {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut hex: Vec<u8> = (0..40).map(|_| HEX[f.below(16)]).collect();
    match f.below(8) {
        0 => hex.make_ascii_uppercase(),
        1 => {
            hex.pop();
        }
        2 => hex.push(b'0'),
        3 => {
            let i = f.below(40);
            hex[i] = b'g';
        }
        _ => {}
    }
    hex
}

fn token(f: &mut Fuzz, arg: Arg) -> Vec<u8> {
    // One time in six, whatever the verb wanted, something else.
    let arg = if f.one_in(6) {
        *f.pick(&[Arg::Name, Arg::Num, Arg::Digest, Arg::Any])
    } else {
        arg
    };
    match arg {
        Arg::Name => name(f),
        Arg::Num => number(f),
        Arg::Digest => digest_text(f),
        Arg::Any => match f.below(4) {
            0 => f.pick(&VERBS).as_bytes().to_vec(),
            1 => {
                let len = length(f);
                random_bytes(f, len)
            }
            _ => valid_name(f).into_bytes(),
        },
    }
}

fn separator(f: &mut Fuzz) -> &'static [u8] {
    match f.below(30) {
        0 => b"  ",
        1 => b"\t",
        2 => b"\r",
        3 => b"\0",
        4 => b"\x0b",
        5 => b"\x0c",
        6 => b"",
        7 => b" \t ",
        _ => b" ",
    }
}

/// A line shaped like a request: a verb (usually real), usually the right number of
/// arguments, each of roughly the right kind, odd separators and ends now and then.
fn shaped_request(f: &mut Fuzz) -> Vec<u8> {
    let real = *f.pick(&VERBS);
    let verb = match f.below(12) {
        0 => real.to_ascii_lowercase(),
        1 => {
            let mut v = real.to_string();
            v.insert(f.below(real.len() + 1), *f.pick(&['X', ' ', '\0', '_']));
            v
        }
        2 => String::from_utf8_lossy(&token(f, Arg::Any)).into_owned(),
        _ => real.to_string(),
    };
    let mut args = verb_args(real, f);
    if f.one_in(4) {
        let n = f.below(8);
        args.resize(n, Arg::Any);
    }
    let mut line = Vec::new();
    if f.one_in(20) {
        line.extend_from_slice(separator(f));
    }
    line.extend_from_slice(verb.as_bytes());
    for arg in args {
        line.extend_from_slice(separator(f));
        line.extend(token(f, arg));
    }
    match f.below(20) {
        0 => line.push(b'\r'),
        1 => line.extend_from_slice(b"\r\r"),
        2 => line.push(b' '),
        3 => line.push(b'\0'),
        _ => {}
    }
    line
}

fn digest(f: &mut Fuzz) -> Digest {
    let mut bytes = [0u8; 20];
    f.rng.fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.parse().unwrap()
}

fn valid_meta(f: &mut Fuzz) -> Meta {
    let piece_size = 1u32 << (10 + f.below(17));
    let max = piece_size as u64 * (1 << 16);
    let size = match f.below(5) {
        0 => 0,
        1 => max,
        2 => f.rng.next_u64() % 100_000,
        _ => f.rng.next_u64() % (max + 1),
    };
    Meta {
        name: valid_name(f),
        size,
        piece_size,
        sha1: digest(f),
        root: digest(f),
    }
}

/// A well-formed request, as a value.
fn valid_request(f: &mut Fuzz) -> Request {
    let name = valid_name(f);
    match f.below(16) {
        0 => Request::Register {
            port: 1 + f.below(65535) as u16,
        },
        1 => Request::Upload(valid_meta(f)),
        2 => Request::Partial { name },
        3 => Request::Remove { name },
        4 => Request::WhoHas { name },
        5 => Request::Info { name },
        6 => Request::List,
        7 => Request::Hello {
            id: name.chars().take(64).collect(),
        },
        8 => Request::Get { name, range: None },
        9 => {
            let mut n = || match f.below(4) {
                0 => f.rng.next_u64(),
                1 => u64::MAX - f.below(3) as u64,
                _ => f.below(A_SIZE + 2) as u64,
            };
            let range = Some((n(), n()));
            Request::Get { name, range }
        }
        10 => Request::Piece {
            name,
            index: match f.below(3) {
                0 => f.rng.next_u64() as u32,
                _ => f.below(8) as u32,
            },
        },
        11 => Request::Have { name },
        12 => Request::Hashes { name },
        13 => Request::Ping,
        14 => Request::Help,
        _ => Request::Bye,
    }
}

/// A well-formed reply, as a value (with the shapes servers produce: holders are addresses).
fn valid_reply(f: &mut Fuzz) -> Reply {
    let text = |f: &mut Fuzz| -> String {
        let len = length(f).min(5000);
        (0..len)
            .map(|_| (0x20 + f.below(0x7f - 0x20)) as u8 as char)
            .collect()
    };
    match f.below(7) {
        0 => Reply::Ack(text(f)),
        1 => {
            let n = 1 + f.below(6);
            let holders = (0..n)
                .map(|_| Holder {
                    addr: format!("127.0.0.{}:{}", f.below(256), 1 + f.below(65535)),
                    partial: f.one_in(2),
                })
                .collect();
            Reply::Peers(holders)
        }
        2 => Reply::File(valid_meta(f)),
        3 => {
            let len = if f.one_in(10) { 0 } else { length(f) };
            Reply::Bitfield((0..len).map(|_| *f.pick(&['0', '1'])).collect())
        }
        4 => Reply::Data(f.rng.next_u64() >> f.below(64)),
        5 => Reply::Pong,
        _ => {
            let code = f.pick(&CODES).parse().unwrap();
            Reply::Err(code, text(f))
        }
    }
}

/// Change a line a little, one to four times: flip, replace, insert, delete, duplicate,
/// splice with another line, truncate, pad with a long run.
fn mutate(f: &mut Fuzz, line: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..1 + f.below(4) {
        let len = line.len();
        let at = f.below(len + 1);
        match f.below(9) {
            0 if len > 0 => line[at.min(len - 1)] ^= 1 << f.below(8),
            1 if len > 0 => line[at.min(len - 1)] = *f.pick(ODD_BYTES),
            2 => {
                let n = 1 + f.below(3);
                for _ in 0..n {
                    line.insert(at, *f.pick(ODD_BYTES));
                }
            }
            3 => {
                let end = (at + 1 + f.below(8)).min(len);
                line.drain(at..end);
            }
            4 => {
                let end = (at + 1 + f.below(16)).min(len);
                let copy = line[at..end].to_vec();
                line.splice(at..at, copy);
            }
            5 => {
                let from = f.below(other.len() + 1);
                line.truncate(at);
                line.extend_from_slice(&other[from..]);
            }
            6 => line.truncate(at),
            7 => {
                let n = length(f);
                let byte = *f.pick(ODD_BYTES);
                line.splice(at..at, std::iter::repeat_n(byte, n));
            }
            _ if len > 1 => line.swap(at.min(len - 1), f.below(len)),
            _ => line.push(*f.pick(ODD_BYTES)),
        }
    }
}

/// Any line: shaped, a valid one (perhaps mutated), or noise.
fn any_request_line(f: &mut Fuzz) -> Vec<u8> {
    match f.below(10) {
        0..=3 => shaped_request(f),
        4 | 5 => valid_request(f).to_string().into_bytes(),
        6..=8 => {
            let mut line = if f.one_in(2) {
                valid_request(f).to_string().into_bytes()
            } else {
                shaped_request(f)
            };
            let other = valid_request(f).to_string().into_bytes();
            mutate(f, &mut line, &other);
            line
        }
        _ => {
            let len = length(f);
            random_bytes(f, len)
        }
    }
}

fn any_reply_line(f: &mut Fuzz) -> Vec<u8> {
    match f.below(10) {
        0..=3 => valid_reply(f).to_string().into_bytes(),
        4..=7 => {
            let mut line = valid_reply(f).to_string().into_bytes();
            let other = valid_reply(f).to_string().into_bytes();
            mutate(f, &mut line, &other);
            line
        }
        8 => {
            // A reply word and random words.
            let word = *f.pick(&["ACK", "PEERS", "FILE", "BITFIELD", "DATA", "PONG", "ERR"]);
            let mut line = word.as_bytes().to_vec();
            for _ in 0..f.below(7) {
                line.extend_from_slice(separator(f));
                let arg = *f.pick(&[Arg::Name, Arg::Num, Arg::Digest, Arg::Any]);
                line.extend(token(f, arg));
            }
            line
        }
        _ => {
            let len = length(f);
            random_bytes(f, len)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser invariants

/// An error is one of the documented codes, and its message is a short line of printable
/// ASCII (it goes on the wire as `ERR <code> <message>`).
fn check_error(f: &Fuzz, input: &[u8], e: &ProtoError, ascii_input: bool) {
    let seed = f.seed;
    let code = e.code.as_str();
    assert!(
        CODES.contains(&code),
        "seed {seed}: {} -> undocumented code {code:?}",
        show(input)
    );
    assert_eq!(
        code.parse::<ErrCode>(),
        Ok(e.code),
        "seed {seed}: code {code} does not parse back"
    );
    assert!(
        !e.message.is_empty() && e.message.len() <= 1024,
        "seed {seed}: {} -> message of {} bytes: {:?}",
        show(input),
        e.message.len(),
        e.message
    );
    // Every message is free of control characters (no newline can split the reply line). It
    // must be printable ASCII too, except where it quotes a non-ASCII reply back (see
    // `reply_errors_quote_non_ascii_replies_as_ascii`).
    let clean = if ascii_input {
        printable(&e.message)
    } else {
        !e.message.chars().any(char::is_control)
    };
    assert!(
        clean,
        "seed {seed}: {} -> message is not printable ASCII: {:?}",
        show(input),
        e.message
    );
    let line = e.clone().into_reply().to_string();
    assert_eq!(
        parse_reply(line.as_bytes()),
        Ok(Reply::Err(e.code, e.message.clone())),
        "seed {seed}: the ERR line {line:?} does not parse back"
    );
}

/// Bytes the request grammar allows: printable ASCII, spaces and tabs (one trailing `\r`
/// aside).
fn request_bytes_ok(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.iter()
        .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b))
}

fn check_request_line(f: &Fuzz, line: &[u8]) {
    let seed = f.seed;
    match parse_request(line) {
        Ok(req) => {
            assert!(
                request_bytes_ok(line),
                "seed {seed}: {} has bytes outside printable ASCII but parsed as {req:?}",
                show(line)
            );
            let text = req.to_string();
            assert!(
                printable(&text) && text.len() <= MAX_LINE,
                "seed {seed}: {} -> {req:?} displays as a line a server would refuse: {}",
                show(line),
                show(text.as_bytes())
            );
            assert_eq!(
                parse_request(text.as_bytes()).as_ref(),
                Ok(&req),
                "seed {seed}: {} -> {req:?} -> {text:?} does not parse back to the same request",
                show(line)
            );
        }
        Err(e) => {
            if !request_bytes_ok(line) {
                assert_eq!(
                    e.code,
                    ErrCode::BadRequest,
                    "seed {seed}: {} is not printable ASCII: {e:?}",
                    show(line)
                );
            }
            check_error(f, line, &e, true);
        }
    }
}

fn check_reply_line(f: &Fuzz, line: &[u8]) {
    let seed = f.seed;
    let ascii = line
        .iter()
        .all(|&b| b == b'\t' || (0x20..=0x7e).contains(&b));
    match parse_reply(line) {
        Ok(reply) => {
            // A reply of printable ASCII (the only kind a server sends) survives a round trip.
            if ascii {
                let text = reply.to_string();
                assert_eq!(
                    parse_reply(text.as_bytes()).as_ref(),
                    Ok(&reply),
                    "seed {seed}: {} -> {reply:?} -> {} does not parse back",
                    show(line),
                    show(text.as_bytes())
                );
            }
        }
        Err(e) => check_error(f, line, &e, ascii),
    }
}

/// At least 100,000 request lines and 60,000 reply lines through the parsers, plus every
/// valid request and reply value through Display and back. A panic fails the test with the
/// seed printed (by `Fuzz`'s drop).
#[test]
fn parsers_survive_random_and_mutated_lines() {
    let mut f = Fuzz::new("parsers_survive_random_and_mutated_lines");
    const REQUESTS: usize = 120_000;
    const REPLIES: usize = 60_000;
    let (mut ok, mut bytes) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..REQUESTS {
        let line = any_request_line(&mut f);
        check_request_line(&f, &line);
        ok += parse_request(&line).is_ok() as usize;
        bytes += line.len();
    }
    let requests_took = start.elapsed();
    // Valid values go out and come back unchanged.
    for _ in 0..20_000 {
        let req = valid_request(&mut f);
        let text = req.to_string();
        assert_eq!(
            parse_request(text.as_bytes()).as_ref(),
            Ok(&req),
            "seed {}: {text:?}",
            f.seed
        );
        let reply = valid_reply(&mut f);
        let text = reply.to_string();
        assert_eq!(
            parse_reply(text.as_bytes()).as_ref(),
            Ok(&reply),
            "seed {}: {}",
            f.seed,
            show(text.as_bytes())
        );
    }
    let values_took = start.elapsed() - requests_took;
    for _ in 0..REPLIES {
        let line = any_reply_line(&mut f);
        check_reply_line(&f, &line);
        bytes += line.len();
    }
    eprintln!(
        "{REQUESTS} request lines ({ok} valid) in {requests_took:?}, 20000 request and 20000 reply values in {values_took:?}, {REPLIES} reply lines; {bytes} bytes of lines in {:?}",
        start.elapsed()
    );
    // The generators must reach both sides of the parser, or the test proves little.
    assert!(
        ok > REQUESTS / 10 && ok < REQUESTS * 9 / 10,
        "seed {}: {ok} of {REQUESTS} lines parsed; the generator is off balance",
        f.seed
    );
}

/// A fixed list of the nastiest lines, for a readable record of what the parser answers.
#[test]
fn hand_picked_bad_requests_get_the_documented_code() {
    let f = Fuzz::new("hand_picked_bad_requests_get_the_documented_code");
    let cases: &[(&[u8], &str)] = &[
        (b"", "bad-request"),
        (b"\r", "bad-request"),
        (b"\r\r", "bad-request"),
        (b"PING\r\r", "bad-request"),
        (b"PI\rNG", "bad-request"),
        (b"PING\0", "bad-request"),
        (b"\0PING", "bad-request"),
        (b"PING \x0b", "bad-request"),
        (b"WHOHAS a\xffb", "bad-request"),
        (b"WHOHAS \xc3\xa9", "bad-request"),
        (b"REGISTER 65536", "bad-request"),
        (b"REGISTER 0", "bad-request"),
        (b"REGISTER -1", "bad-request"),
        (b"REGISTER 1 2", "bad-request"),
        (b"PIECE a 4294967296", "bad-request"),
        (b"PIECE a -1", "bad-request"),
        (b"GET a 18446744073709551616 0", "bad-request"),
        (b"GET a 0 18446744073709551616", "bad-request"),
        (b"GET a -1 1", "bad-request"),
        (b"GET a 1", "bad-request"),
        (b"GET a 1 2 3", "bad-request"),
        (b"GET ..", "bad-name"),
        (b"GET .", "bad-name"),
        (b"GET ../etc/passwd", "bad-name"),
        (b"GET /etc/passwd", "bad-name"),
        (b"GET a/b", "bad-name"),
        (b"GET a\\b", "bad-name"),
        (b"HAVE .torrentphile", "bad-name"),
        (b"UPLOAD a 1 1000 0000000000000000000000000000000000000000 0000000000000000000000000000000000000000", "bad-request"),
        (b"UPLOAD a 18446744073709551615 1024 0000000000000000000000000000000000000000 0000000000000000000000000000000000000000", "bad-request"),
        (b"UPLOAD a 1 134217728 0000000000000000000000000000000000000000 0000000000000000000000000000000000000000", "bad-request"),
        (b"UPLOAD a 1 1024 000000000000000000000000000000000000000 0000000000000000000000000000000000000000", "bad-request"),
        (b"get a", "unknown-verb"),
        (b"FROB", "unknown-verb"),
    ];
    for (line, code) in cases {
        let e = parse_request(line).expect_err(&show(line));
        assert_eq!(e.code.as_str(), *code, "{} -> {e:?}", show(line));
        check_error(&f, line, &e, true);
    }
    // A name of exactly 255 bytes is fine, 256 is not; a very long token is quoted short.
    let ok = format!("GET {}", "n".repeat(255));
    assert!(parse_request(ok.as_bytes()).is_ok());
    let long = format!("GET {}", "n".repeat(256));
    assert_eq!(
        parse_request(long.as_bytes()).unwrap_err().code,
        ErrCode::BadName
    );
    let huge = format!("FROB{}", "x".repeat(100_000));
    let e = parse_request(huge.as_bytes()).unwrap_err();
    assert!(e.message.len() < 200, "{}", e.message);
}

/// `parse_reply` quotes a reply it does not understand in its error message with `{:?}`,
/// which keeps non-ASCII characters as they are: `ERR`-style messages are then not ASCII.
#[test]
fn reply_errors_quote_non_ascii_replies_as_ascii() {
    let e = parse_reply("H\u{e9}LLO w\u{f6}rld".as_bytes()).unwrap_err();
    assert!(printable(&e.message), "{:?}", e.message);
}

// ---------------------------------------------------------------------------------------------
// Live servers

/// A raw client with a bounded, timed read of every line: no read can hang the test.
struct Raw {
    reader: BufReader<TcpStream>,
}

/// The longest line a test reads from a server (the biggest reply here is far shorter).
const READ_MAX: u64 = 1 << 20;

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        // Fragments go out at once (no Nagle wait on a delayed ACK).
        stream.set_nodelay(true).unwrap();
        // Hang detectors, not speed limits.
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            reader: BufReader::new(stream),
        }
    }

    fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// One line without its `\n`; `None` at a clean end of stream.
    fn line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        (&mut self.reader)
            .take(READ_MAX)
            .read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf.pop() != Some(b'\n') {
            return Err(io::Error::other(format!(
                "line without newline: {}",
                show(&buf)
            )));
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|e| io::Error::other(format!("reply is not UTF-8: {e}")))
    }

    fn bytes(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// True when the server has closed: end of stream (or a reset) and nothing else.
    fn at_end(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match self.reader.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes()).unwrap();
        self.line().unwrap().unwrap_or_default()
    }
}

/// Which server a live line goes to.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Tracker,
    Peer,
}

/// What the live peer must answer to a request about one of its files, when that is fully
/// determined: `Ok(bytes)` for a `DATA` block, `Err(line)` otherwise (a prefix when it ends
/// with a space).
fn peer_expects(req: &Request, a_bin: &[u8]) -> Option<Result<Vec<u8>, String>> {
    let file = |name: &str| match name {
        A_BIN => Some(a_bin),
        EMPTY => Some(&[][..]),
        _ => None,
    };
    let range = |data: &[u8], off: u64, len: u64| match off.checked_add(len) {
        Some(end) if end <= data.len() as u64 => Ok(data[off as usize..end as usize].to_vec()),
        _ => Err("ERR range ".to_string()),
    };
    Some(match req {
        Request::Get { name, range: r } => match file(name) {
            None => Err("ERR not-found ".into()),
            Some(data) => {
                let (off, len) = r.unwrap_or((0, data.len() as u64));
                range(data, off, len)
            }
        },
        Request::Piece { name, index } => match file(name) {
            None => Err("ERR not-found ".into()),
            Some(data) => {
                let pieces = data.len().div_ceil(LIVE_PIECE as usize) as u64;
                if (*index as u64) < pieces {
                    let off = *index as u64 * LIVE_PIECE as u64;
                    let len = (data.len() as u64 - off).min(LIVE_PIECE as u64);
                    range(data, off, len)
                } else {
                    Err("ERR range ".into())
                }
            }
        },
        Request::Have { name } => match file(name) {
            None => Err("ERR not-found ".into()),
            Some(data) => {
                let bits = "1".repeat(data.len().div_ceil(LIVE_PIECE as usize));
                Err(Reply::Bitfield(bits).to_string())
            }
        },
        Request::Hashes { name } if file(name).is_none() => Err("ERR not-found ".into()),
        _ => return None,
    })
}

/// Check the one reply to one line (and read its data block). Returns false when the
/// protocol says the connection ends here.
fn check_live_reply(
    kinds: &mut BTreeMap<String, usize>,
    side: Side,
    conn: &mut Raw,
    line: &[u8],
    a_bin: &[u8],
) -> Result<bool, String> {
    let reply = match conn.line() {
        Ok(Some(reply)) => reply,
        Ok(None) => return Err("the server closed the connection instead of answering".into()),
        Err(e) => return Err(format!("no reply: {e}")),
    };
    if !printable(&reply) {
        return Err(format!("reply is not printable ASCII: {reply:?}"));
    }
    let kind = match reply.split(' ').next() {
        Some("ERR") => reply.split(' ').take(2).collect::<Vec<_>>().join(" "),
        word => word.unwrap_or_default().to_string(),
    };
    *kinds.entry(kind).or_default() += 1;
    let parsed = parse_reply(reply.as_bytes())
        .map_err(|e| format!("reply {reply:?} does not parse: {}", e.message))?;
    if let Reply::Err(..) = parsed {
        let code = reply.split(' ').nth(1).unwrap_or("");
        if !CODES.contains(&code) {
            return Err(format!("undocumented code in {reply:?}"));
        }
    }
    let data = match parsed {
        Reply::Data(len) if len <= 16 << 20 => Some(
            conn.bytes(len as usize)
                .map_err(|e| format!("DATA {len} block: {e}"))?,
        ),
        Reply::Data(len) => return Err(format!("absurd DATA {len}")),
        _ => None,
    };
    if line.len() > MAX_LINE {
        return match reply.starts_with("ERR too-long ") {
            true => Ok(true),
            false => Err(format!("an overlong line got {reply:?}")),
        };
    }
    // The server checks the verb against its own before the arguments (PROTOCOL.md).
    let role = match side {
        Side::Peer => Role::Peer,
        Side::Tracker => Role::Tracker,
    };
    let req = match parse_request_for(line, role) {
        Err(e) => {
            let expect = e.into_reply().to_string();
            return match reply == expect {
                true => Ok(true),
                false => Err(format!("expected {expect:?}, got {reply:?}")),
            };
        }
        Ok(req) => req,
    };
    match (&req, side) {
        (Request::Bye, _) => {
            if reply != "ACK bye" {
                return Err(format!("BYE answered {reply:?}"));
            }
            if !conn.at_end() {
                return Err("the connection stayed open after ACK bye".into());
            }
            return Ok(false);
        }
        (Request::Ping, _) if reply != "PONG" => return Err(format!("PING answered {reply:?}")),
        (Request::Help, _) if !reply.starts_with("ACK ") => {
            return Err(format!("HELP answered {reply:?}"));
        }
        (Request::List, Side::Tracker) if data.is_none() => {
            return Err(format!("LIST answered {reply:?}"));
        }
        (Request::Get { .. } | Request::Piece { .. } | Request::Have { .. }, Side::Tracker)
        | (Request::Register { .. } | Request::Upload(_) | Request::WhoHas { .. }, Side::Peer)
            if !reply.starts_with("ERR unknown-verb ") =>
        {
            return Err(format!("a verb of the other server got {reply:?}"));
        }
        _ => {}
    }
    if side == Side::Peer
        && let Some(expect) = peer_expects(&req, a_bin)
    {
        match (expect, data) {
            (Ok(bytes), Some(got)) if bytes == got => {}
            // "ERR range " is a prefix (the message is free text); "BITFIELD 11111" is exact.
            (Err(line), None)
                if reply == line || line.ends_with(' ') && reply.starts_with(&line) => {}
            (expect, got) => {
                return Err(format!(
                    "{req} answered {reply:?} ({} data bytes); expected {}",
                    got.map_or(0, |g| g.len()),
                    match expect {
                        Ok(bytes) => format!("DATA {}", bytes.len()),
                        Err(prefix) => prefix,
                    }
                ));
            }
        }
    }
    Ok(true)
}

/// A line for a live server: one of the parser's lines, now and then a far overlong one.
fn live_line(f: &mut Fuzz) -> Vec<u8> {
    match f.below(200) {
        0 => {
            // Far past the limit: 200 KB of noise (no newline inside).
            let mut line = random_bytes(f, 200_000);
            line.iter_mut()
                .filter(|b| **b == b'\n')
                .for_each(|b| *b = b'x');
            line
        }
        1 => vec![b'A'; MAX_LINE],
        2 => vec![b'A'; MAX_LINE + 1],
        // Well-formed requests often, so that real data and real errors come back too.
        3..=70 => valid_request(f).to_string().into_bytes(),
        _ => any_request_line(f),
    }
}

/// Send `count` lines to a live server on persistent connections, a few at a time, in random
/// fragments; every complete line gets exactly one reply, the connection stays open unless
/// the line was `BYE`/`QUIT`, and `PING` still works at the end.
fn live_fuzz(f: &mut Fuzz, side: Side, addr: SocketAddr, count: usize) {
    let seed = f.seed;
    let a_bin = a_bin_bytes();
    let mut conn = Raw::connect(addr);
    let (mut sent, mut connections, mut overlong) = (0usize, 1usize, 0usize);
    let mut kinds = BTreeMap::new();
    while sent < count {
        // A batch of lines, split at any newline they contain (those end lines too).
        let mut batch: Vec<Vec<u8>> = Vec::new();
        for _ in 0..1 + f.below(6) {
            let line = live_line(f);
            batch.extend(line.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        }
        // Nothing may follow a BYE: the server would close with unread input, and the reset
        // could swallow the replies before it.
        if let Some(i) = batch
            .iter()
            .position(|l| l.len() <= MAX_LINE && parse_request(l) == Ok(Request::Bye))
        {
            batch.truncate(i + 1);
        }
        let mut bytes = Vec::new();
        for line in &batch {
            bytes.extend_from_slice(line);
            bytes.push(b'\n');
        }
        // In up to four fragments, cut anywhere.
        let mut cuts: Vec<usize> = (0..f.below(4)).map(|_| f.below(bytes.len())).collect();
        cuts.sort();
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            conn.send(&bytes[from..cut])
                .unwrap_or_else(|e| panic!("seed {seed}: write to {addr}: {e}"));
            from = cut;
        }
        for line in &batch {
            overlong += (line.len() > MAX_LINE) as usize;
            match check_live_reply(&mut kinds, side, &mut conn, line, &a_bin) {
                Ok(true) => {}
                Ok(false) => {
                    conn = Raw::connect(addr);
                    connections += 1;
                }
                Err(why) => panic!(
                    "seed {seed}: line {} of the live fuzz ({}) to {addr}: {}: {why}",
                    sent + 1,
                    if side == Side::Peer {
                        "peer"
                    } else {
                        "tracker"
                    },
                    show(line),
                ),
            }
            sent += 1;
        }
    }
    assert_eq!(conn.ask("PING"), "PONG", "seed {seed}");
    eprintln!(
        "{sent} lines ({overlong} overlong) on {connections} connection(s) to {addr}: {kinds:?}"
    );
}

fn live_peer_dir(tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    fs::write(dir.join(A_BIN), a_bin_bytes()).unwrap();
    fs::write(dir.join(EMPTY), b"").unwrap();
    dir
}

/// Long timeouts for servers a test talks to at its own pace (a loaded machine may pause it).
fn patient(c: &mut torrentphile::peer::PeerConfig) {
    c.piece_size = Some(LIVE_PIECE);
    c.timeouts = Timeouts::uniform(Duration::from_secs(60));
}

#[test]
fn live_servers_answer_every_line_exactly_once_and_stay_up() {
    let mut f = Fuzz::new("live_servers_answer_every_line_exactly_once_and_stay_up");
    let tracker = tracker();
    let dir = live_peer_dir("fuzz-live");
    let peer = peer_with(&tracker, &dir, patient);
    live_fuzz(&mut f, Side::Tracker, tracker.addr(), 3000);
    live_fuzz(&mut f, Side::Peer, peer.addr(), 3000);
    // The peer's folder holds what it held, and the tracker still knows it.
    assert_eq!(files_in(&dir), [A_BIN, EMPTY]);
    assert_eq!(who_has(&tracker, A_BIN), [peer.addr().to_string()]);
}

#[test]
fn overlong_lines_and_lines_without_a_newline() {
    let tracker = tracker();
    let dir = live_peer_dir("fuzz-long");
    let peer = peer_with(&tracker, &dir, patient);
    for addr in [tracker.addr(), peer.addr()] {
        // 200 KB then a newline: skipped, answered, and the connection goes on.
        let mut c = Raw::connect(addr);
        let mut long = vec![b'G'; 200_000];
        long.push(b'\n');
        c.send(&long).unwrap();
        let reply = c.line().unwrap().unwrap();
        assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
        // Exactly at the limit is a line like any other; one byte more is not.
        let mut at_limit = b"PING".to_vec();
        at_limit.resize(MAX_LINE, b' ');
        at_limit.push(b'\n');
        c.send(&at_limit).unwrap();
        assert_eq!(c.line().unwrap().unwrap(), "PONG", "{addr}");
        let mut past = b"PING".to_vec();
        past.resize(MAX_LINE + 1, b' ');
        past.push(b'\n');
        c.send(&past).unwrap();
        assert!(c.line().unwrap().unwrap().starts_with("ERR too-long "));
        // `\r\n` counts the `\r` towards the limit but is otherwise a plain end of line.
        assert_eq!(c.ask("PING\r"), "PONG");
        assert_eq!(c.ask("PING"), "PONG");

        // A line with no newline, then the end of the stream: the server closes without an
        // answer (only complete lines are requests). The line before it is still answered.
        let mut c = Raw::connect(addr);
        c.send(b"PING\nPING").unwrap();
        c.stream().shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.line().unwrap().as_deref(), Some("PONG"), "{addr}");
        assert_eq!(
            c.line().unwrap(),
            None,
            "{addr}: a reply to an unfinished line"
        );
        // The same with 200 KB of unfinished line.
        let mut c = Raw::connect(addr);
        c.send(&vec![b'x'; 200_000]).unwrap();
        c.stream().shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.line().unwrap(), None, "{addr}");

        // Past 1 MiB without a newline: `ERR too-long` and the connection is closed. Exactly
        // one byte past the limit, so the server has read every byte sent when it closes
        // (unread input would turn its close into a reset that may swallow the reply).
        let mut c = Raw::connect(addr);
        c.send(&vec![b'y'; (1 << 20) + 1]).unwrap();
        let reply = c.line().unwrap().unwrap_or_default();
        assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
        assert!(c.at_end(), "{addr}: still open after a line without end");
        // Far past it (a client that keeps sending): closed, reply or not; no hang.
        let mut c = Raw::connect(addr);
        let stream = c.stream().try_clone().unwrap();
        let writer = thread::spawn(move || {
            let chunk = vec![b'z'; 64 * 1024];
            let mut stream = stream;
            for _ in 0..64 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        match c.line() {
            Ok(Some(reply)) => assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}"),
            Ok(None) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{addr}: {e}"),
        }
        writer.join().unwrap();
        // The server is still there.
        assert_eq!(Raw::connect(addr).ask("PING"), "PONG", "{addr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges, indices and names

#[test]
fn ranges_and_pieces_past_the_end_get_err_range() {
    let mut f = Fuzz::new("ranges_and_pieces_past_the_end_get_err_range");
    let tracker = tracker();
    let dir = live_peer_dir("fuzz-range");
    let peer = peer_with(&tracker, &dir, patient);
    let data = a_bin_bytes();
    let mut c = Raw::connect(peer.addr());
    let fixed: &[(&str, &str)] = &[
        ("GET a.bin 0 5001", "ERR range "),
        ("GET a.bin 5000 1", "ERR range "),
        ("GET a.bin 5001 0", "ERR range "),
        ("GET a.bin 18446744073709551615 1", "ERR range "),
        ("GET a.bin 1 18446744073709551615", "ERR range "),
        (
            "GET a.bin 18446744073709551615 18446744073709551615",
            "ERR range ",
        ),
        ("GET a.bin 4999 18446744073709551615", "ERR range "),
        ("GET a.bin 18446744073709551616 0", "ERR bad-request "),
        ("GET a.bin -1 1", "ERR bad-request "),
        ("GET a.bin 5000 0", "DATA 0"),
        ("GET a.bin 4999 1", "DATA 1"),
        ("PIECE a.bin 5", "ERR range "),
        ("PIECE a.bin 4294967295", "ERR range "),
        ("PIECE a.bin 4294967296", "ERR bad-request "),
        ("PIECE empty.txt 0", "ERR range "),
        ("GET empty.txt 0 1", "ERR range "),
        ("GET empty.txt 1 0", "ERR range "),
        ("GET empty.txt 0 0", "DATA 0"),
        ("GET empty.txt", "DATA 0"),
        ("HAVE empty.txt", "BITFIELD"),
    ];
    for (line, expect) in fixed {
        let reply = c.ask(line);
        assert!(reply.starts_with(expect), "{line} -> {reply}");
        if let Some(len) = reply.strip_prefix("DATA ") {
            c.bytes(len.parse().unwrap()).unwrap();
        }
    }
    assert_eq!(c.ask("GET a.bin 4999 1"), "DATA 1");
    assert_eq!(c.bytes(1).unwrap(), &data[4999..]);
    // Random ranges around the edges: exactly the bytes asked for, or ERR range.
    let size = A_SIZE as u64;
    let edges = [
        0,
        1,
        size - 1,
        size,
        size + 1,
        u64::MAX,
        u64::MAX - 1,
        1 << 63,
    ];
    for _ in 0..2000 {
        let mut n = || match f.below(3) {
            0 => edges[f.below(edges.len())],
            1 => f.rng.next_u64() % (size + 2),
            _ => f.rng.next_u64() >> f.below(64),
        };
        let (off, len) = (n(), n());
        let req = Request::Get {
            name: A_BIN.into(),
            range: Some((off, len)),
        };
        let reply = c.ask(&req.to_string());
        match off.checked_add(len) {
            Some(end) if end <= size => {
                assert_eq!(reply, format!("DATA {len}"), "seed {}: {req}", f.seed);
                let got = c.bytes(len as usize).unwrap();
                assert!(
                    got == data[off as usize..end as usize],
                    "seed {}: {req}",
                    f.seed
                );
            }
            _ => assert!(
                reply.starts_with("ERR range "),
                "seed {}: {req} -> {reply}",
                f.seed
            ),
        }
        let index = match f.below(3) {
            0 => f.below(7) as u32,
            1 => u32::MAX - f.below(2) as u32,
            _ => f.rng.next_u64() as u32,
        };
        let reply = c.ask(&format!("PIECE {A_BIN} {index}"));
        if index < 5 {
            let off = index as usize * 1024;
            let end = (off + 1024).min(A_SIZE);
            assert_eq!(reply, format!("DATA {}", end - off), "seed {}", f.seed);
            assert!(c.bytes(end - off).unwrap() == data[off..end]);
        } else {
            assert!(reply.starts_with("ERR range "), "PIECE {index} -> {reply}");
        }
    }
    assert_eq!(c.ask("PING"), "PONG");
}

#[test]
fn names_that_leave_the_folder_are_never_served() {
    let tracker = tracker();
    let outside = temp_dir("fuzz-outside");
    fs::write(
        outside.join("secret.txt"),
        b"the secret outside the folder\n",
    )
    .unwrap();
    let dir = live_peer_dir("fuzz-names");
    let secret = outside.join("secret.txt");
    std::os::unix::fs::symlink(&secret, dir.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(outside.join("missing"), dir.join("dangling.txt")).unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub").join("inner.txt"), b"inner").unwrap();
    fs::write(dir.join(".hidden"), b"hidden").unwrap();
    // A FIFO would hang a peer that opened it to hash it.
    let fifo = Command::new("mkfifo").arg(dir.join("fifo")).status();
    let peer = peer_with(&tracker, &dir, patient);
    let mut c = Raw::connect(peer.addr());
    for name in [
        "link.txt",
        "dangling.txt",
        "linkdir",
        "sub",
        "fifo",
        "secret.txt",
    ] {
        for verb in ["HAVE", "GET", "HASHES"] {
            let reply = c.ask(&format!("{verb} {name}"));
            assert!(
                reply.starts_with("ERR not-found "),
                "{verb} {name} -> {reply}"
            );
        }
        let reply = c.ask(&format!("PIECE {name} 0"));
        assert!(
            reply.starts_with("ERR not-found "),
            "PIECE {name} -> {reply}"
        );
        assert!(
            who_has(&tracker, name).is_empty(),
            "the tracker lists {name}"
        );
    }
    let secret_text = secret.to_str().unwrap();
    for name in [
        "linkdir/secret.txt",
        "sub/inner.txt",
        "../fuzz-outside/secret.txt",
        "..",
        ".",
        ".hidden",
        ".torrentphile",
        ".torrentphile/a.bin.meta",
        secret_text,
        "/etc/passwd",
        "..\\secret.txt",
        "a.bin/../a.bin",
    ] {
        for verb in ["HAVE", "GET", "HASHES", "WHOHAS"] {
            let reply = c.ask(&format!("{verb} {name}"));
            assert!(reply.starts_with("ERR "), "{verb} {name} -> {reply}");
            assert!(
                reply.starts_with("ERR bad-name ") || verb == "WHOHAS",
                "{verb} {name} -> {reply}"
            );
        }
        let reply = Raw::connect(tracker.addr()).ask(&format!("WHOHAS {name}"));
        assert!(
            reply.starts_with("ERR bad-name "),
            "WHOHAS {name} -> {reply}"
        );
    }
    assert_eq!(c.ask("PING"), "PONG");
    // A downloader asking for the link's name finds nobody.
    let dl = temp_dir("fuzz-names-dl");
    let downloader = peer_with(&tracker, &dl, patient);
    assert!(matches!(
        downloader.download("link.txt"),
        Err(DownloadError::NotFound(_))
    ));
    assert!(files_in(&dl).is_empty());
    if fifo.is_ok_and(|s| s.success()) {
        eprintln!("checked a FIFO in the folder too");
    }
}

/// A downloader whose folder already has a symlink under the name it downloads never writes
/// through the link: a link to a missing file is replaced by the real file, a link to an
/// existing file makes the download refuse, and the file outside is untouched either way.
#[test]
fn a_download_never_writes_through_a_symlink_in_its_folder() {
    let tracker = tracker();
    let seed_dir = live_peer_dir("fuzz-dl-link-seed");
    let _seed = peer_with(&tracker, &seed_dir, patient);
    let outside = temp_dir("fuzz-dl-link-outside");
    fs::write(outside.join("existing"), b"keep me").unwrap();

    let dl = temp_dir("fuzz-dl-link");
    std::os::unix::fs::symlink(outside.join("planted"), dl.join(A_BIN)).unwrap();
    let downloader = peer_with(&tracker, &dl, patient);
    downloader.download(A_BIN).unwrap();
    assert!(fs::symlink_metadata(dl.join(A_BIN)).unwrap().is_file());
    assert_eq!(fs::read(dl.join(A_BIN)).unwrap(), a_bin_bytes());
    assert!(
        !outside.join("planted").exists(),
        "written through the link"
    );
    drop(downloader);

    let dl = temp_dir("fuzz-dl-link2");
    std::os::unix::fs::symlink(outside.join("existing"), dl.join(A_BIN)).unwrap();
    let downloader = peer_with(&tracker, &dl, patient);
    let err = downloader.download(A_BIN).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
    assert_eq!(fs::read(outside.join("existing")).unwrap(), b"keep me");
}

/// A shared file replaced, after it was hashed, by a symlink to a file outside the folder with
/// the same size and modification time: the server must not follow the link.
#[test]
fn a_shared_file_swapped_for_a_symlink_is_not_served() {
    let tracker = tracker();
    let outside = temp_dir("fuzz-swap-outside");
    let dir = live_peer_dir("fuzz-swap");
    let peer = peer_with(&tracker, &dir, patient);
    let mut c = Raw::connect(peer.addr());
    assert_eq!(c.ask("GET a.bin 0 5"), "DATA 5");
    c.bytes(5).unwrap();
    // Same size, same mtime, other bytes, outside the folder.
    let shared = dir.join(A_BIN);
    let mtime = fs::metadata(&shared).unwrap().modified().unwrap();
    let secret = outside.join("secret.bin");
    fs::write(&secret, vec![b'S'; A_SIZE]).unwrap();
    fs::File::options()
        .write(true)
        .open(&secret)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::remove_file(&shared).unwrap();
    std::os::unix::fs::symlink(&secret, &shared).unwrap();
    let reply = c.ask("GET a.bin 0 5");
    if let Some(len) = reply.strip_prefix("DATA ") {
        let got = c.bytes(len.parse().unwrap()).unwrap();
        panic!(
            "the peer followed the symlink and served {:?} from outside its folder",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(reply.starts_with("ERR "), "{reply}");
}

// ---------------------------------------------------------------------------------------------
// Holders that lie

/// How a lying holder answers `PIECE`.
#[derive(Clone)]
enum Lie {
    /// `DATA <len>`, then half the bytes, then it closes.
    Short,
    /// `DATA <len>`, the bytes, then these extra bytes.
    Long(Vec<u8>),
    /// `DATA <n>` and the `n` bytes it has for that piece (fewer than announced when its
    /// bytes are shorter than the size it announced).
    AsIs,
    /// `DATA <n>` and a whole piece size of its bytes, whatever the announced size says the
    /// piece holds (more than announced for the last piece, when it has more bytes).
    FullPieces,
}

/// A hand-written holder: announces `meta` to the tracker (its registration lives as long
/// as the returned client), answers `HELLO`, `HAVE` and `HASHES` correctly for `meta`, and
/// `PIECE` from `body` the way `lie` says.
struct Liar {
    addr: String,
    upload_reply: String,
    /// `PIECE` requests it has answered (its way).
    asked: Arc<AtomicUsize>,
    _tracker: Raw,
}

fn start_liar(tracker: SocketAddr, meta: &Meta, hashes: String, body: Vec<u8>, lie: Lie) -> Liar {
    let listener = listener();
    let port = listener.local_addr().unwrap().port();
    let (meta2, asked) = (meta.clone(), Arc::new(AtomicUsize::new(0)));
    let asked2 = asked.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (meta, hashes, body, lie, asked) = (
                meta2.clone(),
                hashes.clone(),
                body.clone(),
                lie.clone(),
                asked2.clone(),
            );
            thread::spawn(move || serve_lies(stream, &meta, &hashes, &body, &lie, &asked));
        }
    });
    let mut conn = Raw::connect(tracker);
    assert!(conn.ask(&format!("REGISTER {port}")).starts_with("ACK "));
    let upload_reply = conn.ask(&Request::Upload(meta.clone()).to_string());
    Liar {
        addr: format!("127.0.0.1:{port}"),
        upload_reply,
        asked,
        _tracker: conn,
    }
}

fn serve_lies(
    stream: TcpStream,
    meta: &Meta,
    hashes: &str,
    body: &[u8],
    lie: &Lie,
    asked: &AtomicUsize,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        line.clear();
        let out = reader.get_mut();
        let mut reply = Vec::new();
        match words.first().map(String::as_str) {
            Some("HELLO") => reply.extend_from_slice(b"ACK hello\n"),
            Some("HAVE") => reply.extend(
                format!("{}\n", Reply::Bitfield("1".repeat(meta.pieces() as usize))).bytes(),
            ),
            Some("HASHES") => reply.extend(format!("DATA {}\n{hashes}", hashes.len()).bytes()),
            Some("PIECE") => {
                asked.fetch_add(1, Ordering::SeqCst);
                let i: u32 = words.get(2).and_then(|w| w.parse().ok()).unwrap_or(0);
                let (start, mut len) = meta.piece_range(i);
                if let Lie::FullPieces = lie {
                    len = meta.piece_size as u64;
                }
                let from = (start as usize).min(body.len());
                let to = ((start + len) as usize).min(body.len());
                let piece = &body[from..to];
                match lie {
                    Lie::Short => {
                        reply.extend(format!("DATA {len}\n").bytes());
                        reply.extend_from_slice(&piece[..piece.len() / 2]);
                        let _ = out.write_all(&reply);
                        return;
                    }
                    Lie::Long(extra) => {
                        reply.extend(format!("DATA {len}\n").bytes());
                        reply.extend_from_slice(piece);
                        reply.extend_from_slice(extra);
                    }
                    Lie::AsIs | Lie::FullPieces => {
                        reply.extend(format!("DATA {}\n", piece.len()).bytes());
                        reply.extend_from_slice(piece);
                    }
                }
            }
            _ => reply.extend_from_slice(b"ERR unknown-verb liar\n"),
        }
        if out.write_all(&reply).is_err() {
            return;
        }
    }
}

const LIAR_PIECE: u32 = 16 * 1024;

/// A source file of 16 pieces and a downloader; `with_good` adds an honest peer holding it.
struct Scene {
    tracker: torrentphile::tracker::Tracker,
    src: std::path::PathBuf,
    meta: Meta,
    hashes: String,
    good: Option<torrentphile::peer::Peer>,
}

fn scene(tag: &str, with_good: bool) -> Scene {
    let tracker = tracker();
    let src = temp_dir(&format!("{tag}-src"));
    random_file(&src.join("f.bin"), 16 * LIAR_PIECE as u64 - 100, 11);
    let (meta, hashes) = hash_file(&src.join("f.bin"), "f.bin", LIAR_PIECE).unwrap();
    let good = with_good.then(|| {
        let dir = temp_dir(&format!("{tag}-good"));
        fs::copy(src.join("f.bin"), dir.join("f.bin")).unwrap();
        peer_with(&tracker, &dir, |c| c.piece_size = Some(LIAR_PIECE))
    });
    Scene {
        tracker,
        src,
        meta,
        hashes: hashes_text(&hashes),
        good,
    }
}

impl Scene {
    fn body(&self) -> Vec<u8> {
        fs::read(self.src.join("f.bin")).unwrap()
    }

    fn liar(&self, lie: Lie) -> Liar {
        let liar = start_liar(
            self.tracker.addr(),
            &self.meta,
            self.hashes.clone(),
            self.body(),
            lie,
        );
        assert!(
            liar.upload_reply.starts_with("ACK "),
            "{}",
            liar.upload_reply
        );
        liar
    }

    /// Download with a downloader of its own; it must succeed if `must_succeed`.
    fn download(&self, must_succeed: bool) -> Result<Report, DownloadError> {
        let result = self.fetch(false, &self.body());
        if let Err(e) = &result {
            assert!(!must_succeed, "the download failed: {e}");
        }
        result
    }

    /// Download with a fresh downloader (with the whole-file SHA-1 pass or not). It may
    /// complete only with exactly `good`, the bytes the tracker's root vouches for; if it
    /// fails, nothing is under the final name.
    fn fetch(&self, whole_hash: bool, good: &[u8]) -> Result<Report, DownloadError> {
        let dl = temp_dir("liar-dl");
        let downloader = peer_with(&self.tracker, &dl, |c| {
            c.download.whole_file_check = whole_hash;
        });
        let result = downloader.download("f.bin");
        match &result {
            Ok(_) => assert!(
                fs::read(dl.join("f.bin")).unwrap() == good,
                "the download completed with other bytes than the announced ones"
            ),
            Err(_) => assert!(
                files_in(&dl).is_empty(),
                "a failed download left {:?}",
                files_in(&dl)
            ),
        }
        result
    }
}

#[test]
fn a_block_shorter_than_announced_is_not_accepted() {
    // With an honest holder too, the download completes with the right bytes.
    let s = scene("short", true);
    let liar = s.liar(Lie::Short);
    let report = s.download(true).unwrap();
    assert!(!report.from.contains_key(&liar.addr), "{:?}", report.from);
    eprintln!(
        "with a good holder: the liar was asked for {liar_asked} piece(s)",
        liar_asked = liar.asked.load(Ordering::SeqCst)
    );
    // With the liar alone, it fails cleanly: nothing under the final name.
    let s = scene("short-only", false);
    let liar = s.liar(Lie::Short);
    let err = s.download(false).unwrap_err();
    assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    assert!(liar.asked.load(Ordering::SeqCst) > 0);
    eprintln!("the liar alone: {err}");
}

#[test]
fn a_block_longer_than_announced_is_not_accepted() {
    let wrong_next: Vec<u8> = {
        let mut v = format!("DATA {LIAR_PIECE}\n").into_bytes();
        v.extend(std::iter::repeat_n(0xa5, LIAR_PIECE as usize));
        v
    };
    let extras = [
        b"trailing garbage".to_vec(),
        b"\n".to_vec(),
        b"PONG\n".to_vec(),
        b"ERR unavailable not here\n".to_vec(),
        wrong_next,
    ];
    // Each kind of extra in its own swarm, all at once (most of the time is spent waiting).
    let runs: Vec<_> = extras
        .into_iter()
        .map(|extra| thread::spawn(move || longer_than_announced(extra)))
        .collect();
    for run in runs {
        run.join().unwrap();
    }
}

fn longer_than_announced(extra: Vec<u8>) {
    let s = scene("long", true);
    let liar = s.liar(Lie::Long(extra.clone()));
    s.download(true)
        .unwrap_or_else(|e| panic!("{}: {e}", show(&extra)));
    let with_good = liar.asked.load(Ordering::SeqCst);
    let s = scene("long-only", false);
    let liar = s.liar(Lie::Long(extra.clone()));
    // The liar's blocks themselves are right, so this may even complete; if it does,
    // the file is exactly right (checked in `download`).
    let alone = s.download(false);
    assert!(liar.asked.load(Ordering::SeqCst) > 0);
    eprintln!(
        "extra {}: the liar was asked {with_good} piece(s) beside a good holder; alone: {}",
        show(&extra[..extra.len().min(30)]),
        match alone {
            Ok(r) => format!("completed from {:?}", r.from),
            Err(e) => e.to_string(),
        }
    );
}

#[test]
fn a_holder_announcing_a_size_that_does_not_match_its_bytes() {
    // 1. The liar announces first: 5000 bytes more than it has, with piece hashes (and root
    //    and SHA-1) of its bytes padded with zeros, and serves only what it has. The last
    //    pieces come short; nothing is published, with or without the whole-file pass.
    let s = scene("size-more", false);
    let mut padded = s.body();
    padded.resize(padded.len() + 5000, 0);
    let path = s.src.join("padded.bin");
    fs::write(&path, &padded).unwrap();
    let (meta, hashes) = hash_file(&path, "f.bin", LIAR_PIECE).unwrap();
    let liar = start_liar(
        s.tracker.addr(),
        &meta,
        hashes_text(&hashes),
        s.body(),
        Lie::AsIs,
    );
    assert!(
        liar.upload_reply.starts_with("ACK "),
        "{}",
        liar.upload_reply
    );
    for whole_hash in [false, true] {
        let err = s.fetch(whole_hash, &padded).unwrap_err();
        assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    }
    assert!(liar.asked.load(Ordering::SeqCst) > 0);

    // 2. Fewer bytes announced than it has (hashes and SHA-1 of the first `cut` bytes), and
    //    the last piece sent whole, longer than the announced size allows: refused.
    let s = scene("size-less", false);
    let body = s.body();
    let cut = body.len() - 3000;
    let path = s.src.join("cut.bin");
    fs::write(&path, &body[..cut]).unwrap();
    let (cut_meta, cut_hashes) = hash_file(&path, "f.bin", LIAR_PIECE).unwrap();
    let liar = start_liar(
        s.tracker.addr(),
        &cut_meta,
        hashes_text(&cut_hashes),
        body.clone(),
        Lie::FullPieces,
    );
    assert!(
        liar.upload_reply.starts_with("ACK "),
        "{}",
        liar.upload_reply
    );
    for whole_hash in [false, true] {
        let err = s.fetch(whole_hash, &body[..cut]).unwrap_err();
        assert!(matches!(err, DownloadError::Failed(_)), "{err:?}");
    }

    // 3. The same short size, pieces served as announced, but the SHA-1 of all its bytes:
    //    the pieces (bound to the root) vouch for exactly the first `cut` bytes, which is all
    //    a default download gets; the whole-file pass sees the SHA-1 does not match them.
    let s = scene("size-sha", false);
    let mut lie = cut_meta.clone();
    lie.sha1 = s.meta.sha1;
    let liar = start_liar(
        s.tracker.addr(),
        &lie,
        hashes_text(&cut_hashes),
        body.clone(),
        Lie::AsIs,
    );
    assert!(
        liar.upload_reply.starts_with("ACK "),
        "{}",
        liar.upload_reply
    );
    let report = s.fetch(false, &body[..cut]).unwrap();
    assert_eq!(report.meta.size, cut as u64);
    let err = s.fetch(true, &body[..cut]).unwrap_err();
    assert!(err.to_string().contains("inconsistent"), "{err}");

    // 4. An honest holder announced first: the liar's other size is a conflict, the tracker
    //    does not list it, and the download gets the real file.
    let s = scene("size-conflict", true);
    let liar = start_liar(
        s.tracker.addr(),
        &cut_meta,
        hashes_text(&cut_hashes),
        s.body(),
        Lie::AsIs,
    );
    assert!(
        liar.upload_reply.starts_with("ERR conflict "),
        "{}",
        liar.upload_reply
    );
    let good = s.good.as_ref().unwrap().addr().to_string();
    assert_eq!(who_has(&s.tracker, "f.bin"), [good]);
    s.download(true).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Many connections at once, each sending overlong lines, lines just past the limit, and
/// finally a line with no end.
fn flood_with_long_lines(addr: SocketAddr) {
    let threads: Vec<_> = (0..16)
        .map(|t| {
            thread::spawn(move || {
                let mut c = Raw::connect(addr);
                let mut long = vec![b'L'; 200_000 + t * 1000];
                long.push(b'\n');
                let mut past = vec![b'P'; MAX_LINE + 1];
                past.push(b'\n');
                for i in 0..60 {
                    c.send(if i % 3 == 0 { &long } else { &past }).unwrap();
                    let reply = c.line().unwrap().unwrap_or_default();
                    assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
                }
                c.send(&vec![b'E'; (1 << 20) + 1]).unwrap();
                let reply = c.line().unwrap().unwrap_or_default();
                assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
                assert!(c.at_end());
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
    let tracker = tracker();
    let dir = live_peer_dir("fuzz-ids");
    let peer = peer_with(&tracker, &dir, patient);
    let mut c = Raw::connect(peer.addr());
    let mut name_ids = |ids: std::ops::Range<usize>| {
        for chunk in ids.collect::<Vec<_>>().chunks(500) {
            let mut lines = String::new();
            for i in chunk {
                lines.push_str(&format!("HELLO downloader-{i:050}\nGET {A_BIN} 0 1\n"));
            }
            c.send(lines.as_bytes()).unwrap();
            for i in chunk {
                let hello = c.line().unwrap().unwrap_or_default();
                assert!(hello.starts_with("ACK hello "), "{i}: {hello}");
                assert_eq!(c.line().unwrap().as_deref(), Some("DATA 1"));
                c.bytes(1).unwrap();
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
        assert_eq!(Raw::connect(server.addr).ask("PING"), "PONG");
    }
}
