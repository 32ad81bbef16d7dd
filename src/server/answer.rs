//! The one reply path of both servers: a handler turns a request into an `Answer` without
//! touching the socket (so it is tested with plain values), `send` puts it on the wire, and
//! `line_loop` runs a connection: read a line, check and parse it, answer, repeat. It knows no
//! verb's meaning and no server's state, and it never accepts a connection (`server.rs` does).

use std::fmt;
use std::fs::File;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use crate::admission;
use crate::conn::{Conn, ConnError, Timeouts, Trace};
use crate::protocol::{ErrCode, MAX_LINE, Reply, Request, Role, parse_request_for};

/// What a handler answers to one request; `send` puts it on the wire. Both servers' handlers
/// return it, so what to answer is decided (and unit-tested) without a socket.
pub enum Answer {
    /// One reply line.
    Line(Reply),
    /// `DATA <len>` and these bytes.
    Data(Vec<u8>),
    /// `DATA <len>` and a part of an opened file, sent by the kernel (`Conn::send_file`).
    File(FilePart),
    /// A last reply line, then the connection is closed (`BYE` gets `ACK bye`).
    Close(Reply),
}

impl Answer {
    /// The answer to `BYE`: `ACK bye`, then close.
    pub fn bye() -> Answer {
        Answer::Close(Reply::Ack("bye".into()))
    }

    /// An `ERR` line.
    pub fn err(code: ErrCode, message: impl Into<String>) -> Answer {
        Answer::Line(Reply::Err(code, message.into()))
    }
}

/// `len` bytes of `file` from `offset`, already opened and checked by the handler (the peer
/// checks the file is still the one it announced before it answers with it).
pub struct FilePart {
    pub file: File,
    pub offset: u64,
    pub len: u64,
    /// Called once, after every byte has gone (the peer counts its uploads here).
    pub on_sent: Option<Box<dyn FnOnce() + Send>>,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Answer::Line(reply) => write!(f, "Line({reply})"),
            Answer::Data(bytes) => write!(f, "Data({} bytes)", bytes.len()),
            Answer::File(part) => write!(f, "File({}+{})", part.offset, part.len),
            Answer::Close(reply) => write!(f, "Close({reply})"),
        }
    }
}

/// Whether the connection goes on after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Put `answer` on the wire. An error leaves the connection unusable (perhaps out of step, in
/// the middle of a data block): the caller closes it.
///
/// A reply line is only queued while the next request is already waiting in the read buffer
/// (the client pipelines): the replies to a burst of requests then leave in one system call,
/// with the first answer that is not queued. Nothing stays queued once no request is waiting.
pub fn send(conn: &mut Conn, answer: Answer) -> io::Result<Flow> {
    match answer {
        Answer::Line(reply) if conn.line_waiting() => conn.queue_line(&reply.to_string())?,
        Answer::Line(reply) => conn.send_line(&reply.to_string())?,
        Answer::Data(bytes) => conn.send_data(&bytes)?,
        Answer::File(part) => {
            conn.send_file(&part.file, part.offset, part.len)?;
            if let Some(on_sent) = part.on_sent {
                on_sent();
            }
        }
        Answer::Close(reply) => {
            conn.send_line(&reply.to_string())?;
            return Ok(Flow::Close);
        }
    }
    Ok(Flow::Continue)
}

/// What an idle connection is told before it is closed.
fn idle_reply(idle: Duration) -> Reply {
    let secs = idle.as_secs_f32();
    Reply::Err(
        ErrCode::Timeout,
        format!("nothing received for {secs} s; closing"),
    )
}

/// A connection that sent nothing within the idle timeout before its first byte (while
/// `conn::sniff` waited to see what it speaks): told, as by `line_loop`, and closed.
pub fn silent(stream: Arc<TcpStream>, timeouts: Timeouts, trace: Trace) {
    if let Ok(mut conn) = Conn::new(stream, timeouts, trace) {
        let _ = send(&mut conn, Answer::Close(idle_reply(timeouts.idle)));
    }
}

/// The loop every connection of both servers runs: read a line, parse it as a request to
/// `role`'s server, let `handle` answer it, `send` the answer, repeat. Bad lines (a verb of
/// the other server among them) are answered here with `ERR` and the connection goes on; an
/// overlong line is skipped to its newline and answered `ERR too-long`; an idle connection is
/// told why it is closed. Returns when the connection ends.
///
/// `handle` gets the connection only to name it in the trace (`Conn::set_name`); it must not
/// read or write it.
pub fn line_loop(
    conn: &mut Conn,
    role: Role,
    mut handle: impl FnMut(&mut Conn, Request) -> Answer,
) {
    loop {
        let answer = match conn.read_line(MAX_LINE) {
            Ok(line) => {
                // A request line: this connection is in use (eviction spares it longest).
                admission::touch();
                match parse_request_for(&line, role) {
                    Ok(request) => handle(conn, request),
                    Err(e) => Answer::Line(e.into_reply()),
                }
            }
            Err(ConnError::TooLong) => Answer::err(
                ErrCode::TooLong,
                format!("lines are limited to {MAX_LINE} bytes"),
            ),
            Err(ConnError::Timeout) => Answer::Close(idle_reply(conn.timeouts().idle)),
            Err(ConnError::LineTimeout) => {
                let secs = conn.timeouts().line.as_secs_f32();
                let msg = format!("a line must end within {secs} s of its first byte; closing");
                Answer::Close(Reply::Err(ErrCode::Timeout, msg))
            }
            Err(ConnError::Protocol(msg)) => Answer::Close(Reply::Err(ErrCode::TooLong, msg)),
            Err(_) => {
                // Replies queued for requests read before the end still go out.
                let _ = conn.flush();
                return;
            }
        };
        match send(conn, answer) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}
