//! The protocol's unit tests: every rule of PROTOCOL.md on plain strings.

use super::role::redact_with;
use super::*;

const SHA: &str = "0a4d55a8d778e5022fab701977c5d840bbc486d0";

#[test]
fn requests_round_trip_through_their_lines() {
    let lines = [
        "REGISTER 10000",
        &format!("UPLOAD test1.txt 27 262144 {SHA} {SHA}"),
        "PARTIAL big.bin",
        "REMOVE a",
        "WHOHAS test1.txt",
        "INFO x",
        "LIST",
        "LIST test1.txt",
        "HELLO 127.0.0.1:10002",
        "GET test1.txt",
        "GET test1.txt 5 10",
        "PIECE big.bin 3",
        "HAVE big.bin",
        "HASHES big.bin",
        "PING",
        "HELP",
        "BYE",
    ];
    for line in lines {
        let req = parse_request(line.as_bytes()).unwrap();
        assert_eq!(req.to_string(), line);
    }
}

#[test]
fn crlf_and_extra_spaces_are_accepted() {
    assert_eq!(
        parse_request(b"WHOHAS  a.txt\r"),
        Ok(Request::WhoHas {
            name: "a.txt".into()
        })
    );
}

#[test]
fn bad_lines_get_their_error_code() {
    let code = |line: &[u8]| parse_request(line).unwrap_err().code;
    assert_eq!(code(b""), ErrCode::BadRequest);
    assert_eq!(code(b"   "), ErrCode::BadRequest);
    assert_eq!(code(b"FROB x"), ErrCode::UnknownVerb);
    assert_eq!(code(b"get x"), ErrCode::UnknownVerb);
    assert_eq!(code(b"WHOHAS"), ErrCode::BadRequest);
    assert_eq!(code(b"WHOHAS a b"), ErrCode::BadRequest);
    assert_eq!(code(b"REGISTER 70000"), ErrCode::BadRequest);
    assert_eq!(code(b"REGISTER -1"), ErrCode::BadRequest);
    assert_eq!(code(b"REGISTER 0"), ErrCode::BadRequest);
    assert_eq!(code(b"GET a 1"), ErrCode::BadRequest);
    assert_eq!(
        code(b"GET a 99999999999999999999999 1"),
        ErrCode::BadRequest
    );
    assert_eq!(code(b"PIECE a -3"), ErrCode::BadRequest);
    assert_eq!(code(b"WHOHAS \xff\xfe"), ErrCode::BadRequest);
    assert_eq!(code(b"WHOHAS a\0b"), ErrCode::BadRequest);
    assert_eq!(code(b"UPLOAD a 1 1000 x y"), ErrCode::BadRequest);
    let upload = format!("UPLOAD a 10 1000 {SHA} {SHA}");
    assert_eq!(code(upload.as_bytes()), ErrCode::BadRequest); // not a power of two
    let upload = format!("UPLOAD a 99999999999999 1024 {SHA} {SHA}");
    assert_eq!(code(upload.as_bytes()), ErrCode::BadRequest); // too many pieces
}

#[test]
fn a_verb_of_the_other_server_is_unknown_whatever_its_arguments() {
    let err = parse_request_for(b"REGISTER abc", Role::Peer).unwrap_err();
    assert_eq!(err.code, ErrCode::UnknownVerb);
    assert_eq!(
        err.message,
        "REGISTER is a tracker verb; this is a peer (try HELP)"
    );
    let err = parse_request_for(b"  GET ../x 1\r", Role::Tracker).unwrap_err();
    assert_eq!(
        err.message,
        "GET is a peer verb; this is the tracker (try HELP)"
    );
    assert_eq!(
        parse_request_for(b"PIECE a", Role::Tracker)
            .unwrap_err()
            .code,
        ErrCode::UnknownVerb
    );
    // Shared verbs, our own verbs and unknown words go on to the parser.
    assert_eq!(parse_request_for(b"PING", Role::Peer), Ok(Request::Ping));
    assert_eq!(
        parse_request_for(b"REGISTER abc", Role::Tracker)
            .unwrap_err()
            .code,
        ErrCode::BadRequest
    );
    assert_eq!(
        parse_request_for(b"FROB", Role::Peer).unwrap_err().message,
        "unknown verb \"FROB\"; try HELP"
    );
    assert_eq!(
        parse_request_for(b"", Role::Peer).unwrap_err().code,
        ErrCode::BadRequest
    );
}

#[test]
fn every_verb_belongs_to_a_server_and_help_lists_them() {
    for role in [Role::Tracker, Role::Peer] {
        for verb in role.verbs() {
            // Each listed verb parses as itself (with made-up arguments where it needs some).
            let err = parse_request(verb.as_bytes()).err();
            assert!(
                err.as_ref().is_none_or(|e| e.code == ErrCode::BadRequest),
                "{verb}: {err:?}"
            );
        }
    }
    assert_eq!(
        Role::Peer.help(),
        "peer verbs: HELLO GET PIECE HAVE HASHES TICKET PING HELP BYE"
    );
}

#[test]
fn redaction_replaces_secret_words_and_nothing_else() {
    assert_eq!(redacted("REGISTER 9000"), "REGISTER 9000");
    assert_eq!(
        redacted("ACK 127.0.0.1:9000 heartbeat=10"),
        "ACK 127.0.0.1:9000 heartbeat=10"
    );
    let table: &[(&str, &[usize])] = &[("LOGIN", &[1])];
    assert_eq!(
        redact_with("LOGIN alice hunter2", table),
        "LOGIN alice <redacted>"
    );
    assert_eq!(redact_with("WHOHAS a", table), "WHOHAS a");
}

#[test]
fn names_that_escape_or_hide_are_refused() {
    for bad in [
        "..",
        ".",
        "../etc",
        "a/b",
        "a\\b",
        ".torrentphile",
        "/etc/passwd",
    ] {
        let line = format!("GET {bad}");
        let err = parse_request(line.as_bytes()).unwrap_err();
        assert_eq!(err.code, ErrCode::BadName, "{bad}");
    }
    assert_eq!(
        check_name(&"x".repeat(256)).unwrap_err().code,
        ErrCode::BadName
    );
    assert!(check_name("ok-name_1.2.txt").is_ok());
}

#[test]
fn replies_round_trip() {
    let meta = Meta {
        name: "a".into(),
        size: 3,
        piece_size: 1024,
        sha1: SHA.parse().unwrap(),
        root: SHA.parse().unwrap(),
    };
    let replies = [
        Reply::Ack("127.0.0.1:10000 heartbeat=10".into()),
        Reply::Peers(vec![
            Holder {
                addr: "127.0.0.1:10000".into(),
                partial: false,
            },
            Holder {
                addr: "[::1]:10001".into(),
                partial: true,
            },
        ]),
        Reply::File(meta),
        Reply::Bitfield("0110".into()),
        Reply::Bitfield(String::new()),
        Reply::Data(27),
        Reply::Pong,
        Reply::Err(ErrCode::NotFound, "no peer holds test2.txt".into()),
    ];
    for reply in replies {
        let line = reply.to_string();
        assert_eq!(parse_reply(line.as_bytes()), Ok(reply), "{line}");
    }
    assert_eq!(
        parse_reply(b"PEERS 127.0.0.1:1 127.0.0.1:2-partial").unwrap(),
        Reply::Peers(vec![
            Holder {
                addr: "127.0.0.1:1".into(),
                partial: false
            },
            Holder {
                addr: "127.0.0.1:2".into(),
                partial: true
            }
        ])
    );
}

#[test]
fn pieces_cover_the_file_and_the_last_one_is_short() {
    let meta = Meta {
        name: "a".into(),
        size: 2500,
        piece_size: 1024,
        sha1: SHA.parse().unwrap(),
        root: SHA.parse().unwrap(),
    };
    assert_eq!(meta.pieces(), 3);
    assert_eq!(meta.piece_range(0), (0, 1024));
    assert_eq!(meta.piece_range(2), (2048, 452));
    let empty = Meta { size: 0, ..meta };
    assert_eq!(empty.pieces(), 0);
}

#[test]
fn default_piece_size_keeps_piece_count_bounded() {
    assert_eq!(default_piece_size(27), 256 * 1024);
    assert_eq!(default_piece_size(1 << 30), 256 * 1024);
    assert_eq!(default_piece_size(4 << 30), 256 * 1024);
    assert_eq!(default_piece_size(8 << 30), 512 * 1024);
    assert!((1u64 << 40).div_ceil(default_piece_size(1 << 40) as u64) <= MAX_PIECES);
}

/// An error quotes at most a short prefix of what it refuses: a 4 KiB `REGISTER` host made a
/// 4 KiB error line (found by the fuzz, seed 7835392229901428442).
#[test]
fn errors_quote_only_a_prefix_of_a_long_argument() {
    for line in [
        format!("REGISTER 2 {}", "5".repeat(4000)),
        format!("REGISTER 2 {}", "~".repeat(4000)),
        format!("{} 1", "Z".repeat(4000)),
    ] {
        let e = parse_request(line.as_bytes()).expect_err("refused");
        assert!(
            e.message.len() <= 200,
            "{} bytes: {}",
            e.message.len(),
            e.message
        );
    }
}
