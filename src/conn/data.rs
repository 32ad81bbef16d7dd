//! The data-block side of a `Conn`: `DATA <len>` and its bytes sent from memory or from a
//! file (zero copy where `sendfile.rs` can), and received within a deadline.
//!
//! It owns the byte counts of blocks; it must never send fewer bytes than a `DATA` line
//! promised without returning an error (the connection is then out of step and must close),
//! and never read a block without a deadline.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Instant;

use super::{Conn, ConnError, sendfile};
use crate::protocol::{Reply, Request};

impl Conn {
    /// Send `DATA <len>` and the bytes.
    pub fn send_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.send_line(&Reply::Data(bytes.len() as u64).to_string())?;
        // Traced before the bytes leave, as every sent line is, so a trace never shows the
        // other end receiving something before we sent it.
        self.trace_bytes(bytes.len() as u64, ">");
        (&*self.stream).write_all(bytes)
    }

    /// Send `DATA <len>` and `len` bytes of `file` from `offset`, with `sendfile` where the
    /// system has it (see `sendfile.rs`), else `io::copy`. If the file is shorter than promised
    /// the connection is out of step: the error says so and the caller must close it.
    pub fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        self.send_line(&Reply::Data(len).to_string())?;
        // Traced before the bytes leave (see `send_data`); a short send is an error below.
        self.trace_bytes(len, ">");
        let mut sent = sendfile::send(file, &self.stream, offset, len)?;
        if sent < len && !sendfile::ended(file, offset + sent)? {
            // No zero-copy here: copy through a buffer from where it stopped.
            let mut reader = file;
            reader.seek(SeekFrom::Start(offset + sent))?;
            sent += io::copy(&mut reader.take(len - sent), &mut &*self.stream)?;
        }
        if sent < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file ended after {sent} of {len} promised bytes"),
            ));
        }
        Ok(())
    }

    /// Read exactly `buf.len()` bytes of a data block. Each read may block `io`; the whole
    /// block must arrive before `deadline`.
    pub fn read_data(&mut self, buf: &mut [u8], deadline: Instant) -> Result<(), ConnError> {
        let mut filled = 0;
        while filled < buf.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnError::Timeout);
            }
            self.set_read_timeout(left.min(self.timeouts.io))?;
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.trace_bytes(buf.len() as u64, "<");
        Ok(())
    }

    fn trace_bytes(&self, n: u64, arrow: &str) {
        if self.trace.is_on() {
            self.trace
                .line(&self.name, arrow, format!("<{n} bytes>").as_bytes());
        }
    }

    /// Send a request whose success reply is a data block of at most `max` bytes, and read it.
    pub fn request_data(&mut self, req: &Request, max: u64) -> Result<Vec<u8>, ConnError> {
        match self.request(req)? {
            Reply::Data(len) if len <= max => {
                let mut buf = vec![0; len as usize];
                let deadline = Instant::now() + self.timeouts.line;
                self.read_data(&mut buf, deadline)?;
                Ok(buf)
            }
            Reply::Data(len) => Err(ConnError::Protocol(format!(
                "data block of {len} bytes is larger than {max}"
            ))),
            Reply::Err(code, msg) => Err(ConnError::Protocol(format!("{} {msg}", code.as_str()))),
            other => Err(ConnError::Protocol(format!("unexpected reply {other}"))),
        }
    }
}
