//! One TCP connection: bounded line reads, data blocks, timeouts and `--trace`.
//!
//! `Conn` is the only place that turns bytes on a socket into lines and back. It knows the
//! framing (a line ends at `\n`; `DATA <len>` is followed by `len` raw bytes) but not what any
//! line means: that is `protocol.rs`. Every `Conn` has read and write timeouts, and a line that
//! has started must finish within `Timeouts::line`, so a client that sends one byte a second
//! cannot hold a thread forever.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::protocol::{self, MAX_REPLY_LINE, Reply, Request};

mod sendfile;
pub mod sniff;

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

/// Where `--trace` lines go: off, or stderr with a label naming this process's role.
///
/// A trace line is
///
/// ```text
/// trace [   12.345 ms] tracker < 127.0.0.1:9000  UPLOAD test1.txt 27 ...
/// ```
///
/// the milliseconds since tracing started (the CLI turns it on first thing, so: since the
/// process started), the label, the direction (`<` received, `>` sent, `-` an event of the
/// connection: connected, registered, forgotten, closed), who is at the other end (its
/// address, or once it has said who it is, its id), and the line. Lines are printed through
/// `protocol::redacted`, so a field marked secret never reaches the trace.
#[derive(Clone, Debug, Default)]
pub struct Trace(Option<Arc<str>>);

static TRACE_TO_STDOUT: AtomicBool = AtomicBool::new(false);
/// When tracing started: the zero of every trace line's clock.
static TRACE_START: OnceLock<Instant> = OnceLock::new();

impl Trace {
    pub fn off() -> Trace {
        Trace(None)
    }
    /// Trace to stderr, each line labelled `label` (`tracker`, `peer 10000`). Starts the trace
    /// clock if it is not running yet.
    pub fn on(label: &str) -> Trace {
        TRACE_START.get_or_init(Instant::now);
        Trace(Some(label.into()))
    }
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
    /// Send trace lines to stdout instead of stderr (the simulation narrates on stdout).
    pub fn to_stdout(yes: bool) {
        TRACE_TO_STDOUT.store(yes, Ordering::Relaxed);
    }
    /// One trace line of a connection that is not a `Conn` (the BitTorrent wire):
    /// `arrow` is `<`, `>` or `-`, `who` the other side.
    pub fn note(&self, who: &str, arrow: &str, text: &str) {
        self.line(who, arrow, text.as_bytes());
    }
    fn line(&self, who: &str, arrow: &str, text: &[u8]) {
        if let Some(label) = &self.0 {
            let text = String::from_utf8_lossy(text);
            let text = protocol::redacted(text.trim_end_matches('\r'));
            let ms = TRACE_START
                .get_or_init(Instant::now)
                .elapsed()
                .as_secs_f64()
                * 1000.0;
            // A trace must never take the process down: a closed stdout (`| head`) or a full
            // disk loses trace lines, nothing else.
            if TRACE_TO_STDOUT.load(Ordering::Relaxed) {
                let _ = writeln!(
                    io::stdout().lock(),
                    "  [{ms:9.3} ms] {label} {arrow} {who}  {text}"
                );
            } else {
                let _ = writeln!(
                    io::stderr().lock(),
                    "trace [{ms:9.3} ms] {label} {arrow} {who}  {text}"
                );
            }
        }
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

/// How many bytes of an overlong line we discard while looking for its end before giving up on
/// the connection.
const DISCARD_LIMIT: usize = 1 << 20;

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

/// Most bytes `Conn::queue_line` keeps before it writes them out anyway.
const MAX_QUEUED: usize = 16 * 1024;

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
