//! The one hand-written peer of the tests: it holds one file, registers and announces it to a
//! tracker like any peer (its registration lives as long as its tracker connection), answers
//! `HELLO`, `HAVE` and `HASHES` correctly for what it announced, and answers `PIECE` the way
//! its `Behaviour` says: honestly, or with corrupt bytes, short or long blocks, a stall, a
//! refusal. What it announces (the `Meta`) and the bytes it serves are separate, so a test can
//! make it lie about a file's size. It never checks what a client asks beyond the verb.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use torrentphile::peer::store::{hash_file, hashes_text};
use torrentphile::protocol::{Meta, Reply, Request};
use torrentphile::tracker::Tracker;

use super::{Client, HANG, listener};

/// How a `FakePeer` answers `PIECE`. A piece is cut from its bytes as the announced `Meta`
/// says; where its bytes end early, the piece is what it has.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `DATA <n>` and the piece (honest about the bytes it has).
    Good,
    /// Flips a byte in every piece it sends.
    Corrupt,
    /// Serves `n` pieces, then sends the announced `DATA <len>`, half of the piece, and closes
    /// (a peer dying mid-transfer; with 0, a block shorter than announced every time).
    DieAfter(u32),
    /// Serves `n` pieces, then sends a `DATA` header and nothing more, keeping the connection
    /// open (a stalled peer).
    StallAfter(u32),
    /// Serves every piece correctly, pausing this long before each (a slow link).
    Slow(Duration),
    /// `DATA <len>`, the piece, then these extra bytes (a block longer than announced).
    Long(Vec<u8>),
    /// `DATA <n>` and a whole piece size of its bytes, whatever the announced size says the
    /// last piece holds (more than announced, when it has more bytes).
    FullPieces,
    /// `ERR unavailable` to every `PIECE`.
    Refuse,
    /// Holds only the pieces whose index is `parity` modulo 2, though it announced the whole
    /// file: its `BITFIELD` says so, and it answers `ERR unavailable` to the others (an honest
    /// holder the tracker lists as full, say after its file shrank).
    Half(u32),
}

/// A running fake peer.
pub struct FakePeer {
    /// Where it serves, `127.0.0.1:<port>`.
    pub addr: String,
    /// What the tracker answered its `UPLOAD`.
    pub upload_reply: String,
    asked: Arc<AtomicUsize>,
    _tracker_conn: Client,
}

impl FakePeer {
    /// Serve `path` (hashed with `piece_size`) as `name`; the tracker must accept it.
    pub fn start(
        tracker: &Tracker,
        path: &Path,
        name: &str,
        piece_size: u32,
        how: Behaviour,
    ) -> FakePeer {
        FakePeer::start_announcing(tracker, path, name, piece_size, how, |_| {})
    }

    /// Like `start`, but the `UPLOAD` announces the meta as changed by `tamper` (a liar), and
    /// pieces are cut as the changed meta says.
    pub fn start_announcing(
        tracker: &Tracker,
        path: &Path,
        name: &str,
        piece_size: u32,
        how: Behaviour,
        tamper: impl FnOnce(&mut Meta),
    ) -> FakePeer {
        let (mut meta, hashes) = hash_file(path, name, piece_size).unwrap();
        tamper(&mut meta);
        let body = fs::read(path).unwrap();
        let fake = FakePeer::serve(tracker.addr(), &meta, hashes_text(&hashes), body, how);
        assert!(
            fake.upload_reply.starts_with("ACK "),
            "{}",
            fake.upload_reply
        );
        fake
    }

    /// Announce `meta` with `hashes` (the `HASHES` text) and serve pieces from `body`, whatever
    /// the tracker answers to the `UPLOAD` (see `upload_reply`).
    pub fn serve(
        tracker: SocketAddr,
        meta: &Meta,
        hashes: String,
        body: Vec<u8>,
        how: Behaviour,
    ) -> FakePeer {
        let listener = listener();
        let port = listener.local_addr().unwrap().port();
        let asked = Arc::new(AtomicUsize::new(0));
        let file = Arc::new(Served {
            meta: meta.clone(),
            hashes,
            body,
            how,
            asked: asked.clone(),
        });
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let file = file.clone();
                std::thread::spawn(move || file.answer(stream));
            }
        });
        let mut conn = Client::connect(tracker);
        let registered = conn.ask(&format!("REGISTER {port}"));
        assert!(registered.starts_with("ACK "), "{registered}");
        let upload_reply = conn.ask(&Request::Upload(meta.clone()).to_string());
        FakePeer {
            addr: format!("127.0.0.1:{port}"),
            upload_reply,
            asked,
            _tracker_conn: conn,
        }
    }

    /// How many `PIECE` requests it has answered (its way).
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

/// What one fake peer serves, shared by its connection threads.
struct Served {
    meta: Meta,
    hashes: String,
    body: Vec<u8>,
    how: Behaviour,
    asked: Arc<AtomicUsize>,
}

impl Served {
    /// Answer one connection's requests until it ends (or the behaviour ends it).
    fn answer(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(HANG));
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let words: Vec<String> = line.split_whitespace().map(String::from).collect();
            line.clear();
            let mut reply = Vec::new();
            let go_on = match words.first().map(String::as_str) {
                Some("HELLO") => {
                    reply.extend_from_slice(b"ACK hello\n");
                    true
                }
                Some("HAVE") => {
                    let bits = (0..self.meta.pieces())
                        .map(|i| if self.holds(i) { '1' } else { '0' })
                        .collect();
                    reply.extend(format!("{}\n", Reply::Bitfield(bits)).bytes());
                    true
                }
                Some("HASHES") => {
                    let hashes = &self.hashes;
                    reply.extend(format!("DATA {}\n{hashes}", hashes.len()).bytes());
                    true
                }
                Some("PIECE") => {
                    let index = words.get(2).and_then(|w| w.parse().ok()).unwrap_or(0);
                    self.piece(index, &mut reply)
                }
                _ => {
                    reply.extend_from_slice(b"ERR unknown-verb fake peer\n");
                    true
                }
            };
            if reader.get_mut().write_all(&reply).is_err() {
                return;
            }
            if !go_on {
                if let Behaviour::StallAfter(_) = self.how {
                    // Hold the connection open, sending nothing, until the client gives up.
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                }
                return;
            }
        }
    }

    /// Whether its `BITFIELD` lists piece `i`.
    fn holds(&self, i: u32) -> bool {
        match self.how {
            Behaviour::Half(parity) => i % 2 == parity,
            _ => true,
        }
    }

    /// Write the answer to `PIECE <index>` into `reply`; false when the connection ends here.
    fn piece(&self, index: u32, reply: &mut Vec<u8>) -> bool {
        let n = self.asked.fetch_add(1, Ordering::SeqCst) as u32;
        let (start, mut len) = self.meta.piece_range(index);
        if let Behaviour::FullPieces = self.how {
            len = self.meta.piece_size as u64;
        }
        let from = (start as usize).min(self.body.len());
        let to = ((start + len) as usize).min(self.body.len());
        let mut piece = self.body[from..to].to_vec();
        match &self.how {
            Behaviour::Good | Behaviour::FullPieces => {}
            Behaviour::Slow(pause) => std::thread::sleep(*pause),
            Behaviour::Corrupt => {
                if let Some(byte) = piece.first_mut() {
                    *byte ^= 0xff;
                }
            }
            Behaviour::DieAfter(k) if n >= *k => {
                reply.extend(format!("DATA {len}\n").bytes());
                reply.extend_from_slice(&piece[..piece.len() / 2]);
                return false;
            }
            Behaviour::StallAfter(k) if n >= *k => {
                reply.extend(format!("DATA {len}\n").bytes());
                return false;
            }
            Behaviour::DieAfter(_) | Behaviour::StallAfter(_) => {}
            Behaviour::Long(more) => {
                reply.extend(format!("DATA {len}\n").bytes());
                reply.extend_from_slice(&piece);
                reply.extend_from_slice(more);
                return true;
            }
            Behaviour::Refuse => {
                reply.extend_from_slice(b"ERR unavailable this fake peer refuses pieces\n");
                return true;
            }
            Behaviour::Half(_) if !self.holds(index) => {
                reply.extend_from_slice(b"ERR unavailable this fake peer lacks that piece\n");
                return true;
            }
            Behaviour::Half(_) => {}
        }
        reply.extend(format!("DATA {}\n", piece.len()).bytes());
        reply.extend_from_slice(&piece);
        true
    }
}
