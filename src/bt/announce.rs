//! The HTTP tracker side of BitTorrent (BEP 3 "trackers", BEP 23 compact peer lists, BEP 7
//! `peers6`), as pure functions: parse a `GET /announce?...` request head, build the
//! bencoded answer, and tell by its first bytes whether a connection speaks HTTP, the
//! BitTorrent peer wire, or our own lines.
//!
//! Owns the query format and its limits. Never touches a socket (the caller reads at most
//! [`MAX_HEAD`] bytes up to the blank line and writes what these functions return) and never
//! decides who is in a swarm: that is the tracker's registry.
//!
//! Every refusal is an [`AnnounceError`] whose text becomes the bencoded `failure reason`
//! (sent with status 200, since that is what clients show to their user).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::torrent::bencode::{self, Value};

/// The longest request head (request line and headers) read before answering.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most query parameters accepted (aria2c sends about a dozen).
pub const MAX_PARAMS: usize = 32;
/// Longest query value, still percent-encoded (a 20-byte id is at most 60).
pub const MAX_VALUE: usize = 256;
/// Peers returned when the client does not say `numwant`, and the most we ever return.
pub const DEFAULT_NUMWANT: u32 = 50;
pub const MAX_NUMWANT: u32 = 200;

/// What a connection speaks, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of our line verbs (or garbage, which the line parser answers with `ERR`).
    Line,
    /// An HTTP request: `GET /...`. Our `GET <name>` can never look like this, because a
    /// name never contains `/`.
    Http,
    /// A BitTorrent handshake: its first byte is 19, which is no printable character, so
    /// it never starts a line.
    BitTorrent,
}

/// Decide from the bytes read so far; `None` means "read more" (nothing yet, or a prefix of
/// `GET /` such as `GE`). At most 5 bytes are ever needed.
pub fn sniff(first: &[u8]) -> Option<Kind> {
    const HTTP: &[u8] = b"GET /";
    match first.first() {
        None => None,
        Some(19) => Some(Kind::BitTorrent),
        Some(_) if first.starts_with(HTTP) => Some(Kind::Http),
        Some(_) if HTTP.starts_with(first) => None,
        Some(_) => Some(Kind::Line),
    }
}

/// Where the request head ends (just past the blank line), if it is all in `buf`. Accepts
/// bare `\n` line ends as well as `\r\n`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The `event` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A periodic announce (no `event`, or an empty one).
    Regular,
    Started,
    Completed,
    Stopped,
}

/// One announce, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The port the client listens on; its address is the connection's source address
    /// (we ignore the `ip` parameter, which would let anyone point a swarm elsewhere).
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    /// Bytes still missing: 0 means a seeder.
    pub left: u64,
    pub compact: bool,
    pub no_peer_id: bool,
    pub event: Event,
    /// Peers wanted, capped at [`MAX_NUMWANT`].
    pub numwant: u32,
}

/// Why an announce was refused; its text is the `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceError(pub String);

impl fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AnnounceError {}

fn fail<T>(msg: impl Into<String>) -> Result<T, AnnounceError> {
    Err(AnnounceError(msg.into()))
}

/// Parse a request head (request line, headers, blank line; see [`head_end`]). Only the
/// request line matters; headers are bounded by [`MAX_HEAD`] and otherwise ignored.
pub fn parse_request(head: &[u8]) -> Result<Announce, AnnounceError> {
    if head.len() > MAX_HEAD {
        return fail(format!("request head over {MAX_HEAD} bytes"));
    }
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    if let Some(&b) = line.iter().find(|b| !(0x20..0x7f).contains(*b)) {
        return fail(format!(
            "request line has a raw byte 0x{b:02x}; percent-encode it"
        ));
    }
    let mut words = line.split(|&b| b == b' ');
    let (method, target, version) = match (words.next(), words.next(), words.next()) {
        (Some(m), Some(t), Some(v)) if words.next().is_none() => (m, t, v),
        _ => return fail("request line is not METHOD TARGET VERSION"),
    };
    if method != b"GET" {
        return fail("only GET is answered");
    }
    if version != b"HTTP/1.0" && version != b"HTTP/1.1" {
        return fail("not HTTP/1.0 or HTTP/1.1");
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    if path != b"/announce" {
        return fail(format!(
            "unknown path {}: this tracker answers /announce only",
            String::from_utf8_lossy(path)
        ));
    }
    parse_query(query)
}

/// Parse the query string of an announce (what follows `?`).
pub fn parse_query(query: &[u8]) -> Result<Announce, AnnounceError> {
    let mut seen: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for pair in query.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        if seen.len() == MAX_PARAMS {
            return fail(format!("more than {MAX_PARAMS} query parameters"));
        }
        let (key, raw) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        let name = String::from_utf8_lossy(key);
        if raw.len() > MAX_VALUE {
            return fail(format!("{name} is over {MAX_VALUE} bytes"));
        }
        if seen.iter().any(|(k, _)| *k == key) {
            return fail(format!("{name} is given twice"));
        }
        let value = percent_decode(raw).map_err(|why| AnnounceError(format!("{name}: {why}")))?;
        seen.push((key, value));
    }
    let get = |key: &str| {
        seen.iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    };
    let need = |key: &str| get(key).ok_or_else(|| AnnounceError(format!("{key} is missing")));
    let id = |key: &str| -> Result<[u8; 20], AnnounceError> {
        let v = need(key)?;
        v.try_into()
            .map_err(|_| AnnounceError(format!("{key} is {} bytes, not 20", v.len())))
    };
    let number = |key: &str, v: &[u8]| -> Result<u64, AnnounceError> {
        let text = std::str::from_utf8(v).unwrap_or("");
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return fail(format!("{key} is not a decimal number"));
        }
        text.parse()
            .map_err(|_| AnnounceError(format!("{key} is too large")))
    };
    let flag = |key: &str| match get(key) {
        None | Some(b"0") => Ok(false),
        Some(b"1") => Ok(true),
        Some(_) => fail(format!("{key} is not 0 or 1")),
    };
    let (info_hash, peer_id) = (id("info_hash")?, id("peer_id")?);
    let port = number("port", need("port")?)?;
    if !(1..=65535).contains(&port) {
        return fail(format!("port {port} is not in 1..=65535"));
    }
    let event = match get("event") {
        None | Some(b"") | Some(b"empty") => Event::Regular,
        Some(b"started") => Event::Started,
        Some(b"completed") => Event::Completed,
        Some(b"stopped") => Event::Stopped,
        Some(_) => return fail("event is not started, completed or stopped"),
    };
    let numwant = match get("numwant") {
        None => DEFAULT_NUMWANT,
        Some(v) => number("numwant", v)?.min(MAX_NUMWANT as u64) as u32,
    };
    Ok(Announce {
        info_hash,
        peer_id,
        port: port as u16,
        uploaded: number("uploaded", need("uploaded")?)?,
        downloaded: number("downloaded", need("downloaded")?)?,
        left: number("left", need("left")?)?,
        compact: flag("compact")?,
        no_peer_id: flag("no_peer_id")?,
        event,
        numwant,
    })
}

/// Decode `%XX` escapes exactly (`+` stays `+`: RFC 3986 gives it no meaning in a query,
/// and clients escape a `+` byte of an info-hash as `%2B`).
pub fn percent_decode(raw: &[u8]) -> Result<Vec<u8>, String> {
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            match (
                raw.get(i + 1).and_then(|&b| digit(b)),
                raw.get(i + 2).and_then(|&b| digit(b)),
            ) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(format!("bad percent-escape at byte {i}")),
            }
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Escape every byte but RFC 3986's unreserved ones, as clients do for binary ids.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// One member of a swarm, as an announce answer lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmPeer {
    pub addr: SocketAddr,
    /// Unknown for peers learned from a compact list.
    pub peer_id: Option<[u8; 20]>,
}

/// What the tracker answers to a good announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seeders and leechers in the swarm.
    pub complete: u32,
    pub incomplete: u32,
    pub peers: Vec<SwarmPeer>,
}

/// The bencoded body answering `announce`: compact (BEP 23: `peers` 6 bytes per IPv4 peer,
/// `peers6` 18 bytes per IPv6 peer) when it asked for compact, else BEP 3's list of
/// dictionaries (without `peer id` when it said `no_peer_id=1`).
pub fn reply_body(reply: &Reply, announce: &Announce) -> Vec<u8> {
    let count = |n: u32| Value::Int(i64::from(n));
    let mut dict = vec![
        (&b"complete"[..], count(reply.complete)),
        (&b"incomplete"[..], count(reply.incomplete)),
        (&b"interval"[..], count(reply.interval)),
    ];
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    let mut texts = Vec::new();
    for p in &reply.peers {
        match p.addr.ip() {
            IpAddr::V4(ip) => v4.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => v6.extend_from_slice(&ip.octets()),
        }
        let out = if p.addr.is_ipv4() { &mut v4 } else { &mut v6 };
        out.extend_from_slice(&p.addr.port().to_be_bytes());
        texts.push(p.addr.ip().to_string());
    }
    if announce.compact {
        dict.push((b"peers", Value::Bytes(&v4)));
        if !v6.is_empty() {
            dict.push((b"peers6", Value::Bytes(&v6)));
        }
        return bencode::encode(&Value::Dict(dict));
    }
    let mut list = Vec::new();
    for (p, ip) in reply.peers.iter().zip(&texts) {
        let mut d = vec![
            (&b"ip"[..], Value::Bytes(ip.as_bytes())),
            (b"port", Value::Int(i64::from(p.addr.port()))),
        ];
        if let (Some(id), false) = (&p.peer_id, announce.no_peer_id) {
            d.push((b"peer id", Value::Bytes(id)));
        }
        list.push(Value::Dict(d));
    }
    dict.push((b"peers", Value::List(list)));
    bencode::encode(&Value::Dict(dict))
}

/// The bencoded body refusing an announce: `d14:failure reason...e`.
pub fn failure_body(reason: &str) -> Vec<u8> {
    bencode::encode(&Value::Dict(vec![(
        b"failure reason",
        Value::Bytes(reason.as_bytes()),
    )]))
}

/// A whole HTTP/1.0 response carrying `body`; the connection closes after it.
pub fn http_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The answer to a request head: the reply from `answer` when the head parses, otherwise a
/// failure naming what was wrong. `answer` is where the registry comes in.
pub fn respond(head: &[u8], answer: impl FnOnce(&Announce) -> Result<Reply, String>) -> Vec<u8> {
    let body = match parse_request(head) {
        Ok(a) => match answer(&a) {
            Ok(reply) => reply_body(&reply, &a),
            Err(reason) => failure_body(&reason),
        },
        Err(e) => failure_body(&e.0),
    };
    http_response(&body)
}
