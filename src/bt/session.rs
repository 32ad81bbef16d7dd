//! The state of one BitTorrent connection, after the handshake: the four choke and interest
//! flags, which pieces the other side has, and the blocks we asked for and still wait for.
//!
//! Owns the rules a message must follow to be accepted (a request inside a piece and at most
//! 16 KiB, a block we actually asked for, a `have` inside the torrent) and the bookkeeping of
//! outstanding requests under a cap. It never touches a socket, a clock or the disk: the
//! connection loop feeds it decoded messages and sends what it returns, and the download
//! decides which blocks to ask for. A [`Violation`] is a reason to close the connection,
//! with a message for the trace.

use std::fmt;

use super::bitfield::Bitfield;
use super::wire::{BLOCK, Message};

/// The shape of a torrent's piece space, all a connection needs to check offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub piece_length: u64,
    pub total_length: u64,
}

impl Geometry {
    /// Number of pieces.
    pub fn pieces(&self) -> usize {
        if self.piece_length == 0 {
            return 0;
        }
        self.total_length.div_ceil(self.piece_length) as usize
    }

    /// Length of piece `index` (the last may be shorter); 0 past the end.
    pub fn piece_size(&self, index: u32) -> u64 {
        let start = (index as u64).saturating_mul(self.piece_length);
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }

    /// The 16 KiB blocks of piece `index`, in order (the last may be shorter).
    pub fn blocks(&self, index: u32) -> Vec<Block> {
        let size = self.piece_size(index);
        (0..size)
            .step_by(BLOCK as usize)
            .map(|begin| Block {
                index,
                begin: begin as u32,
                length: (size - begin).min(BLOCK as u64) as u32,
            })
            .collect()
    }
}

/// A byte range inside one piece: what a `request`, `cancel` or `piece` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Block {
    pub index: u32,
    pub begin: u32,
    pub length: u32,
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.index, self.begin, self.length)
    }
}

/// Why a message from the other side cannot be accepted. Each one closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A piece index past the end of the torrent.
    NoSuchPiece { index: u32, pieces: usize },
    /// A range that leaves its piece, is empty, or is over 16 KiB.
    BadRange { block: Block, reason: String },
    /// A `piece` message for a block we did not ask for (or asked for with another length).
    Unrequested {
        index: u32,
        begin: u32,
        length: usize,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::NoSuchPiece { index, pieces } => {
                write!(f, "piece {index} does not exist (the torrent has {pieces})")
            }
            Violation::BadRange { block, reason } => write!(f, "range {block}: {reason}"),
            Violation::Unrequested {
                index,
                begin,
                length,
            } => write!(f, "block {index} {begin} {length} was never requested"),
        }
    }
}

impl std::error::Error for Violation {}

/// What a received message asks the connection loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing beyond the state change (flags, the peer's pieces, keep-alive, port, unknown).
    None,
    /// The peer has a new piece (from `have`); maybe worth asking for.
    NewPiece(u32),
    /// The peer choked us: it drops every request we had pending, so these are ours to ask
    /// again (of it later, or of someone else).
    Choked(Vec<Block>),
    /// A valid request from an unchoked peer: read the block and send it.
    Serve(Block),
    /// A request while we choke the peer; BEP 3 says to ignore it.
    IgnoredRequest(Block),
    /// The peer withdrew a request; drop it from the send queue if it is still there.
    Cancel(Block),
    /// A block we asked for arrived; now it is no longer outstanding.
    Received(Block, Vec<u8>),
}

/// One connection's protocol state.
#[derive(Debug, Clone)]
pub struct Session {
    geometry: Geometry,
    /// We refuse the peer's requests. Every connection starts choked both ways.
    pub am_choking: bool,
    pub am_interested: bool,
    /// The peer refuses our requests.
    pub peer_choking: bool,
    pub peer_interested: bool,
    their_pieces: Bitfield,
    /// Blocks asked for and not yet received, oldest first.
    outstanding: Vec<Block>,
    max_outstanding: usize,
}

impl Session {
    /// A fresh connection for a torrent of `geometry`, with at most `max_outstanding`
    /// requests in flight (how deep we pipeline).
    pub fn new(geometry: Geometry, max_outstanding: usize) -> Session {
        Session {
            geometry,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            their_pieces: Bitfield::new(geometry.pieces()),
            outstanding: Vec::new(),
            max_outstanding: max_outstanding.max(1),
        }
    }

    /// The pieces the other side has said it has.
    pub fn their_pieces(&self) -> &Bitfield {
        &self.their_pieces
    }

    /// Blocks asked for and not yet received, oldest first.
    pub fn outstanding(&self) -> &[Block] {
        &self.outstanding
    }

    /// True when we may send another request now.
    pub fn can_request(&self) -> bool {
        !self.peer_choking && self.outstanding.len() < self.max_outstanding
    }

    /// Check a request's range against the torrent: piece exists, 1..=16 KiB, inside it.
    pub fn validate_request(&self, block: Block) -> Result<(), Violation> {
        let pieces = self.geometry.pieces();
        if block.index as usize >= pieces {
            return Err(Violation::NoSuchPiece {
                index: block.index,
                pieces,
            });
        }
        let size = self.geometry.piece_size(block.index);
        let bad = |reason: String| Err(Violation::BadRange { block, reason });
        if block.length == 0 {
            return bad("an empty block".into());
        }
        if block.length > BLOCK {
            return bad(format!("{} bytes is over the {BLOCK} limit", block.length));
        }
        if block.begin as u64 + block.length as u64 > size {
            return bad(format!("ends past the end of the piece ({size} bytes)"));
        }
        Ok(())
    }

    /// Record that we ask for `block` and return the message to send. Refused (None) when
    /// the peer chokes us, the pipeline is full, the block is invalid or already asked for.
    pub fn request(&mut self, block: Block) -> Option<Message> {
        if !self.can_request()
            || self.validate_request(block).is_err()
            || self.outstanding.contains(&block)
        {
            return None;
        }
        self.outstanding.push(block);
        Some(Message::Request {
            index: block.index,
            begin: block.begin,
            length: block.length,
        })
    }

    /// Change whether we choke the peer; the message to send if that is a change.
    pub fn set_choking(&mut self, choke: bool) -> Option<Message> {
        if self.am_choking == choke {
            return None;
        }
        self.am_choking = choke;
        Some(if choke {
            Message::Choke
        } else {
            Message::Unchoke
        })
    }

    /// Change whether we are interested; the message to send if that is a change.
    pub fn set_interested(&mut self, interested: bool) -> Option<Message> {
        if self.am_interested == interested {
            return None;
        }
        self.am_interested = interested;
        Some(if interested {
            Message::Interested
        } else {
            Message::NotInterested
        })
    }

    /// Apply one received message.
    pub fn receive(&mut self, msg: Message) -> Result<Event, Violation> {
        Ok(match msg {
            Message::KeepAlive | Message::Port(_) | Message::Unknown { .. } => Event::None,
            Message::Choke => {
                self.peer_choking = true;
                Event::Choked(std::mem::take(&mut self.outstanding))
            }
            Message::Unchoke => {
                self.peer_choking = false;
                Event::None
            }
            Message::Interested => {
                self.peer_interested = true;
                Event::None
            }
            Message::NotInterested => {
                self.peer_interested = false;
                Event::None
            }
            Message::Have(index) => {
                if !self.their_pieces.set(index as usize) {
                    return Err(Violation::NoSuchPiece {
                        index,
                        pieces: self.geometry.pieces(),
                    });
                }
                Event::NewPiece(index)
            }
            Message::Bitfield(bits) => {
                // BEP 3 allows a bitfield only first, but aria2c, when it had nothing at the
                // handshake, sends its first bitfield later (after some pieces, instead of
                // `have`s). A peer never loses pieces, so any bitfield is merged in. Its
                // length was checked against this torrent by the decoder.
                for i in (0..bits.len()).filter(|&i| bits.get(i)) {
                    self.their_pieces.set(i);
                }
                Event::None
            }
            Message::Request {
                index,
                begin,
                length,
            } => {
                let block = Block {
                    index,
                    begin,
                    length,
                };
                self.validate_request(block)?;
                if self.am_choking {
                    Event::IgnoredRequest(block)
                } else {
                    Event::Serve(block)
                }
            }
            Message::Cancel {
                index,
                begin,
                length,
            } => Event::Cancel(Block {
                index,
                begin,
                length,
            }),
            Message::Piece {
                index,
                begin,
                block,
            } => {
                let wanted = self.outstanding.iter().position(|b| {
                    b.index == index && b.begin == begin && b.length as usize == block.len()
                });
                match wanted {
                    Some(at) => Event::Received(self.outstanding.remove(at), block),
                    None => {
                        return Err(Violation::Unrequested {
                            index,
                            begin,
                            length: block.len(),
                        });
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
