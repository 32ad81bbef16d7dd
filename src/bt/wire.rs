//! The BitTorrent peer wire (BEP 3, "peer protocol") as values: the handshake and the
//! length-prefixed messages, their bytes, and the one-line shape `--trace` prints.
//!
//! Owns the format only. It never touches a socket or a clock; the incremental, bounded
//! decoder that turns a byte stream into these values is [`super::framing`], and what a
//! message *means* for a connection is [`super::session`].
//!
//! Every message but keep-alive is `<length: u32 big-endian><id: u8><payload>`; keep-alive is
//! a zero length. The handshake comes first, once, and has its own fixed 68-byte layout.

use std::fmt;

use super::bitfield::{Bitfield, BitfieldError};

/// The protocol string every handshake carries after its length byte (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes in a handshake: 1 + 19 + 8 reserved + 20 info-hash + 20 peer id.
pub const HANDSHAKE_LEN: usize = 68;
/// The block size every client requests and the largest we serve or accept (BEP 3 says
/// clients "should" use 16 KiB; every modern client drops a peer asking for more).
pub const BLOCK: u32 = 16 * 1024;
/// Largest length prefix of any message but a bitfield: a `piece` carrying a full block
/// (id, index, begin, block). The whole frame is 4 bytes more: 16 KiB + 13.
pub const MAX_LENGTH: u32 = 9 + BLOCK;

/// Message ids (BEP 3).
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    /// DHT port (BEP 5): recognised and ignored, since we run no DHT.
    pub const PORT: u8 = 9;
}

/// The first 68 bytes each side sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Extension bits. We set none, so a peer must not send us extension messages.
    pub reserved: [u8; 8],
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// Our handshake: no extension bits.
    pub fn new(info_hash: [u8; 20], peer_id: [u8; 20]) -> Handshake {
        Handshake {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }

    /// The 68 wire bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Decode exactly 68 bytes (use [`super::framing::HandshakeReader`] on a stream).
    pub fn decode(bytes: &[u8]) -> Result<Handshake, WireError> {
        check_handshake_prefix(bytes)?;
        if bytes.len() != HANDSHAKE_LEN {
            return Err(WireError::BadHandshake(format!(
                "{} bytes, not {HANDSHAKE_LEN}",
                bytes.len()
            )));
        }
        let mut h = Handshake::new([0; 20], [0; 20]);
        h.reserved.copy_from_slice(&bytes[20..28]);
        h.info_hash.copy_from_slice(&bytes[28..48]);
        h.peer_id.copy_from_slice(&bytes[48..68]);
        Ok(h)
    }
}

/// Check as much of the fixed prefix (19, "BitTorrent protocol") as `bytes` holds, so a
/// wrong stream is refused at its first wrong byte, not after 68.
pub(crate) fn check_handshake_prefix(bytes: &[u8]) -> Result<(), WireError> {
    if let Some(&first) = bytes.first()
        && first != 19
    {
        return Err(WireError::BadHandshake(format!(
            "first byte is {first}, not 19 (the length of \"BitTorrent protocol\")"
        )));
    }
    let have = bytes.len().clamp(1, 20);
    if bytes.len() > 1 && bytes[1..have] != PROTOCOL[..have - 1] {
        return Err(WireError::BadHandshake(format!(
            "protocol string is {:?}, not \"BitTorrent protocol\"",
            String::from_utf8_lossy(&bytes[1..have])
        )));
    }
    Ok(())
}

impl fmt::Display for Handshake {
    /// `BT handshake <info-hash hex> <peer id>`, the peer id with unprintable bytes as `%XX`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BT handshake {} {}",
            hex(&self.info_hash),
            printable(&self.peer_id)
        )
    }
}

/// One message after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(Bitfield),
    Request {
        index: u32,
        begin: u32,
        length: u32,
    },
    Piece {
        index: u32,
        begin: u32,
        block: Vec<u8>,
    },
    Cancel {
        index: u32,
        begin: u32,
        length: u32,
    },
    /// A DHT node's port (BEP 5); we run no DHT and ignore it.
    Port(u16),
    /// A message id we do not speak (extensions we never advertised). Bounded like every
    /// other message, then skipped.
    Unknown {
        id: u8,
        payload: Vec<u8>,
    },
}

impl Message {
    /// The wire bytes, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Append the wire bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let triple = |out: &mut Vec<u8>, id: u8, a: u32, b: u32, c: u32| {
            out.extend_from_slice(&13u32.to_be_bytes());
            out.push(id);
            for n in [a, b, c] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        };
        let bare = |out: &mut Vec<u8>, id: u8| {
            out.extend_from_slice(&1u32.to_be_bytes());
            out.push(id);
        };
        match self {
            Message::KeepAlive => out.extend_from_slice(&[0; 4]),
            Message::Choke => bare(out, id::CHOKE),
            Message::Unchoke => bare(out, id::UNCHOKE),
            Message::Interested => bare(out, id::INTERESTED),
            Message::NotInterested => bare(out, id::NOT_INTERESTED),
            Message::Have(index) => {
                out.extend_from_slice(&5u32.to_be_bytes());
                out.push(id::HAVE);
                out.extend_from_slice(&index.to_be_bytes());
            }
            Message::Bitfield(bits) => {
                let bytes = bits.as_bytes();
                out.extend_from_slice(&(1 + bytes.len() as u32).to_be_bytes());
                out.push(id::BITFIELD);
                out.extend_from_slice(bytes);
            }
            Message::Request {
                index,
                begin,
                length,
            } => triple(out, id::REQUEST, *index, *begin, *length),
            Message::Piece {
                index,
                begin,
                block,
            } => {
                out.extend_from_slice(&(9 + block.len() as u32).to_be_bytes());
                out.push(id::PIECE);
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(&begin.to_be_bytes());
                out.extend_from_slice(block);
            }
            Message::Cancel {
                index,
                begin,
                length,
            } => triple(out, id::CANCEL, *index, *begin, *length),
            Message::Port(port) => {
                out.extend_from_slice(&3u32.to_be_bytes());
                out.push(id::PORT);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Message::Unknown { id, payload } => {
                out.extend_from_slice(&(1 + payload.len() as u32).to_be_bytes());
                out.push(*id);
                out.extend_from_slice(payload);
            }
        }
    }
}

impl fmt::Display for Message {
    /// One greppable line, the same shape as our line protocol's traces:
    /// `BT request 12 0 16384`, `BT piece 12 0 <16384 bytes>`, `BT bitfield <n bits, k set>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::KeepAlive => write!(f, "BT keep-alive"),
            Message::Choke => write!(f, "BT choke"),
            Message::Unchoke => write!(f, "BT unchoke"),
            Message::Interested => write!(f, "BT interested"),
            Message::NotInterested => write!(f, "BT not-interested"),
            Message::Have(index) => write!(f, "BT have {index}"),
            Message::Bitfield(bits) => write!(f, "BT bitfield {bits}"),
            Message::Request {
                index,
                begin,
                length,
            } => write!(f, "BT request {index} {begin} {length}"),
            Message::Piece {
                index,
                begin,
                block,
            } => write!(f, "BT piece {index} {begin} <{} bytes>", block.len()),
            Message::Cancel {
                index,
                begin,
                length,
            } => write!(f, "BT cancel {index} {begin} {length}"),
            Message::Port(port) => write!(f, "BT port {port}"),
            Message::Unknown { id, payload } => {
                write!(f, "BT unknown-{id} <{} bytes>", payload.len())
            }
        }
    }
}

/// Why a byte stream was refused. Every variant ends the connection: after one, the stream
/// can no longer be trusted to be aligned on message boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Not a BitTorrent handshake; says which byte was wrong.
    BadHandshake(String),
    /// A length prefix over what any message may be, refused before reading its body.
    TooLong { length: u32, max: u32 },
    /// A known message with the wrong length for its kind.
    BadLength { id: u8, length: u32, want: String },
    /// A bitfield that does not fit the torrent.
    BadBitfield(BitfieldError),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadHandshake(why) => write!(f, "not a BitTorrent handshake: {why}"),
            WireError::TooLong { length, max } => write!(
                f,
                "message length {length} is over the limit of {max} bytes (16 KiB blocks)"
            ),
            WireError::BadLength { id, length, want } => {
                write!(f, "message {} has length {length}, {want}", name_of(*id))
            }
            WireError::BadBitfield(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WireError {}

/// The name traces use for message id `id`.
pub fn name_of(id: u8) -> String {
    let known = [
        "choke",
        "unchoke",
        "interested",
        "not-interested",
        "have",
        "bitfield",
        "request",
        "piece",
        "cancel",
        "port",
    ];
    known
        .get(id as usize)
        .map_or_else(|| format!("unknown-{id}"), |s| s.to_string())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Printable ASCII as is, everything else (and `%` and space) as `%XX`: a peer id like
/// `-TR3000-` stays readable, random bytes stay one token.
pub fn printable(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_bytes_follow_bep_3() {
        let h = Handshake::new([0xaa; 20], *b"-TP0001-abcdefghijkl");
        let bytes = h.encode();
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], b"BitTorrent protocol");
        assert_eq!(&bytes[20..28], &[0; 8]);
        assert_eq!(&bytes[28..48], &[0xaa; 20]);
        assert_eq!(&bytes[48..], b"-TP0001-abcdefghijkl");
        assert_eq!(Handshake::decode(&bytes), Ok(h.clone()));
        assert_eq!(
            h.to_string(),
            format!("BT handshake {} -TP0001-abcdefghijkl", "aa".repeat(20))
        );
    }

    #[test]
    fn a_wrong_handshake_names_the_wrong_byte() {
        let e = Handshake::decode(b"GET /announce").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a BitTorrent handshake: first byte is 71, not 19 (the length of \"BitTorrent protocol\")"
        );
        let e = Handshake::decode(b"\x13BitTorrent protocoX").unwrap_err();
        assert!(e.to_string().contains("BitTorrent protocoX"), "{e}");
        assert!(Handshake::decode(b"\x13BitTorrent protocol").is_err());
    }

    #[test]
    fn messages_have_the_bep_3_bytes() {
        assert_eq!(Message::KeepAlive.encode(), [0, 0, 0, 0]);
        assert_eq!(Message::Unchoke.encode(), [0, 0, 0, 1, 1]);
        assert_eq!(Message::Have(258).encode(), [0, 0, 0, 5, 4, 0, 0, 1, 2]);
        let req = Message::Request {
            index: 12,
            begin: 0,
            length: 16384,
        };
        assert_eq!(
            req.encode(),
            [0, 0, 0, 13, 6, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0x40, 0]
        );
        assert_eq!(req.to_string(), "BT request 12 0 16384");
        let piece = Message::Piece {
            index: 12,
            begin: 0,
            block: vec![7; 16384],
        };
        assert_eq!(piece.encode().len(), 16384 + 13);
        assert_eq!(piece.to_string(), "BT piece 12 0 <16384 bytes>");
        let mut bits = Bitfield::new(12);
        bits.set(0);
        bits.set(11);
        assert_eq!(
            Message::Bitfield(bits.clone()).encode(),
            [0, 0, 0, 3, 5, 0x80, 0x10]
        );
        assert_eq!(
            Message::Bitfield(bits).to_string(),
            "BT bitfield <12 bits, 2 set>"
        );
        assert_eq!(Message::Port(6881).encode(), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
    }

    #[test]
    fn peer_ids_print_as_one_token() {
        assert_eq!(
            printable(b"A2-1-36-0-\x00\xff% x"),
            "A2-1-36-0-%00%FF%25%20x"
        );
    }
}
