//! The accept loop the tracker and every peer share: one thread per connection, a cap on
//! connections, and a stop that never hangs.
//!
//! Thread-per-connection is the simplest server there is, and its known weakness is that a
//! flood of connections is a flood of threads. So the loop counts open connections, per remote
//! address and in total (`admission.rs` decides: an address past its cap gets `ERR busy` and a
//! close; at the global cap the heaviest address's longest-idle connection is closed to make
//! room), and each thread gets a small, explicit stack. Stopping a blocking `accept()` is done the tiny-http way: set a flag, then connect to
//! ourselves once so `accept()` returns and sees it; then every open socket is shut down and
//! every connection thread joined, so a stopped server has no thread left behind.
//!
//! It also owns the one reply path of both servers: a handler turns a request into an
//! `Answer` without touching the socket (so it is tested with plain values), and `send` puts
//! the answer on the wire. This file knows no verb's meaning and no server's state.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::admission::{self, ConnLimits, Decision, Table};
use crate::conn::{Conn, ConnError, Timeouts, Trace};
use crate::protocol::{ErrCode, MAX_LINE, Reply, Request, Role, parse_request_for};

/// Stack size of a connection thread. The handlers are shallow loops; 256 KiB leaves a wide
/// margin while 10,000 threads reserve (not touch) 2.5 GiB of address space.
pub const CONN_STACK: usize = 256 * 1024;

/// One connection: its socket while it is open (shared with its thread, so a stop can shut it
/// down; dropped when the thread ends, which closes it) and its thread (so it can be joined).
struct Slot {
    stream: Option<Arc<TcpStream>>,
    thread: Option<JoinHandle<()>>,
}

/// The connections of a server. A thread that ends moves its serial number to `ended`; its
/// slot stays until someone joins its thread: the accept loop at its next accept, or `stop`.
/// So the map holds at most the open connections plus those that ended since the last accept.
/// `table` counts the connections being served (not those ended or evicted): the caps.
#[derive(Default)]
struct Conns {
    slots: HashMap<u64, Slot>,
    ended: Vec<u64>,
    table: Table,
}

impl Conns {
    /// Connections still being served (what the cap counts).
    #[cfg(test)]
    fn live(&self) -> usize {
        self.table.len()
    }

    /// Take the slots of ended connections, to be joined outside the lock.
    fn take_ended(&mut self) -> Vec<JoinHandle<()>> {
        let ended = std::mem::take(&mut self.ended);
        ended
            .iter()
            .filter_map(|id| self.slots.remove(id)?.thread)
            .collect()
    }
}

type OpenConns = Arc<Mutex<Conns>>;

fn lock(open: &OpenConns) -> MutexGuard<'_, Conns> {
    // The map is consistent at every unlock; a panicking handler does not hold the lock.
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running server. Dropping it stops accepting, closes every open connection and waits for
/// every connection thread to end (the Rust Book's `Drop` that joins its workers).
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    open: OpenConns,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `listener`: every accepted connection runs `handler` on its own thread.
    ///
    /// `handler` must return once its socket is shut down (every read and write on it then
    /// fails at once): that is how `stop` ends it.
    pub fn spawn<F>(
        listener: TcpListener,
        name: &str,
        max_conns: usize,
        handler: F,
    ) -> io::Result<Server>
    where
        F: Fn(Arc<TcpStream>) + Send + Sync + 'static,
    {
        let limits = ConnLimits {
            total: max_conns,
            per_addr: max_conns,
        };
        Server::spawn_limited(listener, name, limits, handler)
    }

    /// Like `spawn`, with a cap per remote address too, and eviction at the global cap (see
    /// `admission.rs` for the policy).
    pub fn spawn_limited<F>(
        listener: TcpListener,
        name: &str,
        limits: ConnLimits,
        handler: F,
    ) -> io::Result<Server>
    where
        F: Fn(Arc<TcpStream>) + Send + Sync + 'static,
    {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let open: OpenConns = Arc::default();
        let handler = Arc::new(handler);
        let (stop2, open2, name2) = (stop.clone(), open.clone(), name.to_string());
        let accept = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || accept_loop(listener, &name2, limits, &stop2, &open2, handler))?;
        Ok(Server {
            addr,
            stop,
            open,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, shut down every open connection, and wait for the accept loop and
    /// every connection thread to end.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wake the blocking accept() with a connection of our own.
            let wake = match self.addr {
                SocketAddr::V4(a) if a.ip().is_unspecified() => {
                    SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
                }
                SocketAddr::V6(a) if a.ip().is_unspecified() => {
                    SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
                }
                a => a,
            };
            let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
            let _ = accept.join();
        }
        // The accept loop has ended, so no slot is added any more.
        let slots = std::mem::take(&mut lock(&self.open).slots);
        for stream in slots.values().filter_map(|s| s.stream.as_ref()) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for thread in slots.into_values().filter_map(|s| s.thread) {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<F>(
    listener: TcpListener,
    name: &str,
    limits: ConnLimits,
    stop: &AtomicBool,
    open: &OpenConns,
    handler: Arc<F>,
) where
    F: Fn(Arc<TcpStream>) + Send + Sync + 'static,
{
    let mut serial = 0u64;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: back off a
                // moment instead of spinning, then go on.
                eprintln!("{name}: accept failed: {e}");
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        // Join the threads that ended since the last accept (each has returned or is about
        // to; the join is outside the lock).
        let ended = lock(open).take_ended();
        for thread in ended {
            let _ = thread.join();
        }
        serial += 1;
        let id = serial;
        let ip = match stream.peer_addr() {
            Ok(addr) => addr.ip(),
            Err(_) => continue, // reset before we looked: nothing to serve
        };
        let stream = Arc::new(stream);
        let (decision, activity, victim) = {
            let mut conns = lock(open);
            let decision = conns.table.admit(ip, limits);
            let mut victim = None;
            if let Decision::Evict(old) = decision {
                victim = conns.slots.get(&old).and_then(|s| s.stream.clone());
            }
            let activity = match decision {
                Decision::Admit | Decision::Evict(_) => {
                    let slot = Slot {
                        stream: Some(stream.clone()),
                        thread: None,
                    };
                    conns.slots.insert(id, slot);
                    Some(conns.table.add(id, ip))
                }
                Decision::RefuseAddr | Decision::RefuseFull => None,
            };
            (decision, activity, victim)
        };
        // The evicted connection's thread sees its socket end and returns, like at a stop.
        if let Some(victim) = victim {
            let _ = victim.shutdown(Shutdown::Both);
        }
        let Some(activity) = activity else {
            let count = lock(open).table.count(ip);
            refuse(&stream, &decision, ip, count, limits);
            continue;
        };
        let (handler, open2) = (handler.clone(), open.clone());
        let spawned = thread::Builder::new()
            .name(format!("{name}-conn"))
            .stack_size(CONN_STACK)
            .spawn(move || {
                admission::serve_as(activity);
                handler(stream);
                let mut conns = lock(&open2);
                let stream = conns.slots.get_mut(&id).and_then(|s| s.stream.take());
                conns.ended.push(id);
                conns.table.remove(id);
                drop(conns);
                // The last reference to the socket: dropping it closes the connection.
                drop(stream);
            });
        let mut conns = lock(open);
        match spawned {
            Ok(thread) => {
                if let Some(slot) = conns.slots.get_mut(&id) {
                    slot.thread = Some(thread);
                }
            }
            Err(e) => {
                // The system is out of threads: the stream moved into the failed closure and
                // is closed with it; forget it.
                eprintln!("{name}: cannot start a connection thread: {e}");
                conns.slots.remove(&id);
                conns.table.remove(id);
            }
        }
    }
}

fn refuse(stream: &TcpStream, why: &Decision, ip: IpAddr, count: usize, limits: ConnLimits) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let message = match why {
        Decision::RefuseAddr => format!(
            "{ip} already has {count} connections open here, the most one address may have; close one and try again"
        ),
        _ => format!(
            "server is at its limit of {} connections; try again later",
            limits.total
        ),
    };
    let reply = Reply::Err(ErrCode::Busy, message);
    let _ = (&*stream).write_all(format!("{reply}\n").as_bytes());
}

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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read};
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    use super::*;
    use crate::conn::{Timeouts, Trace};

    /// Counts itself out when its thread ends (its `Drop` runs inside the thread).
    struct Live(Arc<AtomicUsize>);
    impl Drop for Live {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A server whose handler blocks reading its socket until it ends; `live` counts handler
    /// threads, and every handler says on `started` that it is running.
    fn blocking_server(live: &Arc<AtomicUsize>) -> (Server, mpsc::Receiver<()>) {
        let (started, ready) = mpsc::channel();
        let started = Mutex::new(started);
        let live = live.clone();
        let server = Server::spawn(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            "test",
            100,
            move |stream| {
                live.fetch_add(1, Ordering::SeqCst);
                let _guard = Live(live.clone());
                let _ = started.lock().unwrap().send(());
                let mut buf = [0u8; 64];
                while matches!((&*stream).read(&mut buf), Ok(n) if n > 0) {}
            },
        )
        .unwrap();
        (server, ready)
    }

    #[test]
    fn stop_ends_and_joins_every_connection_thread() {
        let live = Arc::new(AtomicUsize::new(0));
        let (mut server, ready) = blocking_server(&live);
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(server.addr()).unwrap())
            .collect();
        for _ in 0..3 {
            ready.recv().unwrap();
        }
        assert_eq!(live.load(Ordering::SeqCst), 3);
        // The clients stay open and silent: only stop's shutdown ends the handlers.
        server.stop();
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "a connection thread outlived stop"
        );
        drop(clients);
    }

    #[test]
    fn ended_connections_are_joined_at_the_next_accept() {
        let live = Arc::new(AtomicUsize::new(0));
        let (server, ready) = blocking_server(&live);
        for _ in 0..20 {
            let c = TcpStream::connect(server.addr()).unwrap();
            ready.recv().unwrap();
            drop(c);
        }
        let c = TcpStream::connect(server.addr()).unwrap();
        ready.recv().unwrap();
        // The slots of the 20 closed connections were joined and dropped at later accepts,
        // except those whose threads had not quite ended yet: they do not pile up.
        let slots = lock(&server.open).slots.len();
        assert!(slots < 10, "{slots} slots kept for 1 open connection");
        drop(c);
    }

    #[test]
    fn the_cap_counts_served_connections_not_slots_waiting_to_be_joined() {
        let mut conns = Conns::default();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for id in 0..3 {
            let slot = Slot {
                stream: None,
                thread: Some(thread::spawn(|| {})),
            };
            conns.slots.insert(id, slot);
            conns.table.add(id, ip);
        }
        // Connection 1's thread ended: it leaves the table at once, its slot at the next accept.
        conns.ended.push(1);
        conns.table.remove(1);
        assert_eq!(conns.live(), 2);
        let ended = conns.take_ended();
        assert_eq!((ended.len(), conns.slots.len(), conns.live()), (1, 2, 2));
        for t in ended
            .into_iter()
            .chain(conns.slots.into_values().filter_map(|s| s.thread))
        {
            t.join().unwrap();
        }
    }

    /// A toy server speaking the peer's verbs through `line_loop`.
    fn echo_server(role: Role) -> Server {
        Server::spawn(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            "test",
            10,
            move |stream| {
                let Ok(mut conn) = Conn::new(stream, Timeouts::default(), Trace::off()) else {
                    return;
                };
                line_loop(&mut conn, role, |_, request| match request {
                    Request::Bye => Answer::bye(),
                    other => Answer::Line(Reply::Ack(other.to_string())),
                });
            },
        )
        .unwrap()
    }

    fn exchange(server: &Server, lines: &str) -> Vec<String> {
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(lines.as_bytes()).unwrap();
        BufReader::new(c).lines().map(|l| l.unwrap()).collect()
    }

    #[test]
    fn pipelined_requests_get_every_reply_in_order_even_when_the_client_stops_writing() {
        let peer = echo_server(Role::Peer);
        let names: Vec<String> = (0..2000).map(|i| format!("f{i}")).collect();
        let burst: String = names.iter().map(|n| format!("HAVE {n}\n")).collect();
        // No BYE: the client half-closes after its burst, so the last replies are the ones
        // queued when the server reads the end of the stream.
        let mut c = TcpStream::connect(peer.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(burst.as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let got: Vec<String> = BufReader::new(c).lines().map(|l| l.unwrap()).collect();
        let want: Vec<String> = names.iter().map(|n| format!("ACK HAVE {n}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_verb_of_the_other_server_is_unknown_before_its_arguments_are_read() {
        let peer = echo_server(Role::Peer);
        assert_eq!(
            exchange(&peer, "REGISTER abc\nUPLOAD x\nPING\nBYE\n"),
            [
                "ERR unknown-verb REGISTER is a tracker verb; this is a peer (try HELP)",
                "ERR unknown-verb UPLOAD is a tracker verb; this is a peer (try HELP)",
                "ACK PING",
                "ACK bye",
            ]
        );
        let tracker = echo_server(Role::Tracker);
        assert_eq!(
            exchange(&tracker, "GET ../x 1\nREGISTER abc\nQUIT\n"),
            [
                "ERR unknown-verb GET is a peer verb; this is the tracker (try HELP)",
                "ERR bad-request port \"abc\" is not a valid number",
                "ACK bye",
            ]
        );
    }
}
