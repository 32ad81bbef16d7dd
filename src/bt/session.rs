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
