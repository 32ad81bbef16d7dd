//! Tests of `announce`: the request format, its limits, and the exact bencoded answers.

use super::announce::*;

const HASH: [u8; 20] =
    *b"\x12\x34\x56\x78\x9a\xbc\xde\xf1\x23\x45\x67\x89\xab\xcd\xef\x12\x34\x56\x78\x9a";

fn query(extra: &str) -> String {
    format!(
        "info_hash={}&peer_id=A2-1-36-0-%00%01%02%03%04%05%06%07%08%09&port=6881&uploaded=0&downloaded=0&left=1000{extra}",
        percent_encode(&HASH)
    )
}

fn head(q: &str) -> Vec<u8> {
    format!("GET /announce?{q} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: aria2/1.36.0\r\n\r\n")
        .into_bytes()
}

#[test]
fn sniff_tells_the_three_apart() {
    assert_eq!(sniff(b""), None);
    assert_eq!(sniff(b"G"), None);
    assert_eq!(sniff(b"GET "), None);
    assert_eq!(sniff(b"GET /announce?x"), Some(Kind::Http));
    assert_eq!(sniff(b"GET test.txt\n"), Some(Kind::Line));
    assert_eq!(sniff(b"GET\n"), Some(Kind::Line));
    assert_eq!(sniff(b"GETS"), Some(Kind::Line));
    assert_eq!(sniff(b"PING\n"), Some(Kind::Line));
    assert_eq!(sniff(b"\x13BitTorrent protocol"), Some(Kind::BitTorrent));
    assert_eq!(sniff(b"\x13"), Some(Kind::BitTorrent));
}

#[test]
fn an_aria2c_style_announce_parses_exactly() {
    let h = head(&query(
        "&compact=1&event=started&numwant=50&key=abcd&supportcrypto=1",
    ));
    assert_eq!(head_end(&h), Some(h.len()));
    let a = parse_request(&h).unwrap();
    assert_eq!(a.info_hash, HASH);
    assert_eq!(
        &a.peer_id,
        b"A2-1-36-0-\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"
    );
    assert_eq!(
        (a.port, a.left, a.compact, a.numwant),
        (6881, 1000, true, 50)
    );
    assert_eq!(a.event, Event::Started);
}

#[test]
fn bad_announces_say_what_is_wrong() {
    let why = |h: &[u8]| parse_request(h).unwrap_err().0;
    assert_eq!(why(&head("peer_id=x")), "info_hash is missing");
    assert_eq!(
        why(&head(&query("").replace("peer_id=A2-1", "peer_id=1"))),
        "peer_id is 17 bytes, not 20"
    );
    assert_eq!(why(&head(&query("&port=2"))), "port is given twice");
    assert_eq!(
        why(&head(&query("").replace("port=6881", "port=0"))),
        "port 0 is not in 1..=65535"
    );
    assert_eq!(
        why(&head(&query("").replace("left=1000", "left=-1"))),
        "left is not a decimal number"
    );
    assert_eq!(
        why(&head(
            &query("").replace("left=1000", "left=99999999999999999999")
        )),
        "left is too large"
    );
    assert_eq!(
        why(&head(&query("&event=paused"))),
        "event is not started, completed or stopped"
    );
    assert_eq!(why(&head(&query("&compact=2"))), "compact is not 0 or 1");
    assert_eq!(
        why(&head("info_hash=%4")),
        "info_hash: bad percent-escape at byte 0"
    );
    assert_eq!(
        why(&head(&query("").replace("&left=1000", ""))),
        "left is missing"
    );
    assert_eq!(
        why(b"GET /scrape?info_hash=x HTTP/1.1\r\n\r\n"),
        "unknown path /scrape: this tracker answers /announce only"
    );
    assert_eq!(
        why(b"POST /announce HTTP/1.1\r\n\r\n"),
        "only GET is answered"
    );
    assert_eq!(
        why(b"GET /announce?info_hash=\xff HTTP/1.1\r\n\r\n"),
        "request line has a raw byte 0xff; percent-encode it"
    );
    let many: String = (0..40).map(|i| format!("x{i}=1&")).collect();
    assert_eq!(why(&head(&many)), "more than 32 query parameters");
    assert_eq!(
        why(&vec![b'G'; MAX_HEAD + 1]),
        "request head over 8192 bytes"
    );
    assert_eq!(
        failure_body("port is missing"),
        b"d14:failure reason15:port is missinge"
    );
}

#[test]
fn compact_replies_are_bep_23_bytes() {
    let a = parse_request(&head(&query("&compact=1"))).unwrap();
    let reply = Reply {
        interval: 1800,
        complete: 1,
        incomplete: 2,
        peers: vec![
            SwarmPeer {
                addr: "127.0.0.1:6881".parse().unwrap(),
                peer_id: Some([b'a'; 20]),
            },
            SwarmPeer {
                addr: "[::1]:258".parse().unwrap(),
                peer_id: Some([b'b'; 20]),
            },
        ],
    };
    let mut want = b"d8:completei1e10:incompletei2e8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe16:peers618:".to_vec();
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, b'e']);
    assert_eq!(reply_body(&reply, &a), want);
    let mut a = a;
    a.compact = false;
    let body = reply_body(&reply, &a);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.ends_with("5:peersld2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881eed2:ip3:::17:peer id20:bbbbbbbbbbbbbbbbbbbb4:porti258eeee"),
        "{text}"
    );
    let http = respond(&head(&query("")), |_| Err("unknown torrent".into()));
    assert!(http.starts_with(b"HTTP/1.0 200 OK\r\n"));
    assert!(http.ends_with(b"\r\n\r\nd14:failure reason15:unknown torrente"));
}

#[test]
fn percent_coding_round_trips_every_byte() {
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(percent_decode(percent_encode(&all).as_bytes()), Ok(all));
    assert_eq!(percent_decode(b"a+b%2b%2B"), Ok(b"a+b++".to_vec()));
}
