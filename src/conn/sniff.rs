//! What a new connection speaks, told from its first bytes before anything reads them: one
//! of our lines, an HTTP request (a BitTorrent tracker announce) or a BitTorrent handshake
//! (`bt::announce::sniff` decides; this file only peeks at the socket for it).
//!
//! The peek never consumes a byte (the chosen loop reads the connection from its start) and
//! never waits longer than the line timeout. A first byte that is neither printable text nor
//! 19 (BitTorrent's handshake) closes the connection at once: it is almost always an
//! encrypted BitTorrent handshake (aria2c tries one first), and its client retries in plain
//! as soon as we close. Never parses a message, never writes.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::bt::announce::{Kind, sniff};
use crate::conn::Timeouts;

/// The start of every HTTP request we answer: a BitTorrent tracker announce.
const ANNOUNCE: &[u8] = b"GET /announce";

/// What a connection opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// One of our lines (or a prefix of `GET /announce` that stalled: the line loop's
    /// timeouts take over).
    Line,
    /// Nothing within the idle timeout: told so (`server::silent`) and closed.
    Silent,
    /// `GET /announce...`: a BitTorrent tracker announce over HTTP.
    Http,
    /// Byte 19: a BitTorrent handshake.
    BitTorrent,
    /// Neither: close at once, for this reason (a trace line).
    Refuse(String),
    /// Closed before its first byte.
    Gone,
}

/// Peek at the first bytes of `stream`: the first byte within `timeouts.idle` (else
/// `Silent`), the rest of a `GET /announce` prefix within `timeouts.line`. Leaves the
/// socket's read timeout set to something (the chosen loop sets its own).
pub fn opening(stream: &TcpStream, timeouts: Timeouts) -> Opening {
    let mut deadline = Instant::now() + timeouts.idle;
    let mut started = false;
    let mut buf = [0u8; ANNOUNCE.len()];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return if started {
                Opening::Line
            } else {
                Opening::Silent
            };
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Opening::Gone;
        }
        let n = match stream.peek(&mut buf) {
            Ok(0) => return Opening::Gone,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => return Opening::Gone,
        };
        if !started {
            started = true;
            deadline = Instant::now() + timeouts.line;
        }
        let first = buf[0];
        if first != 19 && !(first.is_ascii_graphic() || b" \t\r\n".contains(&first)) {
            return Opening::Refuse(format!(
                "first byte 0x{first:02x} is neither text nor a BitTorrent handshake \
                 (an encrypted handshake? we speak plain BitTorrent only); closing"
            ));
        }
        match sniff(&buf[..n]) {
            Some(Kind::Line) => return Opening::Line,
            Some(Kind::BitTorrent) => return Opening::BitTorrent,
            // Only an announce is HTTP: `GET /etc/passwd 0` stays a line (and gets its ERR).
            Some(Kind::Http) if buf[..n].starts_with(ANNOUNCE) => return Opening::Http,
            Some(Kind::Http) if n == buf.len() || !ANNOUNCE.starts_with(&buf[..n]) => {
                return Opening::Line;
            }
            // A prefix of `GET /announce`: wait for more, a little at a time (peek returns at
            // once while the bytes it saw are all there is).
            Some(Kind::Http) | None => std::thread::sleep(Duration::from_millis(5).min(left)),
        }
    }
}

/// The other side's address, for a trace line.
pub fn peer_name(stream: &TcpStream) -> String {
    stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string())
}
