//! One TCP connection: bounded line reads, data blocks, timeouts and `--trace`.
//!
//! `Conn` is the only place that turns bytes on a socket into lines and back. It knows the
//! framing (a line ends at `\n`; `DATA <len>` is followed by `len` raw bytes) but not what any
//! line means: that is `protocol.rs`. Every `Conn` has read and write timeouts, and a line that
//! has started must finish within `Timeouts::line`, so a client that sends one byte a second
//! cannot hold a thread forever.
//!
//! Where things are:
//! - `conn.rs` (this file): `Conn` itself (open, connect, name, timeouts), `Timeouts` and
//!   `ConnError`.
//! - `lines.rs`: reading and writing lines.
//! - `data.rs`: `DATA` blocks in and out.
//! - `trace.rs`: `Trace`, the `--trace` lines.
//! - `sendfile.rs`: `send_file`'s zero copy; `sniff.rs`: what a new connection speaks.

use std::fmt;
use std::io::{self, BufReader, Read};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

mod data;
mod lines;
mod sendfile;
pub mod sniff;
mod trace;

pub use trace::Trace;

/// The three clocks of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long to wait for the first byte of a line (a server's idle timeout, a client's wait
    /// for a reply).
    pub idle: Duration,
    /// How long a line may take once its first byte has arrived.
    pub line: Duration,
    /// How long one read or write of a data block may block (a stalled sender or receiver).
    pub io: Duration,
}

impl Timeouts {
    pub const fn uniform(d: Duration) -> Timeouts {
        Timeouts {
            idle: d,
            line: d,
            io: d,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::uniform(Duration::from_secs(10))
    }
}

/// Why a read or a request failed.
#[derive(Debug)]
pub enum ConnError {
    /// The other side closed the connection (or closed it in the middle of a line).
    Closed,
    /// Nothing, or not enough, arrived in time.
    Timeout,
    /// A line started but did not finish within `Timeouts::line`.
    LineTimeout,
    /// A line longer than the limit arrived. It was discarded up to its newline, so the
    /// connection is still in step and may go on.
    TooLong,
    /// The reply did not follow the protocol.
    Protocol(String),
    Io(io::Error),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ConnError::Closed => write!(f, "connection closed"),
            ConnError::Timeout => write!(f, "timed out"),
            ConnError::LineTimeout => write!(f, "a line did not finish in time"),
            ConnError::TooLong => write!(f, "line too long"),
            ConnError::Protocol(m) => write!(f, "protocol error: {m}"),
            ConnError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnError {}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ConnError::Timeout,
            io::ErrorKind::UnexpectedEof => ConnError::Closed,
            _ => ConnError::Io(e),
        }
    }
}

/// The read side of a shared socket. The socket is shared (an `Arc`, not a second file
/// descriptor) with whoever may need to shut it down from another thread.
struct SharedStream(Arc<TcpStream>);

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

/// Read buffer per connection: request lines are at most 4 KiB (`MAX_LINE`), longer reply
/// lines are read across several fills, and large data reads bypass it. It is resident for
/// the connection's whole life: `BufReader` zero-fills all of it at the first read through
/// `SharedStream` (std's `Read::read_buf` cannot be overridden on stable Rust), so its size
/// is paid per idle connection: 16 KiB made a tracker holding 10,000 idle connections need
/// 1.5x the memory of a bare echo server; 4 KiB, less than that server.
const READ_BUFFER: usize = 4 * 1024;

/// A TCP connection speaking lines and data blocks.
pub struct Conn {
    stream: Arc<TcpStream>,
    reader: BufReader<SharedStream>,
    remote: SocketAddr,
    /// Who the trace says is at the other end: the address, until `set_name`.
    name: String,
    timeouts: Timeouts,
    read_timeout: Option<Duration>,
    trace: Trace,
    /// Reply lines queued by `queue_line`, sent with the next write (one system call for the
    /// replies to pipelined requests). Empty between calls of the public methods, except after
    /// `queue_line`.
    out: Vec<u8>,
}

impl Conn {
    /// Wrap an accepted or connected stream; sets its timeouts and TCP_NODELAY.
    pub fn new(stream: Arc<TcpStream>, timeouts: Timeouts, trace: Trace) -> io::Result<Conn> {
        let remote = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(timeouts.io))?;
        stream.set_read_timeout(Some(timeouts.idle))?;
        Ok(Conn {
            reader: BufReader::with_capacity(READ_BUFFER, SharedStream(stream.clone())),
            stream,
            remote,
            name: remote.to_string(),
            timeouts,
            read_timeout: Some(timeouts.idle),
            trace,
            out: Vec::new(),
        })
    }

    /// Connect to `addr` (with `timeouts.io` as the connect timeout).
    pub fn connect(addr: &str, timeouts: Timeouts, trace: Trace) -> Result<Conn, ConnError> {
        let mut last = ConnError::Protocol(format!("{addr} does not resolve to an address"));
        for sa in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&sa, timeouts.io) {
                Ok(stream) => return Ok(Conn::new(Arc::new(stream), timeouts, trace)?),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// From now on, name the other end `name` in the trace (a tracker names a connection by
    /// the peer id it registered; a peer's server by the id a `HELLO` gave). The change is
    /// traced, so the address and the name can be matched up.
    pub fn set_name(&mut self, name: &str) {
        if name != self.name {
            self.trace_event(&format!("is {name} from now on"));
            self.name = name.to_string();
        }
    }

    /// Trace an event of this connection (`-` lines): connected, closed, forgot a peer.
    pub fn trace_event(&self, text: &str) {
        self.trace.line(&self.name, "-", text.as_bytes());
    }

    /// The socket, to shut it down from another thread.
    pub fn stream(&self) -> Arc<TcpStream> {
        self.stream.clone()
    }

    fn set_read_timeout(&mut self, d: Duration) -> io::Result<()> {
        let d = d.max(Duration::from_millis(1));
        if self.read_timeout != Some(d) {
            self.stream.set_read_timeout(Some(d))?;
            self.read_timeout = Some(d);
        }
        Ok(())
    }
}
