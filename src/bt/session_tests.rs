//! Tests of `session`: block splitting, request checks, the pipeline cap, choke and bitfields.

use super::bitfield::Bitfield;
use super::session::*;
use super::wire::Message;

// 3 pieces of 40,000 bytes and one of 10,000.
const G: Geometry = Geometry {
    piece_length: 40_000,
    total_length: 130_000,
};

fn block(index: u32, begin: u32, length: u32) -> Block {
    Block {
        index,
        begin,
        length,
    }
}

#[test]
fn pieces_split_into_16_kib_blocks() {
    assert_eq!(G.pieces(), 4);
    assert_eq!(
        G.blocks(0),
        vec![
            block(0, 0, 16384),
            block(0, 16384, 16384),
            block(0, 32768, 7232)
        ]
    );
    assert_eq!(G.blocks(3), vec![block(3, 0, 10_000)]);
    assert!(G.blocks(4).is_empty());
}

#[test]
fn requests_outside_a_piece_are_refused_with_a_reason() {
    let s = Session::new(G, 4);
    assert_eq!(s.validate_request(block(3, 0, 10_000)), Ok(()));
    let why = |b| s.validate_request(b).unwrap_err().to_string();
    assert_eq!(
        why(block(4, 0, 1)),
        "piece 4 does not exist (the torrent has 4)"
    );
    assert_eq!(
        why(block(3, 1, 10_000)),
        "range 3 1 10000: ends past the end of the piece (10000 bytes)"
    );
    assert_eq!(
        why(block(0, 0, 16385)),
        "range 0 0 16385: 16385 bytes is over the 16384 limit"
    );
    assert_eq!(why(block(0, 0, 0)), "range 0 0 0: an empty block");
    assert!(s.validate_request(block(0, u32::MAX, 16384)).is_err());
}

#[test]
fn requests_wait_for_unchoke_and_respect_the_cap() {
    let mut s = Session::new(G, 2);
    assert_eq!(s.request(block(0, 0, 16384)), None);
    assert_eq!(s.receive(Message::Unchoke), Ok(Event::None));
    assert!(s.request(block(0, 0, 16384)).is_some());
    assert_eq!(s.request(block(0, 0, 16384)), None, "already outstanding");
    assert!(s.request(block(0, 16384, 16384)).is_some());
    assert_eq!(s.request(block(0, 32768, 7232)), None, "cap of 2");
    let got = s.receive(Message::Piece {
        index: 0,
        begin: 16384,
        block: vec![0; 16384],
    });
    assert_eq!(
        got,
        Ok(Event::Received(block(0, 16384, 16384), vec![0; 16384]))
    );
    // Choke drops what is pending, and hands it back.
    assert_eq!(
        s.receive(Message::Choke),
        Ok(Event::Choked(vec![block(0, 0, 16384)]))
    );
    assert!(s.outstanding().is_empty() && !s.can_request());
}

#[test]
fn a_block_never_asked_for_is_a_violation() {
    let mut s = Session::new(G, 2);
    s.receive(Message::Unchoke).unwrap();
    s.request(block(1, 0, 16384)).unwrap();
    let e = s
        .receive(Message::Piece {
            index: 1,
            begin: 0,
            block: vec![0; 100],
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "block 1 0 100 was never requested");
}

#[test]
fn bitfields_merge_and_have_stays_in_range() {
    let mut s = Session::new(G, 2);
    let mut bits = Bitfield::new(4);
    bits.set(2);
    assert_eq!(s.receive(Message::Bitfield(bits.clone())), Ok(Event::None));
    assert!(s.their_pieces().get(2));
    let mut later = Bitfield::new(4);
    later.set(0);
    assert_eq!(s.receive(Message::Bitfield(later)), Ok(Event::None));
    assert_eq!(s.their_pieces().count(), 2);
    assert_eq!(s.receive(Message::Have(3)), Ok(Event::NewPiece(3)));
    assert!(s.receive(Message::Have(4)).is_err());
}

#[test]
fn requests_are_served_only_when_unchoked() {
    let mut s = Session::new(G, 2);
    let req = Message::Request {
        index: 0,
        begin: 0,
        length: 16384,
    };
    assert_eq!(
        s.receive(req.clone()),
        Ok(Event::IgnoredRequest(block(0, 0, 16384)))
    );
    assert_eq!(s.set_choking(false), Some(Message::Unchoke));
    assert_eq!(s.set_choking(false), None);
    assert_eq!(s.receive(req), Ok(Event::Serve(block(0, 0, 16384))));
    assert_eq!(s.set_interested(true), Some(Message::Interested));
}
