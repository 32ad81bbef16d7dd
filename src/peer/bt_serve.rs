//! The peer's server side of the BitTorrent wire (BEP 3): a connection that opened with
//! byte 19 (`conn::sniff`) comes here instead of the line loop. It serves a torrent this
//! peer seeds or is downloading, from its verified pieces only, through the torrent's
//! `Layout`.
//!
//! One thread, one socket, as every connection here: read with a short timeout (the tick),
//! decode with the bounded `bt::framing::Decoder`, let `bt::session::Session` judge each
//! message, queue the requests (at most `MAX_QUEUE`), answer them in order, and send `have`
//! for pieces verified since the last tick. Every refusal is a trace line and a close.
//! Owns no state beyond its connection; never writes the store.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bt::bitfield::Bitfield;
use crate::bt::framing::{Decoder, HandshakeReader};
use crate::bt::session::{Block, Event, Geometry, Session};
use crate::bt::wire::{Handshake, Message};
use crate::conn::{Timeouts, Trace};
use crate::peer::store::{Entry, Holding, Store};
use crate::torrent::wire::wire_name;

/// Requests queued from one peer before it is refused (aria2c pipelines ~100; libtorrent
/// allows 500).
pub const MAX_QUEUE: usize = 512;
/// How often the loop wakes to send `have` and keep-alives.
const TICK: Duration = Duration::from_millis(200);
/// A keep-alive after this long without sending anything (BEP 3: peers drop after 2 min).
const KEEPALIVE: Duration = Duration::from_secs(90);
/// A BitTorrent peer silent this long is closed (it owes us a keep-alive every 2 minutes).
const SILENCE: Duration = Duration::from_secs(150);

/// Our peer id: `-TP0001-` (Azureus style: client TP, version 0.0.0.1) and 12 characters
/// that differ between peers of one machine (the port) and runs (the clock).
pub fn peer_id(port: u16) -> [u8; 20] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let text = format!("-TP0001-{port:05}{:07}", nanos % 10_000_000);
    let mut id = [0u8; 20];
    id.copy_from_slice(&text.as_bytes()[..20]);
    id
}

/// Read a 68-byte handshake within `deadline` (a byte-a-second trickle ends there). Returns
/// it and any bytes that came after it in the same reads.
pub fn read_handshake(
    stream: &TcpStream,
    within: Duration,
) -> Result<(Handshake, Vec<u8>), String> {
    let deadline = Instant::now() + within;
    let mut reader = HandshakeReader::new();
    let mut buf = [0u8; 256];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "handshake not complete within {} s ({} of 68 bytes); closing",
                within.as_secs_f32(),
                reader.buffered()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match (&*stream).read(&mut buf) {
            Ok(0) => return Err("closed during the handshake".into()),
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(e) => return Err(format!("read failed during the handshake: {e}")),
        };
        let (used, done) = reader.feed(&buf[..n]).map_err(|e| e.to_string())?;
        if let Some(h) = done {
            return Ok((h, buf[used..n].to_vec()));
        }
    }
}

/// A read or write that ran out of time (not a failure of the connection).
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Write `msg`, traced.
pub fn send(stream: &TcpStream, trace: &Trace, who: &str, msg: &Message) -> std::io::Result<()> {
    if trace.is_on() {
        trace.note(who, ">", &msg.to_string());
    }
    (&*stream).write_all(&msg.encode())
}

fn verified(entry: &Entry, i: u32) -> bool {
    match &entry.holding {
        Holding::Complete => true,
        Holding::Partial(have) => have.has(i),
    }
}

/// Serve one BitTorrent connection until it ends. `our_id` goes in our handshake.
pub fn serve(
    store: &Arc<Store>,
    stream: &TcpStream,
    timeouts: Timeouts,
    trace: &Trace,
    our_id: [u8; 20],
) {
    let who = stream
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let end = |why: &str| trace.note(&who, "-", &format!("BT closed: {why}"));
    if stream.set_nodelay(true).is_err() || stream.set_write_timeout(Some(timeouts.io)).is_err() {
        return;
    }
    let (hs, rest) = match read_handshake(stream, timeouts.line) {
        Ok(done) => done,
        Err(why) => return end(&why),
    };
    trace.note(&who, "<", &hs.to_string());
    let name = wire_name(&hs.info_hash);
    let Some(mut entry) = store.get(&name).filter(|e| e.layout.is_some()) else {
        return end(&format!(
            "info-hash {} is not a torrent served here",
            crate::bt::wire::hex(&hs.info_hash)
        ));
    };
    let ours = Handshake::new(hs.info_hash, our_id);
    trace.note(&who, ">", &ours.to_string());
    if (&*stream).write_all(&ours.encode()).is_err() {
        return end("write failed");
    }
    let geometry = Geometry {
        piece_length: u64::from(entry.meta.piece_size),
        total_length: entry.meta.size,
    };
    let pieces = geometry.pieces();
    let mut announced = Bitfield::new(pieces);
    for i in 0..pieces {
        if verified(&entry, i as u32) {
            announced.set(i);
        }
    }
    if announced.count() > 0
        && send(stream, trace, &who, &Message::Bitfield(announced.clone())).is_err()
    {
        return end("write failed");
    }
    let mut session = Session::new(geometry, 1);
    let mut decoder = Decoder::new(pieces);
    let mut queue: VecDeque<Block> = VecDeque::new();
    let mut msgs = Vec::new();
    if let Err(e) = decoder.feed(&rest, &mut msgs) {
        return end(&e.to_string());
    }
    let mut buf = vec![0u8; 32 * 1024];
    let (mut last_sent, mut last_heard) = (Instant::now(), Instant::now());
    let mut last_look = Instant::now();
    if stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    loop {
        for msg in msgs.drain(..) {
            if trace.is_on() {
                trace.note(&who, "<", &msg.to_string());
            }
            let event = match session.receive(msg) {
                Ok(event) => event,
                Err(v) => return end(&v.to_string()),
            };
            match event {
                Event::Serve(block) => {
                    if !verified(&entry, block.index) {
                        return end(&format!(
                            "request for piece {} which we never announced",
                            block.index
                        ));
                    }
                    if queue.len() >= MAX_QUEUE {
                        return end(&format!("more than {MAX_QUEUE} requests queued"));
                    }
                    queue.push_back(block);
                }
                Event::Cancel(block) => queue.retain(|b| *b != block),
                _ => {}
            }
            // No tit-for-tat on a LAN: every interested peer is unchoked at once.
            if session.peer_interested
                && let Some(m) = session.set_choking(false)
            {
                if send(stream, trace, &who, &m).is_err() {
                    return end("write failed");
                }
                last_sent = Instant::now();
            }
        }
        // Answer what is queued, reading each block from the verified piece's files.
        while let Some(block) = queue.pop_front() {
            let Some(layout) = entry.layout.as_ref() else {
                return;
            };
            let mut data = vec![0u8; block.length as usize];
            let at = u64::from(block.index) * geometry.piece_length + u64::from(block.begin);
            if let Err(e) = layout.read_exact_at(&mut data, at) {
                return end(&format!("cannot read piece {}: {e}", block.index));
            }
            let msg = Message::Piece {
                index: block.index,
                begin: block.begin,
                block: data,
            };
            if send(stream, trace, &who, &msg).is_err() {
                return end("write failed");
            }
            store.count_upload(&who, u64::from(block.length));
            last_sent = Instant::now();
        }
        // Pieces verified since the last look (every tick): `have` (a download in
        // progress), and the entry again (the finished download's files replace the part
        // files).
        if last_look.elapsed() >= TICK {
            last_look = Instant::now();
            match store.get(&name) {
                Some(now) if now.layout.is_some() => entry = now,
                _ => return end("the torrent is no longer served here"),
            }
            for i in 0..pieces {
                if !announced.get(i) && verified(&entry, i as u32) {
                    announced.set(i);
                    if send(stream, trace, &who, &Message::Have(i as u32)).is_err() {
                        return end("write failed");
                    }
                    last_sent = Instant::now();
                }
            }
        }
        if last_sent.elapsed() >= KEEPALIVE {
            if send(stream, trace, &who, &Message::KeepAlive).is_err() {
                return end("write failed");
            }
            last_sent = Instant::now();
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => return end("the other side closed"),
            Ok(n) => {
                last_heard = Instant::now();
                // In use: eviction at the connection cap spares it, as a line would.
                crate::admission::touch();
                if let Err(e) = decoder.feed(&buf[..n], &mut msgs) {
                    return end(&e.to_string());
                }
            }
            Err(e) if is_timeout(&e) => {
                if last_heard.elapsed() >= SILENCE {
                    return end(&format!("nothing heard for {} s", SILENCE.as_secs()));
                }
            }
            Err(e) => return end(&format!("read failed: {e}")),
        }
    }
}
