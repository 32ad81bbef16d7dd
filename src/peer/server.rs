//! The peer's server: answers `GET`, `PIECE`, `HAVE`, `HASHES` from other peers (and from
//! people with `nc`).
//!
//! `handle` decides what to send from the store alone and returns it as an `Answer`; only
//! `serve_connection` touches the socket and the file. File bytes go from disk to the socket
//! with `sendfile` (`Conn::send_file`), never through our memory; pieces of a file still
//! downloading are served as soon as they are verified.

use std::fs::File;
use std::sync::Arc;

use crate::conn::Conn;
use crate::peer::store::{self, Entry, Holding, Store, hashes_text};
use crate::protocol::{ErrCode, ProtoError, Reply, Request};
use crate::server::{Flow, line_loop};

/// What to send for one request.
#[derive(Debug)]
pub enum Answer {
    Line(Reply),
    /// `DATA <len>` then `len` bytes of `entry`'s file from `offset`, if the file on disk is
    /// still what was announced.
    File {
        entry: Arc<Entry>,
        offset: u64,
        len: u64,
    },
    /// `DATA <len>` then these bytes.
    Bytes(Vec<u8>),
    Bye,
}

/// Serve one connection until it closes.
pub fn serve_connection(store: &Store, conn: &mut Conn) {
    let mut who = conn.remote().to_string();
    line_loop(conn, |conn, request| {
        if let Request::Hello { id } = &request {
            who = id.clone();
        }
        match handle(store, request) {
            Answer::Line(reply) => conn.send_line(&reply.to_string())?,
            Answer::Bytes(bytes) => conn.send_data(&bytes)?,
            Answer::File { entry, offset, len } => {
                let path = store.data_path(&entry);
                let opened = File::open(&path).and_then(|f| Ok((f.metadata()?, f)));
                match opened {
                    Ok((md, file)) if store::unchanged(&entry, &md) => {
                        // A failure here leaves the connection out of step: close it.
                        conn.send_file(&file, offset, len)?;
                        store.count_upload(&who, len);
                    }
                    Ok(_) => {
                        // Not what we announced any more: stop offering it.
                        store.file_changed(&entry.meta.name);
                        let msg = format!(
                            "{} changed on disk since it was shared; no longer shared here",
                            entry.meta.name
                        );
                        conn.send_line(&Reply::Err(ErrCode::Unavailable, msg).to_string())?;
                    }
                    Err(e) => {
                        let msg = format!("cannot read {}: {e}", entry.meta.name);
                        conn.send_line(&Reply::Err(ErrCode::Internal, msg).to_string())?;
                    }
                }
            }
            Answer::Bye => {
                conn.send_line(&Reply::Ack("bye".into()).to_string())?;
                return Ok(Flow::Close);
            }
        }
        Ok(Flow::Continue)
    });
}

/// Decide the answer to one request from the store alone.
pub fn handle(store: &Store, request: Request) -> Answer {
    match answer(store, request) {
        Ok(answer) => answer,
        Err(e) => Answer::Line(e.into_reply()),
    }
}

fn answer(store: &Store, request: Request) -> Result<Answer, ProtoError> {
    let lookup = |name: &str| {
        store.get(name).ok_or_else(|| {
            ProtoError::new(ErrCode::NotFound, format!("this peer does not hold {name}"))
        })
    };
    let answer = match request {
        Request::Hello { id } => Answer::Line(Reply::Ack(format!("hello {id}"))),
        Request::Get { name, range } => {
            let entry = lookup(&name)?;
            if let Holding::Partial(_) = entry.holding {
                return Err(ProtoError::new(
                    ErrCode::Unavailable,
                    format!("{name} is still downloading here; ask HAVE and PIECE instead"),
                ));
            }
            let size = entry.meta.size;
            let (offset, len) = range.unwrap_or((0, size));
            if offset.checked_add(len).is_none_or(|end| end > size) {
                return Err(ProtoError::new(
                    ErrCode::Range,
                    format!("{name} has {size} bytes; {offset}+{len} is past its end"),
                ));
            }
            file_answer(entry, offset, len)
        }
        Request::Piece { name, index } => {
            let entry = lookup(&name)?;
            let pieces = entry.meta.pieces();
            if index >= pieces {
                let why = match pieces {
                    0 => format!("{name} is empty: it has no pieces"),
                    n => format!("{name} has {n} pieces (0 to {})", n - 1),
                };
                return Err(ProtoError::new(ErrCode::Range, why));
            }
            if let Holding::Partial(have) = &entry.holding
                && !have.has(index)
            {
                return Err(ProtoError::new(
                    ErrCode::Unavailable,
                    format!("piece {index} of {name} is not here yet"),
                ));
            }
            let (offset, len) = entry.meta.piece_range(index);
            file_answer(entry, offset, len)
        }
        Request::Have { name } => {
            let entry = lookup(&name)?;
            let bits = match &entry.holding {
                Holding::Complete => "1".repeat(entry.meta.pieces() as usize),
                Holding::Partial(have) => have.bits(),
            };
            Answer::Line(Reply::Bitfield(bits))
        }
        Request::Hashes { name } => {
            let entry = lookup(&name)?;
            Answer::Bytes(hashes_text(&entry.hashes).into_bytes())
        }
        Request::Ping => Answer::Line(Reply::Pong),
        Request::Help => Answer::Line(Reply::Ack(
            "peer verbs: HELLO GET PIECE HAVE HASHES PING HELP BYE".into(),
        )),
        Request::Bye => Answer::Bye,
        Request::Register { .. }
        | Request::Upload(_)
        | Request::Partial { .. }
        | Request::Remove { .. }
        | Request::WhoHas { .. }
        | Request::Info { .. }
        | Request::List => {
            let line = request.to_string();
            let verb = line.split(' ').next().unwrap_or_default();
            return Err(ProtoError::new(
                ErrCode::UnknownVerb,
                format!("{verb} is a tracker verb; this is a peer (try HELP)"),
            ));
        }
    };
    Ok(answer)
}

fn file_answer(entry: Arc<Entry>, offset: u64, len: u64) -> Answer {
    Answer::File { entry, offset, len }
}
