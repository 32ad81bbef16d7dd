//! The BitTorrent wire transcript of the documentation, replayed: every `C:` (downloader) and
//! `S:` (seeder) row is fed to that side's decoder as it comes, and every `=` row must be the
//! trace line the bytes above it decode to, in order. So the hex in the document and our
//! codec cannot drift apart.
//!
//! The torrent is `hello.txt` holding "hello\n" (one piece, `torrentphile torrent create -l
//! 15`); the seeder's handshake is aria2c 1.36's, as it answered in `tests/bt_aria2.rs` (its
//! reserved bytes set the extension-protocol and fast-extension bits; we set none).

use std::collections::VecDeque;

use torrentphile::bt::framing::{Decoder, HandshakeReader};
use torrentphile::torrent::create::{self, CreateOptions, Style};
use torrentphile::torrent::metainfo::Metainfo;

mod common;

/// The `bt-transcript` block of PROTOCOL.md ("The BitTorrent wire as we speak it").
fn transcript() -> String {
    let doc = include_str!("../PROTOCOL.md");
    let start = doc
        .find("```bt-transcript\n")
        .expect("PROTOCOL.md has a ```bt-transcript block")
        + "```bt-transcript\n".len();
    let len = doc[start..]
        .find("```")
        .expect("the bt-transcript block ends");
    doc[start..start + len].to_string()
}

/// One direction of the connection: its handshake first, then messages.
struct Side {
    handshake: Option<HandshakeReader>,
    messages: Decoder,
}

impl Side {
    fn feed(&mut self, mut bytes: &[u8], who: char, out: &mut VecDeque<String>) {
        if let Some(reader) = &mut self.handshake {
            let (used, got) = reader.feed(bytes).expect("a handshake");
            bytes = &bytes[used..];
            if let Some(h) = got {
                out.push_back(format!("{who} {h}"));
                self.handshake = None;
            }
        }
        let mut msgs = Vec::new();
        self.messages
            .feed(bytes, &mut msgs)
            .expect("valid messages");
        out.extend(msgs.iter().map(|m| format!("{who} {m}")));
    }
}

fn hex_row(row: &str) -> Vec<u8> {
    row.split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("bad hex {h:?}")))
        .collect()
}

/// Replay `transcript` for a torrent of `pieces` pieces; returns how many trace rows matched.
fn replay(transcript: &str, pieces: usize) -> usize {
    let side = || Side {
        handshake: Some(HandshakeReader::new()),
        messages: Decoder::new(pieces),
    };
    let (mut client, mut server) = (side(), side());
    let mut decoded = VecDeque::new();
    let mut checked = 0;
    for row in transcript.lines() {
        if let Some(hex) = row.strip_prefix("C:") {
            client.feed(&hex_row(hex), 'C', &mut decoded);
        } else if let Some(hex) = row.strip_prefix("S:") {
            server.feed(&hex_row(hex), 'S', &mut decoded);
        } else if let Some(want) = row.strip_prefix('=') {
            assert_eq!(
                decoded.pop_front().as_deref(),
                Some(want.trim()),
                "row {row:?}"
            );
            checked += 1;
        } else {
            panic!("a transcript row is C:, S: or =, not {row:?}");
        }
    }
    assert_eq!(
        decoded,
        VecDeque::<String>::new(),
        "bytes with no = row after them"
    );
    assert_eq!(client.messages.buffered() + server.messages.buffered(), 0);
    checked
}

#[test]
fn the_documented_transcript_decodes_to_its_trace_lines() {
    assert_eq!(replay(&transcript(), 1), 9);
}

#[test]
fn the_transcript_torrent_has_the_info_hash_it_shows() {
    let dir = common::temp_dir("bt-transcript");
    std::fs::write(dir.join("hello.txt"), b"hello\n").unwrap();
    let opts = CreateOptions {
        announce: vec![vec!["http://127.0.0.1:6969/announce".into()]],
        piece_length_log2: Some(15),
        private: false,
        name: None,
        comment: None,
        creation_date: None,
        created_by: "torrentphile".into(),
        style: Style::Mktorrent,
        threads: 1,
    };
    let meta = Metainfo::parse(&create::create(&dir.join("hello.txt"), &opts).unwrap()).unwrap();
    assert_eq!(
        meta.info_hash_hex(),
        "f949b3affe52d057a659a33be0faa820116f8c08"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_wrong_row_is_caught() {
    let wrong = transcript().replace("=  C BT request 0 0 6", "=  C BT request 0 0 7");
    let caught = std::panic::catch_unwind(|| replay(&wrong, 1));
    assert!(caught.is_err(), "the replay must be able to fail");
}
