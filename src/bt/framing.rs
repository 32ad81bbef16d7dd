//! Turning a BitTorrent byte stream into [`Handshake`] and [`Message`] values, incrementally
//! and within a fixed memory bound.
//!
//! Owns the buffering of one partial frame: feed it whatever a `read` returned (one byte or
//! sixty thousand), get back every whole message in it. It never reads a socket itself, never
//! panics on any input, and never holds more than one frame's bytes: a length prefix is
//! checked against [`Decoder::max_length`] the moment its four bytes are in, before a single
//! byte of the body is buffered, and a known message's length against its kind as soon as
//! its id byte is in. After an error the decoder stays failed: the stream is no longer
//! aligned on frames, so the only safe thing is to close the connection.
//!
//! Two phases, because the handshake is not length-prefixed and because the bound on a
//! bitfield depends on the torrent, which an accepting peer learns only from the handshake's
//! info-hash: first a [`HandshakeReader`], then a [`Decoder`] for that torrent's piece count.

use super::bitfield::Bitfield;
use super::wire::{HANDSHAKE_LEN, Handshake, MAX_LENGTH, Message, WireError, id};

/// Reads the 68-byte handshake from a stream, refusing it at the first wrong byte.
#[derive(Debug, Clone)]
pub struct HandshakeReader {
    buf: [u8; HANDSHAKE_LEN],
    have: usize,
}

impl Default for HandshakeReader {
    fn default() -> Self {
        HandshakeReader::new()
    }
}

impl HandshakeReader {
    pub fn new() -> HandshakeReader {
        HandshakeReader {
            buf: [0; HANDSHAKE_LEN],
            have: 0,
        }
    }

    /// Take bytes up to the end of the handshake. Returns how many of `bytes` were used (the
    /// rest belong to the messages after it) and the handshake once all 68 bytes are in.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(usize, Option<Handshake>), WireError> {
        let take = bytes.len().min(HANDSHAKE_LEN - self.have);
        self.buf[self.have..self.have + take].copy_from_slice(&bytes[..take]);
        self.have += take;
        super::wire::check_handshake_prefix(&self.buf[..self.have])?;
        if self.have < HANDSHAKE_LEN {
            return Ok((take, None));
        }
        Handshake::decode(&self.buf).map(|h| (take, Some(h)))
    }

    /// Bytes held so far (at most 68).
    pub fn buffered(&self) -> usize {
        self.have
    }
}

/// Decodes the messages after the handshake for a torrent of `pieces` pieces.
#[derive(Debug, Clone)]
pub struct Decoder {
    pieces: usize,
    /// The partial frame: length prefix, then id, then payload; never more than one frame.
    buf: Vec<u8>,
    failed: Option<WireError>,
}

impl Decoder {
    /// A decoder for a torrent of `pieces` pieces (bounds the bitfield).
    pub fn new(pieces: usize) -> Decoder {
        Decoder {
            pieces,
            buf: Vec::new(),
            failed: None,
        }
    }

    /// The largest length prefix accepted: a full 16 KiB `piece`, or the torrent's bitfield
    /// if that is longer (more than 131,064 pieces).
    pub fn max_length(&self) -> u32 {
        let bitfield = 1 + self.pieces.div_ceil(8);
        MAX_LENGTH.max(u32::try_from(bitfield).unwrap_or(u32::MAX))
    }

    /// The most bytes the decoder ever holds: one whole frame.
    pub fn max_buffered(&self) -> usize {
        4 + self.max_length() as usize
    }

    /// Bytes held now (a partial frame).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of memory the buffer holds (its capacity); never over [`Decoder::max_buffered`].
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Decode what `bytes` completes. Every whole message goes to `out`, in order, even when
    /// a later one fails: the caller can still trace what came before the error. After an
    /// error every call returns it again.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Message>) -> Result<(), WireError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            // The length prefix.
            if self.buf.len() < 4 {
                bytes = self.take(bytes, 4);
                if self.buf.len() < 4 {
                    return Ok(());
                }
            }
            let length = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
            if length == 0 {
                self.buf.clear();
                out.push(Message::KeepAlive);
                continue;
            }
            if length > self.max_length() {
                return self.fail(WireError::TooLong {
                    length,
                    max: self.max_length(),
                });
            }
            // The id, and with it the length this kind of message must have.
            if self.buf.len() < 5 {
                bytes = self.take(bytes, 5);
                if self.buf.len() < 5 {
                    return Ok(());
                }
                if let Err(e) = self.check_length(self.buf[4], length) {
                    return self.fail(e);
                }
            }
            let frame = 4 + length as usize;
            // Exactly this frame, now that its length has passed every check: the buffer's
            // capacity never grows past the largest frame allowed.
            self.buf.reserve_exact(frame - self.buf.len());
            bytes = self.take(bytes, frame);
            if self.buf.len() < frame {
                return Ok(());
            }
            match self.parse() {
                Ok(msg) => out.push(msg),
                Err(e) => return self.fail(e),
            }
            self.buf.clear();
        }
    }

    /// Move bytes from `bytes` into the buffer until it holds `upto`; return the rest.
    fn take<'a>(&mut self, bytes: &'a [u8], upto: usize) -> &'a [u8] {
        let n = upto.saturating_sub(self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..n]);
        &bytes[n..]
    }

    fn fail(&mut self, e: WireError) -> Result<(), WireError> {
        self.buf = Vec::new();
        self.failed = Some(e.clone());
        Err(e)
    }

    fn check_length(&self, kind: u8, length: u32) -> Result<(), WireError> {
        let exact = |n: u32, want: &str| {
            if length == n {
                Ok(())
            } else {
                Err(WireError::BadLength {
                    id: kind,
                    length,
                    want: want.to_string(),
                })
            }
        };
        match kind {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(1, "not 1"),
            id::HAVE => exact(5, "not 5"),
            id::REQUEST | id::CANCEL => exact(13, "not 13"),
            id::PORT => exact(3, "not 3"),
            id::BITFIELD => {
                let want = 1 + self.pieces.div_ceil(8);
                exact(
                    u32::try_from(want).unwrap_or(u32::MAX),
                    &format!(
                        "not {want} (1 + one bit for each of {} pieces)",
                        self.pieces
                    ),
                )
            }
            id::PIECE if length < 9 => Err(WireError::BadLength {
                id: kind,
                length,
                want: "under the 9 of index and begin".to_string(),
            }),
            id::PIECE if length > MAX_LENGTH => Err(WireError::BadLength {
                id: kind,
                length,
                want: format!("a block over {} bytes", super::wire::BLOCK),
            }),
            _ => Ok(()),
        }
    }

    /// The whole frame is in `buf`, its length checked: build the message.
    fn parse(&self) -> Result<Message, WireError> {
        let body = &self.buf[5..];
        let u32_at =
            |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        Ok(match self.buf[4] {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE => Message::Have(u32_at(0)),
            id::BITFIELD => Message::Bitfield(
                Bitfield::from_bytes(body, self.pieces).map_err(WireError::BadBitfield)?,
            ),
            id::REQUEST => Message::Request {
                index: u32_at(0),
                begin: u32_at(4),
                length: u32_at(8),
            },
            id::PIECE => Message::Piece {
                index: u32_at(0),
                begin: u32_at(4),
                block: body[8..].to_vec(),
            },
            id::CANCEL => Message::Cancel {
                index: u32_at(0),
                begin: u32_at(4),
                length: u32_at(8),
            },
            id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
            other => Message::Unknown {
                id: other,
                payload: body.to_vec(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: usize, bytes: &[u8]) -> (Vec<Message>, Result<(), WireError>) {
        let mut d = Decoder::new(pieces);
        let mut out = Vec::new();
        let r = d.feed(bytes, &mut out);
        (out, r)
    }

    #[test]
    fn one_byte_at_a_time_or_all_at_once() {
        let msgs = vec![
            Message::KeepAlive,
            Message::Bitfield(Bitfield::full(20)),
            Message::Unchoke,
            Message::Request {
                index: 3,
                begin: 16384,
                length: 100,
            },
            Message::Piece {
                index: 3,
                begin: 16384,
                block: vec![1, 2, 3],
            },
            Message::Port(1),
            Message::Unknown {
                id: 20,
                payload: b"d1:md11:ut_metadatai1eee".to_vec(),
            },
            Message::Have(19),
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        assert_eq!(decode_all(20, &bytes), (msgs.clone(), Ok(())));
        let mut d = Decoder::new(20);
        let mut out = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b), &mut out).unwrap();
            assert!(d.buffered() <= d.max_buffered() && d.held() <= d.max_buffered());
        }
        assert_eq!(out, msgs);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn a_four_gib_length_is_refused_at_its_fourth_byte() {
        let mut d = Decoder::new(10);
        let mut out = vec![];
        d.feed(&[0xff, 0xff, 0xff], &mut out).unwrap();
        let e = d.feed(&[0xff], &mut out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "message length 4294967295 is over the limit of 16393 bytes (16 KiB blocks)"
        );
        assert_eq!(d.buffered(), 0);
        // Failed for good.
        assert_eq!(d.feed(&[0, 0, 0, 0], &mut out), Err(e));
        assert!(out.is_empty());
    }

    #[test]
    fn lengths_are_checked_by_kind() {
        let (out, r) = decode_all(10, &[0, 0, 0, 0, 0, 0, 0, 2, 1]);
        assert_eq!(out, vec![Message::KeepAlive]);
        assert_eq!(
            r.unwrap_err().to_string(),
            "message unchoke has length 2, not 1"
        );
        let e = decode_all(10, &[0, 0, 0, 9, 5]).1.unwrap_err();
        assert_eq!(
            e.to_string(),
            "message bitfield has length 9, not 3 (1 + one bit for each of 10 pieces)"
        );
        let e = decode_all(10, &[0, 0, 0x40, 10, 7]).1.unwrap_err();
        assert_eq!(
            e.to_string(),
            "message length 16394 is over the limit of 16393 bytes (16 KiB blocks)"
        );
        let e = decode_all(10, &[0, 0, 0, 3, 5, 0xff, 0xff]).1.unwrap_err();
        assert_eq!(
            e.to_string(),
            "bitfield sets a bit past the last of 10 pieces"
        );
        let e = decode_all(10, &[0, 0, 0, 8, 7]).1.unwrap_err();
        assert!(e.to_string().contains("under the 9"), "{e}");
    }

    #[test]
    fn a_big_torrent_allows_a_big_bitfield_and_nothing_else() {
        let d = Decoder::new(1 << 20);
        assert_eq!(d.max_length(), 1 + (1 << 17));
        let bytes = Message::Bitfield(Bitfield::full(1 << 20)).encode();
        assert_eq!(decode_all(1 << 20, &bytes).0.len(), 1);
        let e = decode_all(1 << 20, &[0, 0, 0x40, 10, 7]).1.unwrap_err();
        assert!(e.to_string().contains("a block over 16384"), "{e}");
    }

    #[test]
    fn handshake_then_messages_in_one_read() {
        let h = Handshake::new([1; 20], [2; 20]);
        let mut bytes = h.encode().to_vec();
        bytes.extend(Message::Interested.encode());
        let mut r = HandshakeReader::new();
        let (used, got) = r.feed(&bytes[..10]).unwrap();
        assert_eq!((used, got), (10, None));
        let (used, got) = r.feed(&bytes[10..]).unwrap();
        assert_eq!((used, got), (58, Some(h)));
        assert_eq!(decode_all(1, &bytes[68..]).0, vec![Message::Interested]);
    }

    #[test]
    fn a_trickled_wrong_handshake_fails_at_the_first_wrong_byte() {
        let mut r = HandshakeReader::new();
        for b in b"\x13BitT" {
            r.feed(std::slice::from_ref(b)).unwrap();
        }
        let e = r.feed(b"x").unwrap_err();
        assert!(e.to_string().contains("BitTx"), "{e}");
        assert!(HandshakeReader::new().feed(b"GET ").is_err());
    }
}
