//! Live servers: random, shaped and mutated lines (now and then far past the line limit) sent
//! in random fragments to a running tracker and peer on persistent connections. Asserts that
//! every complete line gets exactly one reply, that the reply is the one the parser and the
//! peer's files determine, that overlong lines get `ERR too-long`, and that the servers stay
//! up; plus the exact handling of lines at, past and far past the limit, and of lines without
//! a newline.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr};
use std::thread;

use torrentphile::protocol::{
    MAX_LINE, Reply, Request, Role, parse_reply, parse_request, parse_request_for,
};

use super::common::*;
use super::lines::{live_line, wire_fragments};
use super::{A_BIN, CODES, EMPTY, Fuzz, LIVE_PIECE, a_bin_bytes, live_peer, printable, show};

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
    conn: &mut Client,
    line: &[u8],
    a_bin: &[u8],
) -> Result<bool, String> {
    let reply = match conn.try_line() {
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
            conn.try_bytes(len as usize)
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
            if !conn.closed() {
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

/// Send `count` lines to a live server on persistent connections, a few at a time, in random
/// fragments; every complete line gets exactly one reply, the connection stays open unless
/// the line was `BYE`/`QUIT`, and `PING` still works at the end.
fn live_fuzz(f: &mut Fuzz, side: Side, addr: SocketAddr, count: usize) {
    let seed = f.seed;
    let a_bin = a_bin_bytes();
    let mut conn = Client::connect(addr);
    // Nothing sent on `conn` yet: its first byte decides what it speaks (`conn::sniff`).
    let mut fresh = true;
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
        // A connection whose first byte is neither text nor a line is closed unanswered (an
        // encrypted or BitTorrent handshake, `conn::sniff`): open it with a PING instead.
        let text = |b: &u8| b.is_ascii_graphic() || b" \t\r\n".contains(b);
        if fresh
            && batch
                .first()
                .and_then(|l| l.first())
                .is_some_and(|b| !text(b))
        {
            batch.insert(0, b"PING".to_vec());
        }
        fresh = false;
        // In up to four fragments, cut anywhere.
        for fragment in wire_fragments(f, &batch, 4) {
            conn.try_send(&fragment)
                .unwrap_or_else(|e| panic!("seed {seed}: write to {addr}: {e}"));
        }
        for line in &batch {
            overlong += (line.len() > MAX_LINE) as usize;
            match check_live_reply(&mut kinds, side, &mut conn, line, &a_bin) {
                Ok(true) => {}
                Ok(false) => {
                    conn = Client::connect(addr);
                    fresh = true;
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

#[test]
fn live_servers_answer_every_line_exactly_once_and_stay_up() {
    let mut f = Fuzz::new("live_servers_answer_every_line_exactly_once_and_stay_up");
    let (tracker, dir, peer) = live_peer("fuzz-live");
    live_fuzz(&mut f, Side::Tracker, tracker.addr(), 3000);
    live_fuzz(&mut f, Side::Peer, peer.addr(), 3000);
    // The peer's folder holds what it held, and the tracker still knows it.
    assert_eq!(files_in(&dir), [A_BIN, EMPTY]);
    assert_eq!(who_has(&tracker, A_BIN), [peer.addr().to_string()]);
}

#[test]
fn overlong_lines_and_lines_without_a_newline() {
    let (tracker, _dir, peer) = live_peer("fuzz-long");
    for addr in [tracker.addr(), peer.addr()] {
        // 200 KB then a newline: skipped, answered, and the connection goes on.
        let mut c = Client::connect(addr);
        let mut long = vec![b'G'; 200_000];
        long.push(b'\n');
        c.send(&long);
        let reply = c.try_line().unwrap().unwrap();
        assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
        // Exactly at the limit is a line like any other; one byte more is not.
        let mut at_limit = b"PING".to_vec();
        at_limit.resize(MAX_LINE, b' ');
        at_limit.push(b'\n');
        c.send(&at_limit);
        assert_eq!(c.try_line().unwrap().unwrap(), "PONG", "{addr}");
        let mut past = b"PING".to_vec();
        past.resize(MAX_LINE + 1, b' ');
        past.push(b'\n');
        c.send(&past);
        assert!(c.try_line().unwrap().unwrap().starts_with("ERR too-long "));
        // `\r\n` counts the `\r` towards the limit but is otherwise a plain end of line.
        assert_eq!(c.ask("PING\r"), "PONG");
        assert_eq!(c.ask("PING"), "PONG");

        // A line with no newline, then the end of the stream: the server closes without an
        // answer (only complete lines are requests). The line before it is still answered.
        let mut c = Client::connect(addr);
        c.send(b"PING\nPING");
        c.stream().shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.try_line().unwrap().as_deref(), Some("PONG"), "{addr}");
        assert_eq!(
            c.try_line().unwrap(),
            None,
            "{addr}: a reply to an unfinished line"
        );
        // The same with 200 KB of unfinished line.
        let mut c = Client::connect(addr);
        c.send(&vec![b'x'; 200_000]);
        c.stream().shutdown(Shutdown::Write).unwrap();
        assert_eq!(c.try_line().unwrap(), None, "{addr}");

        // Past 1 MiB without a newline: `ERR too-long` and the connection is closed. Exactly
        // one byte past the limit, so the server has read every byte sent when it closes
        // (unread input would turn its close into a reset that may swallow the reply).
        let mut c = Client::connect(addr);
        c.send(&vec![b'y'; (1 << 20) + 1]);
        let reply = c.line();
        assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}");
        assert!(c.closed(), "{addr}: still open after a line without end");
        // Far past it (a client that keeps sending): closed, reply or not; no hang.
        let mut c = Client::connect(addr);
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
        match c.try_line() {
            Ok(Some(reply)) => assert!(reply.starts_with("ERR too-long "), "{addr}: {reply}"),
            Ok(None) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{addr}: {e}"),
        }
        writer.join().unwrap();
        // The server is still there.
        assert_eq!(Client::connect(addr).ask("PING"), "PONG", "{addr}");
    }
}
