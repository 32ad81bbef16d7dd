//! The accept loop the tracker and every peer share: one thread per connection, a cap on
//! connections, and a stop that never hangs.
//!
//! Thread-per-connection is the simplest server there is, and its known weakness is that a
//! flood of connections is a flood of threads. So the loop counts open connections and answers
//! the one past `max_conns` with `ERR busy` and a close, and each thread gets a small, explicit
//! stack. Stopping a blocking `accept()` is done the tiny-http way: set a flag, then connect to
//! ourselves once so `accept()` returns and sees it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::conn::{Conn, ConnError};
use crate::protocol::{ErrCode, MAX_LINE, Reply, Request, parse_request};

/// Stack size of a connection thread. The handlers are shallow loops; 256 KiB leaves a wide
/// margin while 10,000 threads reserve (not touch) 2.5 GiB of address space.
pub const CONN_STACK: usize = 256 * 1024;

/// Open connections, by a serial number: the cap counts them and a stop shuts them down.
type OpenConns = Arc<Mutex<HashMap<u64, Arc<TcpStream>>>>;

/// A running server. Dropping it stops accepting and closes every open connection.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    open: OpenConns,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `listener`: every accepted connection runs `handler` on its own thread.
    pub fn spawn<F>(
        listener: TcpListener,
        name: &str,
        max_conns: usize,
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
            .spawn(move || accept_loop(listener, &name2, max_conns, &stop2, &open2, handler))?;
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

    /// Stop accepting, close every open connection, and wait for the accept loop to end.
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
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(PoisonError::into_inner));
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
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
    max_conns: usize,
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
        serial += 1;
        let id = serial;
        let stream = Arc::new(stream);
        let admitted = {
            let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
            open.len() < max_conns && open.insert(id, stream.clone()).is_none()
        };
        if !admitted {
            refuse(&stream, max_conns);
            continue;
        }
        let (handler, open2) = (handler.clone(), open.clone());
        let spawned = thread::Builder::new()
            .name(format!("{name}-conn"))
            .stack_size(CONN_STACK)
            .spawn(move || {
                handler(stream);
                open2
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
            });
        if spawned.is_err() {
            // The system is out of threads: the stream moved into the failed closure and is
            // closed with it; forget it.
            open.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
        }
    }
}

fn refuse(stream: &TcpStream, max_conns: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let reply = Reply::Err(
        ErrCode::Busy,
        format!("server is at its limit of {max_conns} connections; try again later"),
    );
    let _ = (&*stream).write_all(format!("{reply}\n").as_bytes());
}

/// What a request handler tells the connection loop.
pub enum Flow {
    Continue,
    Close,
}

/// The loop every connection of both servers runs: read a line, parse it, let `handle` answer
/// it, repeat. Bad lines are answered here with `ERR` and the connection goes on; an overlong
/// line is skipped to its newline and answered `ERR too-long`; an idle connection is told why
/// it is closed. Returns when the connection ends.
pub fn line_loop(conn: &mut Conn, mut handle: impl FnMut(&mut Conn, Request) -> io::Result<Flow>) {
    loop {
        let line = match conn.read_line(MAX_LINE) {
            Ok(line) => line,
            Err(ConnError::TooLong) => {
                let msg = format!("lines are limited to {MAX_LINE} bytes");
                if conn
                    .send_line(&Reply::Err(ErrCode::TooLong, msg).to_string())
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Err(ConnError::Timeout) => {
                let secs = conn.timeouts().idle.as_secs_f32();
                let msg = format!("nothing received for {secs} s; closing");
                let _ = conn.send_line(&Reply::Err(ErrCode::Timeout, msg).to_string());
                return;
            }
            Err(ConnError::LineTimeout) => {
                let secs = conn.timeouts().line.as_secs_f32();
                let msg = format!("a line must end within {secs} s of its first byte; closing");
                let _ = conn.send_line(&Reply::Err(ErrCode::Timeout, msg).to_string());
                return;
            }
            Err(ConnError::Protocol(msg)) => {
                let _ = conn.send_line(&Reply::Err(ErrCode::TooLong, msg).to_string());
                return;
            }
            Err(_) => return,
        };
        let flow = match parse_request(&line) {
            Ok(request) => handle(conn, request),
            Err(e) => conn
                .send_line(&e.into_reply().to_string())
                .map(|()| Flow::Continue),
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) | Err(_) => return,
        }
    }
}
