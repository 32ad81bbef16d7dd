//! The servers' own read-parse-answer loop (`server::line_loop`, which both the tracker and
//! the peer run on every connection), in process over one loopback connection, fed generated
//! lines in random fragments. Its request handler here only echoes the parsed request, so
//! every reply is determined by the line: `ERR too-long` for a line over `MAX_LINE` bytes,
//! exactly the parser's `ERR` line for a bad line, `ACK <request>` for a good one. Asserts that
//! every line gets exactly that one reply, in order, and nothing more.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use torrentphile::conn::{Conn, Timeouts, Trace};
use torrentphile::protocol::{MAX_LINE, Reply, Role, parse_request_for};
use torrentphile::server::{Answer, line_loop};

use super::common::{Client, listener};
use super::lines::{any_request_line, wire_fragments};
use super::values::valid_request;
use super::{CODES, Fuzz, show};

/// Lines through the loop per run.
pub(super) const LINES: usize = 190_000;

/// Serve one connection with `line_loop` and a handler that answers `ACK <request>`; returns
/// how many requests reached the handler.
fn echo_server(listener: std::net::TcpListener) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let timeouts = Timeouts::uniform(Duration::from_secs(60));
        let mut conn = Conn::new(Arc::new(stream), timeouts, Trace::off()).unwrap();
        let mut handled = 0;
        // As the tracker: a peer's verb is `unknown-verb` before its arguments are read.
        line_loop(&mut conn, Role::Tracker, |_, request| {
            handled += 1;
            Answer::Line(Reply::Ack(request.to_string()))
        });
        handled
    })
}

/// A line for the loop: the parser's lines and valid requests, and now and then one at,
/// just past or far past the limit (a long run is as good as noise there, and far cheaper).
fn framed_line(f: &mut Fuzz) -> Vec<u8> {
    match f.below(1000) {
        0 if f.one_in(4) => vec![b'G'; 200_000 + f.below(1000)],
        1 => vec![b'A'; MAX_LINE],
        2 => vec![b'A'; MAX_LINE + 1],
        3 => {
            // The `\r` of a `\r\n` counts towards the limit.
            let mut line = b"PING".to_vec();
            line.resize(MAX_LINE, b' ');
            line.push(b'\r');
            line
        }
        4..=300 => valid_request(f).to_string().into_bytes(),
        _ => any_request_line(f),
    }
}

/// The one reply `line_loop` with the echo handler owes `line`.
fn expected_reply(line: &[u8]) -> Result<String, &'static str> {
    if line.len() > MAX_LINE {
        return Err("ERR too-long ");
    }
    Ok(match parse_request_for(line, Role::Tracker) {
        Ok(request) => Reply::Ack(request.to_string()).to_string(),
        Err(e) => e.into_reply().to_string(),
    })
}

#[test]
fn the_line_loop_answers_every_line_exactly_once() {
    let mut f = Fuzz::new("the_line_loop_answers_every_line_exactly_once");
    let seed = f.seed;
    let start = std::time::Instant::now();
    // The lines, split at any newline a generator put inside (that ends a line too).
    let mut lines: Vec<Vec<u8>> = Vec::with_capacity(LINES + 100);
    while lines.len() < LINES {
        let line = framed_line(&mut f);
        lines.extend(line.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    // The bytes on the wire, in batches of up to 64 lines, each cut into up to 8 fragments.
    let mut fragments: Vec<Vec<u8>> = Vec::new();
    for batch in lines.chunks(64) {
        let n = 1 + f.below(batch.len());
        for part in batch.chunks(n) {
            fragments.extend(wire_fragments(&mut f, part, 8));
        }
    }
    fragments.push(b"PING\n".to_vec());

    let listener = listener();
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let mut client = Client::connect(addr);
    // Written from a thread of its own while this one reads: neither side's buffers fill up.
    let mut out = client.stream().try_clone().unwrap();
    let writer = thread::spawn(move || {
        use std::io::Write;
        for fragment in fragments {
            out.write_all(&fragment).unwrap();
        }
        out.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let (mut good, mut overlong) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let reply = client
            .try_line()
            .unwrap_or_else(|e| panic!("seed {seed}: line {i} {}: {e}", show(line)))
            .unwrap_or_else(|| panic!("seed {seed}: no reply to line {i} {}", show(line)));
        match expected_reply(line) {
            Err(prefix) => {
                assert!(
                    reply.starts_with(prefix),
                    "seed {seed}: line {i} of {} bytes got {reply:?}",
                    line.len()
                );
                overlong += 1;
            }
            Ok(expect) => {
                assert_eq!(reply, expect, "seed {seed}: line {i}: {}", show(line));
                good += reply.starts_with("ACK ") as usize;
            }
        }
        if let Some(code) = reply.strip_prefix("ERR ") {
            let code = code.split(' ').next().unwrap_or("");
            assert!(CODES.contains(&code), "seed {seed}: {reply:?}");
        }
    }
    // The last line, then the end: nothing more was sent.
    assert_eq!(client.line(), "ACK PING", "seed {seed}");
    assert_eq!(
        client.try_line().unwrap(),
        None,
        "seed {seed}: a reply too many"
    );
    writer.join().unwrap();
    assert_eq!(server.join().unwrap(), good + 1, "seed {seed}");
    eprintln!(
        "{:?} {} lines through line_loop: {good} requests, {overlong} overlong, the rest errors",
        start.elapsed(),
        lines.len()
    );
    // About 30% of the lines are valid requests, and the tracker's own verbs among them
    // (a peer's verb is `unknown-verb` here) come to about 8%: a twentieth says the mix is
    // not degenerate without failing on a seed's luck.
    assert!(
        overlong > 0 && good > lines.len() / 20,
        "seed {seed}: the mix is off"
    );
}
