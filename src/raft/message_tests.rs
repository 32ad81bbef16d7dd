//! The Raft message lines: exact text, round trips, escapes, refusals, and a seeded fuzz.

use super::message::{MAX_CHUNK, MAX_CHUNK_LINE, MAX_COMMAND, MAX_ENTRIES, escape};
use super::{Entry, Message, lines_after, parse};
use crate::util::Rng;

fn entry(index: u64, term: u64, command: &str) -> Entry {
    Entry {
        index,
        term,
        command: command.to_string(),
    }
}

fn samples() -> Vec<Message> {
    vec![
        Message::PreVote {
            term: 4,
            from: 2,
            last_index: 17,
            last_term: 3,
        },
        Message::PreVoted {
            term: 4,
            from: 3,
            granted: true,
        },
        Message::Vote {
            term: 5,
            from: 1,
            last_index: 0,
            last_term: 0,
        },
        Message::Voted {
            term: 5,
            from: 3,
            granted: false,
        },
        Message::Append {
            term: 7,
            from: 1,
            prev_index: 9,
            prev_term: 6,
            commit: 8,
            entries: vec![],
        },
        Message::Append {
            term: 7,
            from: 1,
            prev_index: 9,
            prev_term: 6,
            commit: 9,
            entries: vec![
                entry(10, 7, ""),
                entry(11, 7, "GROUP-ADD alice physics"),
                entry(12, 7, "  spaces  at both ends  "),
                entry(13, 7, "back\\slash, new\nline, tab\t, caf\u{e9}, \\x41"),
            ],
        },
        Message::Appended {
            term: 7,
            from: 2,
            success: true,
            match_index: 13,
        },
        Message::Appended {
            term: 7,
            from: 3,
            success: false,
            match_index: 4,
        },
        Message::Vote {
            term: u64::MAX,
            from: u64::MAX,
            last_index: u64::MAX,
            last_term: 0,
        },
        Message::Snapshot {
            term: 7,
            from: 1,
            last_index: 500,
            last_term: 6,
            offset: 0,
            done: false,
            data: b"hello\0world".to_vec(),
        },
        Message::Snapshot {
            term: 7,
            from: 1,
            last_index: 500,
            last_term: 6,
            offset: 11,
            done: true,
            data: vec![],
        },
        Message::Snapped {
            term: 7,
            from: 3,
            last_index: 500,
            received: 11,
        },
    ]
}

#[test]
fn messages_print_as_documented() {
    let text: Vec<String> = samples().iter().map(|m| m.to_string()).collect();
    assert_eq!(text[0], "PREVOTE 4 2 17 3");
    assert_eq!(text[1], "PREVOTED 4 3 yes");
    assert_eq!(text[2], "VOTE 5 1 0 0");
    assert_eq!(text[3], "VOTED 5 3 no");
    assert_eq!(text[4], "APPEND 7 1 9 6 8 0");
    assert_eq!(
        text[5],
        "APPEND 7 1 9 6 9 4\n\
         ENTRY 7 0 \n\
         ENTRY 7 23 GROUP-ADD alice physics\n\
         ENTRY 7 24   spaces  at both ends  \n\
         ENTRY 7 53 back\\\\slash, new\\x0Aline, tab\\x09, caf\\xC3\\xA9, \\\\x41"
    );
    assert_eq!(text[6], "APPENDED 7 2 yes 13");
    assert_eq!(text[7], "APPENDED 7 3 no 4");
    assert_eq!(text[9], "SNAPSHOT 7 1 500 6 0 no 16\naGVsbG8Ad29ybGQ=");
    assert_eq!(text[10], "SNAPSHOT 7 1 500 6 11 yes 0\n");
    assert_eq!(text[11], "SNAPPED 7 3 500 11");
}

#[test]
fn every_message_round_trips_through_its_text() {
    for msg in samples() {
        let text = msg.to_string();
        assert_eq!(parse(&text), Ok(msg.clone()), "{text}");
        // A transport reads the first line, then as many as lines_after says.
        let first = text.split('\n').next().unwrap();
        assert_eq!(
            lines_after(first),
            Ok(text.split('\n').count() - 1),
            "{text}"
        );
        // CRLF (nc -C) and a trailing newline are accepted.
        let crlf = format!("{}\r\n", text.replace('\n', "\r\n"));
        assert_eq!(parse(&crlf), Ok(msg), "{crlf:?}");
    }
}

#[test]
fn escape_keeps_printable_text_and_hides_the_rest() {
    assert_eq!(escape("ADD bob"), "ADD bob");
    assert_eq!(escape("a\\b"), "a\\\\b");
    assert_eq!(escape("x\ny\r\u{0}"), "x\\x0Ay\\x0D\\x00");
    for text in ["", " ", "\\", "\\x", "\n", "é and 漢字", "\u{7f}"] {
        let msg = Message::Append {
            term: 1,
            from: 1,
            prev_index: 0,
            prev_term: 0,
            commit: 0,
            entries: vec![entry(1, 1, text)],
        };
        let line = msg.to_string();
        assert!(
            line.bytes()
                .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)),
            "{line:?}"
        );
        assert_eq!(parse(&line), Ok(msg), "{text:?}");
    }
}

#[test]
fn bad_messages_are_refused_with_a_reason() {
    let bad = [
        "",
        "HELLO 1 2",
        "vote 1 2 3 4",
        "VOTE 1 2 3",
        "VOTE 1 2 3 4 5",
        "VOTE 1 2 3 -4",
        "VOTE +1 2 3 4",
        "VOTE 1  2 3 4",
        "VOTE 18446744073709551616 2 3 4",
        "VOTED 1 2 maybe",
        "APPENDED 1 2 yes",
        "APPEND 1 2 3 4 5",
        "APPEND 1 2 3 4 5 1",
        "APPEND 1 2 3 4 5 1\nENTRY 1 3 abcd",
        "APPEND 1 2 3 4 5 1\nENTRY 1 4 ab\\",
        "APPEND 1 2 3 4 5 1\nENTRY 1 4 \\xZZ",
        "APPEND 1 2 3 4 5 1\nENTRY 1 4 \\xFF",
        "APPEND 1 2 3 4 5 1\nENTRY x 1 a",
        "APPEND 1 2 3 4 5 1\nVOTE 1 2 3 4",
        "APPEND 1 2 3 4 5 0\nENTRY 1 1 a",
        "APPEND 1 2 18446744073709551615 4 5 1\nENTRY 1 1 a",
        "APPEND 1 2 3 4 5 65",
        "VOTE 1 2 3 4\nVOTE 1 2 3 4",
        "VOTE 1 2 3 4\u{7}",
        "SNAPPED 1 2 3",
        "SNAPPED 1 2 3 x",
        "SNAPSHOT 1 2 3 4 0 yes 4",
        "SNAPSHOT 1 2 3 4 0 yes 4\naGk=\nVOTE 1 2 3 4",
        "SNAPSHOT 1 2 3 4 0 yes 3\naGk=",
        "SNAPSHOT 1 2 3 4 0 yes 4\naGk*",
        "SNAPSHOT 1 2 3 4 0 yes 4\naGl=",
        "SNAPSHOT 1 2 3 4 0 maybe 4\naGk=",
        "SNAPSHOT 1 2 3 4 0 yes\naGk=",
        "SNAPSHOT 1 2 3 4 0 yes 99999999\naGk=",
    ];
    for line in bad {
        let err = parse(line).expect_err(line);
        assert!(!err.0.is_empty(), "{line:?}");
    }
    assert!(lines_after(&format!("APPEND 1 2 3 4 5 {}", MAX_ENTRIES + 1)).is_err());
    // A whole chunk fits; one more base64 quantum does not.
    let full = crate::auth::base64::encode(&vec![7u8; MAX_CHUNK]);
    assert_eq!(full.len(), MAX_CHUNK_LINE);
    assert!(parse(&format!("SNAPSHOT 1 2 3 4 0 yes {}\n{full}", full.len())).is_ok());
    let over = crate::auth::base64::encode(&vec![7u8; MAX_CHUNK + 1]);
    assert!(lines_after(&format!("SNAPSHOT 1 2 3 4 0 yes {}", over.len())).is_err());
    let long = "x".repeat(MAX_COMMAND + 1);
    assert!(
        parse(&format!(
            "APPEND 1 2 0 0 0 1\nENTRY 1 {} {long}",
            long.len()
        ))
        .is_err()
    );
}

/// Random bytes and mutated valid messages: the parser never panics, and whatever it accepts
/// prints back to text that parses to the same message.
#[test]
fn parser_survives_garbage() {
    let seed = 0x5EED_0A11;
    let mut rng = Rng::new(seed);
    let alphabet = b"APPENDVOTEDRYSNAPHOT0123456789 \n\r\\xyesno-\t=+/";
    let valid: Vec<String> = samples().iter().map(|m| m.to_string()).collect();
    let mut accepted = 0;
    for round in 0..20_000 {
        let text: Vec<u8> = if round % 2 == 0 {
            let len = rng.below(80);
            (0..len)
                .map(|_| match rng.below(4) {
                    0 => rng.next_u64() as u8,
                    _ => alphabet[rng.below(alphabet.len())],
                })
                .collect()
        } else {
            let mut bytes = valid[rng.below(valid.len())].clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len().max(1));
                match rng.below(3) {
                    0 if !bytes.is_empty() => {
                        bytes.remove(at);
                    }
                    1 => bytes.insert(at.min(bytes.len()), alphabet[rng.below(alphabet.len())]),
                    _ if !bytes.is_empty() => bytes[at] = rng.next_u64() as u8,
                    _ => {}
                }
            }
            bytes
        };
        let text = String::from_utf8_lossy(&text);
        let _ = lines_after(&text);
        if let Ok(msg) = parse(&text) {
            accepted += 1;
            assert_eq!(
                parse(&msg.to_string()),
                Ok(msg),
                "seed {seed:#x} round {round}: {text:?}"
            );
        }
    }
    assert!(
        accepted > 100,
        "seed {seed:#x}: the mutations should often stay valid ({accepted})"
    );
}
