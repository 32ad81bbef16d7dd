//! The line side of a `Conn`: bounded line reads (an overlong line discarded to its newline,
//! a started line finished within `Timeouts::line`), lines sent at once or queued for one
//! write, and a request with its reply line.
//!
//! It owns the framing of lines only; it must never parse what a line means beyond handing a
//! reply line to `protocol::parse_reply`, and never wait without a timeout.

use std::io::{self, BufRead, Write};
use std::time::Instant;

use super::{Conn, ConnError};
use crate::protocol::{self, MAX_REPLY_LINE, Reply, Request};

/// How many bytes of an overlong line we discard while looking for its end before giving up on
/// the connection.
const DISCARD_LIMIT: usize = 1 << 20;

/// Most bytes `Conn::queue_line` keeps before it writes them out anyway.
const MAX_QUEUED: usize = 16 * 1024;
impl Conn {
    /// Read one line of at most `max` bytes, without its `\n`.
    ///
    /// Waits `idle` for the line to start and `line` for it to finish. A line that ends
    /// without a newline (EOF mid-line) counts as `Closed`: only complete lines are requests.
    pub fn read_line(&mut self, max: usize) -> Result<Vec<u8>, ConnError> {
        let mut line = Vec::new();
        let mut discarded = 0usize;
        let mut deadline: Option<Instant> = None;
        self.set_read_timeout(self.timeouts.idle)?;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return match (e.into(), deadline) {
                        (ConnError::Timeout, Some(_)) => Err(ConnError::LineTimeout),
                        (e, _) => Err(e),
                    };
                }
            };
            if buf.is_empty() {
                return Err(ConnError::Closed);
            }
            let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1),
                None => (buf, buf.len()),
            };
            let found_newline = done > chunk.len();
            if discarded > 0 || line.len() + chunk.len() > max {
                discarded += line.len() + chunk.len();
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
            self.reader.consume(done);
            if found_newline {
                break;
            }
            if discarded > DISCARD_LIMIT {
                return Err(ConnError::Protocol(format!(
                    "a line ran past {DISCARD_LIMIT} bytes without a newline"
                )));
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + self.timeouts.line);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnError::LineTimeout);
            }
            self.set_read_timeout(left)?;
        }
        if discarded > 0 {
            self.trace.line(
                &self.name,
                "<",
                format!("<{discarded} bytes: line too long>").as_bytes(),
            );
            // The connection is still in step: the overlong line was consumed to its newline.
            return Err(ConnError::TooLong);
        }
        self.trace.line(&self.name, "<", &line);
        Ok(line)
    }

    /// Write one line (the `\n` is added), after any lines queued by `queue_line`, in one
    /// system call.
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        self.push_line(line);
        self.flush()
    }

    /// Write several lines in one system call (pipelined requests).
    pub fn send_lines(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            self.push_line(line);
        }
        self.flush()
    }

    /// Queue one line to go out with the next write (`flush`, `send_line`, a data block).
    /// For a server answering pipelined requests: while another request is already waiting
    /// in the read buffer (`line_waiting`), its replies can share one system call. Writes
    /// at once if the queue has grown past 16 KiB.
    pub fn queue_line(&mut self, line: &str) -> io::Result<()> {
        self.push_line(line);
        if self.out.len() >= MAX_QUEUED {
            return self.flush();
        }
        Ok(())
    }

    /// Write the queued lines, if any.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = (&*self.stream).write_all(&self.out);
        self.out.clear();
        if self.out.capacity() > MAX_QUEUED {
            self.out = Vec::new(); // a burst of long replies does not pin its buffer
        }
        written
    }

    /// Is a whole line already in the read buffer, so the next `read_line` will not wait for
    /// the network (the other end pipelines its requests)?
    pub fn line_waiting(&self) -> bool {
        self.reader.buffer().contains(&b'\n')
    }

    fn push_line(&mut self, line: &str) {
        // Traced when queued, before the bytes leave, as every sent line is.
        self.trace.line(&self.name, ">", line.as_bytes());
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
    }

    /// Read and parse one reply line.
    pub fn read_reply(&mut self) -> Result<Reply, ConnError> {
        let line = self.read_line(MAX_REPLY_LINE)?;
        protocol::parse_reply(&line).map_err(|e| ConnError::Protocol(e.message))
    }

    /// Send a request and read its reply line (a `DATA` block, if any, is left to the caller).
    pub fn request(&mut self, req: &Request) -> Result<Reply, ConnError> {
        self.send_line(&req.to_string())?;
        self.read_reply()
    }
}
