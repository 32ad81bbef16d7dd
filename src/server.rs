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
//! The one reply path of both servers (`Answer`, `send`, `line_loop`) is in `server/answer.rs`.
//! Neither file knows a verb's meaning or a server's state.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

mod answer;

pub use answer::{Answer, FilePart, Flow, line_loop, send, silent};

use crate::admission::{self, ConnLimits, Decision, Table};
use crate::protocol::{ErrCode, Reply};

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

#[cfg(test)]
mod tests;
