//! The parsers alone, in process: generated lines straight into `parse_request` and
//! `parse_reply`, and valid values through `Display` and back. Asserts that a line either parses
//! to a value that prints as a line a server accepts and parses back to the same value, or fails
//! with a documented code and a short printable message whose `ERR` line parses back; never a
//! panic.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::{Debug, Display};
use std::time::Instant;

use torrentphile::protocol::{ErrCode, MAX_LINE, ProtoError, Reply, parse_reply, parse_request};

use super::lines::{any_reply_line, any_request_line};
use super::values::{valid_reply, valid_request};
use super::{CODES, Fuzz, printable, printable_or_tab, show};

// ---------------------------------------------------------------------------------------------
// Parser invariants

/// An error is one of the documented codes, and its message is a short line of printable
/// ASCII (it goes on the wire as `ERR <code> <message>`).
fn check_error(f: &Fuzz, input: &[u8], e: &ProtoError, ascii_input: bool) {
    // Every check below depends only on the code, the message and `ascii_input`, and most
    // errors repeat (a million lines, a few thousand messages): each is checked once per test.
    let bit = 1u32 << (2 * e.code as u32 + ascii_input as u32);
    let seen = CHECKED.with_borrow(|c| c.get(e.message.as_str()).is_some_and(|b| b & bit != 0));
    if seen {
        return;
    }
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
    CHECKED.with_borrow_mut(|c| {
        if c.len() < 100_000 {
            *c.entry(e.message.clone()).or_default() |= bit;
        }
    });
}

thread_local! {
    /// The error messages `check_error` has passed on this test's thread, with a bit per
    /// (code, `ascii_input`) they passed with.
    static CHECKED: RefCell<HashMap<String, u32>> = RefCell::new(HashMap::new());
}

/// Bytes the request grammar allows: printable ASCII, spaces and tabs (one trailing `\r`
/// aside).
fn request_bytes_ok(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    printable_or_tab(line, true)
}

/// Check one request line; true when it parsed.
fn check_request_line(f: &Fuzz, line: &[u8]) -> bool {
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
            true
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
            false
        }
    }
}

/// Check one reply line; true when it parsed.
fn check_reply_line(f: &Fuzz, line: &[u8]) -> bool {
    let seed = f.seed;
    let ascii = printable_or_tab(line, true);
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
            true
        }
        Err(e) => {
            check_error(f, line, &e, ascii);
            false
        }
    }
}

/// Request lines through `parse_request` per run.
pub(super) const REQUEST_LINES: usize = 420_000;
/// Reply lines through `parse_reply` per run.
pub(super) const REPLY_LINES: usize = 350_000;
/// Valid requests, and as many valid replies, through `Display` and back per run.
pub(super) const VALUES: usize = 20_000;

/// Draw `count` lines from `generate` and `check` each (true when it parsed); the generators
/// must reach both sides of the parser, or the test proves little.
fn line_stream(
    test: &'static str,
    count: usize,
    generate: fn(&mut Fuzz) -> Vec<u8>,
    check: fn(&Fuzz, &[u8]) -> bool,
) {
    let mut f = Fuzz::new(test);
    f.huge_one_in = 1000;
    let (mut ok, mut bytes) = (0usize, 0usize);
    let start = Instant::now();
    for _ in 0..count {
        let line = generate(&mut f);
        ok += check(&f, &line) as usize;
        bytes += line.len();
    }
    eprintln!(
        "{test}: {count} lines ({ok} valid, {bytes} bytes) in {:?}",
        start.elapsed()
    );
    assert!(
        ok > count / 10 && ok < count * 9 / 10,
        "seed {}: {ok} of {count} lines parsed; the generator is off balance",
        f.seed
    );
}

/// Random, shaped and mutated request lines: each parses to a request that prints and parses
/// back, or fails with a documented code (see `check_request_line`). A panic fails the test with
/// the seed printed (by `Fuzz`'s drop).
#[test]
fn request_lines_parse_back_or_fail_with_a_documented_code() {
    line_stream(
        "request_lines_parse_back_or_fail_with_a_documented_code",
        REQUEST_LINES,
        any_request_line,
        check_request_line,
    );
}

/// Random and mutated reply lines: each parses to a reply that (if printable ASCII) prints and
/// parses back, or fails with a documented code (see `check_reply_line`).
#[test]
fn reply_lines_parse_back_or_fail_with_a_documented_code() {
    line_stream(
        "reply_lines_parse_back_or_fail_with_a_documented_code",
        REPLY_LINES,
        any_reply_line,
        check_reply_line,
    );
}

/// `value` prints as a line that parses back to it.
fn assert_round_trip<T: Display + Debug + PartialEq>(
    f: &Fuzz,
    value: T,
    parse: fn(&[u8]) -> Result<T, ProtoError>,
) {
    let text = value.to_string();
    assert_eq!(
        parse(text.as_bytes()).as_ref(),
        Ok(&value),
        "seed {}: {}",
        f.seed,
        show(text.as_bytes())
    );
}

/// Every valid request and reply value goes out through `Display` and comes back unchanged.
#[test]
fn valid_values_print_and_parse_back_unchanged() {
    let mut f = Fuzz::new("valid_values_print_and_parse_back_unchanged");
    let start = Instant::now();
    for _ in 0..VALUES {
        let request = valid_request(&mut f);
        assert_round_trip(&f, request, parse_request);
        let reply = valid_reply(&mut f);
        assert_round_trip(&f, reply, parse_reply);
    }
    eprintln!(
        "{VALUES} request and {VALUES} reply values in {:?}",
        start.elapsed()
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
