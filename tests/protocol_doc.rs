//! PROTOCOL.md is executable: every transcript in it is replayed against a live tracker and
//! peer, so the document cannot drift from the code.
//!
//! The markup (PROTOCOL.md's "Reading the transcripts" says the same for people):
//! - a fenced block whose info string is `transcript tracker` or `transcript peer` is one fresh
//!   TCP connection to that server;
//! - `C: <line>` is sent as `<line>\n` (`C:` alone sends an empty line);
//! - `S: <line>` must be the next line the server sends, byte for byte;
//! - `D: <text>` lines right after `S: DATA <len>` are that block's payload, each line followed
//!   by `\n`; when the payload does not end in a newline, `<len>` is one less than that sum;
//! - `<peer>` stands for the peer's `ip:port` as the tracker knows it (its port is picked by the
//!   OS);
//! - `<expiry>` and `<mac>` (a ticket's clock- and login-dependent words) match any word in an
//!   `S:` line and stand for the word so matched in later `C:` lines.
//!
//! After its last line the test half-closes the connection and expects nothing more from the
//! server, so a transcript shows every byte its exchange produced.
//!
//! The world the transcripts run in is the one PROTOCOL.md's "How the examples were recorded"
//! describes: a tracker with the default configuration, and one peer started with
//! `--piece-size 1024 --timeout 2` whose folder holds `test1.txt` and `lines.txt`. Each
//! transcript starts from that state: after a tracker transcript the test waits (a bounded poll)
//! until the tracker has forgotten whatever the transcript registered.
//!
//! Besides the replay, the test asks both servers for `HELP` and fails if a verb they name has
//! no section or no transcript, and checks that every error code and limit is documented.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use torrentphile::conn::Timeouts;
use torrentphile::peer::{Peer, PeerConfig};
use torrentphile::protocol::{ErrCode, MAX_LINE, MAX_NAME, MAX_PIECE, MAX_PIECES, MIN_PIECE};
use torrentphile::tracker::accounts::AccountsConfig;
use torrentphile::tracker::{Tracker, TrackerConfig};

/// How long the test waits for any one reply (the slowest transcript waits 2 s for a timeout).
const REPLY_WAIT: Duration = Duration::from_secs(5);
/// The one placeholder a transcript may use.
const PEER: &str = "<peer>";

/// `test1.txt` in the peer's folder.
const TEST1: &str = "Hello, Torrentphile peers!\n";

/// `lines.txt` in the peer's folder: what
/// `for i in $(seq -w 1 70); do echo "line $i of 70: a verified piece"; done` writes.
fn lines_txt() -> String {
    (1..=70)
        .map(|i| format!("line {i:02} of 70: a verified piece\n"))
        .collect()
}

fn doc_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("PROTOCOL.md")
}

fn read_doc() -> String {
    let path = doc_path();
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Tracker,
    Peer,
    /// `transcript torrent-tracker` / `transcript torrent-peer`: the world of the "Torrents"
    /// section (a tracker and a peer seeding `notes.torrent`), replayed by its own test.
    TorrentTracker,
    TorrentPeer,
}

#[derive(Debug)]
enum Step {
    /// A `C:` line.
    Send(String),
    /// An `S:` line.
    Expect(String),
    /// The `D:` lines after an `S: DATA <len>`, and the length that line announced.
    Data { lines: Vec<String>, len: u64 },
}

#[derive(Debug)]
struct Transcript {
    target: Target,
    /// Line number (1-based) of the opening fence, for messages.
    at: usize,
    /// Each step with its line number.
    steps: Vec<(usize, Step)>,
}

/// Find and parse every transcript block. Malformed markup panics with its line number.
fn transcripts(doc: &str) -> Vec<Transcript> {
    let mut found = Vec::new();
    let mut current: Option<Transcript> = None;
    for (i, line) in doc.lines().enumerate() {
        let n = i + 1;
        let Some(t) = current.as_mut() else {
            if let Some(tag) = line.trim_end().strip_prefix("```transcript") {
                let target = match tag.trim() {
                    "tracker" => Target::Tracker,
                    "peer" => Target::Peer,
                    "torrent-tracker" => Target::TorrentTracker,
                    "torrent-peer" => Target::TorrentPeer,
                    other => panic!("PROTOCOL.md:{n}: unknown transcript target {other:?}"),
                };
                current = Some(Transcript {
                    target,
                    at: n,
                    steps: Vec::new(),
                });
            }
            continue;
        };
        if line.trim_end() == "```" {
            let t = current.take().expect("inside a block");
            assert!(
                !t.steps.is_empty(),
                "PROTOCOL.md:{}: empty transcript",
                t.at
            );
            found.push(t);
            continue;
        }
        let (tag, text) = match line.split_once(':') {
            Some((tag, rest)) if tag.len() == 1 => {
                let text = rest.strip_prefix(' ').unwrap_or(rest);
                assert!(
                    rest.is_empty() || rest.starts_with(' '),
                    "PROTOCOL.md:{n}: write `{tag}: ` with one space after the colon"
                );
                (tag, text.to_string())
            }
            _ => panic!("PROTOCOL.md:{n}: a transcript line starts with `C: `, `S: ` or `D: `"),
        };
        match tag {
            "C" => t.steps.push((n, Step::Send(text))),
            "S" => {
                let step = match text.strip_prefix("DATA ") {
                    Some(len) => {
                        let len = len.parse().unwrap_or_else(|_| {
                            panic!("PROTOCOL.md:{n}: DATA needs a length: {text:?}")
                        });
                        t.steps.push((n, Step::Expect(text)));
                        Step::Data {
                            lines: Vec::new(),
                            len,
                        }
                    }
                    None => Step::Expect(text),
                };
                t.steps.push((n, step));
            }
            "D" => match t.steps.last_mut() {
                Some((_, Step::Data { lines, .. })) => lines.push(text),
                _ => panic!("PROTOCOL.md:{n}: `D:` lines must follow `S: DATA <len>`"),
            },
            other => panic!("PROTOCOL.md:{n}: unknown transcript prefix `{other}:`"),
        }
    }
    if let Some(t) = current {
        panic!("PROTOCOL.md:{}: transcript never closed", t.at);
    }
    found
}

/// The exact payload bytes the `D:` lines describe.
fn payload(lines: &[String], len: u64, at: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    if bytes.len() as u64 == len + 1 {
        // The payload stops before its last newline (a byte range cut mid-line).
        bytes.pop();
    }
    if bytes.len() as u64 != len {
        return Err(format!(
            "PROTOCOL.md:{at}: DATA {len} is followed by {} bytes of `D:` lines",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Replay one transcript on a fresh connection to `addr`.
fn replay(
    addr: SocketAddr,
    t: &Transcript,
    peer_id: &str,
    captured: &mut HashMap<&'static str, String>,
) -> Result<(), String> {
    let subst = |s: &str| s.replace(PEER, peer_id);
    let fail = |n: usize, what: String| Err(format!("PROTOCOL.md:{n}: {what}"));
    let stream = TcpStream::connect_timeout(&addr, REPLY_WAIT).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(REPLY_WAIT))
        .and_then(|()| stream.set_write_timeout(Some(REPLY_WAIT)))
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    for (n, step) in &t.steps {
        let n = *n;
        match step {
            Step::Send(line) => {
                let mut line = format!("{}\n", subst(line));
                for (word, value) in captured.iter() {
                    line = line.replace(word, value);
                }
                if let Err(e) = writer.write_all(line.as_bytes()) {
                    return fail(n, format!("cannot send {line:?}: {e}"));
                }
            }
            Step::Expect(expected) => {
                let expected = format!("{}\n", subst(expected));
                let mut got = Vec::new();
                if let Err(e) = reader.read_until(b'\n', &mut got) {
                    return fail(n, format!("expected {expected:?}, but reading failed: {e}"));
                }
                let got_text = String::from_utf8_lossy(&got).into_owned();
                if CAPTURES.iter().any(|c| expected.contains(c)) {
                    if let Some(found) = capture(&expected, &got_text) {
                        captured.extend(found);
                        continue;
                    }
                    return fail(n, format!("expected {expected:?}\n       got {got_text:?}"));
                }
                if got != expected.as_bytes() {
                    let got = got_text;
                    return fail(n, format!("expected {expected:?}\n       got {got:?}"));
                }
            }
            Step::Data { lines, len } => {
                let lines: Vec<String> = lines.iter().map(|l| subst(l)).collect();
                let expected = payload(&lines, *len, n)?;
                let mut got = vec![0; expected.len()];
                if let Err(e) = reader.read_exact(&mut got) {
                    return fail(n, format!("reading the {len} bytes of DATA failed: {e}"));
                }
                if got != expected {
                    let (e, g) = (
                        String::from_utf8_lossy(&expected),
                        String::from_utf8_lossy(&got),
                    );
                    return fail(
                        n,
                        format!("DATA payload differs:\nexpected {e:?}\n     got {g:?}"),
                    );
                }
            }
        }
    }
    // Nothing may follow what the transcript shows. Half-close so the server ends its side
    // (it may have closed already, after BYE or a timeout).
    let _ = writer.shutdown(Shutdown::Write);
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) if rest.is_empty() => Ok(()),
        Ok(_) => fail(
            t.at,
            format!(
                "the server sent more than the transcript shows: {:?}",
                String::from_utf8_lossy(&rest)
            ),
        ),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => fail(
            t.at,
            "the server kept the connection open after a half-close".into(),
        ),
        // A reset after the server closed (BYE, timeout) is still the end of the exchange.
        Err(_) => Ok(()),
    }
}

/// Words of a ticket that change with the clock and the holder's login: in an `S:` line
/// they match any word and remember it; in a later `C:` line (of any transcript after it)
/// they stand for what was remembered.
const CAPTURES: [&str; 3] = ["<expiry>", "<mac>", "<standby>"];

/// Match `got` against `expected` word by word, capture words standing for any word.
fn capture(expected: &str, got: &str) -> Option<Vec<(&'static str, String)>> {
    let (e, g): (Vec<&str>, Vec<&str>) = (
        expected.trim_end().split(' ').collect(),
        got.trim_end().split(' ').collect(),
    );
    if e.len() != g.len() || !got.ends_with('\n') {
        return None;
    }
    let mut found = Vec::new();
    for (e, g) in e.iter().zip(&g) {
        match CAPTURES.iter().find(|c| *c == e) {
            Some(c) if !g.is_empty() => found.push((*c, g.to_string())),
            _ if e == g => {}
            _ => return None,
        }
    }
    Some(found)
}

/// A folder under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tp-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The tracker and peer the transcripts talk to.
struct World {
    tracker: Tracker,
    peer: Peer,
    peer_id: String,
    _dir: TempDir,
    _src: TempDir,
}

/// `notes.txt` in group g1 of the example peer.
const NOTES: &str = "group notes: meet at 10\n";

/// The accounts part of the world (PROTOCOL.md's "Accounts and groups" says the same): the
/// example peer is logged in as alice (password `alice-pw`), admin of group g1, and shares
/// `notes.txt` there; bob (password `bob-pw`) is a member of g1, logged out.
fn accounts_world(tracker: &Tracker, peer: &Peer, src: &Path) {
    use torrentphile::protocol::AccountRequest as R;
    let ok = |r: Result<String, String>| r.unwrap_or_else(|e| panic!("world setup: {e}"));
    ok(peer.create_user("alice", "alice-pw"));
    ok(peer.login("alice", "alice-pw"));
    ok(peer.account(R::CreateGroup { group: "g1".into() }));
    let notes = src.join("notes.txt");
    fs::write(&notes, NOTES).expect("write notes.txt");
    peer.upload_group(&notes, "g1")
        .expect("share notes.txt in g1");
    let bob_dir = src.join("bob");
    fs::create_dir_all(&bob_dir).expect("bob's folder");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind bob");
    let bob = Peer::start(
        listener,
        PeerConfig::new(&tracker.addr().to_string(), &bob_dir),
    )
    .expect("start bob");
    bob.wait_registered(REPLY_WAIT).expect("bob registers");
    ok(bob.create_user("bob", "bob-pw"));
    ok(bob.login("bob", "bob-pw"));
    ok(bob.account(R::Join { group: "g1".into() }));
    ok(peer.account(R::Accept {
        group: "g1".into(),
        user: "bob".into(),
    }));
    ok(bob.logout());
}

impl World {
    fn start() -> World {
        let dir = TempDir::new("protocol-doc");
        fs::write(dir.0.join("test1.txt"), TEST1).expect("write test1.txt");
        fs::write(dir.0.join("lines.txt"), lines_txt()).expect("write lines.txt");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tracker");
        // `TORRENTPHILE_TEST_SEED=1 torrentphile tracker --iterations 4096`: salts and nonces
        // are derived from the seed, so the account transcripts are exact.
        let config = TrackerConfig {
            accounts: AccountsConfig {
                test_seed: Some(1),
                iterations: 4096,
                ..AccountsConfig::default()
            },
            ..TrackerConfig::default()
        };
        let tracker = Tracker::start(listener, config).expect("start tracker");
        // `torrentphile peer --piece-size 1024 --timeout 2`.
        let mut config = PeerConfig::new(&tracker.addr().to_string(), &dir.0);
        config.piece_size = Some(1024);
        config.timeouts = Timeouts::uniform(Duration::from_secs(2));
        config.download.timeouts = config.timeouts;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind peer");
        let peer = Peer::start(listener, config).expect("start peer");
        let peer_id = peer
            .wait_registered(REPLY_WAIT)
            .expect("the peer registers");
        let src = TempDir::new("protocol-doc-src");
        accounts_world(&tracker, &peer, &src.0);
        let world = World {
            tracker,
            peer,
            peer_id,
            _dir: dir,
            _src: src,
        };
        world
            .wait_for_baseline()
            .expect("the peer announces its files");
        world
    }

    /// Wait until the tracker knows exactly the peer and its two files again: a transcript's
    /// registration is forgotten just after its connection closes, not before `ACK bye`.
    fn wait_for_baseline(&self) -> Result<(), String> {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            let (peers, files) = {
                let registry = self.tracker.registry();
                (registry.peer_count(), registry.file_count())
            };
            // The peer has offered its standby too (the STANDBY transcript lists it).
            let offered = !self.peer.link_state().candidates.is_empty();
            if (peers, files) == (1, 2) && offered {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the tracker still knows {peers} peers and {files} files, not 1 and 2"
                ));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Tracker => self.tracker.addr(),
            Target::Peer => self.peer.addr(),
            Target::TorrentTracker | Target::TorrentPeer => {
                panic!("the torrent transcripts run in their own world")
            }
        }
    }

    /// One request, one reply line (for `HELP`).
    fn ask(&self, target: Target, line: &str) -> String {
        let mut stream = TcpStream::connect(self.addr(target)).expect("connect");
        stream.set_read_timeout(Some(REPLY_WAIT)).expect("timeout");
        stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .expect("a reply");
        reply.trim_end().to_string()
    }
}

/// The verbs a server lists in its `HELP` reply (`ACK tracker verbs: A B C`).
fn help_verbs(reply: &str) -> Vec<String> {
    let (_, verbs) = reply
        .split_once("verbs:")
        .unwrap_or_else(|| panic!("HELP answered {reply:?}"));
    verbs.split_whitespace().map(str::to_string).collect()
}

/// The text of the part of the doc under the `## ` heading that contains `title`.
fn part<'a>(doc: &'a str, title: &str) -> &'a str {
    let start = doc
        .match_indices("\n## ")
        .find(|(i, _)| doc[i + 4..].lines().next().unwrap_or("").contains(title))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no `## ...{title}...` part"));
    let end = doc[start + 3..]
        .find("\n## ")
        .map_or(doc.len(), |i| start + 3 + i);
    &doc[start..end]
}

#[test]
fn every_transcript_in_protocol_md_replays_against_live_servers() {
    let doc = read_doc();
    let transcripts = transcripts(&doc);
    let world = World::start();

    let mut failures = Vec::new();
    let mut captured = HashMap::new();
    for t in transcripts
        .iter()
        .filter(|t| matches!(t.target, Target::Tracker | Target::Peer))
    {
        if let Err(e) = replay(world.addr(t.target), t, &world.peer_id, &mut captured) {
            failures.push(e);
        }
        if t.target == Target::Tracker
            && let Err(e) = world.wait_for_baseline()
        {
            failures.push(format!("after the transcript at PROTOCOL.md:{}: {e}", t.at));
        }
    }

    // Every verb a server's HELP names has its own section and appears in a transcript.
    for (target, title) in [
        (Target::Tracker, "Tracker verbs"),
        (Target::Peer, "Peer verbs"),
    ] {
        let verbs = help_verbs(&world.ask(target, "HELP"));
        assert!(!verbs.is_empty(), "{target:?} HELP names no verbs");
        let section = part(&doc, title);
        let accounts = part(&doc, "Accounts and groups");
        for verb in verbs {
            let heading = section.lines().any(|l| {
                l.strip_prefix("### ")
                    .and_then(|h| h.split_whitespace().next())
                    == Some(verb.as_str())
            }) || accounts.lines().any(|l| {
                // The account verbs are documented in groups: `### SALT CREATE-USER ...: title`.
                l.strip_prefix("### ").is_some_and(|h| {
                    h.split(':')
                        .next()
                        .unwrap_or_default()
                        .split_whitespace()
                        .any(|w| w == verb)
                })
            });
            if !heading {
                failures.push(format!(
                    "{target:?} verb {verb} has no `### {verb}` section under `## {title}`"
                ));
            }
            let shown = transcripts.iter().any(|t| {
                t.target == target
                    && t.steps.iter().any(|(_, s)| {
                        matches!(s, Step::Send(line)
                            if line.split_whitespace().next() == Some(verb.as_str()))
                    })
            });
            if !shown {
                failures.push(format!("{target:?} verb {verb} is in no transcript"));
            }
        }
    }

    // The kinds of error a reader needs to see are shown, on both servers.
    for prefix in [
        "ERR unknown-verb",
        "ERR bad-request usage:",
        "ERR bad-name name \"../etc/passwd\"",
        "ERR not-found",
    ] {
        for target in [Target::Tracker, Target::Peer] {
            let shown = transcripts.iter().any(|t| {
                t.target == target
                    && t.steps
                        .iter()
                        .any(|(_, s)| matches!(s, Step::Expect(l) if l.starts_with(prefix)))
            });
            if !shown {
                failures.push(format!("no {target:?} transcript shows `{prefix} ...`"));
            }
        }
    }

    assert!(
        failures.is_empty(),
        "PROTOCOL.md and the code disagree ({} transcripts replayed):\n\n{}",
        transcripts.len(),
        failures.join("\n\n")
    );
}

/// Every error code, listed so that adding one to `ErrCode` without documenting it fails to
/// compile here (the match is exhaustive) and then fails the test below.
fn all_error_codes() -> Vec<ErrCode> {
    use ErrCode::*;
    let all = vec![
        BadRequest,
        UnknownVerb,
        BadName,
        TooLong,
        NotFound,
        Conflict,
        NotRegistered,
        Range,
        Unavailable,
        Busy,
        Timeout,
        Internal,
        NotLoggedIn,
        LoggedIn,
        SlowDown,
        InvalidProof,
        BadLogin,
        Exists,
        NoUser,
        NoGroup,
        NotMember,
        NotAdmin,
        NoRequest,
        AdminStays,
        NotOwner,
        Storage,
        TicketForged,
        TicketExpired,
        TicketAddress,
        TicketFile,
        TicketGroup,
        TicketRevoked,
        Limit,
        NotLeader,
    ];
    for code in &all {
        match code {
            BadRequest | UnknownVerb | BadName | TooLong | NotFound | Conflict | NotRegistered
            | Range | Unavailable | Busy | Timeout | Internal | Limit | NotLeader => {}
            NotLoggedIn | LoggedIn | SlowDown | InvalidProof | BadLogin | Exists | NoUser
            | NoGroup | NotMember | NotAdmin | NoRequest | AdminStays | NotOwner | Storage => {}
            TicketForged | TicketExpired | TicketAddress | TicketFile | TicketGroup
            | TicketRevoked => {}
        }
    }
    all
}

#[test]
fn protocol_md_defines_every_error_code_and_limit() {
    let doc = read_doc();
    let errors = part(&doc, "Errors");
    for code in all_error_codes() {
        let code = code.as_str();
        assert!(
            errors.contains(&format!("`{code}`")),
            "PROTOCOL.md's Errors part does not define `{code}`"
        );
    }
    let limits = part(&doc, "Limits");
    for (what, value) in [
        ("MAX_LINE", MAX_LINE as u64),
        ("MAX_NAME", MAX_NAME as u64),
        ("MAX_PIECES", MAX_PIECES),
        ("MIN_PIECE", MIN_PIECE as u64),
        ("MAX_PIECE", MAX_PIECE as u64),
    ] {
        assert!(
            limits.contains(&value.to_string()),
            "PROTOCOL.md's Limits part does not give {what} = {value}"
        );
    }
}

#[test]
fn transcript_markup_is_parsed_as_documented() {
    let doc = "text\n```transcript peer\nC: GET a\nS: DATA 3\nD: ab\nC:\nS: ERR x\n```\n";
    let t = transcripts(doc);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].target, Target::Peer);
    assert_eq!(t[0].steps.len(), 5);
    assert!(matches!(&t[0].steps[2].1, Step::Data { lines, len: 3 } if lines == &["ab"]));
    assert!(matches!(&t[0].steps[3].1, Step::Send(l) if l.is_empty()));
    assert_eq!(payload(&["ab".into()], 3, 1), Ok(b"ab\n".to_vec()));
    assert_eq!(payload(&["ab".into()], 2, 1), Ok(b"ab".to_vec()));
    assert!(payload(&["ab".into()], 5, 1).is_err());
}

/// `class notes/week 1.txt` (30690 bytes) and `class notes/week 2.txt` (2380 bytes), as the
/// shell loops of PROTOCOL.md's "Torrents" write them.
fn class_notes(root: &Path) -> PathBuf {
    let dir = root.join("class notes");
    fs::create_dir_all(&dir).expect("create class notes");
    let week1: String = (1..=990)
        .map(|i| format!("week 1, line {i:03} of 990: notes\n"))
        .collect();
    let week2: String = (1..=70)
        .map(|i| format!("week 2, line {i:02} of 70: more notes\n"))
        .collect();
    fs::write(dir.join("week 1.txt"), week1).expect("write week 1");
    fs::write(dir.join("week 2.txt"), week2).expect("write week 2");
    dir
}

#[test]
fn the_torrent_transcripts_replay_against_a_seeding_peer() {
    use torrentphile::torrent::create::{self, CreateOptions, MKTORRENT_CREATED_BY, Style};
    let doc = read_doc();
    let dir = TempDir::new("protocol-doc-torrent");
    let folder = class_notes(&dir.0);
    // `mktorrent -l 15 -a http://127.0.0.1:8000/announce -o notes.torrent "class notes"`.
    let opts = CreateOptions {
        announce: vec![vec!["http://127.0.0.1:8000/announce".into()]],
        piece_length_log2: Some(15),
        private: false,
        name: None,
        comment: None,
        creation_date: None,
        created_by: MKTORRENT_CREATED_BY.into(),
        style: Style::Mktorrent,
        threads: 2,
    };
    let bytes = create::create(&folder, &opts).expect("create notes.torrent");
    let file = dir.0.join("notes.torrent");
    fs::write(&file, bytes).expect("write notes.torrent");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tracker");
    let tracker = Tracker::start(listener, TrackerConfig::default()).expect("start tracker");
    let carol = dir.0.join("carol");
    let config = PeerConfig::new(&tracker.addr().to_string(), &carol);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind peer");
    let peer = Peer::start(listener, config).expect("start peer");
    let peer_id = peer.wait_registered(REPLY_WAIT).expect("registers");
    peer.share_torrent(&file)
        .expect("the data beside notes.torrent verifies");
    let mut failures = Vec::new();
    let mut replayed = 0;
    for t in &transcripts(&doc) {
        let addr = match t.target {
            Target::TorrentTracker => tracker.addr(),
            Target::TorrentPeer => peer.addr(),
            _ => continue,
        };
        replayed += 1;
        if let Err(e) = replay(addr, t, &peer_id, &mut HashMap::new()) {
            failures.push(e);
        }
    }
    assert!(replayed >= 2, "PROTOCOL.md has no torrent transcripts");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
