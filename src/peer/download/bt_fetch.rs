//! Downloading a torrent's pieces from BitTorrent peers (aria2c, Transmission, or another
//! Torrentphile's BitTorrent side): the swarm's addresses come from the torrent's tracker
//! over HTTP (`BtSwarm`), and each address gets a worker like `fetcher::worker`, speaking
//! BEP 3 instead of our lines. The coordinator runs them beside the line workers, keyed
//! `bt:<addr>`.
//!
//! A worker handshakes (the info-hash must be ours), says `interested`, and once unchoked
//! keeps `PIPELINE` 16 KiB requests in flight for the pieces the shared picker gives it;
//! each block is written into the part file where it belongs as it comes (the worker claimed
//! the piece first, so no other worker writes it meanwhile), and each complete piece is
//! hashed from there by the worker's hasher. Bounded: the decoder holds one message, and no
//! piece is ever held whole in memory, whatever its size. A peer that never
//! unchokes, stalls, sends a block we never asked for or a wrong info-hash: a trace line and
//! the worker ends. Writes only the pieces it claimed; its hasher marks them held.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::bt::announce::{Announce, Event as AnnounceEvent};
use crate::bt::announce_client;
use crate::bt::framing::Decoder;
use crate::bt::session::{Block, Event, Geometry, Session};
use crate::bt::wire::Handshake;
use crate::peer::bt_serve::{is_timeout, read_handshake, send};
use crate::peer::download::disk::store_chunk;
use crate::peer::download::fetcher::WorkerEnd;
use crate::peer::download::state::Shared;
use crate::peer::download::verifier::{Step, WorkerState, with_hasher};

/// Requests in flight on one connection.
pub const PIPELINE: usize = 16;
/// How often the swarm is asked again for peers.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(2);
/// How long the read waits before looking at the picker again.
const TICK: Duration = Duration::from_millis(100);

/// A torrent's swarm as its HTTP tracker tells it.
pub struct BtSwarm {
    /// The torrent (SHA-1 of its `info`).
    pub info_hash: [u8; 20],
    /// Ours, in announces and handshakes.
    pub peer_id: [u8; 20],
    /// The tracker, `host:port` (from the .torrent's announce URL).
    pub tracker: String,
    /// Our listening port (one port speaks both wires), announced so others find us.
    pub port: u16,
    /// Connect, read and write timeout of an announce.
    pub timeout: Duration,
    cache: Mutex<(Option<Instant>, Vec<SocketAddr>)>,
}

impl BtSwarm {
    /// A swarm not asked yet.
    pub fn new(
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        tracker: &str,
        port: u16,
        timeout: Duration,
    ) -> BtSwarm {
        BtSwarm {
            info_hash,
            peer_id,
            tracker: tracker.to_string(),
            port,
            timeout,
            cache: Mutex::default(),
        }
    }

    /// The swarm's peers (announcing at most every `ANNOUNCE_EVERY`; the last answer in
    /// between). An unreachable tracker is an empty swarm.
    pub fn peers(&self, left: u64) -> Vec<SocketAddr> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0.is_some_and(|t| t.elapsed() < ANNOUNCE_EVERY) {
            return cache.1.clone();
        }
        cache.0 = Some(Instant::now());
        if let Ok(peers) = self.announce(left) {
            cache.1 = peers;
        }
        cache.1.clone()
    }

    /// One HTTP announce: `GET /announce?...`, the bencoded answer's peers.
    pub fn announce(&self, left: u64) -> Result<Vec<SocketAddr>, String> {
        let a = Announce {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: 0,
            downloaded: 0,
            left,
            compact: true,
            no_peer_id: true,
            event: AnnounceEvent::Regular,
            numwant: 50,
        };
        let addr: SocketAddr = self
            .tracker
            .parse()
            .map_err(|_| format!("tracker {} is not an ip:port", self.tracker))?;
        let mut s = TcpStream::connect_timeout(&addr, self.timeout).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(self.timeout))
            .and_then(|()| s.set_write_timeout(Some(self.timeout)))
            .map_err(|e| e.to_string())?;
        s.write_all(&announce_client::request(&a, &self.tracker))
            .map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        (&mut s)
            .take(announce_client::MAX_REPLY as u64)
            .read_to_end(&mut reply)
            .map_err(|e| e.to_string())?;
        let end = crate::bt::announce::head_end(&reply).ok_or("no HTTP head in the answer")?;
        let reply = announce_client::parse_reply(&reply[end..]).map_err(|e| e.to_string())?;
        Ok(reply.peers.into_iter().map(|p| p.addr).collect())
    }
}

/// A piece being put together from its blocks, in the part file.
struct Assembly {
    blocks: Vec<Block>,
    /// Per block: 0 not asked, 1 asked, 2 received.
    state: Vec<u8>,
}

/// One BitTorrent peer: connect, handshake, fetch until done.
pub fn worker(shared: &Shared, w: usize, addr: &str, swarm: &BtSwarm) -> WorkerEnd {
    let tuning = shared.tuning();
    let timeouts = tuning.timeouts;
    let Ok(sock) = addr.parse::<SocketAddr>() else {
        return WorkerEnd::Failed(format!("{addr} is not an address"));
    };
    let stream = match TcpStream::connect_timeout(&sock, timeouts.io) {
        Ok(s) => Arc::new(s),
        Err(e) => return WorkerEnd::Failed(format!("cannot connect: {e}")),
    };
    shared.add_socket(w, stream.clone());
    let state = WorkerState::default();
    let from = format!("bt:{addr}");
    let mut open: HashMap<u32, Assembly> = HashMap::new();
    let result = if shared.stopped() {
        Ok(())
    } else {
        with_hasher(shared, w, &from, &state, |steps| {
            fetch(shared, w, &stream, swarm, steps, &state, &mut open)
        })
        .and_then(|r| r)
    };
    if let Err(why) = &result {
        tuning.trace.note(addr, "-", &format!("BT closed: {why}"));
    }
    // Pieces left unfinished: nothing more of them will be written here.
    let mut picker = shared.picker();
    for i in open.keys() {
        shared.release(*i, w);
        picker.finish(w, *i, false);
    }
    drop(picker);
    super::fetcher::retire(shared, w, &state);
    match (state.corrupt_piece(), result) {
        (Some(bad), _) => WorkerEnd::Corrupt(bad),
        (_, Ok(())) => WorkerEnd::Done,
        (_, Err(_)) if shared.stopped() => WorkerEnd::Done,
        (_, Err(e)) => WorkerEnd::Failed(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn fetch(
    shared: &Shared,
    w: usize,
    stream: &TcpStream,
    swarm: &BtSwarm,
    steps: &SyncSender<Step>,
    state: &WorkerState,
    open: &mut HashMap<u32, Assembly>,
) -> Result<(), String> {
    let tuning = shared.tuning();
    let (timeouts, trace) = (tuning.timeouts, &tuning.trace);
    let who = stream.peer_addr().map_err(|e| e.to_string())?.to_string();
    let io = |e: std::io::Error| format!("write failed: {e}");
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_write_timeout(Some(timeouts.io)))
        .map_err(io)?;
    let ours = Handshake::new(swarm.info_hash, swarm.peer_id);
    trace.note(&who, ">", &ours.to_string());
    (&*stream).write_all(&ours.encode()).map_err(io)?;
    let (theirs, rest) = read_handshake(stream, timeouts.line)?;
    trace.note(&who, "<", &theirs.to_string());
    if theirs.info_hash != swarm.info_hash {
        return Err(format!(
            "wrong info-hash {} (we asked for {})",
            crate::bt::wire::hex(&theirs.info_hash),
            crate::bt::wire::hex(&swarm.info_hash)
        ));
    }
    let meta = shared.meta();
    let geometry = Geometry {
        piece_length: u64::from(meta.piece_size),
        total_length: meta.size,
    };
    let pieces = geometry.pieces();
    let mut session = Session::new(geometry, PIPELINE);
    let mut decoder = Decoder::new(pieces);
    let mut msgs = Vec::new();
    decoder.feed(&rest, &mut msgs).map_err(|e| e.to_string())?;
    if let Some(m) = session.set_interested(true) {
        send(stream, trace, &who, &m).map_err(io)?;
    }
    stream.set_read_timeout(Some(TICK)).map_err(io)?;
    let max_open = (tuning.window_bytes / geometry.piece_length.max(1)).clamp(1, 64) as usize;
    let connected = Instant::now();
    let mut last_heard = Instant::now();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stopped() || state.corrupt_piece().is_some() {
            return Ok(());
        }
        let mut bits_changed = false;
        for msg in msgs.drain(..) {
            if trace.is_on() {
                trace.note(&who, "<", &msg.to_string());
            }
            match session.receive(msg).map_err(|v| v.to_string())? {
                Event::NewPiece(_) => bits_changed = true,
                Event::None => bits_changed = true,
                Event::Choked(blocks) => {
                    for b in blocks {
                        if let Some(a) = open.get_mut(&b.index)
                            && let Some(k) = a.blocks.iter().position(|x| *x == b)
                        {
                            a.state[k] = 0;
                        }
                    }
                }
                Event::Received(block, data) => {
                    let Some(a) = open.get_mut(&block.index) else {
                        return Err(format!("block {block} of a piece we are not fetching"));
                    };
                    let Some(k) = a.blocks.iter().position(|x| *x == block) else {
                        return Err(format!("block {block} is not one we asked for"));
                    };
                    let at = meta.piece_range(block.index).0 + u64::from(block.begin);
                    if !store_chunk(shared, &data, at) {
                        return Ok(()); // the disk failed: the download is ending
                    }
                    a.state[k] = 2;
                    if a.state.iter().all(|s| *s == 2) {
                        open.remove(&block.index);
                        state.handed_over();
                        if steps.send(Step::OnDisk(block.index)).is_err() {
                            state.taken_back();
                            shared.release(block.index, w);
                            shared.picker().finish(w, block.index, false);
                            return Ok(());
                        }
                    }
                }
                // We never unchoke on a download connection: its requests are ignored.
                Event::Serve(_) | Event::IgnoredRequest(_) | Event::Cancel(_) => {}
            }
        }
        if bits_changed {
            let bits = session.their_pieces();
            let bits = (0..pieces).map(|i| bits.get(i)).collect();
            shared.picker().set_peer(w, bits);
        }
        // Keep the pipeline full: blocks of the pieces we have open, then new pieces.
        while session.can_request() {
            let next = open.iter_mut().find_map(|(_, a)| {
                let k = a.state.iter().position(|s| *s == 0)?;
                a.state[k] = 1;
                Some(a.blocks[k])
            });
            let block = match next {
                Some(b) => b,
                None if open.len() < max_open => {
                    let Some(i) = shared.picker().next(w) else {
                        break;
                    };
                    if !shared.claim(i, w) {
                        // An end-game duplicate of a piece another worker is writing.
                        shared.picker().finish(w, i, false);
                        break;
                    }
                    let blocks = geometry.blocks(i);
                    let n = blocks.len();
                    open.insert(
                        i,
                        Assembly {
                            blocks,
                            state: vec![0; n],
                        },
                    );
                    continue;
                }
                None => break,
            };
            if let Some(m) = session.request(block) {
                send(stream, trace, &who, &m).map_err(io)?;
            }
        }
        if open.is_empty() && shared.picker().is_done() {
            return Ok(());
        }
        if session.peer_choking && connected.elapsed() > timeouts.idle {
            return Err(format!(
                "never unchoked us in {} s; closing",
                timeouts.idle.as_secs_f32()
            ));
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => return Err("the other side closed".into()),
            Ok(n) => {
                last_heard = Instant::now();
                decoder
                    .feed(&buf[..n], &mut msgs)
                    .map_err(|e| e.to_string())?;
            }
            Err(e) if is_timeout(&e) => {
                if !session.outstanding().is_empty() && last_heard.elapsed() > timeouts.io {
                    return Err(format!(
                        "no block for {} s with {} requested; closing",
                        timeouts.io.as_secs_f32(),
                        session.outstanding().len()
                    ));
                }
            }
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}
