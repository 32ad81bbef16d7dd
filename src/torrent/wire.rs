//! How a .torrent is named and described on Torrentphile's wire (PROTOCOL.md, "Torrents").
//!
//! - the name is `bt-` and the info-hash in 40 lowercase hex digits: printable ASCII, one
//!   word, no leading dot, so it passes `protocol::check_name` like any file name;
//! - its `FILE` line is fully determined by the .torrent: `size` is the total length of all
//!   files, `piece-size` the torrent's piece length, `sha1` the info-hash itself (it names the
//!   content as a file's SHA-1 does), and `root` the SHA-1 of the piece-hash list written the
//!   way `HASHES` sends it (each hash of `pieces` in hex and a newline). So `HASHES` and every
//!   downloader's check work unchanged, and a downloader holding the .torrent can compare the
//!   tracker's whole line with what the .torrent says.
//!
//! Pure: no disk, no socket.

use super::Metainfo;
use crate::peer::store::hashes_text;
use crate::protocol::{self, Digest, MAX_PIECE, MAX_PIECES, MIN_PIECE, Meta};

/// The prefix of a torrent's name on the wire.
pub const PREFIX: &str = "bt-";

/// The wire name of the torrent whose info-hash is `info_hash`: `bt-<40 hex>`.
pub fn wire_name(info_hash: &[u8; 20]) -> String {
    format!("{PREFIX}{}", Digest::from(*info_hash))
}

/// Is `name` a torrent's wire name (`bt-` and 40 lowercase hex digits)?
pub fn is_torrent_name(name: &str) -> bool {
    name.strip_prefix(PREFIX).is_some_and(|hex| {
        hex.len() == 40
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The piece hashes of a torrent as the protocol's digests.
pub fn piece_hashes(t: &Metainfo) -> Vec<Digest> {
    t.pieces.iter().map(|h| Digest::from(*h)).collect()
}

/// The `FILE` line a torrent is announced with, or why it cannot travel on this protocol
/// (a piece length that is not a power of two from 1 KiB to 64 MiB, or too many pieces).
pub fn torrent_meta(t: &Metainfo) -> Result<Meta, String> {
    let piece = t.piece_length;
    if !piece.is_power_of_two() || !(MIN_PIECE as u64..=MAX_PIECE as u64).contains(&piece) {
        return Err(format!(
            "{}: piece length {piece} is not a power of two from {MIN_PIECE} to {MAX_PIECE}, \
             which is all Torrentphile peers exchange; make the torrent with mktorrent -l 15 to -l 26",
            t.name
        ));
    }
    if t.pieces.len() as u64 > MAX_PIECES {
        return Err(format!(
            "{}: {} pieces is more than the {MAX_PIECES} a Torrentphile file may have; make the \
             torrent with a larger piece length (mktorrent -l)",
            t.name,
            t.pieces.len()
        ));
    }
    let hashes = piece_hashes(t);
    let meta = Meta {
        name: wire_name(&t.info_hash),
        size: t.total_length,
        piece_size: piece as u32,
        sha1: Digest::from(t.info_hash),
        root: crate::sha1::Sha1::from(hashes_text(&hashes)).digest(),
    };
    // The line must be one the tracker accepts: round-trip it through the parser.
    protocol::parse_request(
        protocol::Request::Upload(meta.clone())
            .to_string()
            .as_bytes(),
    )
    .map_err(|e| format!("{}: {}", t.name, e.message))?;
    Ok(meta)
}

/// The tracker `host:port` of a torrent's first `http://` or `udp://` announce URL
/// (`http://host:port/announce` gives `host:port`; no port: 80 for http).
pub fn announce_address(t: &Metainfo) -> Option<String> {
    t.trackers.iter().flatten().find_map(|url| {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?']).next()?;
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        if authority.is_empty() {
            return None;
        }
        let has_port = match authority.rfind(']') {
            Some(end) => authority[end..].contains(':'),
            None => authority.contains(':'),
        };
        if has_port {
            Some(authority.to_string())
        } else {
            let port = match scheme {
                "http" => 80,
                "https" => 443,
                _ => return None,
            };
            Some(format!("{authority}:{port}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::torrent::bencode::{Value, encode};

    fn torrent(len: u64, piece: u64, announce: &str) -> Vec<u8> {
        let count = len.div_ceil(piece) as usize;
        let pieces = vec![7u8; 20 * count];
        let info = Value::Dict(vec![
            (b"length".as_slice(), Value::Int(len as i64)),
            (b"name".as_slice(), Value::Bytes(b"zeros")),
            (b"piece length".as_slice(), Value::Int(piece as i64)),
            (b"pieces".as_slice(), Value::Bytes(&pieces)),
        ]);
        encode(&Value::Dict(vec![
            (b"announce".as_slice(), Value::Bytes(announce.as_bytes())),
            (b"info".as_slice(), info),
        ]))
    }

    #[test]
    fn four_gib_at_32_kib_is_131072_pieces_and_travels() {
        let t = Metainfo::parse(&torrent(
            4 << 30,
            32 << 10,
            "http://127.0.0.1:6969/announce",
        ))
        .expect("a valid torrent");
        assert_eq!(t.piece_count(), 131_072);
        let meta = torrent_meta(&t).expect("within the limits");
        assert_eq!(meta.pieces(), 131_072);
        assert!(is_torrent_name(&meta.name) && meta.name.len() == 43);
        assert_eq!(meta.sha1.bytes(), t.info_hash);
        let text = hashes_text(&piece_hashes(&t));
        assert_eq!(text.len(), 131_072 * 41);
        assert_eq!(crate::sha1::Sha1::from(&text).digest(), meta.root);
        let line = protocol::Reply::File(meta.clone()).to_string();
        assert_eq!(
            protocol::parse_reply(line.as_bytes()),
            Ok(protocol::Reply::File(meta))
        );
        assert_eq!(announce_address(&t).as_deref(), Some("127.0.0.1:6969"));
    }

    #[test]
    fn piece_lengths_the_protocol_cannot_carry_are_refused_with_the_fix() {
        let t = Metainfo::parse(&torrent(1 << 20, 3000, "udp://x")).expect("valid bencode");
        let err = torrent_meta(&t).unwrap_err();
        assert!(
            err.contains("not a power of two") && err.contains("mktorrent -l"),
            "{err}"
        );
        let t = Metainfo::parse(&torrent(1 << 30, 1024, "udp://x")).expect("valid");
        let err = torrent_meta(&t).unwrap_err();
        assert!(err.contains("more than the"), "{err}");
    }

    #[test]
    fn announce_urls_give_a_tracker_address() {
        for (url, want) in [
            ("http://127.0.0.1:8000/announce", Some("127.0.0.1:8000")),
            (
                "http://tracker.example/announce",
                Some("tracker.example:80"),
            ),
            ("udp://[::1]:6969", Some("[::1]:6969")),
            ("http://[::1]/a", Some("[::1]:80")),
            ("udp://host", None),
            ("nonsense", None),
        ] {
            let t = Metainfo::parse(&torrent(10, 1024, url)).expect("valid");
            assert_eq!(announce_address(&t).as_deref(), want, "{url}");
        }
        assert!(!is_torrent_name("bt-ABC") && !is_torrent_name("lines.txt"));
    }
}
