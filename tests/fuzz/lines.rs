//! Generators of request and reply lines: shaped like real requests (a verb, roughly the right
//! arguments, odd separators), mutated from valid ones (flips, splices, long runs), or noise.
//! They assert nothing; `codec`, `framing` and `live` check what the code under test makes
//! of their lines.

use torrentphile::protocol::MAX_LINE;

use super::values::{valid_reply, valid_request};
use super::{A_BIN, EMPTY, Fuzz};

const VERBS: [&str; 17] = [
    "REGISTER", "UPLOAD", "PARTIAL", "REMOVE", "WHOHAS", "INFO", "LIST", "STANDBY", "HELLO", "GET",
    "PIECE", "HAVE", "HASHES", "PING", "HELP", "BYE", "QUIT",
];

/// The account verbs (accounts and groups; `TICKET` is the peer's).
const ACCOUNT_VERBS: [&str; 19] = [
    "SALT",
    "CREATE-USER",
    "LOGIN",
    "PROOF",
    "LOGOUT",
    "CREATE-GROUP",
    "JOIN",
    "LEAVE",
    "REQUESTS",
    "ACCEPT",
    "GROUPS",
    "FILES",
    "GUPLOAD",
    "GREMOVE",
    "GWHOHAS",
    "GINFO",
    "GRANT",
    "VOUCH",
    "TICKET",
];

/// Bytes that tend to break parsers.
const ODD_BYTES: &[u8] = b" \t\r\n\0\x0b\x0c\x1b\x7f\x80\xc3\xa9\xff-+./\\:0123456789aAfFxz~%\"";

#[derive(Clone, Copy)]
enum Arg {
    Name,
    Num,
    Digest,
    Any,
    /// A user or group name.
    Id,
    /// A 20-byte key in base64 (or nearly).
    Key,
    /// A SCRAM message (or nearly).
    Scram,
}

fn verb_args(verb: &str, f: &mut Fuzz) -> Vec<Arg> {
    use Arg::*;
    match verb {
        "REGISTER" | "STANDBY" => vec![Num],
        "UPLOAD" => vec![Name, Num, Num, Digest, Digest],
        "PARTIAL" | "REMOVE" | "WHOHAS" | "INFO" | "HAVE" | "HASHES" => vec![Name],
        "HELLO" => vec![Any],
        "GET" if f.one_in(2) => vec![Name, Num, Num],
        "GET" => vec![Name],
        "PIECE" => vec![Name, Num],
        "SALT" | "CREATE-GROUP" | "JOIN" | "LEAVE" | "REQUESTS" | "FILES" => vec![Id],
        "CREATE-USER" => vec![Id, Key, Key],
        "LOGIN" | "PROOF" => vec![Scram],
        "ACCEPT" | "VOUCH" => vec![Id, Id],
        "GUPLOAD" => vec![Id, Name, Num, Num, Digest, Digest],
        "GREMOVE" | "GWHOHAS" | "GINFO" => vec![Id, Name],
        "GRANT" => vec![Id, Name, Any],
        "TICKET" => vec![Id, Id, Name, Digest, Any, Num, Digest],
        _ => vec![],
    }
}

pub(super) fn random_bytes(f: &mut Fuzz, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    f.rng.fill(&mut buf);
    buf
}

/// A length: mostly short, sometimes near the line limit, rarely far past it.
pub(super) fn length(f: &mut Fuzz) -> usize {
    if f.one_in(f.huge_one_in) {
        return 10_000 + f.below(60_000);
    }
    match f.below(100) {
        0 => 4000 + f.below(200),
        1..=8 => 20 + f.below(300),
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
pub(super) fn valid_name(f: &mut Fuzz) -> String {
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

/// A user or group name as the tracker accepts it: 1 to 64 printable ASCII bytes, no `/`
/// or `\\`, not starting with `.`.
pub(super) fn valid_id(f: &mut Fuzz) -> String {
    if f.one_in(3) {
        return f.pick(&["alice", "bob", "g1", "g2"]).to_string();
    }
    let mut id = valid_name(f);
    id.truncate(1 + f.below(64));
    id
}

/// Base64 of 20 bytes, sometimes of another length or with a bad character.
fn key_text(f: &mut Fuzz) -> Vec<u8> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let len = match f.below(6) {
        0 => f.below(40),
        _ => 27,
    };
    let mut text: Vec<u8> = (0..len).map(|_| B64[f.below(64)]).collect();
    text.push(b'=');
    if f.one_in(6) {
        let i = f.below(text.len());
        text[i] = *f.pick(ODD_BYTES);
    }
    text
}

/// A SCRAM message: client-first or client-final shaped, with its attributes now and then
/// missing, doubled, out of order or empty.
pub(super) fn scram_text(f: &mut Fuzz) -> Vec<u8> {
    let nonce = valid_id(f).replace(',', "");
    let mut parts: Vec<String> = match f.below(2) {
        0 => vec![
            f.pick(&["n", "y", "p=tls", "n", ""]).to_string(),
            f.pick(&["", "a=bob", ""]).to_string(),
            format!("n={}", valid_id(f).replace(',', "=2C")),
            format!("r={nonce}"),
        ],
        _ => vec![
            f.pick(&["c=biws", "c=eSws", "c="]).to_string(),
            format!("r={nonce}"),
            format!("p={}", String::from_utf8_lossy(&key_text(f))),
        ],
    };
    if f.one_in(4) {
        let i = f.below(parts.len());
        parts.remove(i);
    }
    if f.one_in(6) {
        parts.push(f.pick(&["m=ext", "x=1", "r=", "e=other-error"]).to_string());
    }
    if f.one_in(6) && parts.len() > 1 {
        let i = f.below(parts.len());
        parts.swap(0, i);
    }
    parts.join(",").into_bytes()
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
        Arg::Id => match f.below(4) {
            0 => name(f),
            _ => valid_id(f).into_bytes(),
        },
        Arg::Key => key_text(f),
        Arg::Scram => scram_text(f),
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
    // One line in four an account verb: often enough to reach every branch of their
    // parsing, rarely enough that most lines still reach the original verbs' handlers.
    let real = if f.one_in(4) {
        *f.pick(&ACCOUNT_VERBS)
    } else {
        *f.pick(&VERBS)
    };
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
pub(super) fn any_request_line(f: &mut Fuzz) -> Vec<u8> {
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
        _ => noise(f),
    }
}

pub(super) fn any_reply_line(f: &mut Fuzz) -> Vec<u8> {
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
        _ => noise(f),
    }
}

/// Random bytes of a random length.
fn noise(f: &mut Fuzz) -> Vec<u8> {
    let len = length(f);
    random_bytes(f, len)
}

/// `lines` as they go on the wire, each ended by `\n`, cut anywhere into up to `max_cuts + 1`
/// fragments.
pub(super) fn wire_fragments(f: &mut Fuzz, lines: &[Vec<u8>], max_cuts: usize) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    let mut cuts: Vec<usize> = (0..f.below(max_cuts))
        .map(|_| f.below(bytes.len()))
        .collect();
    cuts.sort();
    let mut from = 0;
    let mut fragments = Vec::new();
    for cut in cuts.into_iter().chain([bytes.len()]) {
        fragments.push(bytes[from..cut].to_vec());
        from = cut;
    }
    fragments
}

/// A line for a live server: one of the parser's lines, now and then a far overlong one.
pub(super) fn live_line(f: &mut Fuzz) -> Vec<u8> {
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

/// Every verb either server lists in `HELP` is fuzzed: a new verb must be added above.
#[test]
fn the_fuzzed_verbs_cover_every_verb_help_lists() {
    use torrentphile::protocol::Role;
    for role in [Role::Tracker, Role::Peer] {
        for verb in role.verbs() {
            assert!(
                VERBS.contains(verb) || ACCOUNT_VERBS.contains(verb),
                "{verb} ({}) is not in the fuzz's verb lists",
                role.name()
            );
        }
    }
}
