//! Accounts under bad input: random, shaped and mutated account lines to a live tracker on a
//! logged-in connection (every line one documented reply, the tracker still serving logins
//! after), and the journal reader on random, truncated and damaged bytes (never a panic; a
//! torn last record is dropped and named, a damaged record with records after it stops the
//! start naming its line).

use std::fs;
use std::path::Path;

use torrentphile::auth::base64;
use torrentphile::auth::scram::{self, Credentials};
use torrentphile::journal::{JOURNAL, Journal, frame, read_records};
use torrentphile::protocol::{MAX_LINE, Reply, parse_reply};
use torrentphile::tracker::TrackerConfig;
use torrentphile::tracker::accounts::AccountsConfig;

use super::common::{Client, temp_dir, tracker_with};
use super::lines::{any_request_line, random_bytes};
use super::values::valid_account_request;
use super::{CODES, Fuzz, printable, show};

/// Create `user` and log in on `c` by hand (SALT, CREATE-USER, LOGIN, PROOF).
fn log_in(c: &mut Client, user: &str, nonce: &str) {
    let salt = c.ask(&format!("SALT {user}"));
    let rest = salt
        .strip_prefix("ACK salt=")
        .unwrap_or_else(|| panic!("{salt}"));
    let (salt, count) = rest.split_once(" i=").unwrap();
    let cred = Credentials::derive(
        b"pw",
        &base64::decode(salt).unwrap(),
        count.parse().unwrap(),
    );
    let created = c.ask(&format!(
        "CREATE-USER {user} {} {}",
        base64::encode(&cred.stored_key),
        base64::encode(&cred.server_key)
    ));
    assert_eq!(created, format!("ACK created user {user}"));
    let client = scram::Client::new(user, nonce).unwrap();
    let first = c.ask(&format!("LOGIN {}", client.first_message()));
    let (last, _) = client
        .respond(first.strip_prefix("ACK ").unwrap(), b"pw")
        .unwrap();
    let welcome = c.ask(&format!("PROOF {}", last.message()));
    assert!(
        welcome.starts_with(&format!("ACK WELCOME {user} v=")),
        "{welcome}"
    );
}

/// An account line: a valid one, one mutated, or any request line.
fn account_line(f: &mut Fuzz) -> Vec<u8> {
    match f.below(10) {
        0..=5 => valid_account_request(f).to_string().into_bytes(),
        _ => any_request_line(f),
    }
}

#[test]
fn account_lines_on_a_logged_in_connection_get_one_documented_reply_each() {
    let mut f = Fuzz::new("account_lines_on_a_logged_in_connection_get_one_documented_reply_each");
    let seed = f.seed;
    let tracker = tracker_with(TrackerConfig {
        accounts: AccountsConfig {
            iterations: 16,
            ..AccountsConfig::default()
        },
        ..TrackerConfig::default()
    });
    let mut c = Client::connect(tracker.addr());
    log_in(&mut c, "alice", "fuzznonce");
    assert_eq!(
        c.ask("CREATE-GROUP g1"),
        "ACK created group g1; you are its admin"
    );
    let mut sent = 0;
    while sent < 2000 {
        let line = account_line(&mut f);
        // One line at a time: a newline inside ends it there, and what follows is not sent.
        let line: Vec<u8> = line
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or_default()
            .to_vec();
        c.send(&line);
        c.send(b"\n");
        sent += 1;
        let reply = match c.try_line() {
            Ok(Some(reply)) => reply,
            other => panic!("seed {seed}: {} got no reply: {other:?}", show(&line)),
        };
        assert!(
            printable(&reply),
            "seed {seed}: {} -> {reply:?}",
            show(&line)
        );
        let parsed = parse_reply(reply.as_bytes())
            .unwrap_or_else(|e| panic!("seed {seed}: {reply:?} does not parse: {}", e.message));
        match parsed {
            Reply::Err(..) => {
                let code = reply.split(' ').nth(1).unwrap_or_default();
                assert!(CODES.contains(&code), "seed {seed}: {reply:?}");
            }
            Reply::Data(len) => {
                assert!(len <= 16 << 20, "seed {seed}: {reply:?}");
                c.bytes(len as usize);
            }
            _ => {}
        }
        if line.len() > MAX_LINE {
            assert!(reply.starts_with("ERR too-long "), "seed {seed}: {reply:?}");
        }
        if reply == "ACK bye" {
            c = Client::connect(tracker.addr());
            // A connection whose first byte is not text is closed unanswered (an encrypted
            // BitTorrent handshake, PROTOCOL.md): open the new one with a line.
            assert_eq!(c.ask("PING"), "PONG", "seed {seed}");
        }
    }
    assert_eq!(c.ask("PING"), "PONG", "seed {seed}");
    // The tracker still creates users and logs them in.
    let mut fresh = Client::connect(tracker.addr());
    log_in(&mut fresh, "zed-after-the-fuzz", "afternonce");
}

/// `n` random records framed as the journal writes them, and the byte offset after each.
fn journal_bytes(f: &mut Fuzz, n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    for seq in 1..=n as u64 {
        let len = 1 + f.below(60);
        let text: String = (0..len)
            .map(|_| (0x20 + f.below(95) as u8) as char)
            .collect();
        // `frame` of an empty text is `<seq> <check> \n`: still one record.
        bytes.extend_from_slice(frame(seq, text.trim()).as_bytes());
        ends.push(bytes.len());
    }
    (bytes, ends)
}

#[test]
fn the_journal_reader_classifies_random_truncated_and_damaged_records() {
    let mut f = Fuzz::new("the_journal_reader_classifies_random_truncated_and_damaged_records");
    let seed = f.seed;
    for round in 0..3000 {
        let n = 1 + f.below(12);
        let (bytes, ends) = journal_bytes(&mut f, n);
        let whole = read_records(&bytes, 1)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: a whole journal: {e}"));
        assert_eq!(whole.records.len(), n, "seed {seed} round {round}");
        assert_eq!(whole.torn, None, "seed {seed} round {round}");

        // Cut anywhere: the records wholly before the cut are kept, a partial one is torn.
        let cut = f.below(bytes.len() + 1);
        let read = read_records(&bytes[..cut], 1)
            .unwrap_or_else(|e| panic!("seed {seed} round {round}: cut at {cut}: {e}"));
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        assert_eq!(read.records.len(), complete, "seed {seed} round {round}");
        let at_boundary = cut == 0 || ends.contains(&cut);
        if at_boundary {
            assert_eq!(read.torn, None, "seed {seed} round {round}");
        } else {
            let (line, _) = read.torn.clone().expect("a torn tail");
            assert_eq!(line, complete + 1, "seed {seed} round {round}");
        }
        let good = if complete == 0 { 0 } else { ends[complete - 1] };
        assert_eq!(read.good_len, good as u64, "seed {seed} round {round}");

        // One byte of record `i` changed (never into a newline): the last record is torn,
        // one in the middle stops the start naming its line.
        let i = f.below(n);
        let start = if i == 0 { 0 } else { ends[i - 1] };
        let at = start + f.below(ends[i] - 1 - start);
        let mut damaged = bytes.clone();
        damaged[at] = loop {
            let b = f.below(256) as u8;
            if b != b'\n' && b != damaged[at] {
                break b;
            }
        };
        match read_records(&damaged, 1) {
            Ok(read) if i == n - 1 => {
                assert_eq!(read.records.len(), n - 1, "seed {seed} round {round}");
                assert_eq!(read.torn.map(|t| t.0), Some(n), "seed {seed} round {round}");
            }
            Err(e) if i < n - 1 => {
                let named = format!("line {} is damaged", i + 1);
                assert!(e.contains(&named), "seed {seed} round {round}: {e}");
            }
            other => panic!(
                "seed {seed} round {round}: record {} of {n} damaged at byte {at}: {other:?}",
                i + 1
            ),
        }

        // Noise, and noise after good records: an answer, never a panic.
        let len = f.below(300);
        let noise = random_bytes(&mut f, len);
        let _ = read_records(&noise, 1 + f.below(3) as u64);
        let mut mixed = bytes[..cut].to_vec();
        mixed.extend_from_slice(&noise);
        let _ = read_records(&mixed, 1);
    }
}

#[test]
fn opening_a_journal_of_random_bytes_never_panics() {
    let mut f = Fuzz::new("opening_a_journal_of_random_bytes_never_panics");
    let dir = temp_dir("fuzz-journal");
    for round in 0..40 {
        let state = dir.join(round.to_string());
        fs::create_dir_all(&state).unwrap();
        let n = 1 + f.below(5);
        let (mut bytes, _) = journal_bytes(&mut f, n);
        let len = f.below(200);
        if f.one_in(2) {
            bytes.extend(random_bytes(&mut f, len));
        } else {
            bytes = random_bytes(&mut f, len);
        }
        write_journal(&state, &bytes);
        // Either it opens (and then appends go on) or it says why; it never panics.
        if let Ok((journal, _)) = Journal::open(&state) {
            journal.append(&["after".to_string()]).unwrap();
        }
    }
    let _ = fs::remove_dir_all(dir);
}

fn write_journal(state: &Path, bytes: &[u8]) {
    fs::write(state.join(JOURNAL), bytes).unwrap();
}
