//! The one raw protocol client of the tests: what a student does with `nc`. Every read and
//! write has a timeout (a hang detector, never a speed limit) and every line read is bounded,
//! so no server bug can hang a test. It owns no protocol logic beyond "a line ends in `\n`".

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long any single read or write may block before a test calls it a hang.
pub const HANG: Duration = Duration::from_secs(30);

/// The longest line a test reads from a server (the biggest reply in the tests is far shorter).
const READ_MAX: u64 = 1 << 20;

/// A loopback connection with `TCP_NODELAY` (fragments go out at once, with no Nagle wait on a
/// delayed ACK) and `HANG` as its read and write timeouts.
pub fn connect_stream(addr: impl ToSocketAddrs) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    stream.set_write_timeout(Some(HANG)).unwrap();
    stream
}

/// A raw client. The plain methods panic on any I/O error (most tests want exactly that);
/// the `try_` ones hand the error back, for tests where a reset or a close is an answer.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: impl ToSocketAddrs) -> Client {
        Client {
            reader: BufReader::new(connect_stream(addr)),
        }
    }

    /// The socket (to shut down its write side, or clone it for a second thread).
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).unwrap();
    }

    /// One line without its `\n`; `None` at a clean end of stream. A line of more than 1 MiB,
    /// one cut off by the end of the stream, or one that is not UTF-8 is an error.
    pub fn try_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        (&mut self.reader)
            .take(READ_MAX)
            .read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Ok(None);
        }
        if buf.pop() != Some(b'\n') {
            let shown = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
            return Err(io::Error::other(format!("line without newline: {shown:?}")));
        }
        String::from_utf8(buf)
            .map(Some)
            .map_err(|e| io::Error::other(format!("reply is not UTF-8: {e}")))
    }

    /// One reply line without its newline; "" at the end of the stream.
    pub fn line(&mut self) -> String {
        self.try_line().unwrap().unwrap_or_default()
    }

    /// Send one line, read one line.
    pub fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    pub fn try_bytes(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        self.try_bytes(len).unwrap()
    }

    /// Send a request answered by `DATA <len>` and return the data.
    pub fn data(&mut self, line: &str) -> Vec<u8> {
        let reply = self.ask(line);
        let len: usize = reply
            .strip_prefix("DATA ")
            .unwrap_or_else(|| panic!("{line} answered {reply}"))
            .parse()
            .unwrap();
        self.bytes(len)
    }

    /// True when the server has closed the connection: the end of the stream (or a reset) and
    /// nothing before it. A timeout is not a close.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match self.reader.read(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}
