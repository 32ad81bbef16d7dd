//! The fetching side of a download: one **worker** per remote peer (`coordinator.rs` starts
//! them). A worker connects, says `HELLO`, learns the peer's pieces (`HAVE`), then its
//! **fetcher** keeps a window of `PIECE` requests in flight on the one connection and reads
//! the `DATA` replies in order (pipelining: the round trip is paid once, not per piece).
//! The opening is pipelined too: `HELLO` and `HAVE` leave in one write and, for a holder the
//! tracker lists as a full holder, the first window of `PIECE`s follows without waiting for
//! their replies; every reply is read in the order it was asked (a server answers its lines
//! in order, so a peer that knows nothing of this sees ordinary requests). Over a 50 ms link
//! that saves up to two round trips before the first byte. A piece asked on the tracker's
//! word that the `BITFIELD` then leaves out is given back, not held against the peer.
//! A piece streams through: each chunk of at most `CHUNK` bytes is read from the socket and
//! handed to the worker's hasher (`verifier.rs`), which writes it into the part file at its
//! place (the fetcher writes it itself while the hasher is behind) and checks the piece once
//! its hash is complete. Only the worker that claimed a piece writes it; an end-game
//! duplicate that arrives meanwhile is read and dropped.
//!
//! A fetcher holds the picker lock only to choose pieces, never while it reads or writes its
//! socket or the file.

use std::collections::VecDeque;
use std::sync::mpsc::{self, SyncSender};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnError};
use crate::peer::download::access;
use crate::peer::download::disk::try_store_chunk;
use crate::peer::download::state::{CHUNK, Shared};
use crate::peer::download::verifier::{Step, WorkerState, with_hasher};
use crate::protocol::{ErrCode, Reply, Request};

/// How often a fetcher re-asks a partial holder which pieces it has.
const HAVE_EVERY: Duration = Duration::from_millis(300);
/// How often an idle connection to a seed is kept alive with a `HAVE`.
const SEED_KEEPALIVE: Duration = Duration::from_secs(2);
/// Longest a worker on a full holder waits for the picker to let seeders be asked (the
/// download's share of them is settled within a couple of tracker looks), so that its first
/// `PIECE`s can go out with its `HELLO`.
const SETTLE_WAIT: Duration = Duration::from_millis(100);
/// Slowest data rate tolerated within one piece before the peer counts as stalled.
pub const MIN_RATE: u64 = 64 * 1024;

/// How a worker ended.
pub enum WorkerEnd {
    /// The download finished (or stopped) while it was working.
    Done,
    /// Its peer sent this piece, and it failed its hash.
    Corrupt(u32),
    /// Its peer advertised this piece (in `HAVE`), then answered `ERR unavailable` to it: a
    /// holder that lies about what it has.
    Refused(u32),
    /// Its peer failed: could not connect, timed out, closed, spoke nonsense.
    Failed(String),
}

/// One remote peer: connect, learn its pieces, fetch until done; its pieces are checked by
/// the worker's own hasher. `full`: the tracker lists the peer as holding the whole file, so
/// the first pieces are asked with the `HELLO` instead of after its `BITFIELD`.
pub fn worker(shared: &Shared, w: usize, addr: &str, full: bool) -> WorkerEnd {
    let tuning = shared.tuning();
    let mut conn = match Conn::connect(addr, tuning.timeouts, tuning.trace.clone()) {
        Ok(conn) => conn,
        Err(e) => return WorkerEnd::Failed(format!("cannot connect: {e}")),
    };
    // A group's file: the ticket first, or the holder will not even name the file.
    if let Some(access) = &tuning.access
        && let Err(e) = access::present(access.as_ref(), addr, &mut conn)
    {
        return WorkerEnd::Failed(e.to_string());
    }
    shared.add_socket(w, conn.stream());
    let state = WorkerState::default();
    let mut refused = None;
    let fetched = if shared.stopped() {
        Ok(())
    } else {
        with_hasher(shared, w, addr, &state, |steps| {
            hello(shared, w, &mut conn, full)
                .and_then(|asked| fetch(shared, w, &mut conn, steps, &state, &mut refused, asked))
        })
        .unwrap_or_else(|e| Err(ConnError::Protocol(e)))
    };
    retire(shared, w, &state);
    match (state.corrupt_piece(), fetched) {
        (Some(bad), _) => WorkerEnd::Corrupt(bad),
        (None, Err(_)) if refused.is_some() && !shared.stopped() => {
            WorkerEnd::Refused(refused.unwrap_or_default())
        }
        (_, Ok(())) => WorkerEnd::Done,
        (_, Err(_)) if shared.stopped() => WorkerEnd::Done,
        (_, Err(e)) => WorkerEnd::Failed(e.to_string()),
    }
}

/// A worker's last step, whatever wire it spoke: wait until its hasher has dealt with
/// every piece its peer sent (so a corrupt one is known before we say how the peer did),
/// then take the peer out of the picker and its socket out of the download.
pub(super) fn retire(shared: &Shared, w: usize, state: &WorkerState) {
    let mut picker = shared.picker();
    while state.pending() > 0 {
        picker = shared.wait(picker, Duration::from_millis(50));
    }
    picker.remove_peer(w);
    drop(picker);
    shared.remove_socket(w);
    shared.notify();
}

/// Send `HELLO` and the first `HAVE` in one write, and return what was asked: the fetcher
/// reads their replies in order, before those of the `PIECE`s it asks next. For a full
/// holder, take the tracker's word for its pieces until its `BITFIELD` arrives, and wait (a
/// little) until the picker lets seeders be asked, so the first `PIECE`s need not wait for
/// the replies.
fn hello(
    shared: &Shared,
    w: usize,
    conn: &mut Conn,
    full: bool,
) -> Result<VecDeque<Ask>, ConnError> {
    let lines = [
        Request::Hello {
            id: shared.me().to_string(),
        }
        .to_string(),
        Request::Have {
            name: shared.meta().name.clone(),
        }
        .to_string(),
    ];
    conn.send_lines(&lines)?;
    if full {
        let mut picker = shared.picker();
        picker.set_peer(w, vec![true; shared.meta().pieces() as usize]);
        let until = Instant::now() + SETTLE_WAIT;
        while picker.seeds_held_back() && !shared.stopped() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            picker = shared.wait(picker, left);
        }
    }
    Ok(VecDeque::from([Ask::Hello, Ask::Have]))
}

fn read_bits(shared: &Shared, conn: &mut Conn) -> Result<Vec<bool>, ConnError> {
    match conn.read_reply()? {
        Reply::Bitfield(bits) if bits.len() == shared.meta().pieces() as usize => {
            Ok(bits.bytes().map(|b| b == b'1').collect())
        }
        other => Err(ConnError::Protocol(format!("HAVE answered {other}"))),
    }
}

/// What a fetcher has asked its peer for, in order.
enum Ask {
    Hello,
    Piece(u32),
    Have,
}

/// The fetcher: keep the pipeline full, read replies in order, stream pieces to disk and to
/// the hasher. `queue`: what `hello` asked, its replies not read yet.
fn fetch(
    shared: &Shared,
    w: usize,
    conn: &mut Conn,
    steps: &SyncSender<Step>,
    state: &WorkerState,
    refused: &mut Option<u32>,
    mut queue: VecDeque<Ask>,
) -> Result<(), ConnError> {
    let meta = shared.meta();
    let window = (shared.tuning().window_bytes / meta.piece_size as u64).clamp(2, 1024) as usize;
    let mut last_have = Instant::now();
    let mut have_pending = queue.iter().any(|a| matches!(a, Ask::Have));
    let result = loop {
        if shared.stopped() || state.corrupt_piece().is_some() {
            break Ok(());
        }
        let mut lines = Vec::new();
        let seed = {
            let mut picker = shared.picker();
            let mut asked = queue.iter().filter(|a| matches!(a, Ask::Piece(_))).count();
            let window = picker.window(window);
            // End-game picks that another worker is streaming right now: a copy would only be
            // read and dropped. Each stays handed to this worker until the window is filled,
            // so the picker moves on to the next piece instead of offering it again (a worker
            // that gave up at the first such pick waited on the one piece a stalled holder had
            // claimed, while unclaimed ones went unasked).
            let mut streaming = Vec::new();
            while asked < window {
                let Some(i) = picker.next(w) else { break };
                if shared.claimed(i) {
                    streaming.push(i);
                    continue;
                }
                asked += 1;
                queue.push_back(Ask::Piece(i));
                let name = meta.name.clone();
                lines.push(Request::Piece { name, index: i }.to_string());
            }
            for i in streaming {
                picker.finish(w, i, false);
            }
            picker.peer_is_seed(w)
        };
        // A partial holder's pieces change: ask again often. A seed's do not, but an idle
        // connection to it is kept alive the same way, so its server does not time it out.
        let have_every = if seed { SEED_KEEPALIVE } else { HAVE_EVERY };
        if !have_pending && last_have.elapsed() >= have_every && (!seed || queue.is_empty()) {
            queue.push_back(Ask::Have);
            let name = meta.name.clone();
            lines.push(Request::Have { name }.to_string());
            have_pending = true;
        }
        if !lines.is_empty()
            && let Err(e) = conn.send_lines(&lines)
        {
            break Err(e.into());
        }
        let Some(ask) = queue.pop_front() else {
            // Nothing to ask of this peer right now: wait for the picture to change.
            let picker = shared.picker();
            if picker.is_done() || shared.stopped() {
                break Ok(());
            }
            drop(shared.wait(picker, HAVE_EVERY));
            continue;
        };
        let step = match ask {
            Ask::Hello => match conn.read_reply() {
                Ok(Reply::Ack(_)) => Ok(()),
                Ok(other) => Err(ConnError::Protocol(format!("HELLO answered {other}"))),
                Err(e) => Err(e),
            },
            Ask::Have => read_bits(shared, conn).map(|bits| {
                shared.picker().set_peer(w, bits);
                last_have = Instant::now();
                have_pending = false;
            }),
            Ask::Piece(i) => match receive_piece(shared, w, conn, i, steps, state) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    // The `BITFIELD` is read before any `PIECE` reply (it was asked first).
                    // If it listed the piece, the refusal is a lie (a verified piece never
                    // goes away; or a file changed under it) and the peer is dropped. If not,
                    // the piece was asked on the tracker's word alone: give it back. Either
                    // way its slot goes to another holder at once.
                    let mut picker = shared.picker();
                    let lie = picker.peer_has(w, i);
                    picker.peer_lacks(w, i);
                    picker.finish(w, i, false);
                    if lie {
                        *refused = Some(i);
                        Err(ConnError::Protocol(format!(
                            "advertised piece {i}, then refused it"
                        )))
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = step {
            break Err(e);
        }
    };
    // Give back what was asked but never received.
    let mut picker = shared.picker();
    for ask in queue {
        if let Ask::Piece(i) = ask {
            picker.finish(w, i, false);
        }
    }
    drop(picker);
    shared.notify();
    result
}

/// Read the reply to `PIECE i` and stream the piece to disk and to the hasher: `true`, or
/// `false` if the peer does not have it. On an error the piece is given back to the picker.
fn receive_piece(
    shared: &Shared,
    w: usize,
    conn: &mut Conn,
    i: u32,
    steps: &SyncSender<Step>,
    state: &WorkerState,
) -> Result<bool, ConnError> {
    let (offset, len) = shared.meta().piece_range(i);
    let got = match conn.read_reply() {
        Ok(Reply::Data(n)) if n == len => {
            let allowed = conn.timeouts().io + Duration::from_secs(len / MIN_RATE);
            let deadline = Instant::now() + allowed;
            if shared.claim(i, w) {
                let streamed = stream_piece(shared, conn, (i, offset, len), deadline, steps, state);
                if streamed.is_err() && steps.send(Step::Abandon(i)).is_err() {
                    // No hasher left to write anything more: the claim can go now.
                    shared.release(i, w);
                }
                return streamed.map(|()| true).inspect_err(|_| {
                    shared.picker().finish(w, i, false);
                });
            }
            // An end-game duplicate of a piece another worker is writing or has verified:
            // read past it, keep nothing.
            drain(shared, conn, len, deadline).map(|()| true)
        }
        Ok(Reply::Err(ErrCode::Unavailable, _)) => return Ok(false),
        Ok(other) => Err(ConnError::Protocol(format!("PIECE {i} answered {other}"))),
        Err(e) => Err(e),
    };
    shared.picker().finish(w, i, false);
    got
}

/// Piece `(index, offset, len)`, claimed: read it chunk by chunk and hand each to the hasher,
/// which writes it into the part file (unless the fetcher did, while the hasher was behind);
/// the last chunk asks for the verdict.
fn stream_piece(
    shared: &Shared,
    conn: &mut Conn,
    (i, offset, len): (u32, u64, u64),
    deadline: Instant,
    steps: &SyncSender<Step>,
    state: &WorkerState,
) -> Result<(), ConnError> {
    let stopped = || ConnError::Protocol("the download stopped".into());
    let mut at = 0u64;
    loop {
        let n = (len - at).min(CHUNK as u64) as usize;
        let mut buf = shared.buffer(n).ok_or_else(stopped)?;
        if let Err(e) = conn.read_data(&mut buf, deadline) {
            shared.recycle(buf);
            return Err(e);
        }
        // The hasher falling behind: write this chunk here if no other thread is writing into
        // the file (the same worker's claim, so no other writer of this piece; its later
        // chunks may still be written by the hasher, in any order).
        let written = if state.fetcher_should_write() {
            try_store_chunk(shared, &buf, offset + at)
        } else {
            None
        };
        if written == Some(false) {
            shared.recycle(buf);
            return Err(stopped());
        }
        let written = written.is_some();
        let last = at + n as u64 >= len;
        if last {
            state.handed_over();
        }
        let step = Step::Bytes {
            piece: i,
            at,
            bytes: buf,
            last,
            written,
        };
        state.queue_one();
        if let Err(mpsc::SendError(step)) = steps.send(step) {
            state.unqueue_one();
            // The hasher is gone (it panicked): nothing will check this piece.
            if let Step::Bytes { bytes, .. } = step {
                shared.recycle(bytes);
            }
            if last {
                state.taken_back();
            }
            return Err(stopped());
        }
        if last {
            return Ok(());
        }
        at += n as u64;
    }
}

/// Read and drop `len` bytes of data (a piece we no longer want).
fn drain(shared: &Shared, conn: &mut Conn, len: u64, deadline: Instant) -> Result<(), ConnError> {
    let mut buf = shared
        .buffer((len as usize).min(CHUNK))
        .ok_or_else(|| ConnError::Protocol("the download stopped".into()))?;
    let mut left = len;
    let mut read = Ok(());
    while left > 0 && read.is_ok() {
        let n = left.min(buf.len() as u64) as usize;
        read = conn.read_data(&mut buf[..n], deadline);
        left -= n as u64;
    }
    shared.recycle(buf);
    read
}
